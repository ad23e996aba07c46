"""One seed of an evaluation: its shots, generated variants and every method's result.

Every method of a seed trains on the same real shots; synthetic data comes from the
generation variants the methods need, each generated once and reused by every method
and every budget of the curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import Embedder
from synalign.backends.llm.base import LLM
from synalign.errors import SynAlignError
from synalign.evaluation.budget_curve import (
    CURVE_METHODS,
    candidates_for,
    clusters_for,
    point_cost,
    prefix_mask,
)
from synalign.evaluation.data import Shots, TestSet
from synalign.evaluation.folder import text_array
from synalign.evaluation.generated import embed_rows, generate_variant, take_rows
from synalign.evaluation.label_check import LabelChecker
from synalign.evaluation.methods import VARIANTS, method
from synalign.evaluation.metrics import coverage_curve, demo_coverage, test_reference
from synalign.evaluation.models import LogRegClassifier
from synalign.evaluation.prediction_cache import PredictionCache
from synalign.evaluation.scoring import MethodRuns
from synalign.evaluation.settings import EvalConfig
from synalign.progress import Reporter
from synalign.records import Record


@dataclass(frozen=True)
class SeedContext:
    """What every seed shares: the settings, the models and the test set."""

    config: EvalConfig
    methods: list[str]
    reporter: Reporter
    llm: LLM | None
    embedder: Embedder
    embed: Callable[[Sequence[str]], np.ndarray]
    judge: LogRegClassifier | None
    judge_accuracy: float | None
    checker: LabelChecker
    scorer: bool
    test: TestSet
    predictions: PredictionCache | None = None


class SeedRun:
    """Generates (once per variant), weights, trains and tests one seed; writes its
    results. `llm_calls` counts the LLM calls its generations made now."""

    def __init__(self, ctx: SeedContext, seed: int, train: list[Record]) -> None:
        self.ctx = ctx
        self.seed = seed
        self.train = train
        self.llm_calls = 0

    def run(self) -> dict[str, Any]:
        """Every method's result on this seed, written to the evaluation folder."""
        ctx, c, seed = self.ctx, self.ctx.config, self.seed
        start = time.perf_counter()
        generated: dict[str, dict[str, Any]] = {}
        for v in c.variants():
            generated[v] = generate_variant(c, seed, v, ctx.reporter, ctx.llm, ctx.embedder)
            self.llm_calls += generated[v]["stats"]["llm_calls_this_invocation"]
        shots = self._shots(generated)

        # Every generated row, embedded once; a method sees the rows of its budget (the
        # first clusters of a variant generated at the curve's largest budget).
        base = c.run_config(seed)
        spc = base.generate.samples_per_cluster
        main_clusters = clusters_for(c.samples_per_label, spc)
        dim = shots.X.shape[1]
        full = {
            v: embed_rows(g["synthetic"], ctx.embed, dim, ctx.judge) for v, g in generated.items()
        }
        syn = {
            v: take_rows(full[v], prefix_mask(g["synthetic"], g["demos"], main_clusters))
            for v, g in generated.items()
        }
        runs = MethodRuns(
            c, base, seed, shots, ctx.test, full, generated, ctx.checker, ctx.scorer,
            ctx.predictions,
        )  # fmt: skip
        arrays = self._arrays(shots, syn)
        results: dict[str, Any] = {}
        for name in ctx.methods:
            ctx.reporter.message(f"seed {seed} · training and testing: {name}")
            results[name], w = runs.result(method(name), main_clusters)
            if w is not None:
                arrays[f"w__{name}"] = w
        curve = self._curve(runs, results, generated, spc, main_clusters)
        test = ctx.test
        result = {
            "seed": seed,
            "shots": [r.id for r in shots.records],
            "test_bandwidth": test.bandwidth,
            "align_bandwidth": runs.align_bandwidth,
            "methods": results,
            "curve": curve,
            "generation": {v: g["stats"] for v, g in generated.items()},
            "coverage": self._coverage(generated, shots, main_clusters),
            "coverage_all_shots": self._coverage_all_shots(shots),
            "test_reference": test_reference(seed, test.texts, test.X, test.y, syn, test.labels),
            "judge_test_accuracy": ctx.judge_accuracy,
            "seconds": round(time.perf_counter() - start, 2),
        }
        c.folder.write_seed(seed, result, arrays)
        return result

    def _shots(self, generated: dict[str, dict[str, Any]]) -> Shots:
        """The seed's real shots: those the pipeline runs drew (the same in every variant),
        or a draw of their own when no method needs a generation."""
        from synalign.io.corpora import draw_shots

        c, seed = self.ctx.config, self.seed
        if generated:
            shots_rows = next(iter(generated.values()))["real"]
            for g in generated.values():
                if [r.id for r in g["real"]] != [r.id for r in shots_rows]:
                    raise SynAlignError(
                        f"{g['run_dir']}: its real shots differ from the other variants of "
                        f"seed {seed}; delete {c.folder.runs_dir(seed)} and re-run"
                    )
            records = list(shots_rows)
        else:
            records, warnings = draw_shots(self.train, c.shots, seed)
            for w in warnings:
                self.ctx.reporter.warning(w)
        X = self.ctx.embed([r.text for r in records])
        return Shots(records=records, X=X, y=np.asarray([r.label for r in records]))

    @staticmethod
    def _arrays(shots: Shots, syn: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
        """The embeddings the report's plots need (the weights are added per method)."""
        arrays: dict[str, np.ndarray] = {
            "X_shots": shots.X.astype(np.float32),
            "y_shots": text_array(shots.y.tolist()),
        }
        for v, s in syn.items():
            arrays[f"X_syn__{v}"] = s["X"].astype(np.float32)
            arrays[f"y_syn__{v}"] = text_array(s["labels"].tolist())
        return arrays

    def _curve(
        self,
        runs: MethodRuns,
        results: dict[str, Any],
        generated: dict[str, dict[str, Any]],
        spc: int,
        main_clusters: int,
    ) -> dict[str, dict[str, Any]]:
        """Macro-F1 and cost of the curve methods at each budget of the curve."""
        c, seed = self.ctx.config, self.seed
        n_labels = len(self.ctx.test.labels)
        curve: dict[str, dict[str, Any]] = {}
        for name in (n for n in CURVE_METHODS if n in self.ctx.methods and c.curve):
            m = method(name)
            curve[name] = {}
            for multiple in c.curve:
                candidates = candidates_for(multiple, c.shots, spc)
                clusters = clusters_for(candidates, spc)
                if clusters == main_clusters:
                    point = results[name]  # the method's own row: the same rows and weights
                else:
                    self.ctx.reporter.message(f"seed {seed} · budget curve: {name} at {candidates}")
                    point, _ = runs.result(m, clusters)
                stats = generated[m.variant or ""]["stats"]
                curve[name][f"{multiple:g}"] = {
                    "candidates_per_label": candidates,
                    "macro_f1": point["macro_f1"],
                    "accuracy": point["accuracy"],
                    "kept_rows": point["kept_rows"],
                    **point_cost(stats, clusters * n_labels),
                }
        return curve

    def _coverage(
        self, generated: dict[str, dict[str, Any]], shots: Shots, main_clusters: int
    ) -> dict[str, list[float]]:
        """How much of the test set the shown demonstrations covered, round by round, for
        GP and for random demonstrations."""
        coverage: dict[str, list[float]] = {}
        for kind in ("gp", "random"):
            variant = next((v for v in generated if VARIANTS[v][0] == kind), None)
            if variant is None:
                continue
            demos = generated[variant]["demos"]
            shown = prefix_mask(demos, demos, main_clusters)
            demos = [d for d, k in zip(demos, shown, strict=True) if k]
            coverage[kind] = demo_coverage(demos, shots.records, shots.X, self.ctx.test.centroids)
        return coverage

    def _coverage_all_shots(self, shots: Shots) -> float:
        """The ceiling: what showing every real shot would cover."""
        return float(
            np.mean(
                [
                    coverage_curve(cents, [shots.X[shots.y == lab]])[-1]
                    for lab, cents in self.ctx.test.centroids.items()
                ]
            )
        )
