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

from synalign.errors import ConfigError, SynAlignError
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


# The setting that controls each rejection reason, for the advice of `no_sample_message`.
_MODEL = "use another model (llm.model_path, or llm.model for openai)"
_CHAT_FORMAT = (
    'llm.prompt_family = "completion" if llm.model is a base model, else a stronger llm.model'
)
_VARIETY = "raise llm.temperature"
ADVICE = {
    "empty": _MODEL,
    "unparseable": _CHAT_FORMAT,
    "missing": _CHAT_FORMAT,
    "wrong_label": _CHAT_FORMAT,
    "refusal": f"{_MODEL}, or milder data.label_descriptions",
    "narration": _MODEL,
    "too_short": "lower generate.min_words",
    "too_long": "raise generate.max_words (unset: twice the longest real text)",
    "prompt_echo": _MODEL,
    "copy_of_real": _VARIETY,
    "repetitive": _VARIETY,
    "truncated": "raise llm.max_tokens",
    "wrong_language": f"no setting, the real texts set the language: {_MODEL}",
    "near_copy": "raise generate.near_copy (1 rejects exact copies only)",
    "duplicate": _VARIETY,
    "copy_of_document": _VARIETY,
    "not_specific": "relax retrieval.check / retrieval.check_quantile",
    "label_mismatch": (
        "lower generate.label_check_quantile or generate.label_check_threshold, or set "
        'generate.label_check = "none"'
    ),
}
_SHOWN_ADVICE = 4  # pieces of advice given, for the most frequent reasons


def no_sample_message(
    labels: list[str],
    rejected: list[dict[str, Any]],
    path: Any,
    prompt_family: str | None = None,
) -> str:
    """Why a generate stage ended with nothing accepted for `labels`: each label's most
    frequent rejection reasons, with counts, then the settings behind the reasons that
    occurred, most frequent first (advice for reasons that did not occur only misleads)."""
    parts = []
    for label in labels:
        counts = Counter(r["reason"] for r in rejected if r["label"] == label)
        top = ", ".join(f"{why} {n}" for why, n in counts.most_common(3))
        parts.append(f"{label!r} (rejected: {top or 'no sample was generated'})")
    signs = sum(r["reason"] in BASE_MODEL_SIGNS for r in rejected)
    base_model = bool(rejected) and prompt_family == "chat" and signs >= 0.5 * len(rejected)
    # a base model's signs get the prompt-family advice below instead of their own
    told = {"prompt_echo", "missing", "unparseable"} if base_model else set()
    ours = Counter(r["reason"] for r in rejected if r["label"] in labels)
    grouped: dict[str, list[str]] = {}  # advice -> its reasons, most frequent first
    for why, _ in ours.most_common():
        if why in ADVICE and why not in told:
            grouped.setdefault(ADVICE[why], []).append(why)
    shown = list(grouped.items())[:_SHOWN_ADVICE]
    advice = [f"{' / '.join(whys)}: {text}" for text, whys in shown]
    more = "or raise generate.samples_per_label" if advice else "raise generate.samples_per_label"
    fix = "; ".join([*advice, more])
    if base_model:
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


# Samples written per label above which a budget is refused (see `check_budget`).
MAX_SAMPLES_PER_LABEL = 1_000_000


def check_budget(samples_per_label: int, samples_per_cluster: int, attributes: bool) -> int:
    """The demonstration clusters per label a budget needs; a budget beyond what any run
    can finish is refused in one line that says what it would cost, before exploration,
    which would otherwise spend hours building clusters no LLM will ever see."""
    from synalign.esm.selectors import MAX_CLUSTERS

    clusters = math.ceil(samples_per_label / samples_per_cluster)
    written = clusters * samples_per_cluster
    if clusters <= MAX_CLUSTERS and written <= MAX_SAMPLES_PER_LABEL:
        return clusters
    if clusters > MAX_CLUSTERS or samples_per_label > MAX_SAMPLES_PER_LABEL:
        key, value = "generate.samples_per_label (--samples-per-label)", samples_per_label
        most = min(MAX_CLUSTERS * samples_per_cluster, MAX_SAMPLES_PER_LABEL)
    else:  # few clusters, but each writes a huge number of samples
        key, value = "generate.samples_per_cluster", samples_per_cluster
        most = MAX_SAMPLES_PER_LABEL // clusters
    calls = clusters * (2 if attributes else 1)  # an attribute and a writing call per cluster
    raise ConfigError(
        f"{key} = {value} means {clusters:,} demonstration clusters and at least {calls:,} LLM"
        f" calls per label ({written:,} samples); a run takes at most {MAX_CLUSTERS:,}"
        f" clusters and {MAX_SAMPLES_PER_LABEL:,} samples per label: set it to at most {most:,}"
    )


def clusters_per_label(p: Pipeline) -> int:
    g = p.config.generate
    return check_budget(g.samples_per_label, g.samples_per_cluster, g.attributes)


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
        "model": gen.get("model"),
        "model_sha256": gen.get("model_sha256"),
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
