"""Exploration-aware demonstration sampling (ESM).

Each demonstration cluster starts at the real example a Gaussian process is least certain
about given the examples already shown to the LLM, so successive prompts cover the real
distribution instead of re-sampling its dense regions.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from synalign.kernels import median_bandwidth

_INITIAL_CAPACITY = 8


def _as_pool(X: np.ndarray) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"the pool must be a 2-d array of embeddings, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("the pool is empty: there are no real examples to draw from")
    if not np.all(np.isfinite(A)):
        raise ValueError("the pool contains NaN or infinite values")
    return A


def _check_positive_bandwidth(bandwidth: float | None) -> None:
    if bandwidth is not None and (not np.isfinite(bandwidth) or bandwidth <= 0):
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")


class GPUncertaintyTracker:
    """Posterior variance of a zero-mean RBF Gaussian process over a fixed pool.

    The variance after conditioning on a growing set S is kept up to date with one rank-one
    (incomplete Cholesky) update per added point, so choosing t points costs O(n t (t + d))
    overall instead of refitting the GP every round.
    """

    def __init__(self, bandwidth: float | None = None, noise: float = 1e-4) -> None:
        self.bandwidth = bandwidth
        self.noise = noise

    def fit(self, X: np.ndarray) -> GPUncertaintyTracker:
        """Set the pool; S starts empty so every variance is the prior k(x, x) = 1."""
        _check_positive_bandwidth(self.bandwidth)
        if not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be non-negative, got {self.noise!r}")
        self.X_ = _as_pool(X)
        self.bandwidth_ = (
            float(self.bandwidth) if self.bandwidth is not None else median_bandwidth(self.X_)
        )
        self._sq_norms = np.einsum("ij,ij->i", self.X_, self.X_)
        n = self.X_.shape[0]
        self._factor = np.zeros((n, min(_INITIAL_CAPACITY, max(n, 1))), dtype=np.float64)
        self.reset()
        return self

    def reset(self) -> None:
        """Forget S but keep the pool, bandwidth and factor buffer."""
        self._check_fitted()
        self.variance_ = np.ones(self.X_.shape[0], dtype=np.float64)
        self.used_: list[int] = []
        self._rank = 0

    @property
    def factor_(self) -> np.ndarray:
        """Columns v_j with var(x) = 1 - sum_j v_j(x)^2 (a view, not a copy)."""
        self._check_fitted()
        return self._factor[:, : self._rank]

    def add(self, indices: Sequence[int]) -> None:
        """Condition on the given pool points, one rank-one update each, in order."""
        self._check_fitted()
        n = self.X_.shape[0]
        for raw in indices:
            s = operator.index(raw)
            if not 0 <= s < n:
                raise IndexError(f"pool index {s} is out of range for a pool of {n}")
            self._add_one(s)

    def _add_one(self, s: int) -> None:
        self.used_.append(s)
        pivot = float(self.variance_[s]) + self.noise
        if pivot <= 1e-300:
            # Noise-free and already explained: the point carries no new information.
            return
        t = self._rank
        d2 = self._sq_norms + self._sq_norms[s] - 2.0 * (self.X_ @ self.X_[s])
        np.clip(d2, 0.0, None, out=d2)
        col = np.exp(d2 / (-2.0 * self.bandwidth_ * self.bandwidth_))
        if t:
            col -= self._factor[:, :t] @ self._factor[s, :t]
        col /= np.sqrt(pivot)
        if t == self._factor.shape[1]:
            grown = np.zeros((self._factor.shape[0], 2 * t), dtype=np.float64)
            grown[:, :t] = self._factor
            self._factor = grown
        self._factor[:, t] = col
        self._rank = t + 1
        self.variance_ -= col * col
        np.clip(self.variance_, 0.0, None, out=self.variance_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "X_"):
            raise RuntimeError("call fit(X) before using the tracker")


def _nearest_cluster(X: np.ndarray, pick: int, unused: np.ndarray, size: int) -> list[int]:
    """The pick, then its nearest unused neighbours; topped up from the whole pool if short.

    Stable sorting breaks distance ties by index, so clusters are reproducible.
    """
    diff = X - X[pick]
    dist = np.einsum("ij,ij->i", diff, diff)
    order = np.argsort(dist, kind="stable")
    order = order[order != pick]
    cluster = [pick, *order[unused[order]][: size - 1].tolist()]
    if len(cluster) < size:
        taken = np.zeros(X.shape[0], dtype=bool)
        taken[cluster] = True
        cluster.extend(order[~taken[order]][: size - len(cluster)].tolist())
    return [int(i) for i in cluster]


class _PassSelector:
    """Shared cluster and pass bookkeeping; subclasses only decide which point to pick."""

    def __init__(self, cluster_size: int = 3, seed: int = 0) -> None:
        self.cluster_size = cluster_size
        self.seed = seed

    def select(self, X: np.ndarray, n_clusters: int) -> list[list[int]]:
        """Return `n_clusters` lists of pool indices; every point is used once per pass."""
        if operator.index(n_clusters) < 0:
            raise ValueError(f"n_clusters must be non-negative, got {n_clusters}")
        if operator.index(self.cluster_size) < 1:
            raise ValueError(f"cluster_size must be at least 1, got {self.cluster_size}")
        pool = _as_pool(X)
        n = pool.shape[0]
        size = min(int(self.cluster_size), n)
        rng = np.random.default_rng(self.seed)
        self._start(pool, rng)
        unused = np.ones(n, dtype=bool)
        clusters: list[list[int]] = []
        n_passes = 1
        for _ in range(int(n_clusters)):
            if not unused.any():
                unused[:] = True
                n_passes += 1
                self._new_pass()
            pick = self._pick(unused)
            cluster = _nearest_cluster(pool, pick, unused, size)
            self._observe(cluster)
            unused[cluster] = False
            clusters.append(cluster)
        self.clusters_ = clusters
        self.n_passes_ = n_passes
        return clusters

    def _start(self, X: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _pick(self, unused: np.ndarray) -> int:
        raise NotImplementedError

    def _observe(self, cluster: list[int]) -> None:
        """Hook: a cluster has been shown to the LLM."""

    def _new_pass(self) -> None:
        """Hook: every point has been used; the pool is fresh again."""


class DemonstrationSelector(_PassSelector):
    """ESM: start each cluster at the unused point of highest GP posterior variance."""

    def __init__(
        self,
        cluster_size: int = 3,
        bandwidth: float | None = None,
        noise: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__(cluster_size=cluster_size, seed=seed)
        self.bandwidth = bandwidth
        self.noise = noise

    def _start(self, X: np.ndarray, rng: np.random.Generator) -> None:
        # Ties (every point in a pass's first round) go to the lowest rank in a seeded
        # permutation.
        self._rng = rng
        self._perm = rng.permutation(X.shape[0])
        _check_positive_bandwidth(self.bandwidth)
        bw = self.bandwidth if self.bandwidth is not None else median_bandwidth(X, seed=self.seed)
        self.bandwidth_ = float(bw)
        self._tracker = GPUncertaintyTracker(bandwidth=self.bandwidth_, noise=self.noise).fit(X)
        self.pick_variance_: list[float] = []

    def _pick(self, unused: np.ndarray) -> int:
        score = np.where(unused, self._tracker.variance_, -np.inf)
        pick = int(self._perm[int(np.argmax(score[self._perm]))])
        self.pick_variance_.append(float(self._tracker.variance_[pick]))
        return pick

    def _observe(self, cluster: list[int]) -> None:
        self._tracker.add(cluster)

    def _new_pass(self) -> None:
        # A fresh tie-break order, so a later pass does not replay the first one.
        self._perm = self._rng.permutation(self._perm.shape[0])
        self._tracker.reset()


class RandomSelector(_PassSelector):
    """The -ESM ablation: a uniformly random unused point seeds each cluster."""

    def _start(self, X: np.ndarray, rng: np.random.Generator) -> None:
        self._rng = rng

    def _pick(self, unused: np.ndarray) -> int:
        return int(self._rng.choice(np.flatnonzero(unused)))
