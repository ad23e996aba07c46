"""The real data of an evaluation: the training pool shots are drawn from, the test set.

Every method of every seed is tested on the same test set, embedded once; the shots of a
seed are the same for every method, so differences between methods are paired by seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from synalign.errors import SynAlignError
from synalign.evaluation.metrics import test_centroids
from synalign.evaluation.settings import EvalConfig
from synalign.lar.prompts import word_count
from synalign.pipeline.tail import Labelled
from synalign.progress import Reporter
from synalign.records import Record, labels_of
from synalign.sda import median_bandwidth


@dataclass(frozen=True)
class TestSet:
    """The held-out texts with what every method's scores and distances are measured by."""

    texts: list[str]
    X: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    bandwidth: float
    centroids: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return list(self.centroids)


@dataclass(frozen=True)
class Shots:
    """One seed's real examples, which every method trains on."""

    records: list[Record]
    X: np.ndarray
    y: np.ndarray

    def labelled(self) -> Labelled:
        """The shots as the label check and the weighting take real data."""
        r = self.records
        return Labelled([x.text for x in r], [x.label for x in r], self.X, [x.id for x in r])


def load_data(config: EvalConfig, reporter: Reporter) -> tuple[list[Record], list[Record]]:
    """The training pool and the test set, each without empty or repeated rows (as a
    run reads its real data), with a warning when test texts also occur in the pool."""
    c = config
    if c.dataset:
        from synalign.io.corpora import load_split

        if c.validation:
            return load_split(c.dataset, "pool"), load_split(c.dataset, "validation")
        return load_split(c.dataset, "train"), load_split(c.dataset, "test")
    from synalign.io import LoadResult, read_records
    from synalign.io.corpora import VALIDATION_SHARE, holdout
    from synalign.lar.filters import normalise

    train = read_records(c.train_path or "", c.text_column, c.label_column, dedupe=True)
    if c.validation:
        kept, held = holdout(train.records, VALIDATION_SHARE, seed=1)
        test = LoadResult(held)
        train = LoadResult(kept, train.warnings)
    else:
        test = read_records(c.test_path or "", c.text_column, c.label_column, dedupe=True)
    warnings = train.warnings + test.warnings
    pool = {normalise(r.text) for r in train.records}
    shared = [r for r in test.records if normalise(r.text) in pool]
    if shared:
        warnings.append(
            f"{len(shared)} of {len(test.records)} test texts in {c.test_path} also occur"
            f" in the training pool {c.train_path} (e.g. {shared[0].text[:60]!r}): shots"
            " drawn from the pool can be test texts, which inflates every method's score;"
            " remove them from one of the files"
        )
    for w in warnings:
        reporter.warning(w)
    return train.records, test.records


def check_labels(config: EvalConfig, train: list[Record], test: list[Record]) -> None:
    """Fail before any generation when the data cannot train or test a classifier."""
    c = config
    train_labels, test_labels = set(labels_of(train)), set(labels_of(test))
    if len(train_labels) < 2:
        raise SynAlignError(
            f"{c.train_path or c.dataset}: found {len(train_labels)} label(s); "
            "a classifier needs at least two"
        )
    missing = sorted(test_labels - train_labels)
    if missing:
        raise SynAlignError(
            f"{c.test_path}: label(s) {', '.join(map(repr, missing))} do not occur in "
            f"{c.train_path}; every test label needs training examples"
        )


def test_subset(config: EvalConfig, test: list[Record]) -> list[Record]:
    """At most `test_per_label` test texts per label, the same draw for every seed."""
    k = config.test_per_label
    if k is None:
        return test
    from synalign.io.corpora import draw_shots

    return draw_shots(test, k, seed=10_007)[0]


def embed_test_set(
    config: EvalConfig,
    test: list[Record],
    embed: Callable[[Sequence[str]], np.ndarray],
    reporter: Reporter,
) -> TestSet:
    """Embed the test texts once and derive what every seed measures against: the kernel
    bandwidth and each label's k-means centroids (for coverage)."""
    with reporter.task("embedding test texts", total=len(test)) as advance:
        X_test = embed([r.text for r in test])
        advance(len(test))
    y_test = np.asarray([r.label for r in test])
    k = config.coverage_clusters
    return TestSet(
        texts=[r.text for r in test],
        X=X_test,
        y=y_test,
        lengths=np.array([word_count(r.text) for r in test], dtype=np.float64),
        bandwidth=median_bandwidth(X_test, seed=0),
        centroids={lab: test_centroids(X_test[y_test == lab], k) for lab in labels_of(test)},
    )


def test_sample_rows(y_test: np.ndarray) -> list[int]:
    """A fixed sample of at most 300 test rows per label, for the projection plot."""
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for lab in dict.fromkeys(y_test.tolist()):
        idx = np.flatnonzero(y_test == lab)
        keep.extend(sorted(rng.choice(idx, size=min(300, idx.size), replace=False).tolist()))
    return keep
