from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF

from synalign.sda import (
    ALL_LABEL,
    KMMWeighter,
    MMDAligner,
    counts_by_share,
    effective_sample_size,
    label_shares,
    median_bandwidth,
    mmd2,
    nystroem,
    project_to_simplex,
    rbf_kernel,
    solvers,
)


def _unit_rows(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture
def labelled() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    X_real = np.vstack(
        [rng.normal(0, 1, (30, 5)), rng.normal(2, 1, (20, 5)), rng.normal(-2, 1, (5, 5))]
    )
    y_real = ["a"] * 30 + ["b"] * 20 + ["c"] * 5
    X_syn = np.vstack([rng.normal(0.5, 1.5, (40, 5)), rng.normal(2, 0.5, (25, 5))])
    y_syn = ["a"] * 40 + ["b"] * 25
    order = rng.permutation(65)
    return X_syn[order], X_real, [y_syn[i] for i in order], y_real


def test_rbf_kernel_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    np.testing.assert_allclose(rbf_kernel(X, Y, 1.7), RBF(length_scale=1.7)(X, Y), atol=1e-12)
    np.testing.assert_allclose(np.diag(rbf_kernel(X, X, 0.3)), 1.0, atol=1e-12)


def test_mmd2_matches_naive_double_loop() -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(4, 3)), rng.normal(1.0, 1.0, size=(6, 3))
    wx, wy = rng.random(4), rng.random(6)
    bw = 1.3

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * bw**2)))

    px, py = wx / wx.sum(), wy / wy.sum()
    naive = sum(px[i] * px[j] * k(X[i], X[j]) for i in range(4) for j in range(4))
    naive += sum(py[i] * py[j] * k(Y[i], Y[j]) for i in range(6) for j in range(6))
    naive -= 2 * sum(px[i] * py[j] * k(X[i], Y[j]) for i in range(4) for j in range(6))
    assert mmd2(X, Y, bw, weights_x=wx, weights_y=wy) == pytest.approx(naive, abs=1e-12)
    assert naive > 0.01
    assert mmd2(X, X, bw) == 0.0


def test_median_bandwidth_and_ess() -> None:
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    Z = np.vstack([X, Y])
    pairwise = [np.linalg.norm(Z[i] - Z[j]) for i in range(10) for j in range(i + 1, 10)]
    assert median_bandwidth(X, Y) == pytest.approx(np.median(pairwise))
    assert median_bandwidth(np.ones((5, 3))) == 1.0
    big = rng.normal(size=(300, 3))
    assert median_bandwidth(big, max_points=50, seed=4) == median_bandwidth(
        big, max_points=50, seed=4
    )
    assert median_bandwidth(big, max_points=50, seed=4) != median_bandwidth(
        big, max_points=50, seed=5
    )
    assert effective_sample_size(np.full(8, 0.125)) == pytest.approx(8.0)
    assert effective_sample_size(np.array([0.0, 1.0, 0.0])) == pytest.approx(1.0)


def test_simplex_projection_is_exact() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(size=12)
    w = project_to_simplex(v)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    for _ in range(200):
        other = project_to_simplex(rng.normal(size=12))
        assert np.sum((v - w) ** 2) <= np.sum((v - other) ** 2) + 1e-12


def test_weights_per_label_and_mmd_improves(labelled) -> None:
    X_syn, X_real, y_syn, y_real = labelled
    aligner = MMDAligner().fit(X_syn, X_real, y_syn, y_real)
    assert aligner.labels_ == [y_syn[0], "b" if y_syn[0] == "a" else "a"]
    assert aligner.missing_labels_ == ["c"]
    assert aligner.bandwidth_ == pytest.approx(median_bandwidth(X_real, X_syn, seed=0))
    assert aligner.weights_.shape == (65,)
    assert aligner.weights_.min() >= 0
    labels = np.array(y_syn)
    y_r = np.array(y_real)
    for label in ("a", "b"):
        w = aligner.weights_[labels == label]
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        assert aligner.mmd2_after_[label] <= aligner.mmd2_before_[label]
        assert aligner.mmd2_after_[label] < 0.8 * aligner.mmd2_before_[label]
        assert aligner.mmd2_after_[label] == pytest.approx(
            mmd2(X_syn[labels == label], X_real[y_r == label], aligner.bandwidth_, w), abs=1e-10
        )
        assert 1.0 <= aligner.ess_[label] <= w.size
        assert 0 < aligner.n_iter_[label] <= aligner.max_iter


def _slsqp_mmd(X_syn: np.ndarray, X_real: np.ndarray, bw: float, max_sum_sq: float = 1.0):
    """The MMD² optimum over the simplex (and Σw² <= max_sum_sq) by a generic solver."""
    n = X_syn.shape[0]
    K = rbf_kernel(X_syn, X_syn, bw)
    b = rbf_kernel(X_syn, X_real, bw).mean(axis=1)
    c = rbf_kernel(X_real, X_real, bw).mean()
    result = minimize(
        lambda w: w @ K @ w - 2 * w @ b + c,
        np.full(n, 1 / n),
        jac=lambda w: 2 * K @ w - 2 * b,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[
            {"type": "eq", "fun": lambda w: w.sum() - 1.0},
            {"type": "ineq", "fun": lambda w: max_sum_sq - w @ w},
        ],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert result.success
    return result


def test_objective_matches_slsqp_on_tiny_problem() -> None:
    rng = np.random.default_rng(5)
    X_syn, X_real = rng.normal(size=(15, 3)), rng.normal(0.4, 0.8, size=(10, 3))
    aligner = MMDAligner().fit(X_syn, X_real)
    result = _slsqp_mmd(X_syn, X_real, aligner.bandwidth_)
    assert aligner.labels_ == [ALL_LABEL]
    assert aligner.mmd2_after_[ALL_LABEL] == pytest.approx(result.fun, abs=1e-6)
    assert aligner.mmd2_after_[ALL_LABEL] < aligner.mmd2_before_[ALL_LABEL] - 1e-3


def test_off_distribution_cluster_gets_little_weight() -> None:
    rng = np.random.default_rng(6)
    center = 0.5 * rng.normal(size=16)
    X_real = _unit_rows(center + 0.6 * rng.normal(size=(300, 16)))
    like = _unit_rows(center + 0.6 * rng.normal(size=(200, 16)))
    off = _unit_rows(center + 3.0 + 0.3 * rng.normal(size=(50, 16)))
    aligner = MMDAligner().fit(np.vstack([like, off]), X_real)
    assert aligner.weights_[200:].sum() < 0.05
    assert aligner.weights_[:200].sum() > 0.95


def test_never_worse_than_uniform_even_with_one_iteration(labelled) -> None:
    X_syn, X_real, y_syn, y_real = labelled
    aligner = MMDAligner(max_iter=1).fit(X_syn, X_real, y_syn, y_real)
    for label in aligner.labels_:
        assert aligner.mmd2_after_[label] <= aligner.mmd2_before_[label]
        assert aligner.n_iter_[label] == 1


def test_resample_counts_validity_and_determinism(labelled) -> None:
    X_syn, X_real, y_syn, y_real = labelled
    aligner = MMDAligner(seed=1).fit(X_syn, X_real, y_syn, y_real)
    labels = np.array(y_syn)
    idx = aligner.resample({"a": 17, "b": 9, "c": 4})
    assert idx.shape == (26,)
    assert idx.min() >= 0 and idx.max() < 65
    assert np.all(aligner.weights_[idx] > 0)
    first, second = aligner.labels_
    n_first = 17 if first == "a" else 9
    assert set(labels[idx[:n_first]]) == {first}
    assert set(labels[idx[n_first:]]) == {second}
    assert np.all(np.diff(idx[:n_first]) >= 0) and np.all(np.diff(idx[n_first:]) >= 0)
    np.testing.assert_array_equal(idx, aligner.resample({"a": 17, "b": 9, "c": 4}))
    np.testing.assert_array_equal(idx, aligner.resample({"a": 17, "b": 9}, seed=1))
    assert not np.array_equal(aligner.resample(200, seed=2), aligner.resample(200, seed=3))
    default = aligner.resample()
    assert [int(np.sum(labels[default] == lab)) for lab in ("a", "b")] == [40, 25]
    assert aligner.resample(5).shape == (10,)
    with pytest.raises(ValueError, match="zzz"):
        aligner.resample({"zzz": 3})


def test_systematic_resampling_tracks_weights() -> None:
    rng = np.random.default_rng(7)
    aligner = MMDAligner().fit(rng.normal(size=(20, 2)), rng.normal(size=(30, 2)))
    idx = aligner.resample(1000, seed=0)
    counts = np.bincount(idx, minlength=20)
    assert np.all(np.abs(counts - 1000 * aligner.weights_) < 1.0 + 1e-9)


def test_synthetic_label_missing_from_real_raises(labelled) -> None:
    X_syn, X_real, y_syn, y_real = labelled
    y_bad = ["zebra" if y == "b" else y for y in y_syn]
    with pytest.raises(ValueError, match="zebra"):
        MMDAligner().fit(X_syn, X_real, y_bad, y_real)
    with pytest.raises(ValueError):
        MMDAligner().fit(X_syn, X_real, y_syn, None)


def _topic_embeddings(n_syn: int, n_real: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm topic mixtures; the synthetic side over-weights some topics and adds
    off-topic rows, as LLM generations do."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d))
    real_mix = rng.dirichlet(np.full(10, 2.0))
    syn_mix = np.concatenate([0.85 * rng.dirichlet(np.full(10, 0.7)), 0.15 * np.ones(2) / 2])

    def draw(n: int, mix: np.ndarray) -> np.ndarray:
        topic = rng.choice(mix.size, size=n, p=mix)
        return _unit_rows(centres[topic] + 1.2 * rng.normal(size=(n, d)))

    return draw(n_syn, syn_mix), draw(n_real, np.concatenate([real_mix, [0.0, 0.0]]))


def test_approx_solver_agrees_with_exact() -> None:
    X_syn, X_real = _topic_embeddings(1500, 300, 256, seed=8)
    exact = MMDAligner(solver="exact").fit(X_syn, X_real)
    approx = MMDAligner(solver="approx").fit(X_syn, X_real)
    assert exact.solver_ == {ALL_LABEL: "exact"} and approx.solver_ == {ALL_LABEL: "approx"}
    bw = exact.bandwidth_
    assert approx.bandwidth_ == bw
    true_exact = mmd2(X_syn, X_real, bw, exact.weights_)
    true_approx = mmd2(X_syn, X_real, bw, approx.weights_)
    assert true_exact == pytest.approx(exact.mmd2_after_[ALL_LABEL], rel=1e-6)
    assert true_exact <= true_approx <= 1.05 * true_exact
    assert np.corrcoef(exact.weights_, approx.weights_)[0, 1] > 0.9
    assert approx.weights_.sum() == pytest.approx(1.0) and approx.weights_.min() >= 0.0
    # Without the exact re-solve on the support the features alone still do most of the work.
    rough = MMDAligner(solver="approx", polish_max_rows=0).fit(X_syn, X_real)
    before = mmd2(X_syn, X_real, bw)
    assert mmd2(X_syn, X_real, bw, rough.weights_) < 0.2 * before
    assert rough.mmd2_after_[ALL_LABEL] < 0.2 * rough.mmd2_before_[ALL_LABEL]


def test_active_set_reaches_the_dense_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    X_syn, X_real = _topic_embeddings(1300, 250, 24, seed=3)
    active = MMDAligner(solver="exact").fit(X_syn, X_real)
    assert active.n_iter_[ALL_LABEL] < 30
    monkeypatch.setattr(solvers, "_DENSE_ROWS", 10_000)
    dense = MMDAligner(solver="exact").fit(X_syn, X_real)
    bw = dense.bandwidth_
    assert (
        mmd2(X_syn, X_real, bw, active.weights_) <= mmd2(X_syn, X_real, bw, dense.weights_) + 1e-9
    )
    np.testing.assert_allclose(active.weights_, dense.weights_, atol=2e-4)
    assert active.mmd2_after_[ALL_LABEL] == pytest.approx(dense.mmd2_after_[ALL_LABEL], rel=1e-4)
    # MMD² before is estimated from 2,000 sampled rows above 1,000 rows: close, not exact.
    assert active.mmd2_before_[ALL_LABEL] == pytest.approx(dense.mmd2_before_[ALL_LABEL], rel=0.02)


def test_dual_newton_meets_the_optimality_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small first sample exercises the sampled warm start on a modest problem.
    monkeypatch.setattr(nystroem, "_SAMPLE_ROWS", 2048)
    X_syn, X_real = _topic_embeddings(20_000, 2000, 32, seed=4)
    rows_s, rows_r = np.arange(20_000), np.arange(2000)
    problem = nystroem.NystroemProblem(X_syn, rows_s, X_real, rows_r, 0.9, 64, seed=0)
    solution = nystroem.solve_approx(problem, max_iter=100, tol=1e-6, seed=0)
    w = solution.weights
    assert w.sum() == pytest.approx(1.0) and w.min() >= 0.0
    residual = problem.moment(w) - problem.target
    grad = 2.0 * (problem.phi.astype(np.float64) @ residual + problem.resid * w)
    level = float(w @ grad)
    spread = float(np.abs(grad).max() - np.abs(grad).min())
    assert np.all(grad[w > 0] == pytest.approx(level, abs=1e-3 * spread))
    assert grad[w == 0].min() >= level - 1e-3 * spread
    assert solution.after < 0.1 * solution.before


def test_auto_solver_by_label_size_and_float32_input() -> None:
    X_syn, X_real = _topic_embeddings(900, 400, 16, seed=5)
    labels_syn = ["big"] * 700 + ["small"] * 200
    labels_real = ["big"] * 200 + ["small"] * 200
    aligner = MMDAligner(exact_max_rows=500).fit(
        X_syn.astype(np.float32), X_real.astype(np.float32), labels_syn, labels_real
    )
    assert aligner.solver_ == {"big": "approx", "small": "exact"}
    for label, size in (("big", 700), ("small", 200)):
        w = aligner.weights_[np.array(labels_syn) == label]
        assert w.size == size and w.sum() == pytest.approx(1.0) and w.min() >= 0.0
        assert aligner.mmd2_after_[label] < aligner.mmd2_before_[label]
        assert 1.0 <= aligner.ess_[label] <= size
    with pytest.raises(ValueError, match="solver"):
        MMDAligner(solver="fast").fit(X_syn, X_real)


def test_median_bandwidth_samples_before_stacking() -> None:
    rng = np.random.default_rng(12)
    X, Y = rng.normal(size=(1500, 6)).astype(np.float32), rng.normal(size=(900, 6))
    pooled = np.vstack([X.astype(np.float64), Y])
    idx = np.sort(np.random.default_rng(3).choice(2400, size=1000, replace=False))
    assert median_bandwidth(X, Y, seed=3) == median_bandwidth(pooled[idx], max_points=1000)


# ----- effective-sample-size floor and joint matching ----------------------------------


def test_ess_floor_is_the_constrained_optimum_found_by_slsqp() -> None:
    rng = np.random.default_rng(11)
    X_syn, X_real = rng.normal(size=(14, 3)), rng.normal(0.5, 0.7, size=(9, 3))
    plain = MMDAligner().fit(X_syn, X_real)
    floor = 0.6
    assert plain.ess_[ALL_LABEL] < floor * 14  # the floor binds
    aligner = MMDAligner(ess_floor=floor).fit(X_syn, X_real)
    w = aligner.weights_
    assert effective_sample_size(w) >= floor * 14 * (1 - 1e-9)
    assert effective_sample_size(w) <= floor * 14 * 1.002  # no more spread than needed
    bw = aligner.bandwidth_
    result = _slsqp_mmd(X_syn, X_real, bw, max_sum_sq=1.0 / (floor * 14))
    # Within the 0.1% slack the bisection stops at, the same optimum as a generic solver.
    assert aligner.mmd2_after_[ALL_LABEL] == pytest.approx(mmd2(X_syn, X_real, bw, w), abs=1e-9)
    assert aligner.mmd2_after_[ALL_LABEL] <= result.fun + 2e-3 * result.fun
    assert plain.mmd2_after_[ALL_LABEL] < aligner.mmd2_after_[ALL_LABEL]
    assert aligner.ridge_[ALL_LABEL] > 0 and plain.ridge_[ALL_LABEL] == 0


@pytest.mark.parametrize("solver", ["exact", "approx"])
def test_ess_floor_holds_on_every_solver_path(solver: str) -> None:
    X_syn, X_real = _topic_embeddings(1500, 300, 32, seed=12)
    previous = 0.0
    for floor in (0.2, 0.5, 0.8):
        aligner = MMDAligner(solver=solver, ess_floor=floor).fit(X_syn, X_real)
        ess = aligner.ess_[ALL_LABEL]
        assert floor * 1500 * (1 - 1e-9) <= ess <= floor * 1500 * 1.002
        assert aligner.weights_.sum() == pytest.approx(1.0) and aligner.weights_.min() >= 0
        after = mmd2(X_syn, X_real, aligner.bandwidth_, aligner.weights_)
        assert after >= previous - 1e-6  # a higher floor costs MMD², never gains it
        previous = after
    uniform = MMDAligner(ess_floor=1.0).fit(X_syn, X_real)
    np.testing.assert_allclose(uniform.weights_, 1 / 1500)


def test_joint_scope_weights_rows_by_all_real_texts() -> None:
    rng = np.random.default_rng(13)
    a, b = np.array([3.0, 0, 0, 0]), np.array([0, 3.0, 0, 0])
    X_real = np.vstack([a + rng.normal(size=(20, 4)), b + rng.normal(size=(20, 4))])
    y_real = ["a"] * 20 + ["b"] * 20
    # Label "a" has 15 rows like the real a's and 15 like the real b's (wrong label).
    X_syn = np.vstack(
        [a + rng.normal(size=(15, 4)), b + rng.normal(size=(15, 4)), b + rng.normal(size=(30, 4))]
    )
    y_syn = ["a"] * 30 + ["b"] * 30
    per_label = MMDAligner().fit(X_syn, X_real, y_syn, y_real)
    joint = MMDAligner(scope="joint").fit(X_syn, X_real, y_syn, y_real)
    for aligner in (per_label, joint):
        y = np.array(y_syn)
        for label in ("a", "b"):
            assert aligner.weights_[y == label].sum() == pytest.approx(1.0)
            assert 1.0 <= aligner.ess_[label] <= 30
    # Matching a's rows to the real a's drops the b-like rows; jointly they stand in for b.
    assert per_label.weights_[15:30].sum() < 0.1
    assert joint.weights_[15:30].sum() > 0.3
    assert set(joint.mmd2_after_) == {"a", "b"} and ALL_LABEL not in joint.ess_
    assert joint.mmd2_after_["a"] > per_label.mmd2_after_["a"]


def test_bad_floor_or_scope_is_refused() -> None:
    rng = np.random.default_rng(14)
    X_syn, X_real = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(8, 3))
    no_floor = MMDAligner(ess_floor=0.0).fit(X_syn, X_real)  # 0: no floor, like None
    np.testing.assert_array_equal(no_floor.weights_, MMDAligner().fit(X_syn, X_real).weights_)
    X = np.eye(3)
    for kwargs in ({"ess_floor": -0.1}, {"ess_floor": 1.5}, {"scope": "global"}):
        with pytest.raises(ValueError):
            MMDAligner(**kwargs).fit(X, X)


def test_counts_split_by_share_add_up() -> None:
    assert counts_by_share(10, {"a": 0.5, "b": 0.5}) == {"a": 5, "b": 5}
    assert counts_by_share(7, {"a": 0.5, "b": 0.5}) == {"a": 4, "b": 3}
    assert sum(counts_by_share(101, {"a": 1, "b": 1, "c": 1}).values()) == 101
    assert counts_by_share(0, {"a": 1.0}) == {"a": 0}
    assert label_shares(["a", "b", "b", "b"]) == {"a": 0.25, "b": 0.75}


# ----- scikit-learn estimator conventions -----------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    [
        MMDAligner(
            bandwidth=1.1,
            max_iter=500,
            tol=1e-8,
            seed=3,
            solver="approx",
            exact_max_rows=50,
            n_components=32,
            approx_tol=1e-4,
            polish_max_rows=100,
            ess_floor=0.3,
            scope="joint",
        ),
        MMDAligner(solver="exact", seed=5, ess_floor=0.5, bandwidth=0.9),
        KMMWeighter(bandwidth=0.8, B=50.0, tol=1e-5, max_iter=200),
    ],
    ids=["mmd-approx-joint", "mmd-exact-floor", "kmm"],
)
def test_clone_keeps_parameters_and_results(
    estimator: MMDAligner | KMMWeighter,
    labelled: tuple[np.ndarray, np.ndarray, list[str], list[str]],
) -> None:
    X_syn, X_real, y_syn, y_real = labelled
    params = estimator.get_params()
    twin = clone(estimator)
    assert twin is not estimator and twin.get_params() == params
    assert type(estimator)(**params).get_params() == params
    assert clone(estimator).set_params(tol=1e-3).get_params() == {**params, "tol": 1e-3}
    first = estimator.fit(X_syn, X_real, y_syn, y_real)
    second = twin.fit(X_syn, X_real, y_syn, y_real)
    np.testing.assert_array_equal(first.weights_, second.weights_)
    assert first.ess_ == second.ess_
    if isinstance(first, MMDAligner):
        assert first.mmd2_after_ == second.mmd2_after_
        np.testing.assert_array_equal(first.resample(40), second.resample(40))
    assert not any(key.endswith("_") for key in clone(first).__dict__)
