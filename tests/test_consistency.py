"""The label check: a judge fitted on the real examples rejects contradicted labels."""

from __future__ import annotations

import numpy as np
import pytest

from synalign.lar.label_check.embedding import LabelConsistencyFilter


def _blobs(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    return centre + 0.3 * rng.normal(size=(n, centre.size))


@pytest.fixture
def real() -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    pos, neg = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    X = np.vstack([_blobs(rng, 16, pos), _blobs(rng, 16, neg)])
    y = ["pos"] * 16 + ["neg"] * 16
    return X, y, [f"r{i}" for i in range(32)]


@pytest.mark.parametrize("method", ["classifier", "knn"])
def test_samples_that_read_as_the_other_label_are_rejected(real, method: str) -> None:
    X, y, ids = real
    rng = np.random.default_rng(1)
    pos, neg = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    # 20 "neg" samples: 12 read as negative, 8 as positive (label flips).
    X_syn = np.vstack([_blobs(rng, 12, neg), _blobs(rng, 8, pos), _blobs(rng, 10, pos)])
    y_syn = ["neg"] * 20 + ["pos"] * 10
    check = LabelConsistencyFilter(method=method).fit(X, y, ids)
    outcome = check.check(X_syn, y_syn)
    assert outcome.keep[:12].all() and not outcome.keep[12:20].any() and outcome.keep[20:].all()
    assert outcome.kept_whole_labels == []
    assert np.all((outcome.scores >= 0) & (outcome.scores <= 1))
    assert outcome.scores[12:20].max() < 0.5 <= outcome.scores[:12].min()
    P = check.label_probabilities(X_syn)
    assert P.shape == (30, 2) and np.allclose(P.sum(axis=1), 1.0)
    assert list(check.classes_) == ["neg", "pos"]


def test_threshold_lets_borderline_samples_through(real) -> None:
    X, y, ids = real
    # Halfway between the two labels, a little towards "pos"; then a clear "neg".
    X_syn = np.array([[0.55, 0.45, 0, 0], [0, 1.0, 0, 0]])
    strict = LabelConsistencyFilter(method="knn", n_neighbors=32, threshold=1.0).fit(X, y, ids)
    lenient = LabelConsistencyFilter(method="knn", n_neighbors=32, threshold=0.5).fit(X, y, ids)
    score = strict.scores(X_syn, ["neg", "neg"])[0]
    assert 0.5 < score < 1.0
    assert strict.predict(X_syn, ["neg", "neg"]).tolist() == [False, True]
    assert lenient.predict(X_syn, ["neg", "neg"]).tolist() == [True, True]


def test_cross_fitting_leaves_the_demonstrations_out(real) -> None:
    X, y, ids = real
    # One "neg" real text sits among the positives; a sample written from it copies it.
    X = X.copy()
    X[20] = np.array([1.0, 0, 0, 0])
    samples = np.vstack([X[20:21] + 1e-3, [[0, 1.0, 0, 0]]])  # and a clear "neg"
    labels, demos = ["neg", "neg"], [["r20"], ["r21"]]
    plain = LabelConsistencyFilter(method="knn", n_neighbors=1, cross_fit=False).fit(X, y, ids)
    cross = LabelConsistencyFilter(method="knn", n_neighbors=1, cross_fit=True).fit(X, y, ids)
    assert plain.predict(samples, labels, demos)[0]  # its own demonstration vouches for it
    assert not cross.predict(samples, labels, demos)[0]  # the other real texts do not
    assert cross.predict(samples, labels)[0]  # without provenance nothing is left out


def test_a_label_the_check_would_empty_keeps_its_samples(real) -> None:
    X, y, ids = real
    X_syn = np.tile(np.array([[1.0, 0, 0, 0]]), (3, 1))
    outcome = LabelConsistencyFilter().fit(X, y, ids).check(X_syn, ["neg"] * 3)
    assert outcome.keep.all() and outcome.kept_whole_labels == ["neg"]


def test_bad_settings_are_refused(real) -> None:
    X, y, ids = real
    with pytest.raises(ValueError, match="method"):
        LabelConsistencyFilter(method="llm").fit(X, y, ids)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        LabelConsistencyFilter(threshold=0.0).fit(X, y, ids)
    with pytest.raises(ValueError, match="two labels"):
        LabelConsistencyFilter().fit(X[:16], y[:16])
    with pytest.raises(RuntimeError, match="fit"):
        LabelConsistencyFilter().scores(X, y)


def test_only_the_classifier_cross_fits_by_default(real) -> None:
    X, y, ids = real
    X = X.copy()
    X[20] = np.array([1.0, 0, 0, 0])
    samples = np.vstack([X[20:21] + 1e-3, [[0, 1.0, 0, 0]]])
    knn = LabelConsistencyFilter(method="knn", n_neighbors=1).fit(X, y, ids)
    assert knn.predict(samples, ["neg", "neg"], [["r20"], ["r21"]]).all()
