"""Corpus-scale exploration: which documents of a large corpus get synthetic queries.

One Gaussian process over a whole corpus costs O(n * picks) time and memory. Here k-means
cells share out the picks in proportion to their sizes and a GP explores each cell, so the
cost grows linearly with n. A cell's next pick is the row whose observation most reduces
the GP's total posterior variance, not the row of highest variance: on embedding-like data
those are outliers that cover little else, and greedy max-variance picks end up farther
from the typical document than random picks do.
"""

from __future__ import annotations

import itertools
import math
import operator
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from synalign.esm.tracker import GPUncertaintyTracker
from synalign.sda.kernels import (
    BlasThreads,
    check_bandwidth,
    median_bandwidth,
    rbf_from_norms,
    threads_for,
)

# A cell allotted more picks than this is split again, which bounds each cell's GP.
_MAX_CELL_PICKS = 64
# Rows per pick a cell's GP explores (a seeded subsample of larger cells), and the least.
_REFERENCE_PER_PICK, _MIN_REFERENCE = 32, 256
# k-means centres are fitted on a seeded subsample of max(20,000, 256 per cell) rows.
_FIT_ROWS_PER_CELL, _MIN_FIT_ROWS = 256, 20_000
# Rows per chunk of temporaries (distance blocks, finiteness checks).
_CHUNK_ROWS = 1 << 14
_BANDWIDTH_ROWS = 1000


def _as_corpus(X: np.ndarray) -> np.ndarray:
    """X as a 2-d float array, float32/float64 input not copied; NaN and inf refused."""
    A = np.asarray(X)
    if A.dtype not in (np.float32, np.float64):
        A = A.astype(np.float32)
    if A.ndim != 2 or 0 in A.shape:
        raise ValueError(f"X must be a non-empty 2-d array of document vectors, got {A.shape}")
    for lo in range(0, A.shape[0], _CHUNK_ROWS):
        if not np.isfinite(A[lo : lo + _CHUNK_ROWS]).all():
            raise ValueError("X contains NaN or infinite values")
    return A


def _kept_rows(n: int, exclude: np.ndarray | None) -> np.ndarray:
    """Indices of the rows that may be picked."""
    if exclude is None:
        return np.arange(n, dtype=np.int64)
    ex = np.asarray(exclude)
    if ex.dtype != bool:
        if ex.size and (not np.issubdtype(ex.dtype, np.integer) or ex.min() < 0 or ex.max() >= n):
            raise ValueError(f"exclude must be a boolean mask or row indices in 0 .. {n - 1}")
        ex = np.isin(np.arange(n), ex)
    if ex.shape != (n,):
        raise ValueError(f"exclude as a boolean mask must have shape ({n},), got {ex.shape}")
    return np.flatnonzero(~ex).astype(np.int64)


def allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` picks over cells in proportion to their sizes (largest remainder); with
    total <= sizes.sum() each quota is at most the cell's size, so no cell gets too many."""
    sizes = np.asarray(sizes, dtype=np.int64)
    quota = sizes * (total / max(int(sizes.sum()), 1))
    alloc = np.floor(quota).astype(np.int64)
    short = total - int(alloc.sum())
    if short > 0:
        alloc[np.argsort(-(quota - alloc), kind="stable")[:short]] += 1
    return np.minimum(alloc, sizes)


def _shifted_sq_dist(block: np.ndarray, P: np.ndarray, p_sq: np.ndarray) -> np.ndarray:
    """||p||^2 - 2 x'p for every pair: the squared distance less ||x||^2 (same argmin)."""
    with threads_for(block.shape[0] * P.shape[0] * P.shape[1]):
        d = block @ P.T
    d *= -2.0
    d += p_sq
    return d


def _nearest_centre(X: np.ndarray, rows: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre, in chunks of float32 rows."""
    C = centres.astype(np.float32)
    c_sq = np.einsum("ij,ij->i", C, C)
    labels = np.empty(rows.size, dtype=np.int64)
    for lo in range(0, rows.size, _CHUNK_ROWS):
        block = np.asarray(X[rows[lo : lo + _CHUNK_ROWS]], dtype=np.float32)
        labels[lo : lo + _CHUNK_ROWS] = np.argmin(_shifted_sq_dist(block, C, c_sq), axis=1)
    return labels


class DocumentExplorer(BaseEstimator):
    """Choose documents whose picks cover a corpus, in time and memory linear in its size.

    `cells`: top-level k-means cells (default ceil(sqrt(n_picks))); a cell allotted over 64
    picks is split again. Each cell's GP (`GPUncertaintyTracker`, RBF width `bandwidth`,
    default the median heuristic on a seeded subsample, observation noise `noise`) covers
    up to 32 rows per pick (a seeded subsample of larger cells) and greedily picks the row
    whose observation most reduces the sum of posterior variances over them.

    Learned: `picks_` (the returned indices), `bandwidth_`, `cells_` (cells the GP ran in,
    after splitting) and `n_features_in_`.
    """

    def __init__(
        self,
        cells: int | None = None,
        bandwidth: float | None = None,
        noise: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.cells = cells
        self.bandwidth = bandwidth
        self.noise = noise
        self.seed = seed

    def select(self, X: np.ndarray, n_picks: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """Indices (int64, distinct) of min(n_picks, allowed rows) rows of X, grouped by cell.

        `exclude` is a boolean mask over the rows or an array of row indices; those rows
        are never picked and take no part in the cells or the bandwidth.
        """
        self._check_params()
        if isinstance(n_picks, bool) or operator.index(n_picks) < 1:
            raise ValueError(f"n_picks must be a positive integer, got {n_picks!r}")
        A = _as_corpus(X)
        keep = _kept_rows(A.shape[0], exclude)
        self.n_features_in_ = A.shape[1]
        rng = np.random.default_rng(self.seed)
        m = min(operator.index(n_picks), keep.size)
        self.bandwidth_ = self._bandwidth(A, keep, rng)
        self.cells_ = 0
        self._X, self._rng, self._out = A, rng, [np.zeros(0, dtype=np.int64)]
        if m:
            top = self.cells if self.cells is not None else math.ceil(math.sqrt(m))
            # Small products in per-cell loops run on one BLAS thread, large ones on all.
            with BlasThreads().single():
                self._explore(keep, m, min(operator.index(top), keep.size))
        self.picks_ = np.concatenate(self._out)
        del self._X, self._rng, self._out
        return self.picks_

    def _check_params(self) -> None:
        if self.cells is not None and operator.index(self.cells) < 1:
            raise ValueError(f"cells must be at least 1, got {self.cells!r}")
        check_bandwidth(self.bandwidth)
        if not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be non-negative, got {self.noise!r}")

    def _bandwidth(self, X: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> float:
        if self.bandwidth is not None:
            return float(self.bandwidth)
        few = keep.size <= _BANDWIDTH_ROWS
        sub = keep if few else np.sort(rng.choice(keep, size=_BANDWIDTH_ROWS, replace=False))
        return median_bandwidth(np.asarray(X[sub], dtype=np.float64), max_points=_BANDWIDTH_ROWS)

    def _explore(self, rows: np.ndarray, m: int, k: int) -> None:
        """Share `m` picks of `rows` over k cells in proportion to size; recurse on large ones."""
        if k <= 1 and m > _MAX_CELL_PICKS:
            k = math.ceil(2 * m / _MAX_CELL_PICKS)
        # Parts are smaller than `rows` whenever there are two, so the recursion ends.
        parts = self._split(rows, k) if k > 1 else [rows]
        if len(parts) == 1:
            self._cell(rows, m)
            return
        alloc = allocate(np.array([p.size for p in parts]), m)
        for part, a in zip(parts, alloc.tolist(), strict=True):
            if a > _MAX_CELL_PICKS:
                self._explore(part, a, 1)
            elif a:
                self._cell(part, a)

    def _split(self, rows: np.ndarray, k: int) -> list[np.ndarray]:
        """Rows of each non-empty k-means cell; centres fitted on a seeded subsample."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        fit_rows, fit_size = rows, max(_MIN_FIT_ROWS, _FIT_ROWS_PER_CELL * k)
        if fit_size < rows.size:
            fit_rows = np.sort(self._rng.choice(rows, size=fit_size, replace=False))
        k = min(k, fit_rows.size)
        km = KMeans(n_clusters=k, n_init=1, random_state=int(self._rng.integers(2**31)))
        with warnings.catch_warnings():
            # Duplicate rows can leave fewer distinct centres than asked; empty cells drop.
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(np.asarray(self._X[fit_rows], dtype=np.float32))
        labels = _nearest_centre(self._X, rows, km.cluster_centers_)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(k + 1))
        return [rows[order[a:b]] for a, b in itertools.pairwise(bounds) if b > a]

    def _cell(self, rows: np.ndarray, m: int) -> None:
        """`m` picks in one cell: greedy total-variance reduction over its reference rows."""
        self.cells_ += 1
        if m >= rows.size:
            self._out.append(rows.copy())
        elif m > _MAX_CELL_PICKS:
            # Only reached when k-means cannot split the rows: they are (nearly) identical.
            self._out.append(np.sort(self._rng.choice(rows, size=m, replace=False)))
        else:
            r = max(_MIN_REFERENCE, _REFERENCE_PER_PICK * m)
            few = rows.size <= r
            ref = rows if few else np.sort(self._rng.choice(rows, size=r, replace=False))
            R = np.asarray(self._X[ref], dtype=np.float64)
            self._out.append(ref[self._reduce_variance(R, m)])

    def _reduce_variance(self, R: np.ndarray, m: int) -> np.ndarray:
        """Greedy picks among the rows of R maximising sum_x cov(x, c)^2 / (var(c) + noise).

        The tracker keeps the incomplete Cholesky factor F of the posterior covariance
        (cov = K - F F'); each pick adds a column u, and the row sums of cov^2 follow from
        K u and F'u without ever forming the covariance.
        """
        tracker = GPUncertaintyTracker(bandwidth=self.bandwidth_, noise=self.noise)
        tracker.fit(R, capacity=m)
        sq = np.einsum("ij,ij->i", R, R)
        K = rbf_from_norms(R, sq, R, sq, 1.0 / (2.0 * self.bandwidth_**2))
        total = np.einsum("ij,ij->i", K, K)
        picked = np.zeros(R.shape[0], dtype=bool)
        picks = np.empty(m, dtype=np.int64)
        for j in range(m):
            score = total / np.maximum(tracker.variance_ + self.noise, 1e-12)
            score[picked] = -np.inf
            c = int(np.argmax(score))
            picks[j], picked[c] = c, True
            before = tracker.factor_.shape[1]
            tracker.add([c])
            F = tracker.factor_
            if F.shape[1] == before:
                continue  # noise-free and already explained: nothing changes
            u = np.asarray(F[:, -1], dtype=np.float64)
            old = np.asarray(F[:, :-1], dtype=np.float64)
            w = K @ u - old @ (old.T @ u)
            total += u * (u * float(u @ u) - 2.0 * w)
            np.clip(total, 0.0, None, out=total)
        return picks


def coverage(X: np.ndarray, picks: np.ndarray, chunk: int = _CHUNK_ROWS) -> float:
    """Mean Euclidean distance from each row of X to its nearest picked row (lower is better).

    Chunks of rows keep memory at chunk x picks; products run in X's float precision and a
    picked row's own distance is exactly zero.
    """
    A = _as_corpus(X)
    idx = np.asarray(picks).reshape(-1)
    if idx.size == 0:
        raise ValueError("coverage needs at least one pick")
    if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= A.shape[0]:
        raise ValueError(f"picks must be row indices in 0 .. {A.shape[0] - 1}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    P = A[idx]
    p_sq = np.einsum("ij,ij->i", P, P)
    picked = np.zeros(A.shape[0], dtype=bool)
    picked[idx] = True
    total = 0.0
    for lo in range(0, A.shape[0], chunk):
        block = A[lo : lo + chunk]
        best = _shifted_sq_dist(block, P, p_sq).min(axis=1).astype(np.float64)
        best += np.einsum("ij,ij->i", block, block)
        best[picked[lo : lo + chunk]] = 0.0
        total += float(np.sqrt(np.clip(best, 0.0, None)).sum())
    return total / A.shape[0]
