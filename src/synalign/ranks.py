"""Where a query's own document ranks among a corpus's documents: the one measure the
round-trip check, the evaluation's metrics and BM25 share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SCORE_BUDGET = 1 << 22  # score-matrix cells held at once while ranking (16 MiB of float32)


def ranks_from_scores(S: np.ndarray, gold: Sequence[int] | np.ndarray) -> np.ndarray:
    """The gold document's 1-based rank in each row of a (queries x documents) score matrix.

    Ties count against the gold document (rank = 1 + documents scoring at least as high),
    so a ranker cannot gain from giving many documents the same score; NaN scores rank last.
    """
    S = np.where(np.isnan(S), -np.inf, S)
    g = np.asarray(gold, dtype=np.int64)
    gold_scores = S[np.arange(len(g)), g]
    return (gold_scores[:, None] <= S).sum(axis=1).astype(np.int64)


def dense_ranks(
    Q: np.ndarray, D: np.ndarray, gold: Sequence[int] | np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """Gold ranks by dot product, a block of queries at a time (memory linear in the corpus)."""
    g = np.asarray(gold, dtype=np.int64)
    if len(g) != len(Q):
        raise ValueError(f"{len(Q)} queries but {len(g)} gold indices")
    step = chunk or max(1, _SCORE_BUDGET // max(1, len(D)))
    parts = [
        ranks_from_scores(Q[start : start + step] @ D.T, g[start : start + step])
        for start in range(0, len(Q), step)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
