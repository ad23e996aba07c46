from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF

from synalign.esm import DemonstrationSelector, GPUncertaintyTracker, RandomSelector
from synalign.esm import selectors as explore
from synalign.esm import tracker as gp_tracker
from synalign.sda import median_bandwidth, rbf_kernel

NOISE = 1e-4


def _unit_rows(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture
def pool() -> np.ndarray:
    return _unit_rows(np.random.default_rng(7).normal(size=(40, 8)))


def _direct_variance(X: np.ndarray, S: list[int], bw: float, noise: float) -> np.ndarray:
    K_xs = rbf_kernel(X, X[S], bw)
    K_ss = rbf_kernel(X[S], X[S], bw) + noise * np.eye(len(S))
    quad = np.einsum("ij,ji->i", K_xs, np.linalg.solve(K_ss, K_xs.T))
    return np.clip(1.0 - quad, 0.0, None)


def _blobs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(10, 16)) * 3.0
    blob = np.repeat(np.arange(10), 30)
    return _unit_rows(centers[blob] + 0.3 * rng.normal(size=(300, 16))), blob


def _reference_clusters(
    X: np.ndarray, n_clusters: int, cluster_size: int, bw: float, seed: int
) -> list[list[int]]:
    """Refit an sklearn GP every round: slow but obviously the textbook posterior."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    unused = np.ones(n, dtype=bool)
    shown: list[int] = []
    clusters = []
    for _ in range(n_clusters):
        if not unused.any():
            unused[:] = True
            shown = []
            perm = rng.permutation(n)
        if shown:
            gp = GaussianProcessRegressor(
                kernel=RBF(length_scale=bw, length_scale_bounds="fixed"),
                alpha=NOISE,
                optimizer=None,
            ).fit(X[shown], np.zeros(len(shown)))
            _, std = gp.predict(X, return_std=True)
        else:
            std = np.ones(n)
        score = np.where(unused, std, -np.inf)
        pick = int(perm[np.argmax(score[perm])])
        dist = ((X - X[pick]) ** 2).sum(axis=1)
        order = [int(i) for i in np.argsort(dist, kind="stable") if i != pick]
        cluster = [pick, *[i for i in order if unused[i]][: cluster_size - 1]]
        cluster += [i for i in order if i not in cluster][: cluster_size - len(cluster)]
        shown.extend(cluster)
        unused[cluster] = False
        clusters.append(cluster)
    return clusters


def test_incremental_variance_matches_direct_formula(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker(noise=NOISE).fit(pool)
    S = [3, 17, 3, 29, 5, 0, 39, 17, 11, 12, 13, 14]
    tracker.add(S)
    assert tracker.used_ == S
    assert tracker.factor_.shape == (40, len(S))
    expected = _direct_variance(pool, S, tracker.bandwidth_, NOISE)
    np.testing.assert_allclose(tracker.variance_, expected, atol=1e-8, rtol=0)
    assert tracker.variance_[S].max() < 2 * NOISE


def test_fit_defaults_to_median_heuristic_and_prior(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker().fit(pool)
    assert tracker.bandwidth_ == pytest.approx(median_bandwidth(pool))
    np.testing.assert_array_equal(tracker.variance_, np.ones(40))
    assert tracker.used_ == []
    assert GPUncertaintyTracker(bandwidth=0.5).fit(pool).bandwidth_ == 0.5


def test_variance_never_increases_and_stays_in_unit_interval(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker(noise=NOISE).fit(pool)
    previous = tracker.variance_.copy()
    for s in [8, 2, 8, 33, 21, 2, 2, 19, 4, 30]:
        tracker.add([s])
        assert np.all(tracker.variance_ <= previous + 1e-12)
        assert np.all((tracker.variance_ >= 0) & (tracker.variance_ <= 1))
        previous = tracker.variance_.copy()
    assert previous.max() < 1.0


def test_repeated_point_without_noise_is_safe(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker(noise=0.0).fit(pool)
    tracker.add([4, 4, 4, 9])
    assert np.all(np.isfinite(tracker.variance_))
    assert tracker.variance_[4] == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(
        tracker.variance_, _direct_variance(pool, [4, 9], tracker.bandwidth_, 0.0), atol=1e-8
    )


def test_reset_forgets_shown_points_but_keeps_pool(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker(noise=NOISE).fit(pool)
    bw = tracker.bandwidth_
    tracker.add(range(20))
    tracker.reset()
    assert tracker.used_ == []
    assert tracker.bandwidth_ == bw
    np.testing.assert_array_equal(tracker.variance_, np.ones(40))
    tracker.add([1, 2])
    fresh = GPUncertaintyTracker(noise=NOISE).fit(pool)
    fresh.add([1, 2])
    np.testing.assert_allclose(tracker.variance_, fresh.variance_, atol=1e-14)


def test_add_rejects_out_of_range_index(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker().fit(pool)
    with pytest.raises(IndexError):
        tracker.add([40])


@pytest.mark.parametrize(("cluster_size", "n_clusters"), [(1, 50), (3, 20)])
def test_picks_match_refitted_sklearn_gp(
    pool: np.ndarray, cluster_size: int, n_clusters: int
) -> None:
    selector = DemonstrationSelector(cluster_size=cluster_size, noise=NOISE, seed=3)
    clusters = selector.select(pool, n_clusters)
    assert selector.n_passes_ == 2
    expected = _reference_clusters(pool, n_clusters, cluster_size, selector.bandwidth_, seed=3)
    assert clusters == expected
    assert selector.clusters_ == clusters


def test_each_pass_picks_every_point_at_most_once(pool: np.ndarray) -> None:
    selector = DemonstrationSelector(cluster_size=3, seed=1)
    clusters = selector.select(pool, 45)
    covered: set[int] = set()
    passes = 1
    for cluster in clusters:
        if len(covered) == len(pool):
            covered, passes = set(), passes + 1
        assert len(cluster) == 3 == len(set(cluster))
        assert cluster[0] not in covered
        covered |= set(cluster)
    assert selector.n_passes_ == passes >= 2
    assert len(selector.pick_variance_) == 45
    assert selector.pick_variance_[0] == 1.0


def test_pick_variance_decreases_within_first_pass(pool: np.ndarray) -> None:
    selector = DemonstrationSelector(cluster_size=1, seed=0)
    selector.select(pool, 40)
    assert selector.n_passes_ == 1
    assert np.all(np.diff(selector.pick_variance_) <= 1e-12)


def test_same_seed_same_clusters_different_seed_different_start(pool: np.ndarray) -> None:
    first = DemonstrationSelector(seed=5).select(pool, 10)
    assert DemonstrationSelector(seed=5).select(pool, 10) == first
    starts = {DemonstrationSelector(seed=s).select(pool, 1)[0][0] for s in range(6)}
    assert len(starts) > 1
    random_first = RandomSelector(seed=5).select(pool, 10)
    assert RandomSelector(seed=5).select(pool, 10) == random_first
    assert random_first != RandomSelector(seed=6).select(pool, 10)


@pytest.mark.parametrize("cls", [DemonstrationSelector, RandomSelector])
def test_single_point_pool_and_small_pools(cls: type) -> None:
    one = np.ones((1, 4))
    selector = cls(cluster_size=3)
    assert selector.select(one, 4) == [[0]] * 4
    assert selector.n_passes_ == 4
    two = np.eye(2)
    assert all(sorted(c) == [0, 1] for c in cls(cluster_size=3).select(two, 3))


@pytest.mark.parametrize("cls", [DemonstrationSelector, RandomSelector])
def test_invalid_requests_raise(cls: type, pool: np.ndarray) -> None:
    with pytest.raises(ValueError):
        cls().select(pool, -1)
    with pytest.raises(ValueError):
        cls().select(np.zeros((0, 8)), 3)
    assert cls().select(pool, 0) == []


def test_random_selector_uses_the_same_cluster_rule(pool: np.ndarray) -> None:
    clusters = RandomSelector(cluster_size=4, seed=2).select(pool, 12)
    covered: set[int] = set()
    for cluster in clusters:
        if len(covered) == len(pool):
            covered = set()
        unused = [i for i in range(len(pool)) if i not in covered and i != cluster[0]]
        dist = ((pool[unused] - pool[cluster[0]]) ** 2).sum(axis=1)
        nearest = [unused[i] for i in np.argsort(dist, kind="stable")[:3]]
        assert cluster[0] not in covered
        assert cluster[1:] == nearest
        covered |= set(cluster)


def test_gp_exploration_covers_more_blobs_than_random() -> None:
    gp_cover, random_cover = [], []
    for seed in range(5):
        X, blob = _blobs(seed)
        gp = DemonstrationSelector(cluster_size=3, seed=seed).select(X, 10)
        rnd = RandomSelector(cluster_size=3, seed=seed).select(X, 10)
        gp_cover.append(len({blob[c[0]] for c in gp}))
        random_cover.append(len({blob[c[0]] for c in rnd}))
    assert np.mean(gp_cover) >= 9
    assert np.mean(gp_cover) > np.mean(random_cover)


def test_a_new_pass_does_not_replay_the_first(pool: np.ndarray) -> None:
    X = pool[:12]
    clusters = DemonstrationSelector(cluster_size=3, seed=4).select(X, 8)
    assert sorted(i for c in clusters[:4] for i in c) == list(range(12))
    assert sorted(i for c in clusters[4:] for i in c) == list(range(12))
    assert clusters[4:] != clusters[:4]


def _eager_clusters(
    X: np.ndarray, n_clusters: int, cluster_size: int, bw: float, seed: int
) -> list[list[int]]:
    """One rank-one update of every row per shown point, as in the paper's loop."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    unused = np.ones(n, dtype=bool)
    var = np.ones(n)
    K = rbf_kernel(X, X, bw)
    F = np.zeros((n, n_clusters * cluster_size))
    t = 0
    clusters = []
    for _ in range(n_clusters):
        score = np.where(unused, var, -np.inf)
        pick = int(perm[np.argmax(score[perm])])
        dist = ((X - X[pick]) ** 2).sum(axis=1)
        order = [int(i) for i in np.argsort(dist, kind="stable") if i != pick and unused[i]]
        cluster = [pick, *order[: cluster_size - 1]]
        for s in cluster:
            col = K[:, s] - F[:, :t] @ F[s, :t]
            F[:, t] = col / np.sqrt(var[s] + NOISE)
            var = np.clip(var - F[:, t] ** 2, 0.0, None)
            t += 1
        unused[cluster] = False
        clusters.append(cluster)
    return clusters


def _sphere_blobs(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    return _unit_rows(centres[rng.integers(0, 20, n)] + rng.normal(size=(n, d)))


def test_deferred_updates_keep_reference_picks_at_scale() -> None:
    X = _sphere_blobs(1200, 384, seed=11)
    selector = DemonstrationSelector(cluster_size=4, noise=NOISE, seed=2)
    clusters = selector.select(X, 120)
    assert 0 < selector.n_full_updates_ < 120
    assert clusters == _eager_clusters(X, 120, 4, selector.bandwidth_, seed=2)
    used = [i for c in clusters for i in c]
    expected = _direct_variance(X, used, selector.bandwidth_, NOISE)
    np.testing.assert_allclose(selector._tracker.variance_, expected, atol=1e-8)


@pytest.mark.parametrize("factor_dtype", ["float64", "float32"])
def test_every_deferred_path_matches_refitted_gp(
    monkeypatch: pytest.MonkeyPatch, factor_dtype: str
) -> None:
    # Tiny limits force watched-set growth, full updates on overflow and mid-add flushes.
    monkeypatch.setattr(explore, "_MIN_CANDIDATES", 4)
    monkeypatch.setattr(gp_tracker, "_MAX_PENDING", 7)
    monkeypatch.setattr(gp_tracker, "_BLOCK", 2)
    X = _sphere_blobs(90, 8, seed=5)
    selector = DemonstrationSelector(cluster_size=3, seed=4, factor_dtype=factor_dtype)
    clusters = selector.select(X, 40)
    assert selector.n_passes_ == 2
    assert selector._tracker.factor_dtype_ == np.dtype(factor_dtype)
    assert clusters == _reference_clusters(X, 40, 3, selector.bandwidth_, seed=4)


def test_float32_factor_tracks_float64_variance(pool: np.ndarray) -> None:
    S = [3, 17, 29, 5, 0, 39, 11, 12]
    exact = GPUncertaintyTracker(noise=NOISE, factor_dtype="float64").fit(pool)
    single = GPUncertaintyTracker(noise=NOISE, factor_dtype="float32").fit(pool)
    exact.add(S)
    single.add(S)
    assert single.factor_.dtype == np.float32
    np.testing.assert_allclose(single.variance_, exact.variance_, atol=1e-6)
    with pytest.raises(ValueError):
        GPUncertaintyTracker(factor_dtype="float16").fit(pool)


def test_watched_rows_agree_with_folded_variance(pool: np.ndarray) -> None:
    tracker = GPUncertaintyTracker(noise=NOISE).fit(pool, capacity=4)
    tracker.add([1, 2])
    watched = np.array([0, 7, 30])
    tracker._watch(watched)
    tracker._extend([9, 30, 14])
    tracker._activate(np.array([21]))
    pending = tracker._watched_variance(np.array([0, 7, 30, 21])).copy()
    assert tracker._pending
    folded = tracker.variance_
    assert not tracker._pending
    np.testing.assert_allclose(pending, folded[[0, 7, 30, 21]], atol=1e-12)
    expected = _direct_variance(pool, [1, 2, 9, 30, 14], tracker.bandwidth_, NOISE)
    np.testing.assert_allclose(folded, expected, atol=1e-8)
    assert tracker.factor_.shape == (40, 5)


def test_neighbour_search_matches_full_sort_with_duplicates() -> None:
    rng = np.random.default_rng(9)
    base = _unit_rows(rng.normal(size=(60, 16)))
    X = np.vstack([base, base[:20], base[5:8]])
    search = explore._Neighbours(X)
    for trial in range(40):
        unused = rng.random(X.shape[0]) < 0.7
        pick = int(rng.choice(np.flatnonzero(unused)))
        size = 1 + trial % 5
        expected = explore._nearest_cluster(X, pick, unused, size)
        assert search.cluster(pick, unused, size) == expected
    unused = np.zeros(X.shape[0], dtype=bool)
    unused[[3, 4]] = True
    assert search.cluster(3, unused, 4) == explore._nearest_cluster(X, 3, unused, 4)


def test_clone_keeps_parameters_and_picks(pool: np.ndarray) -> None:
    selectors = [
        DemonstrationSelector(
            cluster_size=4, bandwidth=0.7, noise=1e-3, seed=9, factor_dtype="float32"
        ),
        RandomSelector(cluster_size=2, seed=6),
    ]
    for selector in selectors:
        params = selector.get_params()
        twin = clone(selector)
        assert twin is not selector and twin.get_params() == params
        assert type(selector)(**params).get_params() == params
        assert clone(selector).set_params(seed=1).get_params() == {**params, "seed": 1}
        assert selector.select(pool, 25) == twin.select(pool, 25)
        assert not any(key.endswith("_") for key in clone(selector).__dict__)
    params = {"bandwidth": 0.6, "noise": 1e-3, "factor_dtype": "float64"}
    tracker = GPUncertaintyTracker(**params)
    twin = clone(tracker)
    assert tracker.get_params() == params and twin.get_params() == params
    assert clone(tracker).set_params(noise=0.0).get_params() == {**params, "noise": 0.0}
    for t in (tracker, twin):
        t.fit(pool).add([5, 1, 22, 5])
    np.testing.assert_array_equal(tracker.variance_, twin.variance_)
    np.testing.assert_array_equal(tracker.factor_, twin.factor_)
