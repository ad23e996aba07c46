"""Downstream evaluation: does the synthetic set help a classifier on real held-out data?

Every method is trained on the same K real shots per label (drawn per seed) and tested on
the same real test split, so differences between methods are paired by seed. Synthetic
data comes from four generation variants (GP or random demonstrations, with or without
the attribute step), each generated once per seed by the pipeline and reused by every
method that needs it; the label check and the weighting (uniform, MMD, kernel mean
matching) are computed here on the embeddings, so changing them never costs a generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from synalign.backends.llm.base import LLM, can_score
from synalign.config import RunConfig
from synalign.errors import SynAlignError
from synalign.evaluation.data import (
    TestSet,
    check_labels,
    embed_test_set,
    load_data,
    test_sample_rows,
    test_subset,
)
from synalign.evaluation.folder import EvaluationFolder
from synalign.evaluation.label_check import LabelChecker
from synalign.evaluation.methods import METHODS, VARIANTS, asks_scorer, method
from synalign.evaluation.metrics import package_versions
from synalign.evaluation.models import LogRegClassifier
from synalign.evaluation.prediction_cache import PredictionCache
from synalign.evaluation.seed import SeedContext, SeedRun
from synalign.evaluation.settings import EvalConfig
from synalign.progress import Reporter, SilentReporter
from synalign.records import Record


class Evaluation:
    """Generates (once per seed and variant), weights, trains, tests; writes per-seed
    results and the report into the evaluation folder (see `EvaluationFolder`).

    After `run`: `llm_calls_` and `label_scorings_` count what this invocation asked the
    LLM, `seed_results_` holds each seed's metrics and `report_dir_` the report folder.
    """

    def __init__(
        self,
        config: EvalConfig,
        reporter: Reporter | None = None,
        llm: LLM | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.llm = llm
        self.embedder = embedder
        self._checker: LabelChecker | None = None

    @property
    def eval_dir(self) -> Path:
        return self.config.eval_dir

    @property
    def folder(self) -> EvaluationFolder:
        return self.config.folder

    @property
    def label_scorings_(self) -> int:
        """Samples the LLM scored for label checks in this invocation."""
        return self._checker.scorings if self._checker is not None else 0

    def run(self) -> dict[str, Any]:
        """Run every seed and write the report; returns the report's metrics."""
        from synalign.pipeline.run_dir import run_lock

        c = self.config
        c.check()
        base = c.run_config(c.seeds[0])
        train, test = load_data(c, self.reporter)
        check_labels(c, train, test)
        test = test_subset(c, test)
        self.folder.check_owned()
        try:
            self.eval_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SynAlignError(
                f"{self.eval_dir}: cannot create the evaluation folder ({err.strerror}); "
                "choose a writable `runs_dir`"
            ) from err
        with run_lock(self.eval_dir):
            if c.validation and not c.dataset:
                from synalign.io import write_jsonl

                write_jsonl(self.folder.validation_pool, [r.to_dict() for r in train])
            return self._run_locked(base, train, test)

    def _run_locked(
        self, base: RunConfig, train: list[Record], test: list[Record]
    ) -> dict[str, Any]:
        from synalign.report import build_report

        c = self.config
        self.folder.prepare()
        llm, scorer = self._open_llm(base)
        self.methods_ = self._usable_methods(scorer)
        self.folder.write_info(_info(c, base, self.methods_, scorer, len(test)))
        self._checker = LabelChecker(llm, scorer, self.folder, self.reporter)
        base_embedder = self._open_embedder(base)
        self._cached_embedder = CachedEmbedder(
            base_embedder, self.folder.cache("embeddings.sqlite")
        )
        start = time.perf_counter()
        test_set = embed_test_set(c, test, self._embed, self.reporter)
        judge = self._fit_judge(train) if c.judge else None
        ctx = SeedContext(
            config=c,
            methods=self.methods_,
            reporter=self.reporter,
            llm=llm,
            embedder=base_embedder,
            embed=self._embed,
            judge=judge,
            judge_accuracy=(
                float(np.mean(judge.predict(test_set.X) == test_set.y)) if judge else None
            ),
            checker=self._checker,
            scorer=scorer,
            test=test_set,
            predictions=PredictionCache(self.folder.cache("predictions.sqlite")),
        )
        self._save_test_sample(test_set)
        self.llm_calls_ = 0
        self.seed_results_: list[dict[str, Any]] = []
        for seed in c.seeds:
            seed_run = SeedRun(ctx, seed, train)
            try:
                self.seed_results_.append(seed_run.run())
            finally:
                self.llm_calls_ += seed_run.llm_calls
        self.seconds_ = time.perf_counter() - start
        self.report_dir_ = build_report(self.eval_dir)
        metrics = json.loads((self.report_dir_ / "metrics.json").read_text("utf-8"))
        metrics["this_invocation"] = {
            "llm_calls": self.llm_calls_,
            "label_scorings": self.label_scorings_,
            "seconds": round(self.seconds_, 1),
        }
        return metrics

    def _open_llm(self, base: RunConfig) -> tuple[LLM | None, bool]:
        """One LLM for every pipeline run (a local model is loaded on first use only), and
        whether it exposes token probabilities."""
        llm = self.llm
        if llm is None and self.config.variants():
            from synalign.backends.ray.executor import executor_llm

            llm = executor_llm(base)
        return llm, can_score(llm) if llm is not None else False

    def _usable_methods(self, scorer: bool) -> list[str]:
        """The chosen methods this LLM can run: a method whose own change is a check by the
        LLM needs token probabilities, and is left out without them (like judge-check
        without --judge)."""
        c = self.config
        usable = [n for n in c.methods if scorer or not asks_scorer(method(n))]
        for name in sorted(set(c.methods) - set(usable)):
            self.reporter.message(
                f"{name}: left out, its label check needs token probabilities (the local "
                "llama.cpp backend)"
            )
        return usable

    def _open_embedder(self, base: RunConfig) -> Embedder:
        """The embedder the pipeline runs share; the evaluation's own embeddings go through
        a cache beside it."""
        embedder = self.embedder or SentenceTransformerEmbedder(
            base.embed.model, batch_size=base.embed.batch_size
        )
        if self.embedder is None and base.executor != "local":
            from synalign.backends.ray.executor import executor_embedder

            embedder = executor_embedder(base)
        return embedder

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = self._cached_embedder.encode(list(texts))
        return np.asarray(out, dtype=np.float64)

    def _fit_judge(self, train: list[Record]) -> LogRegClassifier:
        """The measurement judge: logistic regression on the whole train pool. It only
        measures label fidelity; no method sees it."""
        with self.reporter.task("embedding the train pool (judge)", total=len(train)) as advance:
            X = self._embed([r.text for r in train])
            advance(len(train))
        return LogRegClassifier(C=self.config.C).fit(X, [r.label for r in train])

    def _save_test_sample(self, test: TestSet) -> None:
        keep = test_sample_rows(test.y)
        self.folder.write_test_sample(test.X[keep].astype(np.float32), test.y[keep].tolist())


def _info(
    config: EvalConfig, base: RunConfig, methods: list[str], scorer: bool, test_records: int
) -> dict[str, Any]:
    """What evaluation.json records: enough to rebuild the report and to tell what
    produced the numbers."""
    return {
        "settings": config.model_dump(),
        "pipeline_config": base.model_dump(mode="json"),
        "methods": {
            m.name: {
                "name": m.name,
                "variant": m.variant,
                "weighting": m.weighting,
                "settings": m.settings(base, scorer) if m.variant else {},
                "description": m.describe(base, scorer),
            }
            for m in METHODS
            if m.name in methods
        },
        "variants": {v: VARIANTS[v] for v in config.variants()},
        "test_records": test_records,
        "versions": package_versions(),
    }


def evaluate(
    config: EvalConfig,
    reporter: Reporter | None = None,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Run an evaluation and return its report metrics (see `Evaluation`)."""
    return Evaluation(config, reporter=reporter, llm=llm, embedder=embedder).run()
