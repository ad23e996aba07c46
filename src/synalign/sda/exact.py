"""The exact solver: the RBF-MMD optimum over the simplex on the kernel itself.

Small labels hold the whole kernel matrix and run projected accelerated gradient. Large
ones use an active set: solve on the rows of the current support (one Cholesky solve),
compute every row's gradient 2(Kw - b) from the support alone, add the rows that would
take weight, repeat. It stops at the optimality condition of the full problem, and kernel
rows are only ever computed against supported rows.
"""

from __future__ import annotations

import numpy as np

from synalign.sda.kernels import kernel_matvec, mean_kernel_rows, rbf_block
from synalign.sda.simplex import Solution, optimum_on_support, ridged, solve_simplex_qp

# Rows used to estimate the mean synthetic self-similarity for MMD² before alignment.
_SELF_SAMPLE = 2_000
# Active-set rounds (support solve, then a gradient over every row) before giving up.
_MAX_ROUNDS = 30


class _WorkingSet:
    """Kernel rows among the synthetic rows considered so far, grown on demand."""

    def __init__(self, X: np.ndarray, rows: np.ndarray, bandwidth: float) -> None:
        self.X = X
        self.bandwidth = bandwidth
        self.rows = np.unique(rows)
        self.K = rbf_block(X[self.rows], X[self.rows], bandwidth)

    def grow(self, new: np.ndarray) -> None:
        new = np.setdiff1d(new, self.rows)
        if new.size == 0:
            return
        cross = rbf_block(self.X[new], self.X[self.rows], self.bandwidth)
        inner = rbf_block(self.X[new], self.X[new], self.bandwidth)
        self.K = np.block([[self.K, cross.T], [cross, inner]])
        self.rows = np.concatenate([self.rows, new])

    def positions(self, rows: np.ndarray) -> np.ndarray:
        order = np.argsort(self.rows)
        return order[np.searchsorted(self.rows, rows, sorter=order)]


def self_similarity(X: np.ndarray, bandwidth: float, seed: int) -> float:
    """Mean of k(X, X) over all pairs: exact for small X, else from a seeded subsample.

    The subsample estimate is unbiased: the off-diagonal mean comes from distinct pairs of
    sampled rows and the diagonal (all ones) is added back with its exact share.
    """
    n = X.shape[0]
    if n <= _SELF_SAMPLE:
        return float(mean_kernel_rows(X, X, bandwidth).mean())
    rng = np.random.default_rng(seed)
    sample = X[np.sort(rng.choice(n, size=_SELF_SAMPLE, replace=False))]
    K = rbf_block(sample, sample, bandwidth)
    m = sample.shape[0]
    off = (float(K.sum()) - float(np.trace(K))) / (m * (m - 1))
    return off * (1.0 - 1.0 / n) + 1.0 / n


def solve_exact(
    Xs: np.ndarray,
    Xr: np.ndarray,
    bandwidth: float,
    max_iter: int,
    tol: float,
    seed: int,
    start: np.ndarray | None,
    ridge: float = 0.0,
) -> Solution:
    """The exact RBF-MMD optimum over the simplex (plus `ridge` Σ w², see `MMDAligner`).

    Without a `start` the whole kernel matrix is used. With one (a rough weighting, whose
    support is the first active set), an active set: solve on the rows of the current
    support, compute every row's gradient 2(Kw - b) from those rows alone, add rows whose
    gradient is below the support's common value (they would take weight) and repeat
    until none is, which is the optimality condition of the full problem.
    """
    n = Xs.shape[0]
    b = mean_kernel_rows(Xs, Xr, bandwidth)
    const = float(mean_kernel_rows(Xr, Xr, bandwidth).mean())
    if start is None:
        K = rbf_block(Xs, Xs, bandwidth)
        before = float(K.mean() - 2.0 * b.mean() + const)
        K[np.diag_indices(n)] += ridge
        w, after, n_iter = solve_simplex_qp(K, b, const, max_iter, tol)
        return Solution(w, before, after - ridge * float(w @ w), n_iter)

    before = self_similarity(Xs, bandwidth, seed) - 2.0 * float(b.mean()) + const
    ws = _WorkingSet(Xs, np.flatnonzero(start > 0.0), bandwidth)
    candidates = ws.rows
    rounds = 0
    while True:
        rounds += 1
        pos = ws.positions(candidates)
        found = optimum_on_support(ridged(ws.K[np.ix_(pos, pos)], ridge), b[candidates])
        if found is None:
            # Singular kernel block: projected gradient over every row seen so far.
            w_all, _, n_iter = solve_simplex_qp(
                ridged(ws.K, ridge), b[ws.rows], const, max_iter, tol
            )
            rounds += n_iter
            support, w = ws.rows[w_all > 0.0], w_all[w_all > 0.0]
        else:
            keep, w = found
            support = candidates[keep]
        grad = 2.0 * (kernel_matvec(Xs, Xs[support], w, bandwidth) - b)
        grad[support] += 2.0 * ridge * w
        level = float(w @ grad[support])
        margin = 1e-9 * max(abs(level), float(np.abs(grad).mean()), 1e-12)
        outside = np.ones(n, dtype=bool)
        outside[support] = False
        violators = np.flatnonzero(outside & (grad < level - margin))
        if violators.size == 0 or rounds >= _MAX_ROUNDS:
            break
        cap = max(256, support.size)
        if violators.size > cap:
            violators = violators[np.argsort(grad[violators], kind="stable")[:cap]]
        ws.grow(violators)
        candidates = np.concatenate([support, violators])
    pos = ws.positions(support)
    K_s = ws.K[np.ix_(pos, pos)]
    after = float(w @ K_s @ w - 2.0 * (w @ b[support]) + const)
    weights = np.zeros(n, dtype=np.float64)
    weights[support] = w
    return Solution(weights, before, min(after, before), rounds)


def polish(
    Xa: np.ndarray, Xr: np.ndarray, bandwidth: float, ridge: float = 0.0
) -> tuple[np.ndarray, np.ndarray] | None:
    """The exact optimum among the rows `Xa`: (positions carrying weight, weights).

    None when the kernel block is singular (duplicate rows).
    """
    Xa = np.asarray(Xa, dtype=np.float64)
    K = rbf_block(Xa, Xa, bandwidth)
    K[np.diag_indices(K.shape[0])] += ridge
    return optimum_on_support(K, mean_kernel_rows(Xa, Xr, bandwidth))
