"""How far a synthetic query set is from the real held-out queries: MMD² in the embedder's
space, and the distance between query-length distributions (Wasserstein-1 and KL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_MAX_LENGTH = 40  # words; longer queries share the last bin of the length histogram


def word_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.asarray([len(t.split()) for t in texts], dtype=np.float64)


def length_histogram(lengths: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Share of queries with 1 .. `_MAX_LENGTH` words, add-one smoothed so KL is finite."""
    bins = np.clip(lengths.astype(int), 1, _MAX_LENGTH) - 1
    w = np.ones(len(bins)) if weights is None else np.asarray(weights, dtype=np.float64)
    counts = np.bincount(bins, weights=w, minlength=_MAX_LENGTH) / max(w.sum(), 1e-12)
    smoothed = counts * len(bins) + 1.0
    return smoothed / smoothed.sum()


def set_distances(
    X_syn: np.ndarray,
    syn_texts: Sequence[str],
    weights: np.ndarray,
    X_test: np.ndarray,
    test_texts: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """MMD² (bandwidth: the median heuristic on the test queries) and length distances of
    a weighted synthetic set to the held-out real queries; None for an empty set."""
    from scipy.stats import entropy, wasserstein_distance

    from synalign.sda.kernels import median_bandwidth, mmd2

    if len(syn_texts) == 0:
        return {"mmd2_test": None, "length_w1": None, "length_kl": None}
    w = np.asarray(weights, dtype=np.float64)
    bandwidth = median_bandwidth(X_test, seed=seed)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X_test), size=min(len(X_test), 1000), replace=False)
    syn_len, test_len = word_lengths(syn_texts), word_lengths(test_texts)
    return {
        "mmd2_test": mmd2(X_syn, X_test[rows], bandwidth, weights_x=w),
        "length_w1": float(wasserstein_distance(syn_len, test_len, u_weights=w)),
        "length_kl": float(entropy(length_histogram(test_len), length_histogram(syn_len, w))),
        "mean_words": float(np.average(syn_len, weights=w)),
    }
