"""Reports: statistics over seeds, plots from arrays, and the HTML rendering.

Names are imported on first use, so a module of this package (a data card, say) loads
without the plotting and statistics stack."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "EvaluationResults": "stats",
    "build_report": "build",
    "format_delta": "cells",
    "load_results": "stats",
    "paired_stats": "stats",
    "summarise": "stats",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'synalign.report' has no attribute {name!r}")
    return getattr(import_module(f"synalign.report.{_WHERE[name]}"), name)
