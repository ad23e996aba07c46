"""Quadratic programs over the probability simplex: min w'Kw - 2 w'b + const, w >= 0, sum 1.

Both MMD solvers end in one of these: projected accelerated gradient on a dense K, or a
Cholesky solve on a known support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.sparse.linalg import LinearOperator, eigsh

from synalign.sda.kernels import threads_for
from synalign.sda.weights import uniform

# Up to this many rows the centred eigenvalue comes from a dense eigendecomposition.
_DENSE_EIG_MAX = 64
# Re-solves after dropping rows whose weight came out non-positive.
_MAX_DROPS = 30


@dataclass
class Solution:
    """One label's weights with the MMD² before and after weighting and the work it took."""

    weights: np.ndarray
    before: float
    after: float
    n_iter: int


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Exact Euclidean projection onto {w >= 0, sum w = 1} (sort-based, O(n log n))."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ks = np.arange(1, u.shape[0] + 1)
    rho = int(np.flatnonzero(u - css / ks > 0)[-1])
    theta = css[rho] / (rho + 1)
    return np.maximum(v - theta, 0.0)


def centred_largest_eigenvalue(K: np.ndarray) -> float:
    """Largest eigenvalue of K on {sum = 0}, the only directions steps on the simplex take.

    It is far below K's own largest eigenvalue (whose eigenvector is close to constant),
    so gradient steps can be that much longer.
    """
    n = K.shape[0]
    if n <= _DENSE_EIG_MAX:
        C = K - K.mean(axis=0, keepdims=True)
        C -= C.mean(axis=1, keepdims=True)
        return float(np.linalg.eigvalsh(C)[-1])

    def matvec(x: np.ndarray) -> np.ndarray:
        y = K @ (x.ravel() - x.mean())
        return y - y.mean()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    start = np.cos(np.arange(n, dtype=np.float64))
    value = eigsh(op, k=1, which="LA", return_eigenvectors=False, v0=start, tol=1e-3)
    return float(value[0])


def solve_simplex_qp(
    K: np.ndarray,
    b: np.ndarray,
    const: float,
    max_iter: int,
    tol: float,
    start: np.ndarray | None = None,
    largest: float | None = None,
) -> tuple[np.ndarray, float, int]:
    """Minimise w'Kw - 2 w'b + const over the simplex with restarted FISTA.

    Returns the best iterate seen (never worse than the start, uniform by default), its
    objective and the number of iterations run. `largest` is K's centred largest
    eigenvalue when the caller knows it.
    """
    n = K.shape[0]
    w = uniform(n) if start is None else start.copy()
    Kw = K @ w

    def objective(x: np.ndarray, Kx: np.ndarray) -> float:
        return float(x @ Kx - 2.0 * (x @ b) + const)

    f = objective(w, Kw)
    best_w, best_f = w.copy(), f
    if n == 1:
        return best_w, best_f, 0
    # Slightly overestimate the Lipschitz constant so the step is always safe; the
    # tolerance of the eigenvalue estimate is covered by the margin.
    if largest is None:
        largest = centred_largest_eigenvalue(K)
    L = 2.0 * largest * 1.01 + 1e-12
    y, Ky, t = w, Kw, 1.0
    momentum = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        grad = 2.0 * (Ky - b)
        w_new = project_to_simplex(y - grad / L)
        Kw_new = K @ w_new
        f_new = objective(w_new, Kw_new)
        if f_new < best_f:
            best_w, best_f = w_new.copy(), f_new
        if f_new > f:
            if not momentum:
                # A plain projected-gradient step cannot go up: this is rounding at the optimum.
                break
            # Function-value restart: drop the momentum and step from the last iterate.
            y, Ky, t, momentum = w, Kw, 1.0, False
            continue
        change = f - f_new
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        y = w_new + beta * (w_new - w)
        Ky = Kw_new + beta * (Kw_new - Kw)
        w, Kw, f, t, momentum = w_new, Kw_new, f_new, t_new, beta > 0.0
        if change <= tol * max(abs(f), 1e-12):
            break
    return best_w, best_f, n_iter


def optimum_on_support(K: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Minimise w'Kw - 2 w'b over the simplex, weight allowed on the given rows only.

    With sum w = 1 as the only constraint the optimum is one Cholesky solve,
    w = K^-1 (b + ν 1); rows that come out non-positive are dropped and the rest re-solved
    until every weight is positive. Returns (positions kept, weights), or None when K is
    singular (duplicate rows), so the caller can fall back to projected gradient.
    """
    pos = np.arange(K.shape[0])
    for _ in range(_MAX_DROPS):
        try:
            with threads_for(pos.size**3 / 3):
                factor = cho_factor(K[np.ix_(pos, pos)], lower=True, check_finite=False)
        except LinAlgError:
            return None
        x = cho_solve(factor, b[pos], check_finite=False)
        y = cho_solve(factor, np.ones(pos.size), check_finite=False)
        w = x + (1.0 - x.sum()) / y.sum() * y
        if not np.all(np.isfinite(w)):
            return None
        if w.min() > 0.0:
            return pos, w
        pos = pos[w > 0.0]
        if pos.size == 0:
            return None
    return None


def ridged(K: np.ndarray, ridge: float) -> np.ndarray:
    """K + ridge I as a new matrix (K itself is kept for the plain MMD²)."""
    if ridge == 0.0:
        return K
    out = K.copy()
    out[np.diag_indices(out.shape[0])] += ridge
    return out
