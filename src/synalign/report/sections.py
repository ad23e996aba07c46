"""The sections of an evaluation's report, written from its results and their summary.

Each section explains how its numbers were measured next to the numbers themselves, so
the report stands on its own without the code or the command that produced it.
"""

from __future__ import annotations

from typing import Any

from synalign.report.answer import answer_sentences
from synalign.report.cells import format_delta, num, pct, thresholds
from synalign.report.curve import write_curve_section
from synalign.report.document import Document
from synalign.report.stats import EvaluationResults

REAL_ROW_NAMES = {
    "logreg": "logistic regression on the real shots",
    "setfit": "SetFit on the real shots",
    "finetune": "MiniLM fine-tuned on the real shots",
}


def real_row_name(settings: dict[str, Any]) -> str:
    """What `real` is in words: the classifier a user would train without SynAlign."""
    return REAL_ROW_NAMES[settings.get("classifier", settings.get("model", "logreg"))]


def model_text(settings: dict[str, Any]) -> str:
    """The downstream model, fixed in advance for every method, in one sentence."""
    classifier = settings.get("classifier", settings.get("model"))
    if classifier == "setfit":
        return (
            "SetFit (the `setfit` library): the bundled all-MiniLM-L6-v2 fine-tuned on "
            "contrastive pairs (20 of each kind per training text, at most 200 batches of "
            "16, one epoch, body lr 2e-5, cosine-similarity loss), then a logistic-regression "
            "head; a "
            "sample's weight sets how often it enters the pairs and its weight in the "
            "head's loss; fixed in advance"
        )
    if classifier == "finetune":
        return (
            "the bundled all-MiniLM-L6-v2 fine-tuned end to end with a linear head (cosine "
            f"logits × 20), AdamW (encoder lr 3e-5, head lr 3e-3), batch 16, "
            f"{settings['finetune_epochs']} epoch(s), at most 128 tokens; fixed in advance"
        )
    return (
        "logistic regression (scikit-learn, lbfgs) on L2-normalised embeddings of the "
        f"pipeline's embedder, with **C = {settings['C']:g} for every method, fixed in "
        "advance and never tuned on the test split**"
    )


def evaluation_document(
    res: EvaluationResults, summary: dict[str, Any], images: dict[str, bytes]
) -> Document:
    """The whole report: the answer, setup, results, label fidelity, distribution,
    coverage, generation."""
    doc = Document()
    doc.h(1, f"SynAlign evaluation: {_source(res.settings)}")
    real = real_row_name(res.settings)
    doc.p(" ".join(answer_sentences(summary, "macro_f1", "macro-F1", real)))
    _setup(doc, res)
    _results(doc, res, summary, images)
    _label_fidelity(doc, summary)
    _distribution(doc, summary, images)
    _coverage(doc, summary, images, res.settings["coverage_clusters"])
    _generation(doc, summary, res.info.get("variants", {}))
    doc.h(2, "Versions")
    doc.p(", ".join(f"{k} {v}" for k, v in res.info.get("versions", {}).items() if v))
    return doc


def _source(s: dict[str, Any]) -> str:
    """The data the evaluation was measured on, as the title names it."""
    if s.get("validation"):
        return f"{s['dataset'] or s['train_path']} (validation split of the training pool)"
    return s["dataset"] or f"{s['train_path']} (train) / {s['test_path']} (test)"


def _setup(doc: Document, res: EvaluationResults) -> None:
    """How the evaluation was run: data, synthetic budget, model, metrics."""
    s = res.settings
    info = res.info
    cfg = info.get("pipeline_config", {})
    gen = cfg.get("generate", {})
    llm = cfg.get("llm", {})
    doc.p(
        f"**Data.** {s['shots']} real examples per label drawn from the train split for each "
        f"seed ({', '.join(map(str, s['seeds']))}); tested on {info.get('test_records')} real "
        + (
            "texts held out from the training pool (the validation split; the test split is"
            " not read)"
            if s.get("validation")
            else "test texts"
        )
        + (f" (at most {s['test_per_label']} per label)" if s.get("test_per_label") else "")
        + ". Every method sees the same shots and the same test texts within a seed."
    )
    doc.p(
        f"**Synthetic budget.** {gen.get('samples_per_label')} candidate samples per label, "
        f"{gen.get('samples_per_cluster')} per demonstration cluster of "
        f"{cfg.get('explore', {}).get('cluster_size')} real texts; generator "
        f"`{llm.get('model_path') or llm.get('model') or 'bundled Gemma 3 270M'}` "
        f"({llm.get('backend')}, temperature {llm.get('temperature')}); embedder "
        f"`{cfg.get('embed', {}).get('model')}`. Each (seed, generation variant) was generated "
        "once and shared by every method that uses it."
    )
    doc.p(f"**Downstream model.** {model_text(s)}.")
    doc.p(
        "**How synthetic data enters training.** As sample weights, not by resampling: a "
        "synthetic sample's weight is its per-label weight times that label's synthetic "
        "count (mean 1 within a label), every real sample has weight 1; zero-weight samples "
        "are left out. MMD weights are fitted to the real shots only (never to test data); KMM "
        "uses the same kernel bandwidth."
    )
    doc.p(
        "**MMD² to test** is the biased (V-statistic) squared MMD between the (weighted) "
        "synthetic set of a label and that label's real test texts, averaged over labels, with "
        "one RBF bandwidth for every method (median heuristic on the test embeddings, "
        f"{res.seeds[0]['test_bandwidth']:.3f}); for `real` it is the shots themselves. "
        "**ESS/n** is Kish's effective sample size over the label's synthetic count. "
        "Diversity (distinct-1/2 n-gram ratios and mean pairwise cosine distance) is measured "
        "on what a method adds: for weighted methods on a systematic resample of the same size "
        "(cosine distance weighted), for `real` on its shots."
    )


def _results(
    doc: Document, res: EvaluationResults, summary: dict[str, Any], images: dict[str, bytes]
) -> None:
    """Scores per method with paired differences to `real` and `naive`, and the curve."""
    doc.h(2, "Results")
    paired_real = summary["paired"].get("real", {})
    paired_naive = summary["paired"].get("naive", {})
    descriptions = {name: m["description"] for name, m in res.info["methods"].items()}
    rows = []
    for name, m in summary["methods"].items():
        rows.append(
            [
                f"`{name}`",
                descriptions.get(name, ""),
                pct(m["accuracy"]),
                pct(m["macro_f1"]),
                format_delta(paired_real.get(name, {}).get("macro_f1")),
                format_delta(paired_naive.get(name, {}).get("macro_f1")),
                num(m["mmd2_test"]),
                num(m["ess_ratio"], "{:.2f}"),
                num(m["synthetic_rows"], "{:.0f}"),
            ]
        )
    doc.table(
        [
            "method",
            "what it trains on (besides the real shots)",
            "accuracy %",
            "macro-F1 %",
            "Δ macro-F1 vs real [95% CI] (wins)",
            "Δ macro-F1 vs naive [95% CI] (wins)",
            "MMD² to test",
            "ESS/n",
            "synthetic rows per seed",
        ],
        rows,
    )
    n_seeds = len(res.seeds)
    doc.p(
        "Mean ± standard deviation over seeds; Δ columns are paired per-seed differences in "
        "points with their 95% t-interval over seeds and the number of seeds on which the "
        "method was better. A method beats another only where the whole interval is above 0."
        + (
            f" With {n_seeds} seed{'s' if n_seeds != 1 else ''}, differences of a point or two "
            "are within seed-to-seed noise; use 5+ seeds for claims."
            if n_seeds < 5
            else ""
        )
        + (f" Seeds without results yet: {res.missing_seeds}." if res.missing_seeds else "")
    )
    if "scores" in images:
        doc.image("scores.png", images["scores"], "Accuracy and macro-F1 per method.")
    write_curve_section(doc, summary.get("curve", {}), images)


def _label_fidelity(doc: Document, summary: dict[str, Any]) -> None:
    """How many generated samples carry the wrong label, and what the label checks caught."""
    doc.h(2, "Label fidelity")
    judged = any(m["judge_agreement"]["mean"] is not None for m in summary["methods"].values())
    rows = []
    for name, m in summary["methods"].items():
        if name == "real":
            continue
        rows.append(
            [
                f"`{name}`",
                num(m["synthetic_rows"], "{:.0f}"),
                num(m["check_rejected"], "{:.1%}"),
                num(m["judge_agreement_generated"], "{:.1%}"),
                num(m["judge_agreement"], "{:.1%}"),
                num(m["flips_caught"], "{:.1%}"),
                num(m["rejection_precision"], "{:.1%}"),
                thresholds(m["label_check_threshold"]),
            ]
        )
    if rows:
        doc.table(
            [
                "method",
                "synthetic rows per seed",
                "rejected by the label check",
                "judge agrees: generated",
                "judge agrees: trained on (by weight)",
                "wrong labels caught",
                "rejections that were wrong labels",
                "threshold used (per seed)",
            ],
            rows,
        )
    doc.p(
        "The judge is logistic regression on the whole training pool, fitted for "
        "measurement only (`--judge`); no method sees it. A generated sample whose judged "
        "label differs from its own counts as a wrong label. For scale: the judge's own "
        "accuracy on the real test texts is "
        + (
            f"{100 * summary['judge_test_accuracy']:.1f}%."
            if summary.get("judge_test_accuracy") is not None
            else "not measured."
        )
        if judged
        else "Label fidelity against a judge was not measured (run with `--judge`); the "
        "table shows how many samples each method's label check rejected."
    )


def _distribution(doc: Document, summary: dict[str, Any], images: dict[str, bytes]) -> None:
    """Distance of each training set to the real test texts, and its diversity."""
    doc.h(2, "Distribution and diversity")
    rows = []
    for name, m in summary["methods"].items():
        rows.append(
            [
                f"`{name}`",
                num(m["mmd2_test"]),
                num(m["mmd2_shots"]),
                num(m["length_w1"], "{:.1f}"),
                num(m["ess"], "{:.1f}"),
                num(m["zero_weight_share"], "{:.2f}"),
                num(m["distinct_1"], "{:.3f}"),
                num(m["distinct_2"], "{:.3f}"),
                num(m["cosine_diversity"], "{:.3f}"),
            ]
        )
    ref = summary.get("test_reference") or {}
    if ref:
        rows.append(
            [
                f"real test texts ({num(ref.get('n'), '{:.0f}')} per label, reference)",
                "-",
                "-",
                "-",
                "-",
                "-",
                num(ref.get("distinct_1"), "{:.3f}"),
                num(ref.get("distinct_2"), "{:.3f}"),
                num(ref.get("cosine_diversity"), "{:.3f}"),
            ]
        )
    doc.table(
        [
            "method",
            "MMD² to test",
            "MMD² to shots",
            "length W1 to test (words)",
            "ESS per label",
            "share at weight 0",
            "distinct-1",
            "distinct-2",
            "cosine diversity",
        ],
        rows,
    )
    doc.p(
        "Distinct-n falls as a set grows, so compare it between sets of the same size: the "
        "reference row draws as many real test texts per label as a synthetic set has."
    )
    if "projection" in images:
        doc.image(
            "projection.png",
            images["projection"],
            "PCA of real test texts (faint dots), real shots (black-edged dots) and synthetic "
            "samples (triangles) before and after weighting.",
        )
    if "weights" in images:
        doc.image("weights.png", images["weights"], "Distribution of the learned weights.")


def _coverage(doc: Document, summary: dict[str, Any], images: dict[str, bytes], k: int) -> None:
    """How much of the real test distribution ESM's demonstrations reach compared to random."""
    doc.h(2, "Demonstration coverage (ESM vs random)")
    cov = summary["coverage"]
    if cov:
        doc.p(
            f"Each label's test embeddings are split into k = {k} k-means clusters (k-means++, "
            "10 restarts, seed 0); a cluster is covered once a demonstration's nearest centroid "
            "is it. Rounds are demonstration clusters per label, in the order they were chosen."
        )
        rows = [
            [
                {"gp": "ESM (GP)", "random": "random"}[kind],
                str(len(cov[kind]["mean"])),
                pct(cov[kind]["final"]),
            ]
            for kind in ("gp", "random")
            if kind in cov
        ]
        if "all_shots" in cov:
            rows.append(["every real shot (the ceiling)", "-", pct(cov["all_shots"])])
        doc.table(["demonstrations", "rounds", "covered after the last round (%)"], rows)
        if "coverage" in images:
            doc.image("coverage.png", images["coverage"], "Test clusters covered per round.")
    else:
        doc.p("No generation variant ran, so there is no demonstration coverage to show.")


def _generation(doc: Document, summary: dict[str, Any], variants: dict[str, Any]) -> None:
    """What each generation variant made, rejected and cost, and its attribute step."""
    doc.h(2, "Generation")
    rows = []
    for variant, g in summary["generation"].items():
        explore_method, attributes = variants[variant]
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(g["rejected"].items())) or "-"
        rows.append(
            [
                f"`{variant}`",
                f"{explore_method}, attributes {'on' if attributes else 'off'}",
                str(g["clusters"]),
                str(g["generated"]),
                str(g["accepted"]),
                rejected,
                str(g["llm_requests"]),
                f"{g['stage_seconds']:.0f}",
                "-" if g["seconds_per_call"] is None else f"{g['seconds_per_call']:.2f}",
            ]
        )
    if rows:
        doc.table(
            [
                "variant",
                "demonstrations",
                "clusters",
                "generated",
                "accepted",
                "rejected (reason: count)",
                "LLM requests",
                "seconds",
                "s / LLM call made",
            ],
            rows,
        )
        doc.p(
            "Totals over seeds. Seconds are those of the describe and generate stages when they "
            "last ran, per LLM call they made then (answers served from the response cache "
            "cost next to nothing)."
        )
    rows = [
        [f"`{variant}`", key, f"{a['parsed']:.0%}", f"{a['distinct']:.0%}", f"{a['copied']:.0%}"]
        for variant, g in summary["generation"].items()
        if variants[variant][1]  # variants with the attribute step
        for key, a in g.get("attributes", {}).items()
    ]
    if rows:
        doc.table(
            [
                "variant",
                "attribute",
                "clusters with a value",
                "distinct values",
                "copies of a worked example",
            ],
            rows,
        )
        doc.p(
            "What the attribute step produced, averaged over seeds: a base model that copies "
            "the prompt's worked examples describes the scaffolding, not the demonstrations. "
            "Length is measured from the demonstrations, never asked; how well the samples' "
            "lengths follow the real texts is the length W1 column above."
        )
