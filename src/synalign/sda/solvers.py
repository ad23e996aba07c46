"""One label's MMD solve as a function of the ridge λ, and the λ an ESS floor needs.

Σ w² = 1 / ESS, so an effective-sample-size floor is the convex constraint
Σ w² <= 1 / (floor n); its optimum minimises MMD² + λ Σ w² for the smallest λ that meets
it. Each solver is therefore wrapped as `solve(λ, final)`, with the work that does not
depend on λ done once, and `solve_with_floor` searches λ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synalign.sda.exact import polish, solve_exact
from synalign.sda.kernels import effective_sample_size, mean_kernel_rows, rbf_block
from synalign.sda.nystroem import NystroemProblem, solve_approx
from synalign.sda.simplex import Solution, centred_largest_eigenvalue, ridged, solve_simplex_qp
from synalign.sda.weights import uniform

RidgeSolve = Callable[[float, bool], Solution]
"""`solve(λ, final)`: the optimum of MMD² + λ Σ w²; `final` False may skip refinements."""

# Exact solves up to this many synthetic rows hold the whole kernel matrix.
_DENSE_ROWS = 1_000
# Exact solves with λ > 0 hold the whole kernel matrix up to this many rows.
_DENSE_RIDGE_ROWS = 4_000
# Nystroem components unless `n_components` says otherwise; with the exact re-solve on the
# support this many already lands within a few tenths of a percent of the exact optimum.
_COMPONENTS = 256
# Bisection on λ for an effective-sample-size floor: stop within this relative slack.
_FLOOR_STEPS = 40
_FLOOR_SLACK = 1e-3


def take_rows(X: np.ndarray, idx: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Rows of X as a new array; a contiguous index range is sliced, not gathered."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return np.asarray(X[idx[0] : idx[-1] + 1], dtype=dtype)
    return np.asarray(X[idx], dtype=dtype)


def exact_solver(
    S: np.ndarray,
    idx: np.ndarray,
    R: np.ndarray,
    ridx: np.ndarray,
    *,
    bandwidth: float,
    max_iter: int,
    tol: float,
    approx_tol: float,
    seed: int,
) -> RidgeSolve:
    """The exact solver on synthetic rows `idx` against real rows `ridx`."""
    Xs, Xr = take_rows(S, idx), take_rows(R, ridx)
    start = None
    if idx.size > _DENSE_ROWS:
        # The approximate optimum's support is a close first active set.
        problem = NystroemProblem(
            Xs, np.arange(idx.size), Xr, np.arange(ridx.size), bandwidth, _COMPONENTS, seed
        )
        start = solve_approx(problem, max_iter, approx_tol, seed).weights

    dense: list[np.ndarray] = []

    def solve(ridge: float, final: bool = True) -> Solution:
        if ridge == 0.0 or idx.size > _DENSE_RIDGE_ROWS:
            return solve_exact(Xs, Xr, bandwidth, max_iter, tol, seed, start, ridge)
        # With λ > 0 the problem is strongly convex and projected gradient converges
        # fast, so an effective-sample-size floor reuses one kernel matrix for every λ.
        if not dense:
            K = rbf_block(Xs, Xs, bandwidth)
            b = mean_kernel_rows(Xs, Xr, bandwidth)
            const = float(mean_kernel_rows(Xr, Xr, bandwidth).mean())
            before = float(K.mean() - 2.0 * b.mean() + const)
            top = centred_largest_eigenvalue(K)
            dense.extend([K, b, np.array([const, before, top]), uniform(idx.size)])
        K, b, (const, before, top), last = dense
        # The identity adds λ to every eigenvalue; the previous λ's optimum is close.
        w, f, n_iter = solve_simplex_qp(
            ridged(K, ridge), b, const, max_iter, tol, last, top + ridge
        )
        dense[3] = w
        return Solution(w, before, f - ridge * float(w @ w), n_iter)

    return solve


def approx_solver(
    S: np.ndarray,
    idx: np.ndarray,
    R: np.ndarray,
    ridx: np.ndarray,
    *,
    bandwidth: float,
    n_components: int | None,
    max_iter: int,
    approx_tol: float,
    polish_max_rows: int,
    seed: int,
) -> RidgeSolve:
    """The approximate solver on synthetic rows `idx` against real rows `ridx`.

    When few rows carry weight (at most `polish_max_rows`), the exact optimum among them
    replaces the approximate weights, which brings the MMD² to within about 2% of the
    exact solver's.
    """
    components = n_components if n_components is not None else _COMPONENTS
    problem = NystroemProblem(S, idx, R, ridx, bandwidth, components, seed)

    def solve(ridge: float, final: bool = True) -> Solution:
        """`final` False skips the exact re-solve (bisection trials)."""
        solution = solve_approx(problem.ridged(ridge), max_iter, approx_tol, seed)
        w = solution.weights
        support = np.flatnonzero(w)
        if final and 2 <= support.size <= polish_max_rows:
            # Re-solve exactly among the rows the approximation weights: the kernel block
            # costs |support|^2, independent of the number of synthetic rows.
            found = polish(S[idx[support]], take_rows(R, ridx), bandwidth, ridge)
            if found is not None:
                keep, values = found
                w = np.zeros_like(w)
                w[support[keep]] = values
        if ridge == 0.0 and w is solution.weights:
            return solution
        before = problem.uniform_objective()
        after = problem.objective(w, problem.moment(w))
        return Solution(w, before, after, solution.n_iter)

    return solve


def solve_with_floor(solve: RidgeSolve, n: int, ess_floor: float | None) -> tuple[Solution, float]:
    """The MMD optimum whose effective sample size is at least `ess_floor` × n.

    ESS grows with λ, so λ is found by bisection on a log scale; returns the solution and
    its λ (0 when the plain optimum already meets the floor, inf for a floor of 1).
    """
    solution = solve(0.0, True)
    if not ess_floor or n < 2:
        return solution, 0.0
    target = ess_floor * n
    if effective_sample_size(solution.weights) >= target * (1.0 - 1e-9):
        return solution, 0.0
    if ess_floor >= 1.0:
        return Solution(uniform(n), solution.before, solution.before, solution.n_iter), np.inf
    # λ Σ w² matters once λ / n is comparable to the kernel's scale (at most 1).
    lo, hi = 0.0, 1e-3 * n
    best = solve(hi, False)
    while effective_sample_size(best.weights) < target * (1.0 - 1e-9):
        lo, hi = hi, hi * 10.0
        best = solve(hi, False)
    for _ in range(_FLOOR_STEPS):
        if effective_sample_size(best.weights) <= target * (1.0 + _FLOOR_SLACK):
            break
        mid = np.sqrt(lo * hi) if lo > 0.0 else hi / 10.0
        trial = solve(mid, False)
        if effective_sample_size(trial.weights) >= target * (1.0 - 1e-9):
            hi, best = mid, trial
        else:
            lo = mid
        if lo > 0.0 and hi / lo < 1.0 + _FLOOR_SLACK:
            break
    final = solve(hi, True)
    if effective_sample_size(final.weights) >= target * (1.0 - 1e-9):
        best = final
    return best, hi
