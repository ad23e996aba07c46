"""The rich tables a finished run or evaluation prints."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def format_cell(x: Any) -> str:
    """A metric as a short cell: 4 significant digits, dicts inline, "-" for nothing."""
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {format_cell(v)}" for k, v in x.items()) or "-"
    return "-" if x is None else str(x)


def llm_calls(metrics: dict[str, Any]) -> str:
    """LLM calls per stage, cached and retried ones included, so the cost of a re-run shows."""
    usage = metrics.get("llm_usage") or {}
    parts = []
    for stage in ("describe", "generate"):
        u = usage.get(stage) or {}
        text = (
            f"{stage}: {u.get('calls', 0)} made, {u.get('cache_hits', 0)} cached, "
            f"{u.get('completion_tokens', 0)} tokens out, {u.get('retries', 0)} retried"
        )
        if u.get("scorings") or u.get("scoring_cache_hits"):
            text += (
                f", label check {u.get('scorings', 0)} scored, "
                f"{u.get('scoring_cache_hits', 0)} cached"
            )
        parts.append(text)
    return "; ".join(parts)


def _priced(metrics: dict[str, Any]) -> bool:
    return any(v is not None for v in (metrics.get("llm_cost") or {}).values())


def _model(metrics: dict[str, Any]) -> str | None:
    """The model that wrote the samples, with the start of its file's sha256 for a local
    model (metrics.json and the data card hold the whole digest)."""
    model, digest = metrics.get("model"), metrics.get("model_sha256")
    return f"{model} (sha256 {digest[:12]}...)" if model and digest else model


def summary_table(metrics: dict[str, Any], wall: float) -> Table:
    """What a pipeline run did, from its report metrics and this invocation's wall time."""
    table = Table(title="SynAlign run summary", show_header=True, header_style="bold")
    table.add_column("label")
    table.add_column("value", overflow="fold")
    retrieval = (metrics.get("config") or {}).get("task") == "retrieval"
    item = "queries" if retrieval else "samples"
    rows = [
        ("real pairs" if retrieval else "real examples", metrics.get("real_records")),
        ("documents of the real pairs" if retrieval else "labels", metrics.get("labels")),
        ("demonstration clusters", metrics.get("clusters")),
        ("attribute lines parsed", metrics.get("attributes_parsed")),
        (f"{item} generated", metrics.get("generated")),
        (f"{item} accepted", metrics.get("accepted")),
        (f"{item} rejected", metrics.get("rejected")),
    ]
    if not retrieval:
        rows.append(("accepted per label", metrics.get("synthetic_per_label")))
    rows += [
        ("MMD² before alignment", metrics.get("mmd2_before")),
        ("MMD² after alignment", metrics.get("mmd2_after")),
        ("effective sample size", metrics.get("ess")),
        (f"aligned {item} written", metrics.get("aligned")),
        ("LLM model", _model(metrics)),
        ("LLM calls (attributes, samples)", llm_calls(metrics)),
        ("LLM cost", format_cell(metrics.get("llm_cost")) if _priced(metrics) else "not priced"),
        ("stage seconds", metrics.get("seconds")),
        ("wall time (this invocation)", f"{wall:.1f} s"),
        ("run directory", metrics.get("run_dir")),
    ]
    for k, v in rows:
        table.add_row(k, format_cell(v))
    return table


def eval_table(metrics: dict[str, Any]) -> Table:
    """Per method: scores over the seeds and the paired differences that say whether the
    synthetic data helped."""
    from synalign.report import format_delta

    table = Table(title="evaluation on the real test split", header_style="bold")
    columns = (
        "method",
        "accuracy %",
        "macro-F1 %",
        "Δ F1 vs real [95% CI]",
        "Δ F1 vs naive [95% CI]",
        "MMD² to test",
        "ESS/n",
    )
    for col in columns:
        table.add_column(col)
    paired = metrics.get("paired", {})

    def pct(s: dict[str, Any] | None) -> str:
        if not s or s.get("mean") is None:
            return "-"
        return f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}"

    for name, m in metrics["methods"].items():
        table.add_row(
            name,
            pct(m["accuracy"]),
            pct(m["macro_f1"]),
            format_delta(paired.get("real", {}).get(name, {}).get("macro_f1")),
            format_delta(paired.get("naive", {}).get(name, {}).get("macro_f1")),
            format_cell(m["mmd2_test"]["mean"]),
            format_cell(m["ess_ratio"]["mean"]),
        )
    return table
