"""Exploration-aware demonstration sampling (ESM).

Each demonstration cluster starts at the real example a Gaussian process is least certain
about given the examples already shown to the LLM, so successive prompts cover the real
distribution instead of re-sampling its dense regions.
"""

from __future__ import annotations

import operator

import numpy as np
from sklearn.base import BaseEstimator

from synalign.errors import SynAlignError
from synalign.esm.tracker import GPUncertaintyTracker, as_pool
from synalign.sda.kernels import BlasThreads, check_bandwidth, median_bandwidth

# Clusters one `select` call builds at most. Each becomes LLM calls (an attribute and a
# writing call by default), so this is days of generation at the local model's ~4
# samples/s, while exploring it takes seconds (0.1-0.3 ms a cluster); a budget beyond it
# is a typo, not a run, and exploring it would run for hours without a word.
MAX_CLUSTERS = 100_000
# Points watched between full variance updates; the watched set may grow to
# max(4x this, n / 32) before a full update is forced.
_MIN_CANDIDATES = 256


def _distances_to(X: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Exact squared distances of X's rows to `point`, from differences: cluster order
    must not depend on the cancellation of the norm expansion."""
    diff = X - point
    return np.einsum("ij,ij->i", diff, diff)


def _nearest_cluster(X: np.ndarray, pick: int, unused: np.ndarray, size: int) -> list[int]:
    """The pick, then its nearest unused neighbours; topped up from the whole pool if short.

    Stable sorting breaks distance ties by index, so clusters are reproducible.
    """
    order = np.argsort(_distances_to(X, X[pick]), kind="stable")
    order = order[order != pick]
    cluster = [pick, *order[unused[order]][: size - 1].tolist()]
    if len(cluster) < size:
        taken = np.zeros(X.shape[0], dtype=bool)
        taken[cluster] = True
        cluster.extend(order[~taken[order]][: size - len(cluster)].tolist())
    return [int(i) for i in cluster]


class _Neighbours:
    """Nearest unused neighbours in O(n d) per query with the same result as a full sort.

    A float32 inner product screens the pool; every row that could be among the k nearest
    under a bound on the float32 error is re-measured exactly and sorted by (distance, index).
    """

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self.X32 = X.astype(np.float32)
        self.sq = np.einsum("ij,ij->i", X, X)
        norms = np.sqrt(self.sq)
        # Error bound of a float32 dot product over d terms, with margin.
        self._tol = 4.0 * (X.shape[1] + 2) * float(np.finfo(np.float32).eps)
        self._norms = norms
        self._max_norm = float(norms.max()) if norms.size else 0.0

    def cluster(self, pick: int, unused: np.ndarray, size: int) -> list[int]:
        k = size - 1
        if k == 0:
            return [pick]
        free = int(unused.sum()) - int(unused[pick])
        if free < k:
            return _nearest_cluster(self.X, pick, unused, size)
        approx = self.sq + self.sq[pick] - 2.0 * (self.X32 @ self.X32[pick]).astype(np.float64)
        approx[~unused] = np.inf
        approx[pick] = np.inf
        kth = np.partition(approx, k - 1)[k - 1]
        slack = 2.0 * self._tol * self._max_norm * float(self._norms[pick])
        cand = np.flatnonzero(approx <= kth + slack)
        order = np.lexsort((cand, _distances_to(self.X[cand], self.X[pick])))[:k]
        return [pick, *(int(i) for i in cand[order])]


class _PassSelector(BaseEstimator):
    """Shared cluster and pass bookkeeping; subclasses only decide which point to pick."""

    def __init__(self, cluster_size: int = 3, seed: int = 0) -> None:
        self.cluster_size = cluster_size
        self.seed = seed

    def select(self, X: np.ndarray, n_clusters: int) -> list[list[int]]:
        """Return `n_clusters` lists of pool indices; every point is used once per pass."""
        if operator.index(n_clusters) < 0:
            raise ValueError(f"n_clusters must be non-negative, got {n_clusters}")
        if n_clusters > MAX_CLUSTERS:
            raise SynAlignError(
                f"exploration was asked for {n_clusters:,} demonstration clusters, more than"
                f" the {MAX_CLUSTERS:,} a run takes: ask for fewer synthetic samples"
            )
        if operator.index(self.cluster_size) < 1:
            raise ValueError(f"cluster_size must be at least 1, got {self.cluster_size}")
        pool = as_pool(X)
        n = pool.shape[0]
        size = min(int(self.cluster_size), n)
        rng = np.random.default_rng(self.seed)
        # Points added per pass: every cluster but the last of a pass uses only fresh points.
        capacity = max(1, min(int(n_clusters) * size, n + size))
        threads = BlasThreads()
        self._start(pool, rng, capacity)
        neighbours = _Neighbours(pool)
        unused = np.ones(n, dtype=bool)
        clusters: list[list[int]] = []
        n_passes = 1
        with threads.single():
            for _ in range(int(n_clusters)):
                if not unused.any():
                    unused[:] = True
                    n_passes += 1
                    self._new_pass()
                pick = self._pick(unused)
                cluster = neighbours.cluster(pick, unused, size)
                self._observe(cluster)
                unused[cluster] = False
                clusters.append(cluster)
        self.clusters_ = clusters
        self.n_passes_ = n_passes
        return clusters

    def _start(self, X: np.ndarray, rng: np.random.Generator, capacity: int) -> None:
        raise NotImplementedError

    def _pick(self, unused: np.ndarray) -> int:
        raise NotImplementedError

    def _observe(self, cluster: list[int]) -> None:
        """Hook: a cluster has been shown to the LLM."""

    def _new_pass(self) -> None:
        """Hook: every point has been used; the pool is fresh again."""


class DemonstrationSelector(_PassSelector):
    """ESM: start each cluster at the unused point of highest GP posterior variance.

    Picks are those of refitting the GP every round. Between full variance updates only a
    watched set of high-variance candidates is kept current: variances never grow, so when
    the best current candidate beats every other point's variance at the last full update
    it is the global argmax, and the full update can wait until many columns are pending.
    """

    def __init__(
        self,
        cluster_size: int = 3,
        bandwidth: float | None = None,
        noise: float = 1e-4,
        seed: int = 0,
        factor_dtype: str = "auto",
    ) -> None:
        super().__init__(cluster_size=cluster_size, seed=seed)
        self.bandwidth = bandwidth
        self.noise = noise
        self.factor_dtype = factor_dtype

    def _start(self, X: np.ndarray, rng: np.random.Generator, capacity: int) -> None:
        # Ties (every point in a pass's first round) go to the lowest rank in a seeded
        # permutation.
        self._rng = rng
        self._set_perm(rng.permutation(X.shape[0]))
        check_bandwidth(self.bandwidth)
        bw = self.bandwidth if self.bandwidth is not None else median_bandwidth(X, seed=self.seed)
        self.bandwidth_ = float(bw)
        self._tracker = GPUncertaintyTracker(
            bandwidth=self.bandwidth_, noise=self.noise, factor_dtype=self.factor_dtype
        ).fit(X, capacity=capacity)
        self.pick_variance_: list[float] = []
        self.n_full_updates_ = 0
        self._n_candidates = min(X.shape[0], _MIN_CANDIDATES)
        self._max_watched = max(4 * _MIN_CANDIDATES, X.shape[0] // 32)
        self._candidates: np.ndarray | None = None

    def _set_perm(self, perm: np.ndarray) -> None:
        self._perm = perm
        self._rank = np.empty_like(perm)
        self._rank[perm] = np.arange(perm.shape[0])

    def _pick(self, unused: np.ndarray) -> int:
        tracker = self._tracker
        while tracker._pending and self._candidates is not None:
            cand = self._candidates
            values = np.where(unused[cand], tracker._watched_variance(cand), -np.inf)
            j = int(np.argmax(values))
            best = float(values[j])
            if best > float(self._outside.max()):
                self.pick_variance_.append(best)
                return int(cand[j])
            if cand.size + self._n_candidates > self._max_watched or not self._watch_more(best):
                break
        if tracker._pending:
            self.n_full_updates_ += 1
        variance = tracker.variance_
        score = np.where(unused, variance, -np.inf)
        pick = int(self._perm[int(np.argmax(score[self._perm]))])
        self.pick_variance_.append(float(variance[pick]))
        self._choose_candidates(score, pick)
        return pick

    def _watch_more(self, best: float) -> int:
        """Watch unwatched points whose last full-update variance could still beat `best`."""
        outside = self._outside
        k = min(self._n_candidates, outside.shape[0])
        top = np.argpartition(outside, outside.shape[0] - k)[outside.shape[0] - k :]
        top = top[outside[top] >= best]
        self._tracker._activate(top)
        outside[top] = -np.inf
        cand = np.concatenate([self._candidates, top])
        self._candidates = cand[np.argsort(self._rank[cand], kind="stable")]
        return int(top.size)

    def _choose_candidates(self, score: np.ndarray, pick: int) -> None:
        score = score.copy()
        score[pick] = -np.inf
        m = min(self._n_candidates, int(np.isfinite(score).sum()))
        if m == 0:
            self._candidates = None
            return
        top = np.argpartition(score, score.shape[0] - m)[score.shape[0] - m :]
        top = top[np.isfinite(score[top])]
        cand = top[np.argsort(self._rank[top], kind="stable")]
        self._outside = score
        self._outside[cand] = -np.inf
        self._candidates = cand
        self._tracker._watch(cand)

    def _observe(self, cluster: list[int]) -> None:
        if self._candidates is not None:
            self._outside[cluster] = -np.inf
        self._tracker._extend(cluster)

    def _new_pass(self) -> None:
        # A fresh tie-break order, so a later pass does not replay the first one.
        self._set_perm(self._rng.permutation(self._perm.shape[0]))
        self._tracker.reset()
        self._candidates = None


class RandomSelector(_PassSelector):
    """The -ESM ablation: a uniformly random unused point seeds each cluster."""

    def _start(self, X: np.ndarray, rng: np.random.Generator, capacity: int) -> None:
        self._rng = rng

    def _pick(self, unused: np.ndarray) -> int:
        return int(self._rng.choice(np.flatnonzero(unused)))
