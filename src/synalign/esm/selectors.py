"""Exploration-aware demonstration sampling (ESM).

Each demonstration cluster starts at the real example a Gaussian process is least certain
about given the examples already shown to the LLM, so successive prompts cover the real
distribution instead of re-sampling its dense regions.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from scipy.linalg import solve_triangular

from synalign.sda.kernels import BlasThreads, median_bandwidth, threads_for

_INITIAL_CAPACITY = 8
# A float64 factor above this size is stored as float32 instead (sums stay in float64).
_FLOAT64_FACTOR_BYTES = 1 << 30
# Rows of temporaries per chunk are sized to stay near this many bytes.
_CHUNK_BYTES = 1 << 26
# Pivots whose columns are only known on watched rows; more forces a full update.
_MAX_PENDING = 512
_BLOCK = 64
_MIN_CANDIDATES = 256
_FACTOR_DTYPES = ("auto", "float64", "float32")


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


def _chunk_rows(width: int) -> int:
    return max(256, _CHUNK_BYTES // (8 * max(width, 1)))


class GPUncertaintyTracker:
    """Posterior variance of a zero-mean RBF Gaussian process over a fixed pool.

    The variance after conditioning on a growing set S is kept as an incomplete Cholesky
    factor F (var(x) = 1 - sum_j F[x, j]^2), one column per added point. New columns can
    first be computed on a few watched rows only and folded into every row later in one
    matrix product; the result equals one rank-one update per point, in order, while the
    O(n t) work per point runs at matrix-product speed instead of memory speed.

    `factor_dtype="auto"` stores F in float64 unless it would exceed 1 GiB, then in
    float32; products that feed new columns are always accumulated in float64.
    """

    def __init__(
        self, bandwidth: float | None = None, noise: float = 1e-4, factor_dtype: str = "auto"
    ) -> None:
        self.bandwidth = bandwidth
        self.noise = noise
        self.factor_dtype = factor_dtype

    def fit(self, X: np.ndarray, capacity: int | None = None) -> GPUncertaintyTracker:
        """Set the pool; S starts empty so every variance is the prior k(x, x) = 1.

        `capacity` is the expected number of added points, so the factor is allocated once.
        """
        _check_positive_bandwidth(self.bandwidth)
        if not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be non-negative, got {self.noise!r}")
        if self.factor_dtype not in _FACTOR_DTYPES:
            raise ValueError(
                f"factor_dtype must be one of {_FACTOR_DTYPES}, got {self.factor_dtype!r}"
            )
        self.X_ = _as_pool(X)
        self.bandwidth_ = (
            float(self.bandwidth) if self.bandwidth is not None else median_bandwidth(self.X_)
        )
        self._sq_norms = np.einsum("ij,ij->i", self.X_, self.X_)
        self._gamma = 1.0 / (2.0 * self.bandwidth_ * self.bandwidth_)
        n = self.X_.shape[0]
        if capacity is None:
            cols = min(_INITIAL_CAPACITY, max(n, 1))
        else:
            cols = max(1, operator.index(capacity))
        self.factor_dtype_ = self._resolve_dtype(n * cols)
        self._factor = np.zeros((n, cols), dtype=self.factor_dtype_)
        self._lower = np.zeros((_MAX_PENDING, _MAX_PENDING), dtype=np.float64)
        self.reset()
        return self

    def reset(self) -> None:
        """Forget S but keep the pool, bandwidth and factor buffer."""
        self._check_fitted()
        self._variance = np.ones(self.X_.shape[0], dtype=np.float64)
        self.used_: list[int] = []
        self._committed = 0
        self._pending: list[int] = []
        self._slot = np.full(self.X_.shape[0], -1, dtype=np.intp)
        self._rows = np.zeros(0, dtype=np.intp)
        self._head = np.zeros((0, 0), dtype=np.float64)
        self._tail = np.zeros((0, _MAX_PENDING), dtype=np.float64)
        self._cvar = np.zeros(0, dtype=np.float64)
        self._n_rows = 0

    @property
    def variance_(self) -> np.ndarray:
        """Posterior variance of every pool point given S (the array itself, not a copy)."""
        self._check_fitted()
        self._flush()
        return self._variance

    @property
    def factor_(self) -> np.ndarray:
        """Columns v_j with var(x) = 1 - sum_j v_j(x)^2 (a view, not a copy)."""
        self._check_fitted()
        self._flush()
        return self._factor[:, : self._committed]

    def add(self, indices: Sequence[int]) -> None:
        """Condition on the given pool points, one rank-one update each, in order."""
        self._check_fitted()
        n = self.X_.shape[0]
        order = [operator.index(raw) for raw in indices]
        for s in order:
            if not 0 <= s < n:
                raise IndexError(f"pool index {s} is out of range for a pool of {n}")
        self._extend(order)
        self._flush()

    # Watched rows: their variance stays current while other rows wait for a flush.

    def _watch(self, rows: np.ndarray) -> None:
        """Track the current variance of `rows` (after folding in pending columns)."""
        self._flush()
        self._slot[self._rows[: self._n_rows]] = -1
        self._n_rows = 0
        self._activate(np.asarray(rows, dtype=np.intp))

    def _watched_variance(self, rows: np.ndarray) -> np.ndarray:
        return self._cvar[self._slot[rows]]

    def _kernel(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self._kernel_rows(self.X_[rows], self._sq_norms[rows], cols)

    def _kernel_rows(self, Xa: np.ndarray, sq_a: np.ndarray, cols: np.ndarray) -> np.ndarray:
        d2 = sq_a[:, None] + self._sq_norms[cols][None, :] - 2.0 * (Xa @ self.X_[cols].T)
        np.clip(d2, 0.0, None, out=d2)
        d2 *= -self._gamma
        return np.exp(d2, out=d2)

    def _activate(self, rows: np.ndarray) -> None:
        """Add rows to the watched set, bringing them up to the current rank."""
        new = np.unique(rows[self._slot[rows] < 0])
        if new.size == 0:
            return
        a, m, t0 = self._n_rows, new.size, self._committed
        if a + m > self._rows.shape[0] or self._head.shape[1] != t0:
            cap = max(2 * self._rows.shape[0], a + m, 16)
            rows_buf = np.zeros(cap, dtype=np.intp)
            rows_buf[:a] = self._rows[:a]
            head = np.empty((cap, t0), dtype=np.float64)
            head[:a] = self._head[:a, :t0]
            tail = np.empty((cap, _MAX_PENDING), dtype=np.float64)
            tail[:a] = self._tail[:a]
            cvar = np.empty(cap, dtype=np.float64)
            cvar[:a] = self._cvar[:a]
            self._rows, self._head, self._tail, self._cvar = rows_buf, head, tail, cvar
        self._rows[a : a + m] = new
        self._slot[new] = np.arange(a, a + m)
        self._head[a : a + m] = self._factor[new, :t0]
        var = self._variance[new]
        p = len(self._pending)
        if p:
            P = np.asarray(self._pending, dtype=np.intp)
            raw = self._kernel(new, P)
            if t0:
                raw -= self._head[a : a + m] @ self._head[self._slot[P]].T
            part = solve_triangular(self._lower[:p, :p], raw.T, lower=True, check_finite=False).T
            self._tail[a : a + m, :p] = part
            var = np.clip(var - np.einsum("ij,ij->i", part, part), 0.0, None)
        self._cvar[a : a + m] = var
        self._n_rows = a + m

    def _extend(self, order: Sequence[int]) -> None:
        """Add points in order; their columns are computed on watched rows only."""
        for start in range(0, len(order), _BLOCK):
            block = np.asarray(order[start : start + _BLOCK], dtype=np.intp)
            if len(self._pending) + block.size > _MAX_PENDING:
                self._flush()
            self._extend_block(block)

    def _extend_block(self, block: np.ndarray) -> None:
        self._activate(block)
        a, t0, p0 = self._n_rows, self._committed, len(self._pending)
        rows = self._rows[:a]
        bs = self._slot[block]
        raw = self._kernel(rows, block)
        if t0:
            raw -= self._head[:a] @ self._head[bs].T
        if p0:
            raw -= self._tail[:a, :p0] @ self._tail[bs, :p0].T
        tail, cvar = self._tail, self._cvar
        for j, s in enumerate(block.tolist()):
            self.used_.append(s)
            r = int(bs[j])
            pivot = float(cvar[r]) + self.noise
            if pivot <= 1e-300:
                # Noise-free and already explained: the point carries no new information.
                continue
            q = len(self._pending)
            col = raw[:, j].copy()
            if q > p0:
                col -= tail[:a, p0:q] @ tail[r, p0:q]
            col /= np.sqrt(pivot)
            self._lower[q, :q] = tail[r, :q]
            self._lower[q, q] = np.sqrt(pivot)
            tail[:a, q] = col
            cvar[:a] -= col * col
            np.clip(cvar[:a], 0.0, None, out=cvar[:a])
            self._pending.append(s)

    def _flush(self) -> None:
        """Fold the pending columns into every row with one blocked product."""
        p = len(self._pending)
        if p == 0:
            return
        t0 = self._committed
        self._reserve(t0 + p)
        P = np.asarray(self._pending, dtype=np.intp)
        head_p = self._head[self._slot[P]] if t0 else None
        with threads_for(self.X_.shape[0] * (t0 + self.X_.shape[1]) * p):
            self._fold(P, head_p, self._lower[:p, :p])
        self._committed = t0 + p
        self._pending = []
        kept = self._rows[: self._n_rows].copy()
        self._slot[kept] = -1
        self._n_rows = 0
        self._head = np.zeros((0, self._committed), dtype=np.float64)
        self._rows = np.zeros(0, dtype=np.intp)
        self._activate(kept)

    def _fold(self, P: np.ndarray, head_p: np.ndarray | None, lower: np.ndarray) -> None:
        """Columns t0 .. t0 + p of every row: residual kernel, then a triangular solve."""
        n, t0, p = self.X_.shape[0], self._committed, P.shape[0]
        F = self._factor
        step = _chunk_rows(max(t0, p, self.X_.shape[1]))
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            raw = self._kernel_rows(self.X_[lo:hi], self._sq_norms[lo:hi], P)
            if head_p is not None:
                raw -= np.asarray(F[lo:hi, :t0], dtype=np.float64) @ head_p.T
            part = solve_triangular(lower, raw.T, lower=True, check_finite=False)
            F[lo:hi, t0 : t0 + p] = part.T
            v = self._variance[lo:hi]
            v -= np.einsum("ij,ij->j", part, part)
            np.clip(v, 0.0, None, out=v)

    def _reserve(self, cols: int) -> None:
        if cols <= self._factor.shape[1]:
            return
        n = self._factor.shape[0]
        wanted = max(cols, 2 * self._factor.shape[1])
        if self.factor_dtype == "auto" and 8 * n * wanted > _FLOAT64_FACTOR_BYTES:
            self.factor_dtype_ = np.dtype(np.float32)
        grown = np.zeros((n, wanted), dtype=self.factor_dtype_)
        grown[:, : self._committed] = self._factor[:, : self._committed]
        self._factor = grown

    def _resolve_dtype(self, entries: int) -> np.dtype:
        if self.factor_dtype == "float32":
            return np.dtype(np.float32)
        if self.factor_dtype == "auto" and 8 * entries > _FLOAT64_FACTOR_BYTES:
            return np.dtype(np.float32)
        return np.dtype(np.float64)

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
        diff = self.X[cand] - self.X[pick]
        exact = np.einsum("ij,ij->i", diff, diff)
        order = np.lexsort((cand, exact))[:k]
        return [pick, *(int(i) for i in cand[order])]


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
        _check_positive_bandwidth(self.bandwidth)
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
