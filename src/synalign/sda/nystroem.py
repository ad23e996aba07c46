"""The approximate solver: Nystroem features and a Newton method on the Lagrange dual.

Features Φ (float32, built in chunks) with the kernel's diagonal restored,
k~(x, y) = φ(x)'φ(y) + r(x) [x = y], r(x) = 1 - |φ(x)|^2, so the objective is
|Φ_s'w - mean(Φ_r)|^2 + Σ r_i w_i^2 + const. Without the diagonal term the optimum piles
weight on rows the features cannot tell apart (on 384-d embeddings with 256 components,
2.5x the exact optimum's MMD² against 1.4x with it). It is solved through its Lagrange
dual, which has D + 1 variables whatever the number of rows, with damped Newton steps:
each needs one product with Φ_s, one with Φ_s' and a Hessian over the rows carrying
weight, so time and memory grow linearly with the number of synthetic rows and no n x n
matrix is formed. Projected accelerated gradient on the primal reaches the same optimum,
but its iteration count grows like the square root of n (over 1,000 iterations at 1M
rows, against about a dozen Newton steps).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from synalign.sda.kernels import BlasThreads, rbf_block, rbf_from_norms, threads_for
from synalign.sda.simplex import Solution
from synalign.sda.weights import uniform

# Rows of Φ per chunk when building features or taking products with them.
_CHUNK_ROWS = 1 << 14
# Eigenvalues of the landmark kernel below this fraction of the largest are dropped.
_EIG_FLOOR = 1e-6
_MAX_BACKTRACK = 40
# Rows of the first, sampled dual solve on large labels.
_SAMPLE_ROWS = 1 << 16
# Floor of r relative to its median (see NystroemProblem).
_RESID_FLOOR = 1e-2
# Absolute floor of r: it is 1 - |φ|^2 from float32 features, rounding noise below this.
_RESID_MIN = 1e-5


class NystroemProblem:
    """Features and objective of the approximate solver for one label."""

    def __init__(
        self,
        S: np.ndarray,
        rows_s: np.ndarray,
        R: np.ndarray,
        rows_r: np.ndarray,
        bandwidth: float,
        n_components: int,
        seed: int,
    ) -> None:
        rng = np.random.default_rng(seed)
        n, n_r = rows_s.size, rows_r.size
        m = min(n_components, n + n_r)
        m_r = min(n_r, m // 2)
        m_s = min(n, m - m_r)
        m_r = min(n_r, m - m_s)
        pick_r = np.sort(rng.choice(rows_r, size=m_r, replace=False))
        pick_s = np.sort(rng.choice(rows_s, size=m_s, replace=False))
        L = np.vstack([np.asarray(R[pick_r], np.float64), np.asarray(S[pick_s], np.float64)])
        lam, U = np.linalg.eigh(rbf_block(L, L, bandwidth))
        keep = lam > _EIG_FLOOR * lam[-1]
        self.whiten = (U[:, keep] / np.sqrt(lam[keep])).astype(np.float32)
        self.landmarks = L.astype(np.float32)
        self.sq_landmarks = np.einsum("ij,ij->i", self.landmarks, self.landmarks)
        self.gamma = np.float32(1.0 / (2.0 * bandwidth * bandwidth))
        self.phi, resid = self._features(S, rows_s)
        # Landmark rows have r = 0, which would let the dual give them unbounded weight; a
        # floor far below typical values keeps every row's weight finite. When the features
        # capture nearly all of the kernel (every row a landmark, or low-dimensional data),
        # even the median r is float32 noise; 1/r then swamps the dual in rounding and the
        # Newton solve stalls, often at uniform weights, hence the absolute floor too.
        self.resid = np.maximum(resid, max(_RESID_FLOOR * float(np.median(resid)), _RESID_MIN))
        phi_r, resid_r = self._features(R, rows_r)
        self.target = self._column_sums(phi_r, uniform(n_r))
        self.const = float(resid_r.sum()) / (n_r * n_r)
        self.n_components = int(keep.sum())

    def _features(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        D = self.whiten.shape[1]
        phi = np.empty((rows.size, D), dtype=np.float32)
        resid = np.empty(rows.size, dtype=np.float64)
        for lo in range(0, rows.size, _CHUNK_ROWS):
            block = np.asarray(X[rows[lo : lo + _CHUNK_ROWS]], dtype=np.float32)
            sq = np.einsum("ij,ij->i", block, block)
            with threads_for(block.shape[0] * self.landmarks.shape[0] * (X.shape[1] + D)):
                kern = rbf_from_norms(block, sq, self.landmarks, self.sq_landmarks, self.gamma)
                part = np.matmul(kern, self.whiten, out=phi[lo : lo + block.shape[0]])
            norms = np.einsum("ij,ij->i", part, part, dtype=np.float64)
            resid[lo : lo + block.shape[0]] = np.clip(1.0 - norms, 0.0, None)
        return phi, resid

    def _column_sums(self, phi: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Φ'w with float64 sums across chunks (each chunk's float32 sum stays short).

        Only rows with non-zero weight are read, and weights are sparse after projection.
        """
        out = np.zeros(phi.shape[1], dtype=np.float64)
        w32 = w.astype(np.float32)
        for lo in range(0, phi.shape[0], _CHUNK_ROWS):
            part = w32[lo : lo + _CHUNK_ROWS]
            nz = np.flatnonzero(part)
            if nz.size == part.size:
                out += part @ phi[lo : lo + _CHUNK_ROWS]
            elif nz.size:
                out += part[nz] @ phi[lo + nz]
        return out

    def moment(self, w: np.ndarray) -> np.ndarray:
        return self._column_sums(self.phi, w)

    def objective(self, w: np.ndarray, moment: np.ndarray) -> float:
        diff = moment - self.target
        return float(diff @ diff + np.dot(self.resid * w, w) + self.const)

    def uniform_objective(self) -> float:
        """The objective at equal weights: MMD² before alignment under this kernel."""
        w = uniform(self.phi.shape[0])
        return self.objective(w, self.moment(w))

    def sample(self, rows: np.ndarray) -> NystroemProblem:
        """The same problem on a subset of synthetic rows, scaled to stand for all of them.

        With a fraction p of the rows each stands for 1/p rows, so the diagonal term of the
        dual sum is divided by p, i.e. r is multiplied by p.
        """
        out = copy.copy(self)
        out.phi = self.phi[rows]
        out.resid = self.resid[rows] * (rows.size / self.phi.shape[0])
        return out

    def ridged(self, ridge: float) -> NystroemProblem:
        """The same problem with `ridge` Σ w² added: r_i grows by `ridge`."""
        if ridge == 0.0:
            return self
        out = copy.copy(self)
        out.resid = self.resid + ridge
        return out


@dataclass
class _DualPoint:
    """The dual at x = (u, τ) and the primal weights it implies."""

    x: np.ndarray
    value: float
    grad: np.ndarray
    w: np.ndarray
    moment: np.ndarray


def _dual_point(problem: NystroemProblem, x: np.ndarray) -> _DualPoint:
    """F(u, τ) = |u|^2 + 2u'μ - 2τ + Σ max(0, τ - φ_i'u)^2 / r_i and its gradient.

    F is minus the Lagrange dual of min |Φ'w - μ|^2 + Σ r_i w_i^2 over the simplex, and
    w_i = max(0, τ - φ_i'u) / r_i are the primal weights at (u, τ). One product with Φ and
    one with Φ' over the rows with positive weight.
    """
    D = problem.phi.shape[1]
    u, tau = x[:D], float(x[D])
    s = (problem.phi @ u.astype(np.float32)).astype(np.float64)
    a = np.maximum(tau - s, 0.0)
    w = a / problem.resid
    moment = problem.moment(w)
    value = float(u @ u + 2.0 * (u @ problem.target) - 2.0 * tau + a @ w)
    grad = np.empty(D + 1)
    grad[:D] = 2.0 * (u + problem.target - moment)
    grad[D] = 2.0 * (float(w.sum()) - 1.0)
    return _DualPoint(x, value, grad, w, moment)


def _dual_hessian(problem: NystroemProblem, w: np.ndarray) -> np.ndarray:
    """2 diag(1, .., 1, 0) + 2 Σ_{w_i > 0} z_i z_i' / r_i with z_i = (φ_i, -1).

    Only rows with positive weight contribute, usually a small share of all rows.
    """
    D = problem.phi.shape[1]
    H = np.zeros((D + 1, D + 1))
    for lo in range(0, w.shape[0], _CHUNK_ROWS):
        active = lo + np.flatnonzero(w[lo : lo + _CHUNK_ROWS])
        if active.size == 0:
            continue
        scale = 1.0 / np.sqrt(problem.resid[active])
        Z = problem.phi[active] * scale[:, None].astype(np.float32)
        with threads_for(active.size * D * D):
            H[:D, :D] += (Z.T @ Z).astype(np.float64)
        H[:D, D] -= Z.T.astype(np.float64) @ scale
        H[D, D] += float(scale @ scale)
    H[D, :D] = H[:D, D]
    H *= 2.0
    H[np.arange(D), np.arange(D)] += 2.0
    H[D, D] += 1e-9 * (1.0 + H[D, D])
    return H


def _dual_newton(
    problem: NystroemProblem, x: np.ndarray, max_iter: int, tol: float
) -> tuple[_DualPoint, np.ndarray, float, int]:
    """Damped semismooth Newton on the (D + 1)-dimensional dual.

    Stops when the duality gap certifies the normalised primal weights within `tol` of the
    optimum (relative to their MMD²), or when the line search cannot make progress (the
    float32 products limit how far F can be resolved). Returns the last dual point, the best
    primal weights seen, their objective and the number of Newton steps.
    """
    point = _dual_point(problem, x)
    best_w = uniform(problem.phi.shape[0])
    best_f = problem.objective(best_w, problem.moment(best_w))
    n_iter = 0
    while True:
        mass = float(point.w.sum())
        if mass > 0.0:
            w = point.w / mass
            f = problem.objective(w, point.moment / mass)
            if f < best_f:
                best_w, best_f = w, f
        gap = best_f - problem.const + point.value
        if n_iter >= max_iter or gap <= tol * best_f:
            break
        n_iter += 1
        H = _dual_hessian(problem, point.w)
        try:
            direction = -np.linalg.solve(H, point.grad)
        except np.linalg.LinAlgError:
            direction = -point.grad
        slope = float(point.grad @ direction)
        if slope >= 0.0:
            direction, slope = -point.grad, -float(point.grad @ point.grad)
        step = 1.0
        for _ in range(_MAX_BACKTRACK):
            trial = _dual_point(problem, point.x + step * direction)
            if trial.value <= point.value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        point = trial
    return point, best_w, best_f, n_iter


def solve_approx(problem: NystroemProblem, max_iter: int, tol: float, seed: int) -> Solution:
    """Minimise |Φ'w - μ|^2 + Σ r_i w_i^2 over the simplex through its dual.

    The dual has D + 1 variables whatever the number of rows; Newton steps on it need one
    product with Φ, one with Φ' and a Hessian over the rows that carry weight. A first
    solve on a seeded sample of rows (scaled to stand for all of them) starts the full one
    close to its optimum, where few rows carry weight and steps are cheap.
    """
    n = problem.phi.shape[0]
    before = problem.uniform_objective()
    if n == 1:
        return Solution(uniform(n), before, before, 0)
    D = problem.phi.shape[1]
    x = np.zeros(D + 1)
    x[D] = 1.0 / float(np.sum(1.0 / problem.resid))
    total = 0
    # Memory-bound products: one BLAS thread, all of them for large Hessian blocks.
    with BlasThreads().single():
        if n > 2 * _SAMPLE_ROWS:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(n, size=_SAMPLE_ROWS, replace=False))
            small = problem.sample(rows)
            x[D] = 1.0 / float(np.sum(1.0 / small.resid))
            start, _, _, total = _dual_newton(small, x, max_iter, tol)
            x = start.x
        _, w, after, n_iter = _dual_newton(problem, x, max_iter, tol)
    return Solution(w, before, min(after, before), total + n_iter)
