"""Posterior variance of a Gaussian process over the real pool, updated one point at a time.

Exploration picks the pool point the GP is least certain about given the examples already
shown; this keeps that variance current without refitting the GP every round.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator

from synalign.sda.kernels import check_bandwidth, median_bandwidth, rbf_from_norms, threads_for

_INITIAL_CAPACITY = 8
# A float64 factor above this size is stored as float32 instead (sums stay in float64).
_FLOAT64_FACTOR_BYTES = 1 << 30
# Rows of temporaries per chunk are sized to stay near this many bytes.
_CHUNK_BYTES = 1 << 26
# Pivots whose columns are only known on watched rows; more forces a full update.
_MAX_PENDING = 512
_BLOCK = 64
_FACTOR_DTYPES = ("auto", "float64", "float32")


def as_pool(X: np.ndarray) -> np.ndarray:
    """The real pool as finite float64 rows, refusing what no GP or neighbour search takes."""
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"the pool must be a 2-d array of embeddings, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("the pool is empty: there are no real examples to draw from")
    if not np.all(np.isfinite(A)):
        raise ValueError("the pool contains NaN or infinite values")
    return A


def _chunk_rows(width: int) -> int:
    return max(256, _CHUNK_BYTES // (8 * max(width, 1)))


def _factor_dtype(choice: str, entries: int) -> np.dtype:
    """float32 when asked, or under "auto" when a float64 factor would be too large."""
    if choice == "float32":
        return np.dtype(np.float32)
    if choice == "auto" and 8 * entries > _FLOAT64_FACTOR_BYTES:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _check_params(tracker: GPUncertaintyTracker) -> None:
    check_bandwidth(tracker.bandwidth)
    if not np.isfinite(tracker.noise) or tracker.noise < 0:
        raise ValueError(f"noise must be non-negative, got {tracker.noise!r}")
    if tracker.factor_dtype not in _FACTOR_DTYPES:
        raise ValueError(
            f"factor_dtype must be one of {_FACTOR_DTYPES}, got {tracker.factor_dtype!r}"
        )


def _grown(
    rows: np.ndarray,
    head: np.ndarray,
    tail: np.ndarray,
    cvar: np.ndarray,
    used: int,
    cap: int,
    t0: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The watched-row buffers with room for `cap` rows and `t0` committed columns, their
    first `used` rows kept."""
    rows_buf = np.zeros(cap, dtype=np.intp)
    rows_buf[:used] = rows[:used]
    head_buf = np.empty((cap, t0), dtype=np.float64)
    head_buf[:used] = head[:used, :t0]
    tail_buf = np.empty((cap, _MAX_PENDING), dtype=np.float64)
    tail_buf[:used] = tail[:used]
    cvar_buf = np.empty(cap, dtype=np.float64)
    cvar_buf[:used] = cvar[:used]
    return rows_buf, head_buf, tail_buf, cvar_buf


def _fold(
    X: np.ndarray,
    sq: np.ndarray,
    gamma: float,
    P: np.ndarray,
    head_p: np.ndarray | None,
    lower: np.ndarray,
    F: np.ndarray,
    variance: np.ndarray,
    t0: int,
) -> None:
    """Columns t0 .. t0 + p of F for every row, and the variance they explain.

    Residual kernel against the pending points P, then one triangular solve, in chunks
    of rows so the temporaries stay near `_CHUNK_BYTES` however large the pool.
    """
    n, p = X.shape[0], P.shape[0]
    XP, sqP = X[P], sq[P]
    step = _chunk_rows(max(t0, p, X.shape[1]))
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        raw = rbf_from_norms(X[lo:hi], sq[lo:hi], XP, sqP, gamma)
        if head_p is not None:
            raw -= np.asarray(F[lo:hi, :t0], dtype=np.float64) @ head_p.T
        part = solve_triangular(lower, raw.T, lower=True, check_finite=False)
        F[lo:hi, t0 : t0 + p] = part.T
        v = variance[lo:hi]
        v -= np.einsum("ij,ij->j", part, part)
        np.clip(v, 0.0, None, out=v)


class GPUncertaintyTracker(BaseEstimator):
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
        _check_params(self)
        self.X_ = as_pool(X)
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
        self.factor_dtype_ = _factor_dtype(self.factor_dtype, n * cols)
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

    def _kernel(self, Xa: np.ndarray, sq_a: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return rbf_from_norms(Xa, sq_a, self.X_[cols], self._sq_norms[cols], self._gamma)

    def _activate(self, rows: np.ndarray) -> None:
        """Add rows to the watched set, bringing them up to the current rank."""
        new = np.unique(rows[self._slot[rows] < 0])
        if new.size == 0:
            return
        a, m, t0 = self._n_rows, new.size, self._committed
        if a + m > self._rows.shape[0] or self._head.shape[1] != t0:
            cap = max(2 * self._rows.shape[0], a + m, 16)
            self._rows, self._head, self._tail, self._cvar = _grown(
                self._rows, self._head, self._tail, self._cvar, a, cap, t0
            )
        self._rows[a : a + m] = new
        self._slot[new] = np.arange(a, a + m)
        self._head[a : a + m] = self._factor[new, :t0]
        var = self._variance[new]
        p = len(self._pending)
        if p:
            P = np.asarray(self._pending, dtype=np.intp)
            raw = self._kernel(self.X_[new], self._sq_norms[new], P)
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
        raw = self._kernel(self.X_[rows], self._sq_norms[rows], block)
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
        F, var, lower = self._factor, self._variance, self._lower[:p, :p]
        with threads_for(self.X_.shape[0] * (t0 + self.X_.shape[1]) * p):
            _fold(self.X_, self._sq_norms, self._gamma, P, head_p, lower, F, var, t0)
        self._committed = t0 + p
        self._pending = []
        kept = self._rows[: self._n_rows].copy()
        self._slot[kept] = -1
        self._n_rows = 0
        self._head = np.zeros((0, self._committed), dtype=np.float64)
        self._rows = np.zeros(0, dtype=np.intp)
        self._activate(kept)

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

    def _check_fitted(self) -> None:
        if not hasattr(self, "X_"):
            raise RuntimeError("call fit(X) before using the tracker")
