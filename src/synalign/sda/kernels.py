"""RBF kernel helpers shared by demonstration sampling and distribution alignment."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

from synalign.sda.weights import uniform

# Entries of one temporary block in blocked kernel products: bounds their memory.
BLOCK_ENTRIES = 1 << 22


def _as_matrix(X: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array of row vectors, got shape {A.shape}")
    return A


def _bandwidth_value(bandwidth: float) -> float:
    bw = float(bandwidth)
    if not np.isfinite(bw) or bw <= 0.0:
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    return bw


def check_bandwidth(bandwidth: float | None) -> None:
    """Refuse a set bandwidth that is not a positive finite number (None: estimate one)."""
    if bandwidth is not None and not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")


def _normalised(weights: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if weights is None:
        return uniform(n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} entries for {n} rows")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{name} must not sum to zero")
    return w / total


def median_bandwidth(
    X: np.ndarray, Y: np.ndarray | None = None, max_points: int = 1000, seed: int = 0
) -> float:
    """Median pairwise distance of the pooled rows: a scale-free default for the RBF kernel.

    A seeded subsample keeps the cost quadratic in `max_points`, not in the data size; rows
    are drawn before anything is stacked or converted, so a million-row input is never
    copied. Duplicate rows can make the median zero; then the median of the positive
    distances is used, and 1.0 when every row is identical.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    A = np.asarray(X)
    if A.ndim != 2:
        raise ValueError(f"X must be a 2-d array of row vectors, got shape {A.shape}")
    B = None if Y is None else np.asarray(Y)
    if B is not None and B.ndim != 2:
        raise ValueError(f"Y must be a 2-d array of row vectors, got shape {B.shape}")
    n_x = A.shape[0]
    n = n_x + (0 if B is None else B.shape[0])
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    else:
        idx = np.arange(n)
    parts = [A[idx[idx < n_x]]]
    if B is not None:
        parts.append(B[idx[idx >= n_x] - n_x])
    Z = np.vstack([np.asarray(part, dtype=np.float64) for part in parts])
    n = Z.shape[0]
    if n < 2:
        return 1.0
    sq = np.einsum("ij,ij->i", Z, Z)
    d2 = squared_distances(Z, sq, Z, sq)
    dist = np.sqrt(d2[np.triu_indices(n, k=1)])
    med = float(np.median(dist))
    if med > 0.0:
        return med
    positive = dist[dist > 0.0]
    return float(np.median(positive)) if positive.size else 1.0


def rbf_kernel(X: np.ndarray, Y: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2)), the convention of sklearn's RBF."""
    A = _as_matrix(X, "X")
    B = _as_matrix(Y, "Y")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X has {A.shape[1]} columns but Y has {B.shape[1]}")
    bw = _bandwidth_value(bandwidth)
    d2 = squared_distances(A, np.einsum("ij,ij->i", A, A), B, np.einsum("ij,ij->i", B, B))
    return np.exp(-d2 / (2.0 * bw * bw))


def squared_distances(
    A: np.ndarray, sq_a: np.ndarray, B: np.ndarray, sq_b: np.ndarray
) -> np.ndarray:
    """||a||^2 + ||b||^2 - 2 a'b for every pair of rows, in the dtype of the inputs.

    One matrix product instead of an n x m x d difference array; the expansion can come
    out slightly negative by cancellation, hence the clip. `sq_a`, `sq_b` are the rows'
    squared norms, which loops over blocks compute once.
    """
    d2 = sq_a[:, None] + sq_b[None, :] - 2.0 * (A @ B.T)
    np.clip(d2, 0.0, None, out=d2)
    return d2


def rbf_from_norms(
    A: np.ndarray, sq_a: np.ndarray, B: np.ndarray, sq_b: np.ndarray, gamma: float
) -> np.ndarray:
    """exp(-gamma ||a - b||^2) from precomputed squared norms, in place on one buffer.

    For loops over blocks that reuse one side's norms and a fixed gamma; float32 inputs
    give a float32 kernel (the Nystroem features). Multiplying by gamma rounds differently
    from rbf_kernel's division by 2 bandwidth^2, so the two stay separate functions.
    """
    d2 = squared_distances(A, sq_a, B, sq_b)
    d2 *= -gamma
    return np.exp(d2, out=d2)


def rbf_block(X: np.ndarray, Y: np.ndarray, bandwidth: float) -> np.ndarray:
    """rbf_kernel, on every BLAS thread when the block is large."""
    with threads_for(X.shape[0] * Y.shape[0] * X.shape[1]):
        return rbf_kernel(X, Y, bandwidth)


def mean_kernel_rows(X: np.ndarray, Y: np.ndarray, bandwidth: float) -> np.ndarray:
    """Row means of k(X, Y), in blocks so a large real set never needs a full kernel matrix."""
    block = max(1, BLOCK_ENTRIES // Y.shape[0])
    out = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], block):
        out[start : start + block] = rbf_block(X[start : start + block], Y, bandwidth).mean(axis=1)
    return out


def kernel_matvec(X: np.ndarray, Y: np.ndarray, v: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(X, Y) @ v in blocks of rows."""
    block = max(1, BLOCK_ENTRIES // max(Y.shape[0], 1))
    out = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], block):
        out[start : start + block] = rbf_block(X[start : start + block], Y, bandwidth) @ v
    return out


def mmd2(
    X: np.ndarray,
    Y: np.ndarray,
    bandwidth: float,
    weights_x: np.ndarray | None = None,
    weights_y: np.ndarray | None = None,
) -> float:
    """Biased (V-statistic) squared MMD between two weighted empirical distributions.

    The V-statistic is what the aligner minimises, so reports and solver agree; rounding
    can push it a hair below zero, hence the clip.
    """
    A = _as_matrix(X, "X")
    B = _as_matrix(Y, "Y")
    if A.shape[0] == 0 or B.shape[0] == 0:
        raise ValueError("mmd2 needs at least one row on each side")
    wx = _normalised(weights_x, A.shape[0], "weights_x")
    wy = _normalised(weights_y, B.shape[0], "weights_y")
    value = (
        wx @ rbf_kernel(A, A, bandwidth) @ wx
        + wy @ rbf_kernel(B, B, bandwidth) @ wy
        - 2.0 * (wx @ rbf_kernel(A, B, bandwidth) @ wy)
    )
    return max(float(value), 0.0)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size: how many equally weighted rows the weights are worth."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    denom = float(np.dot(w, w))
    if denom == 0.0:
        return 0.0
    return float(w.sum()) ** 2 / denom


# Multiply-adds from which one product is worth every BLAS thread.
_THREADED_WORK = 1 << 28
_ACTIVE: contextvars.ContextVar[BlasThreads | None] = contextvars.ContextVar(
    "synalign_blas_threads", default=None
)


class BlasThreads:
    """BLAS thread limits for loops of small products.

    Thread hand-offs cost more than a small or memory-bound product gains from a second
    thread (many times more when the machine is busy), so such loops run on one BLAS
    thread; large blocked products inside them get back the thread count that was in
    force when this object was made. Without threadpoolctl both are no-ops.
    """

    def __init__(self) -> None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            self._controller = None
            return
        self._controller = ThreadpoolController()
        outer = _ACTIVE.get()
        if outer is not None and outer._controller is not None:
            # Inside another single-thread block the counts in force are not the user's.
            self._saved = outer._saved
        else:
            self._saved = {lib["prefix"]: lib["num_threads"] for lib in self._controller.info()}

    @contextlib.contextmanager
    def single(self) -> Iterator[None]:
        token = _ACTIVE.set(self)
        try:
            if self._controller is None:
                yield
            else:
                with self._controller.limit(limits=1, user_api="blas"):
                    yield
        finally:
            _ACTIVE.reset(token)

    @contextlib.contextmanager
    def full(self) -> Iterator[None]:
        if self._controller is None:
            yield
            return
        with self._controller.limit(limits=self._saved):
            yield


def threads_for(work: float) -> contextlib.AbstractContextManager[None]:
    """Inside `BlasThreads.single()`, every thread for a product of `work` multiply-adds
    if it is large; otherwise (or outside such a block) leave the thread count alone."""
    active = _ACTIVE.get()
    if active is None or work < _THREADED_WORK:
        return contextlib.nullcontext()
    return active.full()
