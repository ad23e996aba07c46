"""An evaluation's report: metrics.json, report.md, report.html and the PNG plots.

Nothing here trains or generates: the report is rebuilt from the evaluation folder's saved
results, so it can be rebuilt (or restyled) at any time for free.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synalign.report.plots import (
    plot_coverage,
    plot_curve,
    plot_projection,
    plot_scores,
    plot_weights,
)
from synalign.report.sections import evaluation_document, model_text
from synalign.report.stats import EvaluationResults, load_results, summarise


def draw_plots(res: EvaluationResults, summary: dict[str, Any]) -> dict[str, bytes]:
    """Every plot the results allow, by name; a plot without data to draw is left out."""
    folder = res.folder
    methods = res.info["methods"]
    first_seed = res.seeds[0]["seed"]
    held_out = "validation texts" if res.settings.get("validation") else "test split"
    makers: dict[str, Callable[[], bytes | None]] = {
        "scores": lambda: plot_scores(summary["methods"], held_out, len(res.seeds)),
        "projection": lambda: plot_projection(
            folder.seed_arrays(first_seed), folder.test_sample(), methods, first_seed
        ),
        "weights": lambda: plot_weights(
            (folder.seed_arrays(s["seed"]) for s in res.seeds), methods
        ),
        "coverage": lambda: plot_coverage(summary["coverage"], res.settings["coverage_clusters"]),
        "curve": lambda: plot_curve(
            summary["curve"], summary["methods"]["real"]["macro_f1"], res.settings["shots"]
        ),
    }
    images: dict[str, bytes] = {}
    for name, make in makers.items():
        png = make()
        if png is not None:
            images[name] = png
    return images


def report_metrics(res: EvaluationResults, summary: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, and every seed's raw results, as one JSON document."""
    return {
        "eval_dir": str(res.eval_dir),
        "settings": res.settings,
        "pipeline_config": res.info.get("pipeline_config"),
        "versions": res.info.get("versions"),
        "method_definitions": res.info.get("methods"),
        "model_selection": model_text(res.settings).replace("**", ""),
        "test_records": res.info.get("test_records"),
        "seeds_missing": res.missing_seeds,
        **summary,
        "per_seed": res.seeds,
    }


def build_report(eval_dir: str | Path) -> Path:
    """Write metrics.json, report.md, report.html and the PNG plots into `<eval_dir>/report/`."""
    from synalign.io import atomic_write_bytes, atomic_write_text

    res = load_results(eval_dir)
    summary = summarise(res)
    images = draw_plots(res, summary)
    out = res.folder.report_dir
    out.mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        atomic_write_bytes(out / f"{name}.png", png)
    doc = evaluation_document(res, summary, images)
    atomic_write_text(out / "metrics.json", json.dumps(report_metrics(res, summary), indent=2))
    atomic_write_text(out / "report.md", doc.markdown())
    title = f"SynAlign evaluation: {res.settings['dataset'] or res.settings['train_path']}"
    atomic_write_text(out / "report.html", doc.html(title))
    return out
