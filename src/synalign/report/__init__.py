"""Reports: statistics over seeds, plots from arrays, and the HTML rendering."""

from synalign.report.build import build_report
from synalign.report.cells import format_delta
from synalign.report.stats import EvaluationResults, load_results, paired_stats, summarise

__all__ = [
    "EvaluationResults",
    "build_report",
    "format_delta",
    "load_results",
    "paired_stats",
    "summarise",
]
