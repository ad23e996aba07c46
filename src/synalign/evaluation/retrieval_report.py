"""The retrieval evaluation's report: metrics.json, report.md and a self-contained
report.html with the tables and a plot of real vs synthetic query lengths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synalign.evaluation.folder import EvaluationFolder
from synalign.evaluation.retrieval_settings import METRICS
from synalign.report.answer import ablation_contributions, answer_sentences
from synalign.report.stats import _stats, paired_to_baselines

DISTANCES = ("mmd2_test", "length_w1", "length_kl", "kept")


def _seeds(folder: EvaluationFolder, info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for seed in info["settings"]["seeds"]:
        result = folder.read_seed(seed)
        if result is not None:
            out.append(result)
    return out


def summarise_retrieval(info: dict[str, Any], seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per row and metric: mean, sd and every seed's value; paired differences to `real`
    and `naive`, and between each ablation and its full row, with 95% t intervals over the
    seeds both rows finished (an interrupted evaluation reports each row over the seeds it
    has; `seeds` says which)."""
    order = [m for m in info["methods"] if any(m in s["methods"] for s in seeds)]
    methods: dict[str, Any] = {}
    for name in order:
        per_seed = [s["methods"][name] for s in seeds if name in s["methods"]]
        methods[name] = {k: _stats([p.get(k) for p in per_seed]) for k in METRICS + DISTANCES}
        methods[name]["seeds"] = [s["seed"] for s in seeds if name in s["methods"]]
    return {
        "task": "retrieval",
        "seeds": [s["seed"] for s in seeds],
        "methods": methods,
        "paired": paired_to_baselines(seeds, order, METRICS),
        "ablations": ablation_contributions(seeds, order, METRICS),
        "fine_tune": info.get("fine_tune"),
        "descriptions": {n: m.get("description", "") for n, m in info["methods"].items()},
    }


def _fmt(stat: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    if stat.get("mean") is None:
        return "–"
    return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['sd']:.{digits}f}"


def _interval(p: dict[str, Any]) -> str:
    if p.get("ci_low") is None:
        return f"{100 * p['mean']:+.1f}"
    mark = " **above 0**" if p["ci_low"] > 0 else (" **below 0**" if p["ci_high"] < 0 else "")
    return f"{100 * p['mean']:+.1f} [{100 * p['ci_low']:+.1f}, {100 * p['ci_high']:+.1f}]{mark}"


def plot_lengths(lengths: dict[str, list[int]]) -> bytes:
    """Share of queries by length in words: held-out real queries vs each generated set."""
    from synalign.report.plots import _figure, _png

    fig, axes = _figure(7.0, 3.2)
    ax = axes[0][0]
    top = 25
    bins = np.arange(1, top + 2) - 0.5
    for name, values in lengths.items():
        if not values:
            continue
        v = np.clip(np.asarray(values), 1, top)
        ax.hist(v, bins=bins, density=True, histtype="step", linewidth=2 if name == "test" else 1.2,
                label="held-out real queries" if name == "test" else name)  # fmt: skip
    ax.set_xlabel(f"query length (words; {top}+ in the last bin)")
    ax.set_ylabel("share of queries")
    ax.legend(fontsize=8)
    return _png(fig)


def build_retrieval_report(folder: EvaluationFolder) -> dict[str, Any]:
    """Write report/metrics.json, report.md and report.html; return the metrics."""
    from synalign.io import atomic_write_bytes, atomic_write_text
    from synalign.report.document import Document

    info = folder.read_info()
    seeds = _seeds(folder, info)
    summary = summarise_retrieval(info, seeds)
    report = folder.report_dir
    report.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report / "metrics.json", json.dumps(summary, indent=2))
    doc = Document()
    doc.h(1, "Retrieval evaluation")
    doc.p(" ".join(answer_sentences(summary, "mrr@10", "MRR@10")))
    s = info["settings"]
    data = (
        s.get("dataset")
        or f"corpus {s.get('corpus')}, train {s.get('train')}, test {s.get('test')}"
    )
    doc.p(
        f"Data: {data}; {info['corpus_documents']} documents, {info['test_queries']} held-out"
        f" real queries searched against the whole corpus; K = {s['shots']} real training"
        f" pairs per seed; {len(summary['seeds'])} seeds; up to {s['queries']} synthetic"
        " queries per generated set, none written for a document a test query points to."
    )
    ft = summary["fine_tune"] or {}
    doc.p(
        "Every trained row fine-tunes the bundled all-MiniLM-L6-v2 bi-encoder with"
        " MultipleNegativesRankingLoss (weights per pair), fixed in advance: "
        + ", ".join(f"{k} {v}" for k, v in ft.items())
        + "."
    )
    doc.h(2, "Scores (mean ± sd over seeds, ×100)")
    headers = ["row", *METRICS, "seeds", "kept", "MMD² to test", "length W1", "length KL"]
    rows = []
    for name, m in summary["methods"].items():
        dist = [
            f"{m['kept']['mean']:.0f}" if m["kept"]["mean"] is not None else "–",
            f"{m['mmd2_test']['mean']:.4f}" if m["mmd2_test"]["mean"] is not None else "–",
            f"{m['length_w1']['mean']:.2f}" if m["length_w1"]["mean"] is not None else "–",
            f"{m['length_kl']['mean']:.3f}" if m["length_kl"]["mean"] is not None else "–",
        ]
        rows.append([f"`{name}`", *(_fmt(m[k]) for k in METRICS), str(len(m["seeds"])), *dist])
    doc.table(headers, rows)
    for baseline, table in summary["paired"].items():
        doc.h(2, f"Paired difference to `{baseline}` (×100, 95% interval over seeds)")
        doc.table(
            ["row", *METRICS, "seeds"],
            [
                [f"`{n}`", *(_interval(p[k]) for k in METRICS), str(p["mrr@10"]["seeds"])]
                for n, p in table.items()
            ],
        )
    doc.h(2, "Rows")
    doc.bullets([f"`{n}`: {d}" for n, d in summary["descriptions"].items()])
    if seeds:
        png = plot_lengths(seeds[0].get("lengths", {}))
        atomic_write_bytes(report / "query-lengths.png", png)
        doc.image("query-lengths.png", png, "Query lengths: held-out real vs generated (seed 0)")
    atomic_write_text(report / "report.md", doc.markdown())
    atomic_write_text(report / "report.html", doc.html("SynAlign retrieval evaluation"))
    return summary


def report_of(path: str | Path) -> dict[str, Any]:
    return build_retrieval_report(EvaluationFolder(path))
