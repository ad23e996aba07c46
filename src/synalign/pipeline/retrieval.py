"""The retrieval task: real (query, document) pairs and a corpus; samples are queries
written for corpus documents, checked for singling out their document, and weighted to
match the real queries.

Ingest and report are the shared stages; exploration, attribute reasoning, writing and
alignment are the same ideas as for classification over other items (pairs and
documents), so they live here beside the task.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.config import RunConfig
from synalign.errors import ConfigError, SynAlignError
from synalign.lar.generator import stable_seed
from synalign.lar.prompts.queries import QuerySpec, query_prompts
from synalign.lar.query_generator import QueryCluster, QueryGenerator
from synalign.pipeline.components import llm_progress, sampling_for, stage_usage
from synalign.pipeline.tail import Labelled, learn_weights
from synalign.pipeline.task import RealData
from synalign.records import Record

if TYPE_CHECKING:
    from synalign.io.retrieval import Corpus
    from synalign.pipeline.runner import Pipeline

QUERY_GROUP = "query"  # the one group real and synthetic queries are matched in


class RetrievalTask:
    """Queries for a corpus's documents; the real data are (query, document id) pairs."""

    name = "retrieval"

    def __init__(self) -> None:
        self._corpus: tuple[Any, Corpus] | None = None
        self._vectors: tuple[Corpus, np.ndarray] | None = None

    def corpus_vectors(self, p: Pipeline) -> np.ndarray:
        """The corpus embeddings, embedded (or read from the cache) once per run: explore
        and the query check both need them, and at a million documents a second pass
        over the cache costs as much as the first."""
        corpus = self.corpus(p.config)
        if self._vectors is None or self._vectors[0] is not corpus:
            self._vectors = (corpus, p.embed(list(corpus.texts), "corpus documents"))
        return self._vectors[1]

    def corpus(self, config: RunConfig) -> Corpus:
        """The documents queries are written for (a bundled corpus's training documents,
        or the corpus file), read once per task object."""
        from synalign.io.retrieval import read_corpus

        r, d = config.retrieval, config.data
        key = (d.dataset, d.split, r.corpus, r.id_column, r.document_column)
        if self._corpus is None or self._corpus[0] != key:
            if d.dataset:
                corpus = self._dataset(config).corpus
                if d.split not in ("test", "all"):
                    held = list(self._dataset(config).test)
                    if d.split == "pool":
                        held += _split_pairs(self._dataset(config), "validation")
                    corpus = _without(corpus, {p.label for p in held})
            elif r.corpus:
                corpus, _ = read_corpus(r.corpus, r.id_column, r.document_column)
            else:
                raise ConfigError(
                    "no corpus: set retrieval.corpus to the corpus file, or data.dataset to a "
                    "bundled retrieval corpus (see `synalign datasets list`)"
                )
            self._corpus = (key, corpus)
        return self._corpus[1]

    def _dataset(self, config: RunConfig) -> Any:
        from synalign.io.retrieval import load_retrieval_dataset

        return load_retrieval_dataset(config.data.dataset or "")

    def read(self, config: RunConfig, records: Sequence[Record] | None = None) -> RealData:
        from synalign.io.retrieval import read_pairs

        d, r = config.data, config.retrieval
        corpus = self.corpus(config)
        warnings: list[str] = []
        if records is not None:
            pairs, source = list(records), "the pairs given"
        elif d.dataset:
            pairs, source = _split_pairs(self._dataset(config), d.split), f"dataset {d.dataset}"
        elif d.path:
            pairs, warnings = read_pairs(d.path, corpus, r.query_column, r.doc_id_column)
            source = d.path
        else:
            raise ConfigError(
                "no real pairs: set data.path to a file of (query, doc_id) pairs, or "
                "data.dataset to a bundled retrieval corpus"
            )
        index = corpus.index()
        missing = [p for p in pairs if p.label not in index]
        if missing:
            raise ConfigError(
                f"{source}: doc_id {missing[0].label!r} (query {missing[0].text!r}) is not a"
                " document of the corpus; fix the id or add the document"
            )
        if d.shots and d.shots < len(pairs):
            rng = np.random.default_rng(config.seed)
            picks = sorted(int(i) for i in rng.choice(len(pairs), size=d.shots, replace=False))
            pairs = [pairs[i] for i in picks]
        elif d.shots and d.shots > len(pairs):
            warnings.append(
                f"{source} has only {len(pairs)} pairs, fewer than the {d.shots} shots asked"
                " for; using all of them"
            )
        real = [
            Record(p.id, p.text, p.label, {**p.meta, "document": corpus.texts[index[p.label]]})
            for p in pairs
        ]
        return RealData(real, source, warnings)

    def groups(self, records: Sequence[Record]) -> dict[Hashable, list[int]]:
        return {QUERY_GROUP: list(range(len(records)))}

    def spec(self, config: RunConfig) -> QuerySpec:
        r = config.retrieval
        query, document = r.query_name, r.document_name
        if config.data.dataset:
            ds = self._dataset(config)
            query, document = query or ds.query_name, document or ds.document_name
        return QuerySpec(query or "query", document or "document", r.document_words)

    def check(self, config: RunConfig) -> str:
        return config.retrieval.check

    def runner(self, stage: str) -> Callable[[Pipeline], dict[str, Any]] | None:
        """This task's own version of a stage, or None for the shared one."""
        return {"explore": explore, "describe": describe, "generate": generate, "align": align}.get(
            stage
        )


def _without(corpus: Corpus, ids: set[str]) -> Corpus:
    from synalign.io.retrieval import Corpus

    keep = [i for i, doc_id in enumerate(corpus.ids) if doc_id not in ids]
    return Corpus(tuple(corpus.ids[i] for i in keep), tuple(corpus.texts[i] for i in keep))


def _split_pairs(dataset: Any, split: str) -> list[Record]:
    """A bundled corpus's pairs; `pool` and `validation` divide `train`."""
    if split == "test":
        return list(dataset.test)
    if split == "all":
        return list(dataset.train) + list(dataset.test)
    if split == "train":
        return list(dataset.train)
    pool, validation = split_train(list(dataset.train))
    return pool if split == "pool" else validation


def split_train(pairs: list[Record]) -> tuple[list[Record], list[Record]]:
    """A fixed fifth of the training pairs held out for choosing settings (`validation`),
    and the rest (`pool`)."""
    from synalign.io.corpora import VALIDATION_SHARE

    rng = np.random.default_rng(1)
    held = set(rng.permutation(len(pairs))[: round(VALIDATION_SHARE * len(pairs))].tolist())
    pool = [p for i, p in enumerate(pairs) if i not in held]
    return pool, [p for i, p in enumerate(pairs) if i in held]


def n_clusters(config: RunConfig) -> int:
    return math.ceil(config.retrieval.queries / config.generate.samples_per_cluster)


def explore(p: Pipeline) -> dict[str, Any]:
    """Demonstration clusters over the real queries, and the documents that get a query:
    GP exploration for both (`explore.method = "gp"`), or random picks."""
    from synalign.esm import DemonstrationSelector, DocumentExplorer, RandomSelector

    c, task = p.config, p.task
    real = p.run_dir.real()
    corpus = task.corpus(c)
    Xq = p.embed([r.text for r in real], "real queries")
    D = task.corpus_vectors(p)
    seed = stable_seed(c.seed, QUERY_GROUP, "explore")
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
    clusters = selector.select(Xq, n_clusters(c))
    index = corpus.index()
    exclude = np.zeros(len(corpus.ids), dtype=bool)
    exclude[[index[r.label] for r in real]] = True
    wanted = min(c.retrieval.queries, int((~exclude).sum()))
    doc_seed = stable_seed(c.seed, "documents", "explore")
    if c.explore.method == "gp":
        picks = DocumentExplorer(seed=doc_seed).select(D, wanted, exclude=exclude)
    else:
        free = np.flatnonzero(~exclude)
        picks = np.random.default_rng(doc_seed).choice(free, size=wanted, replace=False)
    spc = c.generate.samples_per_cluster
    rows: list[dict[str, Any]] = []
    for i, members in enumerate(clusters):
        targets = [int(t) for t in picks[i * spc : (i + 1) * spc]]
        if not targets:
            break
        recs = [real[m] for m in members]
        rows.append(
            {
                "cluster": i,
                "demo_ids": [r.id for r in recs],
                "texts": [r.text for r in recs],
                "documents": [r.meta["document"] for r in recs],
                "targets": [corpus.ids[t] for t in targets],
                "target_texts": [corpus.texts[t] for t in targets],
            }
        )
    p.run_dir.write_demos(rows)
    return {"clusters": len(rows), "documents": len(picks), "corpus": len(corpus.ids)}


def _clusters(p: Pipeline) -> list[QueryCluster]:
    return [
        QueryCluster(
            r["cluster"],
            tuple(r["demo_ids"]),
            tuple(zip(r["documents"], r["texts"], strict=True)),
            tuple(zip(r["targets"], r["target_texts"], strict=True)),
        )
        for r in p.run_dir.demos()
    ]


def _generator(p: Pipeline) -> QueryGenerator:
    from synalign.lar.filters import SampleFilter

    c = p.config
    real = p.run_dir.real()
    sampling, attribute_sampling = sampling_for(c, real)
    sample_filter = SampleFilter(
        min_words=c.retrieval.min_words,
        max_words=c.generate.max_words,
        near_copy=c.generate.near_copy,
    ).fit(r.text for r in real)
    return QueryGenerator(
        llm=p.llm,
        family=query_prompts(p.family.name),
        spec=p.spec,
        use_attributes=c.generate.attributes,
        sampling=sampling,
        attribute_sampling=attribute_sampling,
        sample_filter=sample_filter,
        seed=c.seed,
    )


def describe(p: Pipeline) -> dict[str, Any]:
    from synalign.pipeline.stages import describe_with

    return describe_with(p, _generator(p), _clusters(p))


def generate(p: Pipeline) -> dict[str, Any]:
    from synalign.pipeline.query_tail import check_queries

    clusters = _clusters(p)
    gen = _generator(p)
    p.llm.reset_usage()
    with p.reporter.task("writing queries", total=gen.n_requests(clusters)) as advance:
        accepted, rejected = gen.generate(
            clusters, p.run_dir.attributes(), progress=llm_progress(p.llm, advance)
        )
    usage = stage_usage(p.config, p.llm)
    checked = check_queries(p, accepted) if accepted else None
    info: dict[str, Any] = {}
    if checked is not None:
        accepted, dropped, info = checked
        rejected = rejected + dropped
    for row in accepted + rejected:
        row["seed"] = p.config.seed
    p.run_dir.write_generated(accepted, rejected)
    if not accepted:
        reasons = Counter(r["reason"] for r in rejected).most_common(3)
        top = ", ".join(f"{why} {n}" for why, n in reasons) or "no query was written"
        raise SynAlignError(
            f"no synthetic query was accepted (rejected: {top}); raise retrieval.queries, "
            f"relax retrieval.check, or see {p.run_dir.rejected_path} for every rejected query"
        )
    return {
        "generated": len(accepted) + len(rejected),
        "accepted": len(accepted),
        "rejected": dict(Counter(r["reason"] for r in rejected)),
        **info,
        **usage,
    }


def queries_labelled(texts: list[str], X: np.ndarray, ids: list[Any]) -> Labelled:
    return Labelled(texts, [QUERY_GROUP] * len(texts), X, ids)


def align(p: Pipeline) -> dict[str, Any]:
    """MMD weights that match the synthetic queries to the real ones, and a resample."""
    c = p.config
    synthetic = p.run_dir.synthetic()
    real = p.run_dir.real()
    real_l = queries_labelled(
        [r.text for r in real],
        p.embed([r.text for r in real], "real queries"),
        [r.id for r in real],
    )
    texts = [s["text"] for s in synthetic]
    syn_l = queries_labelled(
        texts, p.embed(texts, "synthetic queries"), [s["demo_ids"] for s in synthetic]
    )
    weighting = learn_weights(
        real_l,
        syn_l,
        weighting="mmd" if c.align.enabled else "uniform",
        bandwidth=c.align.bandwidth,
        ess_floor=c.align.ess_floor,
        seed=c.seed,
        measure=True,
    )
    aligner = weighting.aligner
    size = c.align.size_per_label or len(synthetic)
    picks = aligner.resample({QUERY_GROUP: size}, seed=c.seed)
    aligned = [{**synthetic[i], "weight": float(aligner.weights_[i])} for i in picks]
    info = {
        "bandwidth": float(aligner.bandwidth_),
        "mmd2_before": aligner.mmd2_before_,
        "mmd2_after": aligner.mmd2_after_,
        "ess": aligner.ess_,
        "synthetic_per_label": {QUERY_GROUP: len(synthetic)},
        "aligned_per_label": {QUERY_GROUP: len(aligned)},
    }
    p.run_dir.write_alignment(np.asarray(aligner.weights_, dtype=np.float64), info, aligned)
    return {"aligned": len(aligned)}
