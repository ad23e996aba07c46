from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from synalign.esm import DemonstrationSelector, DocumentExplorer
from synalign.esm.documents import allocate, coverage
from synalign.sda import rbf_kernel

NOISE = 1e-4


def _mixture(
    seed: int, sizes: tuple[int, ...] = (1500, 600, 300, 200, 150, 100, 80, 40, 20, 10)
) -> np.ndarray:
    """16-d Gaussian clusters of very unequal sizes and different spreads."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(len(sizes), 16))
    spreads = rng.uniform(0.3, 1.2, size=len(sizes))
    label = np.repeat(np.arange(len(sizes)), sizes)
    return centres[label] + spreads[label, None] * rng.normal(size=(label.size, 16))


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return _mixture(0)


def _variance_reduction_picks(X: np.ndarray, m: int, bandwidth: float) -> list[int]:
    """Textbook greedy over the whole pool: the full posterior covariance, refreshed by one
    rank-one update per pick; each pick maximises sum_x cov(x, c)^2 / (var(c) + noise)."""
    S = rbf_kernel(X, X, bandwidth)
    picks: list[int] = []
    for _ in range(m):
        score = np.einsum("ij,ij->j", S, S) / (np.clip(np.diag(S), 0.0, None) + NOISE)
        score[picks] = -np.inf
        c = int(np.argmax(score))
        picks.append(c)
        col = S[:, c].copy()
        S -= np.outer(col, col) / (col[c] + NOISE)
    return picks


def test_picks_are_distinct_rows_of_the_asked_number(corpus: np.ndarray) -> None:
    X = corpus
    picks = DocumentExplorer().select(X, 150)
    assert picks.dtype == np.int64
    assert picks.shape == (150,)
    assert np.unique(picks).size == 150
    assert picks.min() >= 0 and picks.max() < X.shape[0]


def test_more_picks_than_rows_returns_every_row() -> None:
    X = np.random.default_rng(1).normal(size=(50, 4))
    picks = DocumentExplorer().select(X, 80)
    assert np.array_equal(np.sort(picks), np.arange(50))


def test_cells_over_the_pick_limit_are_split_and_duplicates_still_give_distinct_rows() -> None:
    X = _mixture(2)
    explorer = DocumentExplorer(cells=1)
    picks = explorer.select(X, 300)
    assert np.unique(picks).size == 300
    assert explorer.cells_ > 1
    same = np.ones((500, 8), dtype=np.float32)
    picks = DocumentExplorer(cells=1).select(same, 200)
    assert np.unique(picks).size == 200


def test_noise_free_gp_on_repeated_rows_still_picks_distinct_rows() -> None:
    X = np.repeat(np.random.default_rng(8).normal(size=(40, 6)), 5, axis=0)
    assert np.unique(DocumentExplorer(noise=0.0).select(X, 60)).size == 60
    # In one cell a repeat of a picked row explains nothing new, so 30 picks are 30 vectors.
    picks = DocumentExplorer(cells=1, noise=0.0).select(X, 30)
    assert np.unique(X[picks], axis=0).shape[0] == 30


@pytest.mark.parametrize("as_mask", [True, False])
def test_excluded_rows_are_never_picked(corpus: np.ndarray, as_mask: bool) -> None:
    X = corpus
    rng = np.random.default_rng(3)
    mask = rng.random(X.shape[0]) < 0.7
    mask[:1490] = True  # all but ten rows of the largest cluster
    mask[1490:1500] = False
    exclude = mask if as_mask else np.flatnonzero(mask)
    picks = DocumentExplorer().select(X, 200, exclude=exclude)
    assert picks.size == 200 and np.unique(picks).size == 200
    assert not mask[picks].any()
    left = np.flatnonzero(~mask)[:30]
    only = np.ones(X.shape[0], dtype=bool)
    only[left] = False
    picks = DocumentExplorer().select(X, 100, exclude=only if as_mask else np.flatnonzero(only))
    assert np.array_equal(np.sort(picks), left)


def test_every_row_excluded_gives_no_picks(corpus: np.ndarray) -> None:
    X = corpus
    picks = DocumentExplorer().select(X, 10, exclude=np.ones(X.shape[0], dtype=bool))
    assert picks.shape == (0,) and picks.dtype == np.int64


def test_same_seed_same_picks(corpus: np.ndarray) -> None:
    X = corpus
    first = DocumentExplorer(seed=4).select(X, 120)
    assert np.array_equal(first, DocumentExplorer(seed=4).select(X, 120))
    assert not np.array_equal(np.sort(first), np.sort(DocumentExplorer(seed=5).select(X, 120)))


def test_clone_keeps_parameters_and_drops_learned_state(corpus: np.ndarray) -> None:
    X = corpus
    explorer = DocumentExplorer(cells=6, bandwidth=2.0, noise=1e-3, seed=9)
    picks = explorer.select(X, 60)
    twin = clone(explorer)
    assert twin.get_params() == explorer.get_params()
    assert not hasattr(twin, "picks_")
    assert np.array_equal(twin.select(X, 60), picks)
    assert explorer.bandwidth_ == 2.0 and explorer.cells_ >= 6
    assert explorer.n_features_in_ == X.shape[1]
    assert np.array_equal(explorer.picks_, picks)


def test_coverage_beats_random_picks_on_unequal_clusters() -> None:
    for seed in range(3):
        X = _mixture(seed)
        ours = coverage(X, DocumentExplorer(seed=seed).select(X, 40))
        rng = np.random.default_rng(seed)
        random = [coverage(X, rng.choice(X.shape[0], 40, replace=False)) for _ in range(5)]
        assert ours < 0.95 * min(random)


def test_coverage_within_a_few_percent_of_exact_greedy_gp(corpus: np.ndarray) -> None:
    X = corpus
    explorer = DocumentExplorer(seed=0)
    ours = coverage(X, explorer.select(X, 150))
    bw = explorer.bandwidth_
    max_variance = DemonstrationSelector(cluster_size=1, bandwidth=bw, noise=NOISE, seed=0)
    exact = [c[0] for c in max_variance.select(X, 150)]
    assert ours <= 1.03 * coverage(X, exact)
    # The same criterion as the explorer's, over the whole pool instead of cells.
    assert ours <= 1.05 * coverage(X, _variance_reduction_picks(X, 150, bw))


def test_coverage_is_the_mean_distance_to_the_nearest_pick() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 5))
    picks = np.array([3, 17, 150, 299])
    dist = np.sqrt(((X[:, None, :] - X[None, picks, :]) ** 2).sum(axis=2)).min(axis=1)
    assert coverage(X, picks) == pytest.approx(dist.mean(), rel=1e-9)
    assert coverage(X, picks, chunk=7) == pytest.approx(dist.mean(), rel=1e-9)
    assert coverage(X.astype(np.float32), picks) == pytest.approx(dist.mean(), rel=1e-4)


def test_allocation_is_proportional_and_exact() -> None:
    alloc = allocate(np.array([50, 30, 15, 5]), 10)
    assert alloc.tolist() == [5, 3, 2, 0]
    assert allocate(np.array([3, 1, 1]), 5).tolist() == [3, 1, 1]
    assert allocate(np.array([7, 2, 1]), 3).sum() == 3


@pytest.mark.parametrize(
    ("data", "n_picks", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), 1, "NaN"),
        (np.array([[0.0, 1.0], [np.inf, 2.0]]), 1, "NaN or infinite"),
        (np.arange(10.0), 2, "non-empty 2-d"),
        (np.zeros((0, 3)), 1, "non-empty 2-d"),
        (np.ones((10, 3)), 0, "n_picks"),
        (np.ones((10, 3)), -2, "n_picks"),
    ],
)
def test_bad_input_raises_a_clear_value_error(data: np.ndarray, n_picks: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DocumentExplorer().select(data, n_picks)


def test_bad_parameters_and_masks_raise_value_error(corpus: np.ndarray) -> None:
    X = corpus
    with pytest.raises(ValueError, match="cells"):
        DocumentExplorer(cells=0).select(X, 5)
    with pytest.raises(ValueError, match="bandwidth"):
        DocumentExplorer(bandwidth=-1.0).select(X, 5)
    with pytest.raises(ValueError, match="noise"):
        DocumentExplorer(noise=float("nan")).select(X, 5)
    with pytest.raises(ValueError, match="shape"):
        DocumentExplorer().select(X, 5, exclude=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="row indices in 0 "):
        DocumentExplorer().select(X, 5, exclude=np.array([X.shape[0]]))
    with pytest.raises(ValueError, match="boolean mask or row indices"):
        DocumentExplorer().select(X, 5, exclude=np.array([0.5]))
    with pytest.raises(ValueError, match="at least one pick"):
        coverage(X, np.array([], dtype=np.int64))
