"""Checks that a synthetic query singles out its own document, as the field does it.

- Round trip (Promptagator): embed the query, rank the whole corpus, keep the query when
  its own document ranks in the top k.
- Likelihood (InPars): the generator's log-likelihood of the query given its document;
  keep the most likely ones.

Unless fixed by the user, each threshold is chosen per run from the real pairs: a query is
rejected only when it singles out its document less well than all but `quantile` of the
real queries do (the real queries' own ranks and likelihoods, measured the same way).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from synalign.lar.prompts.queries import QuerySpec
from synalign.ranks import dense_ranks


def gold_ranks(Q: np.ndarray, D: np.ndarray, gold: Sequence[int]) -> np.ndarray:
    """Rank (1 = top) of each query's own document among all rows of `D` by dot product;
    a tie counts against the gold document. Memory is linear in the corpus."""
    return dense_ranks(np.asarray(Q, dtype=np.float32), np.asarray(D, dtype=np.float32), gold)


def quantile_from_top(values: np.ndarray, quantile: float) -> float:
    """The value that all but `quantile` of `values` reach (for ranks: the rank that
    1 - quantile of them are at or above)."""
    return float(np.quantile(np.asarray(values, dtype=np.float64), 1.0 - quantile, method="higher"))


class RoundTripCheck(BaseEstimator):
    """Keeps a query whose document ranks in the top `k_` of the corpus for it."""

    def __init__(self, k: int | None = None, quantile: float = 0.1) -> None:
        self.k = k
        self.quantile = quantile

    def fit(self, Q_real: np.ndarray, gold_real: Sequence[int], D: np.ndarray) -> RoundTripCheck:
        """Measure the real pairs' own ranks; `k_` is `k`, or the rank that all but
        `quantile` of the real queries reach."""
        self.real_ranks_ = gold_ranks(Q_real, D, gold_real)
        if self.k is not None:
            self.k_ = int(self.k)
        else:
            self.k_ = max(1, math.ceil(quantile_from_top(self.real_ranks_, self.quantile)))
        return self

    def ranks(self, Q: np.ndarray, gold: Sequence[int], D: np.ndarray) -> np.ndarray:
        return gold_ranks(Q, D, gold)

    def keep(self, ranks: np.ndarray) -> np.ndarray:
        return np.asarray(ranks) <= self.k_


class LikelihoodCheck(BaseEstimator):
    """Keeps the queries the generator finds most likely for their documents.

    The score is log p(query | document) per word, under a zero-shot prompt (no
    demonstrations, so a real pair is scored exactly as a synthetic one). With
    `keep_share` the top share is kept (InPars); otherwise the threshold is the score that
    all but `quantile` of the real pairs reach.
    """

    def __init__(
        self,
        llm: Any,
        spec: QuerySpec | None = None,
        keep_share: float | None = None,
        quantile: float = 0.1,
    ) -> None:
        self.llm = llm
        self.spec = spec
        self.keep_share = keep_share
        self.quantile = quantile

    def score(
        self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Per-word log-likelihood of each (document, query) pair's query."""
        spec = self.spec or QuerySpec()
        prefix = f"{spec.document_title}s, each followed by its {spec.query_name}.\n\n"
        out = np.empty(len(pairs), dtype=np.float64)
        for i, (document, query) in enumerate(pairs):
            ask = f"{spec.document_title}: {spec.clip(document)}\n{spec.query_title}:"
            (lp,) = self.llm.continuation_logprobs(prefix, ask, [" " + " ".join(query.split())])
            out[i] = lp / (len(query.split()) + 1)
            if progress:
                progress(1)
        return out

    def fit(
        self, real_pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None
    ) -> LikelihoodCheck:
        self.real_scores_ = self.score(real_pairs, progress)
        self.threshold_ = float(np.quantile(self.real_scores_, self.quantile, method="lower"))
        return self

    def keep(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.keep_share is None:
            return scores >= self.threshold_
        n_keep = math.ceil(self.keep_share * len(scores))
        order = np.argsort(-scores, kind="stable")
        keep = np.zeros(len(scores), dtype=bool)
        keep[order[:n_keep]] = True
        return keep
