"""The budget curve as the report and the terminal show it: where more generation stops paying."""

from __future__ import annotations

from typing import Any

from synalign.report.cells import format_delta, pct
from synalign.report.document import Document


def curve_lines(curve: dict[str, Any]) -> list[str]:
    """The curve in a line per method, for the terminal."""
    lines = []
    for name, points in curve.items():
        parts = [
            f"{p['candidates_per_label']}: {100 * p['macro_f1']['mean']:.1f}"
            for p in points.values()
        ]
        head = f"budget curve, {name} (candidates per label: macro-F1 %): "
        lines.append(head + ", ".join(parts))
    return lines


def write_curve_section(doc: Document, curve: dict[str, Any], images: dict[str, bytes]) -> None:
    """The report's budget-curve section: the plot and a table with each point's cost."""
    if not curve:
        return
    doc.h(2, "How much synthetic data to make")
    doc.p(
        "Macro-F1 when the real shots are joined by the first candidates per label of one "
        "generation (a smaller budget is the same run cut after fewer demonstration "
        "clusters, so every point shares its LLM calls). Where the curve flattens, more "
        "generation stops paying. LLM requests and minutes are what each point's share of "
        "the generation took when it was generated, over all seeds ('-' minutes: the "
        "generation was last re-run from the response cache, so its time is not known)."
    )
    if "curve" in images:
        doc.image("curve.png", images["curve"], "Macro-F1 against the synthetic budget.")
    rows = []
    for name, points in curve.items():
        for p in points.values():
            rows.append(
                [
                    f"`{name}`",
                    f"{p['multiple']:g}x ({p['candidates_per_label']})",
                    f"{p['kept_rows']['mean']:.0f}",
                    pct(p["macro_f1"]),
                    format_delta(p["vs_real"]),
                    "-" if p["llm_requests"] is None else str(p["llm_requests"]),
                    "-" if p["minutes"] is None else f"{p['minutes']:.1f}",
                ]
            )
    doc.table(
        [
            "method",
            "budget: × shots (candidates per label)",
            "synthetic rows trained on per seed",
            "macro-F1 %",
            "Δ macro-F1 vs real [95% CI] (wins)",
            "LLM requests",
            "generation minutes",
        ],
        rows,
    )
