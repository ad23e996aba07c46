"""The six stages, each reading its inputs from the run directory and writing its outputs
there; each returns the figures `state.json` keeps for it.

ingest -> explore (ESM) -> describe, generate (LAR, ending with the label check) ->
align (SDA) -> report.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.errors import SynAlignError
from synalign.lar.generator import Cluster, stable_seed
from synalign.pipeline.components import build_generator, llm_progress, stage_usage
from synalign.pipeline.run_dir import STAGES
from synalign.pipeline.tail import Labelled, check_labels, learn_weights, needs_llm
from synalign.records import labels_of

if TYPE_CHECKING:
    from synalign.pipeline.runner import Pipeline

# What a base (not instruction-tuned) model does with a chat prompt: it continues the
# prompt's own text, runs to the token limit, or writes no JSON array at all.
BASE_MODEL_SIGNS = ("prompt_echo", "truncated", "missing", "unparseable")


def no_sample_message(
    labels: list[str],
    rejected: list[dict[str, Any]],
    path: Any,
    prompt_family: str | None = None,
) -> str:
    """Why a generate stage ended with nothing accepted for `labels`: each label's most
    frequent rejection reasons, with counts, and the most likely fix first."""
    parts = []
    for label in labels:
        counts = Counter(r["reason"] for r in rejected if r["label"] == label)
        top = ", ".join(f"{why} {n}" for why, n in counts.most_common(3))
        parts.append(f"{label!r} (rejected: {top or 'no sample was generated'})")
    fix = "raise generate.samples_per_label or relax generate.min_words / near_copy"
    signs = sum(r["reason"] in BASE_MODEL_SIGNS for r in rejected)
    if prompt_family == "chat" and rejected and signs >= 0.5 * len(rejected):
        fix = (
            f"{signs} of {len(rejected)} rejections are {' / '.join(BASE_MODEL_SIGNS)}, what a"
            " base model does with chat prompts: if llm.model is a base (not"
            ' instruction-tuned) model, set llm.prompt_family = "completion"'
            " (--set 'llm.prompt_family=\"completion\"'); otherwise " + fix
        )
    return (
        f"no synthetic sample was accepted for label(s) {'; '.join(parts)}; {fix}; see {path}"
        " for every rejected sample"
    )


def clusters_per_label(p: Pipeline) -> int:
    g = p.config.generate
    return math.ceil(g.samples_per_label / g.samples_per_cluster)


def ingest(p: Pipeline) -> dict[str, Any]:
    data = p.task.read(p.config, p.records)
    for w in data.warnings:
        p.reporter.warning(w)
    p.run_dir.write_real(data.records)
    labels = labels_of(data.records)
    return {"records": len(data.records), "labels": len(labels), "warnings": data.warnings}


def explore(p: Pipeline) -> dict[str, Any]:
    from synalign.esm import DemonstrationSelector, RandomSelector

    c = p.config
    real = p.run_dir.real()
    texts = [r.text for r in real]
    report = p.embedder.token_report(texts)
    warnings = report.warnings("real texts") if report else []
    for w in warnings:
        p.reporter.warning(w)
    X = p.embed(texts, "real texts")
    n_clusters = clusters_per_label(p)
    rows: list[dict[str, Any]] = []
    for label, idx in p.task.groups(real).items():
        seed = stable_seed(c.seed, label, "explore")
        selector: Any
        if c.explore.method == "gp":
            selector = DemonstrationSelector(
                cluster_size=c.explore.cluster_size,
                bandwidth=c.explore.bandwidth,
                noise=c.explore.noise,
                seed=seed,
            )
        else:
            selector = RandomSelector(cluster_size=c.explore.cluster_size, seed=seed)
        for members in selector.select(X[idx], n_clusters):
            recs = [real[idx[m]] for m in members]
            rows.append(
                {
                    "cluster": len(rows),
                    "label": label,
                    "demo_ids": [r.id for r in recs],
                    "texts": [r.text for r in recs],
                }
            )
    p.run_dir.write_demos(rows)
    return {"clusters": len(rows), "warnings": warnings}


def _clusters(p: Pipeline) -> list[Cluster]:
    return [
        Cluster(r["cluster"], r["label"], tuple(r["demo_ids"]), tuple(r["texts"]))
        for r in p.run_dir.demos()
    ]


def describe(p: Pipeline) -> dict[str, Any]:
    gen = build_generator(p.config, p.llm, p.family, p.spec, p.run_dir.real())
    return describe_with(p, gen, _clusters(p))


def describe_with(p: Pipeline, gen: Any, clusters: list[Any]) -> dict[str, Any]:
    """The attribute step with a task's generator and clusters, written to the run."""
    p.llm.reset_usage()
    with p.reporter.task("attributes", total=len(clusters)) as advance:
        rows = gen.describe(clusters, progress=llm_progress(p.llm, advance))
    p.run_dir.write_attributes(rows)
    return {
        "parsed": sum(r["parsed"] for r in rows),
        "clusters": len(rows),
        **stage_usage(p.config, p.llm),
    }


def generate(p: Pipeline) -> dict[str, Any]:
    clusters = _clusters(p)
    attributes = p.run_dir.attributes()
    real = p.run_dir.real()
    gen = build_generator(p.config, p.llm, p.family, p.spec, real)
    p.llm.reset_usage()
    with p.reporter.task("writing samples", total=gen.n_requests(clusters)) as advance:
        accepted, rejected = gen.generate(
            clusters, attributes, progress=llm_progress(p.llm, advance)
        )
    checked: dict[str, Any] = {}
    if p.config.generate.label_check != "none" and accepted:
        accepted, mismatched, checked = _check(p, accepted)
        rejected = rejected + mismatched
    for row in accepted + rejected:
        row["seed"] = p.config.seed
    p.run_dir.write_generated(accepted, rejected)
    empty = [lab for lab in labels_of(real) if not any(r["label"] == lab for r in accepted)]
    if empty:
        raise SynAlignError(
            no_sample_message(empty, rejected, p.run_dir.rejected_path, p.family.name)
        )
    return {
        "generated": len(accepted) + len(rejected),
        "accepted": len(accepted),
        "rejected": dict(Counter(r["reason"] for r in rejected)),
        **checked,
        **stage_usage(p.config, p.llm),
    }


def real_and_synthetic(p: Pipeline, synthetic: list[dict[str, Any]]) -> tuple[Labelled, Labelled]:
    """The real records and the synthetic rows with their embeddings, as the tail takes."""
    real = p.run_dir.real()
    X_real = p.embed([r.text for r in real], "real texts")
    texts = [s["text"] for s in synthetic]
    X_syn = p.embed(texts, "synthetic texts")
    return (
        Labelled([r.text for r in real], [r.label for r in real], X_real, [r.id for r in real]),
        Labelled(texts, [s["label"] for s in synthetic], X_syn, [s["demo_ids"] for s in synthetic]),
    )


def _check(
    p: Pipeline, accepted: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Moves samples whose label the real texts contradict to the rejected ones
    (reason `label_mismatch`, with the judge's score)."""
    method, threshold, quantile = p.task.check(p.config).resolve(p.llm)
    real, synthetic = real_and_synthetic(p, accepted)
    bar = p.reporter.task(f"label check ({method})", total=len(accepted))
    with bar if needs_llm(method) else contextlib.nullcontext(None) as step:
        outcome = check_labels(
            real, synthetic, method, threshold, quantile,
            llm=p.llm, seed=p.config.seed, progress=step,
        )  # fmt: skip
    threshold = outcome.threshold if outcome.threshold is not None else threshold
    kept = [row for row, k in zip(accepted, outcome.keep, strict=True) if k]
    mismatched = [
        {**row, "reason": "label_mismatch", "label_score": round(float(score), 4)}
        for row, score, k in zip(accepted, outcome.scores, outcome.keep, strict=True)
        if not k
    ]
    emptied = outcome.kept_whole_labels
    info = {
        "label_check": {
            "method": method,
            "threshold": threshold,
            "quantile": quantile if outcome.calibrated else None,
            "kept_whole_labels": emptied,
        }
    }
    chosen = (
        f", the {quantile:g} quantile of the real texts' out-of-fold scores"
        if outcome.calibrated
        else ""
    )
    p.reporter.message(
        f"label check ({method}, threshold {threshold:.2f}{chosen}): rejected "
        f"{len(mismatched)} of {len(accepted)} samples as reading like another label"
    )
    for lab in emptied:
        p.reporter.warning(
            f"the label check would reject every sample of {lab!r}; kept them all "
            "(see generate.label_check)"
        )
    return kept, mismatched, info


def align(p: Pipeline) -> dict[str, Any]:
    from synalign.sda import counts_by_share, label_shares

    c = p.config
    synthetic = p.run_dir.synthetic()
    real, syn = real_and_synthetic(p, synthetic)
    weighting = learn_weights(
        real,
        syn,
        weighting="mmd" if c.align.enabled else "uniform",
        bandwidth=c.align.bandwidth,
        ess_floor=c.align.ess_floor,
        scope=c.align.scope,
        seed=c.seed,
        measure=True,
    )
    aligner = weighting.aligner
    sizes: int | dict[str, int] | None = c.align.size_per_label
    if sizes is None:
        # As many as were accepted, split between labels like the real texts: a label
        # the label check thinned out keeps its share of the set.
        shares = label_shares(list(real.labels))
        sizes = counts_by_share(len(synthetic), {lab: shares[lab] for lab in aligner.labels_})
    picks = aligner.resample(sizes, seed=c.seed)
    aligned = [{**synthetic[i], "weight": float(aligner.weights_[i])} for i in picks]
    info = {
        "bandwidth": float(aligner.bandwidth_),
        "mmd2_before": aligner.mmd2_before_,
        "mmd2_after": aligner.mmd2_after_,
        "ess": aligner.ess_,
        "synthetic_per_label": dict(Counter(syn.labels)),
        "aligned_per_label": dict(Counter(a["label"] for a in aligned)),
    }
    p.run_dir.write_alignment(np.asarray(aligner.weights_, dtype=np.float64), info, aligned)
    return {"aligned": len(aligned)}


def report(p: Pipeline) -> dict[str, Any]:
    state = p.run_dir.stages()
    align_info = p.run_dir.alignment()
    gen = state.get("generate", {})
    metrics = {
        "run_dir": str(p.run_dir.root),
        "labels": state.get("ingest", {}).get("labels"),
        "real_records": state.get("ingest", {}).get("records"),
        "clusters": state.get("explore", {}).get("clusters"),
        "attributes_parsed": state.get("describe", {}).get("parsed"),
        "generated": gen.get("generated"),
        "accepted": gen.get("accepted"),
        "rejected": gen.get("rejected"),
        "aligned": state.get("align", {}).get("aligned"),
        "llm_usage": {s: state.get(s, {}).get("llm") for s in ("describe", "generate")},
        "llm_cost": {s: state.get(s, {}).get("cost") for s in ("describe", "generate")},
        **{k: align_info[k] for k in ("bandwidth", "mmd2_before", "mmd2_after", "ess")},
        "synthetic_per_label": align_info["synthetic_per_label"],
        "seconds": {s: state.get(s, {}).get("seconds") for s in STAGES[:-1]},
        "config": p.config.model_dump(),
    }
    p.run_dir.write_metrics(metrics)
    return {}


RUNNERS = {
    "ingest": ingest,
    "explore": explore,
    "describe": describe,
    "generate": generate,
    "align": align,
    "report": report,
}
