"""The retrieval tail's check: drop synthetic queries that do not single out their
document. One path for the pipeline (the check ends `generate`) and the evaluation (one
check per generated set and check method)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.backends.llm.base import can_score
from synalign.errors import ConfigError
from synalign.lar.prompts.queries import QuerySpec
from synalign.lar.query_check import LikelihoodCheck, RoundTripCheck

if TYPE_CHECKING:
    from synalign.pipeline.runner import Pipeline

QUERY_CHECKS = ("roundtrip", "likelihood", "both", "none")


@dataclass(frozen=True)
class QuerySet:
    """Queries with their documents' texts, their documents' rows in the corpus and their
    embeddings."""

    queries: Sequence[str]
    documents: Sequence[str]
    gold: Sequence[int]
    Q: np.ndarray


@dataclass
class QueryCheck:
    """Which queries are kept, each check's scores, and the thresholds used."""

    keep: np.ndarray
    ranks: np.ndarray | None = None
    likelihood: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def check_queries_of(
    method: str,
    real: QuerySet,
    synthetic: QuerySet,
    D: np.ndarray,
    *,
    llm: Any = None,
    spec: QuerySpec | None = None,
    roundtrip_k: int | None = None,
    likelihood_keep: float | None = None,
    quantile: float = 0.1,
    progress: Callable[[int], None] | None = None,
) -> QueryCheck:
    """Run the round-trip and/or likelihood check (`method`, see `QUERY_CHECKS`)."""
    if method not in QUERY_CHECKS:
        raise ConfigError(f"retrieval.check {method!r}: choose one of {', '.join(QUERY_CHECKS)}")
    n = len(synthetic.queries)
    out = QueryCheck(keep=np.ones(n, dtype=bool), info={"method": method})
    if method in ("roundtrip", "both"):
        rt = RoundTripCheck(k=roundtrip_k, quantile=quantile).fit(real.Q, real.gold, D)
        out.ranks = rt.ranks(synthetic.Q, synthetic.gold, D)
        out.keep &= rt.keep(out.ranks)
        out.info["roundtrip_k"] = rt.k_
        out.info["roundtrip_kept"] = int(rt.keep(out.ranks).sum())
    if method in ("likelihood", "both"):
        if llm is None or not can_score(llm):
            raise ConfigError(
                "retrieval.check = 'likelihood' needs the generator's token probabilities "
                "(the local llama.cpp backend); use 'roundtrip' with other backends"
            )
        lc = LikelihoodCheck(llm, spec, keep_share=likelihood_keep, quantile=quantile)
        lc.fit(list(zip(real.documents, real.queries, strict=True)), progress)
        out.likelihood = lc.score(
            list(zip(synthetic.documents, synthetic.queries, strict=True)), progress
        )
        kept = lc.keep(out.likelihood)
        out.keep &= kept
        out.info["likelihood_threshold"] = None if likelihood_keep else round(lc.threshold_, 4)
        out.info["likelihood_kept"] = int(kept.sum())
    out.info["kept"] = int(out.keep.sum())
    return out


def check_queries(
    p: Pipeline, accepted: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]] | None:
    """The pipeline's check of the accepted queries: (kept, dropped as `not_specific`
    with their scores, the figures state.json keeps), or None with the check off."""
    r = p.config.retrieval
    if r.check == "none":
        return None
    corpus = p.task.corpus(p.config)
    index = corpus.index()
    real_rows = p.run_dir.real()
    D = p.task.corpus_vectors(p)
    real = QuerySet(
        [x.text for x in real_rows],
        [x.meta["document"] for x in real_rows],
        [index[x.label] for x in real_rows],
        p.embed([x.text for x in real_rows], "real queries"),
    )
    texts = [a["text"] for a in accepted]
    gold = [index[a["doc_id"]] for a in accepted]
    syn = QuerySet(
        texts, [corpus.texts[g] for g in gold], gold, p.embed(texts, "synthetic queries")
    )
    scoring = r.check in ("likelihood", "both")
    total = len(real_rows) + len(accepted)
    bar = p.reporter.task(f"query check ({r.check})", total=total)
    with bar if scoring else contextlib.nullcontext(None) as step:
        outcome = check_queries_of(
            r.check, real, syn, D,
            llm=p.llm, spec=p.spec, roundtrip_k=r.roundtrip_k,
            likelihood_keep=r.likelihood_keep, quantile=r.check_quantile, progress=step,
        )  # fmt: skip
    kept, dropped = [], []
    for i, row in enumerate(accepted):
        scores = {}
        if outcome.ranks is not None:
            scores["roundtrip_rank"] = int(outcome.ranks[i])
        if outcome.likelihood is not None:
            scores["likelihood"] = round(float(outcome.likelihood[i]), 4)
        if outcome.keep[i]:
            kept.append({**row, **scores})
        else:
            dropped.append({**row, **scores, "reason": "not_specific"})
    p.reporter.message(
        f"query check ({r.check}): rejected {len(dropped)} of {len(accepted)} queries as not"
        f" singling out their document ({_thresholds(outcome.info)})"
    )
    return kept, dropped, {"query_check": outcome.info}


def _thresholds(info: dict[str, Any]) -> str:
    parts = []
    if "roundtrip_k" in info:
        parts.append(f"its document in the top {info['roundtrip_k']}")
    if info.get("likelihood_threshold") is not None:
        parts.append(f"per-word log-likelihood ≥ {info['likelihood_threshold']:.2f}")
    return "; ".join(parts) or "top share by likelihood"
