"""Downstream retrieval evaluation: does the synthetic set make a fine-tuned bi-encoder
find the right document for real held-out queries?

Per seed, K real pairs are drawn from the training pairs (by the pipeline, the same in
every generated set); each generated set is made once by the pipeline (no check) and
every row checks and weights it here, through the same check and weighting code as the
pipeline. Each row's result is kept as soon as it exists, so an interrupted evaluation
repeats no fine-tune and no LLM call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from synalign.backends.llm.base import LLM
from synalign.evaluation.retrieval_settings import (
    METRICS,
    RETRIEVAL_METHOD_NAMES,
    RetrievalEvalConfig,
    RetrievalMethod,
    retrieval_method,
)
from synalign.progress import Reporter, SilentReporter
from synalign.records import Record


class RetrievalEvaluation:
    """Runs every seed and row of a retrieval evaluation into its folder; `run` returns
    the report's metrics."""

    def __init__(
        self,
        config: RetrievalEvalConfig,
        reporter: Reporter | None = None,
        llm: LLM | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.llm = llm
        self.embedder = embedder

    def run(self) -> dict[str, Any]:
        from synalign.evaluation.retrieval_report import build_retrieval_report
        from synalign.pipeline.run_dir import run_lock

        c = self.config
        c.check()
        self.corpus, self.train, self.test = self._load()
        c.folder.check_owned()
        c.eval_dir.mkdir(parents=True, exist_ok=True)
        with run_lock(c.eval_dir):
            self._prepare()
            start = time.perf_counter()
            self.llm_calls_ = 0
            for seed in c.seeds:
                self._run_seed(seed)
            self.seconds_ = time.perf_counter() - start
            return build_retrieval_report(c.folder)

    # ----- data and shared models ------------------------------------------------------

    def _load(self) -> tuple[Any, list[Record], list[Record]]:
        from synalign.io.retrieval import load_retrieval_dataset, read_corpus, read_pairs
        from synalign.pipeline.retrieval import split_train

        c = self.config
        if c.dataset:
            ds = load_retrieval_dataset(c.dataset)
            corpus, train, test = ds.corpus, list(ds.train), list(ds.test)
        else:
            corpus, warnings = read_corpus(str(c.corpus), c.id_column, c.document_column)
            train, w_train = read_pairs(str(c.train), corpus, c.query_column, c.doc_id_column)
            test, w_test = read_pairs(str(c.test), corpus, c.query_column, c.doc_id_column)
            for w in warnings + w_train + w_test:
                self.reporter.warning(w)
        if c.validation:  # settings are chosen on held-out training pairs, never on test
            train, test = split_train(train)
        return corpus, train, test[: c.max_test] if c.max_test else test

    def _prepare(self) -> None:
        from synalign.backends.llm.cache import CachedLLM, ResponseCache
        from synalign.evaluation.retrieval_models import FineTuneSettings

        c, folder = self.config, self.config.folder
        folder.prepare()
        base = c.run_config(c.seeds[0])
        if not c.dataset:
            from synalign.io import write_jsonl

            if c.validation:
                write_jsonl(
                    folder.validation_pool,
                    ({c.query_column: p.text, c.doc_id_column: p.label} for p in self.train),
                )
            held = {p.label for p in self.test} - {p.label for p in self.train}
            write_jsonl(
                folder.corpus_without_test,
                (
                    {"id": i, "text": t}
                    for i, t in zip(self.corpus.ids, self.corpus.texts, strict=True)
                    if i not in held
                ),
            )
        if self.llm is None and c.variants():
            from synalign.backends.ray.executor import executor_llm

            self.llm = executor_llm(base)
        self.scoring_llm = (
            CachedLLM(self.llm, ResponseCache(folder.cache("llm.sqlite"))) if self.llm else None
        )
        self.base_embedder = self.embedder or SentenceTransformerEmbedder(
            base.embed.model, batch_size=base.embed.batch_size
        )
        self.cached = CachedEmbedder(self.base_embedder, folder.cache("embeddings.sqlite"))
        self.settings = FineTuneSettings(**c.fine_tune)
        index = self.corpus.index()
        self.test_gold = np.asarray([index[p.label] for p in self.test])
        with self.reporter.task("embedding the corpus", total=len(self.corpus.ids)) as advance:
            self.D0 = self._embed(list(self.corpus.texts))
            advance(len(self.corpus.ids))
        self.Q0 = self._embed([p.text for p in self.test])
        # An invocation adds its rows and seeds to those of earlier ones (the benchmark runs
        # the ablations over fewer seeds than the main rows): the report covers them all.
        # Only when the rest of the settings agree: rows of other settings are not mixed in.
        settings = {**c.__dict__, "seeds": list(c.seeds)}
        earlier = folder.read_info() if folder.info_path.is_file() else {}
        before = earlier.get("settings", {})
        if _without(before, "seeds", "methods") != _without(settings, "seeds", "methods"):
            earlier = {}
        settings["seeds"] = sorted({*before.get("seeds", []), *c.seeds} if earlier else c.seeds)
        names = {*earlier.get("methods", {}), *c.methods}
        folder.write_info(
            {
                "task": "retrieval",
                "settings": settings,
                "pipeline_config": base.model_dump(mode="json"),
                "fine_tune": self.settings.as_dict(),
                "methods": {
                    n: {"name": n, "description": retrieval_method(n).description}
                    for n in RETRIEVAL_METHOD_NAMES
                    if n in names
                },
                "corpus_documents": len(self.corpus.ids),
                "train_pairs": len(self.train),
                "test_queries": len(self.test),
            }
        )

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.cached.encode(list(texts)), dtype=np.float32)

    # ----- one seed ----------------------------------------------------------------------

    def _run_seed(self, seed: int) -> None:
        from synalign.evaluation.generated import generate_variant

        c, folder = self.config, self.config.folder
        done: dict[str, Any] = folder.read_seed(seed) or {}
        # A row kept from an earlier invocation is reused only if it was made with the same
        # settings; changed settings or defaults compute it again.
        rows: dict[str, Any] = {
            name: row
            for name, row in done.get("methods", {}).items()
            if name not in c.methods or row.get("settings") == self._row_key(name, seed)
        }
        generated: dict[str, dict[str, Any]] = {}
        for v in c.variants():
            # the evaluation's embedding cache serves every run: the corpus is embedded once
            g = generate_variant(c, seed, v, self.reporter, self.llm, self.cached)  # type: ignore[arg-type]
            self.llm_calls_ += g["stats"]["llm_calls_this_invocation"]
            generated[v] = g
        shots = self._shots(seed, generated)
        checks: dict[tuple[str, str], Any] = {}
        for name in c.methods:
            if name in rows:
                continue
            m = retrieval_method(name)
            self.reporter.message(f"seed {seed} · {name}")
            rows[name] = {
                **self._row(m, seed, shots, generated, checks),
                "settings": self._row_key(name, seed),
            }
            result = {
                "seed": seed,
                "shots": [p.id for p in shots],
                "methods": rows,
                "generation": {v: g["stats"] for v, g in generated.items()},
                "lengths": {
                    "test": [len(p.text.split()) for p in self.test],
                    "real shots": [len(p.text.split()) for p in shots],
                    **{
                        v: [len(r["text"].split()) for r in g["synthetic"]]
                        for v, g in generated.items()
                    },
                },
            }
            folder.write_seed_result(seed, result)

    def _row_key(self, name: str, seed: int) -> str:
        """What a row's result depends on: the fine-tuning settings if it trains, and the
        resolved pipeline config of its generated set (check, weighting, budget) if it
        uses one."""
        from synalign.pipeline.run_dir import digest

        m = retrieval_method(name)
        inputs: dict[str, Any] = {"method": m.name, "shots": self.config.shots}
        if m.trains:
            inputs["fine_tune"] = self.settings.as_dict()
        if m.variant is not None:
            config = self.config.run_config(seed, m.variant, keep_check=True)
            pipeline = config.model_dump(mode="json", exclude={"name", "runs_dir"})
            if m.check == "none":  # the check's settings cannot change this row
                for key in ("check", "roundtrip_k", "likelihood_keep", "check_quantile"):
                    pipeline["retrieval"].pop(key)
            if m.weighting == "uniform":
                pipeline.pop("align")
            inputs["pipeline"] = pipeline
        return digest(inputs)

    def _shots(self, seed: int, generated: dict[str, dict[str, Any]]) -> list[Record]:
        """The seed's real pairs, as the pipeline drew them (one draw for every set)."""
        if generated:
            return list(next(iter(generated.values()))["real"])
        from synalign.pipeline.retrieval import RetrievalTask

        return RetrievalTask().read(self.config.run_config(seed)).records

    def _row(
        self,
        m: RetrievalMethod,
        seed: int,
        shots: list[Record],
        generated: dict[str, dict[str, Any]],
        checks: dict[tuple[str, str], Any],
    ) -> dict[str, Any]:
        from synalign.evaluation.retrieval_models import BM25Ranker, retrieval_metrics

        start = time.perf_counter()
        if m.name == "zero-shot":
            per_query = retrieval_metrics(self.Q0, self.D0, self.test_gold)
            return _summary(per_query, start)
        if m.name == "bm25":
            ranker = BM25Ranker().fit(list(self.corpus.texts))
            per_query = ranker.metrics([p.text for p in self.test], self.test_gold)
            return _summary(per_query, start)
        anchors = [p.text for p in shots]
        positives = [p.meta["document"] for p in shots]
        weights = [1.0] * len(shots)
        extra: dict[str, Any] = {}
        if m.variant is not None:
            syn, w, extra = self._synthetic(m, seed, shots, generated[m.variant], checks)
            anchors += [r["text"] for r in syn]
            positives += [r["document"] for r in syn]
            weights += list(w)
        return {**self._fine_tuned(anchors, positives, np.asarray(weights), seed, start), **extra}

    def _fine_tuned(
        self, anchors: list[str], positives: list[str], weights: np.ndarray, seed: int, start: float
    ) -> dict[str, Any]:
        from synalign.evaluation.retrieval_models import (
            encode,
            fine_tune_biencoder,
            retrieval_metrics,
        )

        model = fine_tune_biencoder(anchors, positives, weights, seed=seed, settings=self.settings)
        D = encode(model, list(self.corpus.texts))
        Q = encode(model, [p.text for p in self.test])
        out = _summary(retrieval_metrics(Q, D, self.test_gold), start)
        out["train_pairs"] = len(anchors)
        return out

    def _synthetic(
        self,
        m: RetrievalMethod,
        seed: int,
        shots: list[Record],
        g: dict[str, Any],
        checks: dict[tuple[str, str], Any],
    ) -> tuple[list[dict[str, Any]], np.ndarray, dict[str, Any]]:
        """The row's kept queries, their training weights (mean 1) and what describes the
        set: the check's figures and the set's distance to the held-out real queries."""
        from synalign.evaluation.retrieval_metrics import set_distances
        from synalign.pipeline.query_tail import QuerySet, check_queries_of
        from synalign.pipeline.retrieval import queries_labelled
        from synalign.pipeline.tail import learn_weights

        rows = g["synthetic"]
        index = self.corpus.index()
        texts = [r["text"] for r in rows]
        X_syn = self._embed(texts) if texts else np.zeros((0, self.D0.shape[1]), np.float32)
        X_real = self._embed([p.text for p in shots])
        base = self.config.run_config(seed)
        method = self.config.default_check() if m.check == "default" else m.check
        key = (m.variant or "", method)
        if key not in checks:
            real = QuerySet(
                [p.text for p in shots],
                [p.meta["document"] for p in shots],
                [index[p.label] for p in shots],
                X_real,
            )
            syn = QuerySet(
                texts, [r["document"] for r in rows], [index[r["doc_id"]] for r in rows], X_syn
            )
            checks[key] = check_queries_of(
                method, real, syn, self.D0,
                llm=self.scoring_llm, spec=_spec(base),
                roundtrip_k=base.retrieval.roundtrip_k,
                likelihood_keep=base.retrieval.likelihood_keep,
                quantile=base.retrieval.check_quantile,
            )  # fmt: skip
        outcome = checks[key]
        keep = np.flatnonzero(outcome.keep)
        kept = [rows[i] for i in keep]
        if not kept:  # the check left nothing: the row trains on the real pairs alone
            none = set_distances(X_syn[:0], [], np.zeros(0), self.Q0, [])
            return (
                [],
                np.zeros(0),
                {"generated": len(rows), "kept": 0, "check": outcome.info, **none},
            )
        weighting = learn_weights(
            queries_labelled([p.text for p in shots], X_real, [p.id for p in shots]),
            queries_labelled(
                [texts[i] for i in keep], X_syn[keep], [rows[i]["demo_ids"] for i in keep]
            ),
            weighting=m.weighting,
            ess_floor=base.align.ess_floor,
            seed=seed,
        )
        w = weighting.weights * max(len(kept), 1)
        extra = {
            "generated": len(rows),
            "kept": len(kept),
            "check": outcome.info,
            **set_distances(
                X_syn[keep], [texts[i] for i in keep], w, self.Q0, [p.text for p in self.test]
            ),
        }
        return kept, w, extra


def _spec(config: Any) -> Any:
    from synalign.pipeline.retrieval import RetrievalTask

    return RetrievalTask().spec(config)


def _summary(per_query: dict[str, np.ndarray], start: float) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(np.mean(per_query[k])) for k in METRICS}
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def _without(settings: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Settings as JSON would hold them (lists, not tuples), less `keys`."""
    import json

    return {k: v for k, v in json.loads(json.dumps(settings)).items() if k not in keys}
