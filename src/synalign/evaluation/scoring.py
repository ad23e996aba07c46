"""Train and test one method on one seed, and measure the data it trained with.

Synthetic samples enter training through sample weights, not resampling: a synthetic
sample's weight is its per-label weight times that label's synthetic count (mean 1 within
a label), a real sample's weight is 1. Weights are exact where resampling adds noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synalign.config import RunConfig
from synalign.evaluation.budget_curve import prefix_mask, subset_check
from synalign.evaluation.data import Shots, TestSet
from synalign.evaluation.generated import take_rows
from synalign.evaluation.label_check import LabelChecker
from synalign.evaluation.methods import Method
from synalign.evaluation.metrics import (
    cosine_diversity,
    distinct_n,
    fidelity_metrics,
    length_distance,
)
from synalign.evaluation.models import make_classifier
from synalign.evaluation.prediction_cache import PredictionCache, training_key
from synalign.evaluation.settings import EvalConfig
from synalign.lar.label_check.embedding import LabelCheck
from synalign.lar.prompts import word_count
from synalign.pipeline.tail import Labelled, learn_weights
from synalign.sda import (
    effective_sample_size,
    label_shares,
    mmd2,
    systematic_resample,
    training_weights_of,
)

_AVERAGED = (
    "mmd2_test",
    "length_w1",
    "distinct_1",
    "distinct_2",
    "cosine_diversity",
    "ess",
    "zero_weight_share",
    "mmd2_shots",
)


class MethodRuns:
    """One seed's methods, trained and tested on the rows of a budget. Methods that share
    a label check or a weighting compute it once per seed."""

    def __init__(
        self,
        config: EvalConfig,
        base: RunConfig,
        seed: int,
        shots: Shots,
        test: TestSet,
        full: dict[str, dict[str, Any]],
        generated: dict[str, dict[str, Any]],
        checker: LabelChecker,
        scorer: bool,
        predictions: PredictionCache | None = None,
    ) -> None:
        self.config = config
        self.base = base
        self.seed = seed
        self.shots = shots
        self.test = test
        self.full = full
        self.generated = generated
        self.checker = checker
        self.scorer = scorer
        self.predictions = predictions
        self._kept: dict[tuple[Any, ...], LabelCheck] = {}
        self._weights_of: dict[tuple[Any, ...], tuple[np.ndarray, float | None]] = {}
        self.align_bandwidth: dict[str, float] = {}

    def result(self, m: Method, clusters: int) -> tuple[dict[str, Any], np.ndarray | None]:
        """Train and test one method on the rows of each label's first `clusters` clusters;
        its result and the weights it trained with. The label check judges a variant's
        every row once (a judge scores each sample on its own) and is cut to the budget."""
        seed, shots = self.seed, self.shots
        if m.variant is None:
            real = score_method(self.config, seed, shots, self.test, None, None, self.predictions)
            return real, None
        settings = m.settings(self.base, self.scorer)
        whole = self.full[m.variant]
        check_key = (
            m.variant,
            settings["label_check"],
            float(settings["label_check_threshold"]),
            settings["label_check_quantile"],
        )
        if check_key not in self._kept:
            self._kept[check_key] = self.checker.label_check(
                whole, shots.records, shots.X, settings, seed
            )
        mask = prefix_mask(whole["rows"], self.generated[m.variant]["demos"], clusters)
        s = take_rows(whole, mask)
        keep = subset_check(self._kept[check_key], mask, whole["labels"])
        # Methods that differ only in how the weights are used share them.
        key = (*check_key, clusters, m.weighting, settings["ess_floor"], settings["scope"])
        if key not in self._weights_of:
            weighting = learn_weights(
                shots.labelled(),
                Labelled(s["texts"], s["labels"], s["X"], s["demo_ids"]),
                keep,
                weighting=m.weighting,
                bandwidth=settings["bandwidth"],
                ess_floor=settings["ess_floor"],
                scope=settings["scope"],
                seed=seed,
            )
            self._weights_of[key] = (weighting.weights, weighting.bandwidth)
        w, used_bw = self._weights_of[key]
        if used_bw is not None:
            self.align_bandwidth.setdefault(m.variant, used_bw)
        s = {**s, "use": settings["use"], "keep": keep}
        out = score_method(self.config, seed, shots, self.test, s, w, self.predictions)
        out["label_check_threshold"] = self._kept[check_key].threshold
        return out, w


def score_method(
    config: EvalConfig,
    seed: int,
    shots: Shots,
    test: TestSet,
    s: dict[str, Any] | None,
    w: np.ndarray | None,
    predictions: PredictionCache | None = None,
) -> dict[str, Any]:
    """Accuracy and macro-F1 on the test set of a classifier trained on the shots plus the
    kept synthetic rows `s` weighted by `w` (the shots alone when `s` is None), and the
    distance and diversity of what it trained with. A training `predictions` holds is
    not repeated."""
    from sklearn.metrics import accuracy_score, f1_score

    X_shots, y_shots = shots.X, shots.y
    texts = [r.text for r in shots.records]
    X, y = X_shots, y_shots
    sw = np.ones(len(shots.records))
    tw = np.zeros(0)
    if s is not None and w is not None:
        tw = training_weights_of(
            w, s["labels"], s["keep"], s["use"], seed, label_shares(y_shots.tolist())
        )
        used = tw > 0
        X = np.vstack([X_shots, s["X"][used]])
        y = np.concatenate([y_shots, s["labels"][used]])
        sw = np.concatenate([sw, tw[used]])
        texts = texts + [t for t, k in zip(s["texts"], used, strict=True) if k]
    clf = make_classifier(config, seed)
    on_texts = clf.inputs == "texts"
    key = training_key(clf, texts, y.tolist(), sw, None if on_texts else X, test.texts)
    pred = None if predictions is None else predictions.get(key)
    if pred is None:
        if on_texts:
            pred = clf.fit(texts, y.tolist(), sample_weight=sw).predict(test.texts)
        else:
            pred = clf.fit(X, y, sample_weight=sw).predict(test.X)
        if predictions is not None:
            predictions.put(key, np.asarray(pred))
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(test.y, pred)),
        "macro_f1": float(f1_score(test.y, pred, average="macro")),
        "train_rows": len(y),
        "real_rows": len(shots.records),
    }
    per_label = _per_label(seed, shots, test, s, w, tw)
    out["per_label"] = per_label
    for key in _AVERAGED:
        vals = [e[key] for e in per_label.values() if key in e]
        out[key] = float(np.mean(vals)) if vals else None
    out["synthetic_rows"] = 0 if s is None else len(s["texts"])
    if s is not None:
        out["kept_rows"] = int(s["keep"].sum())
        if s.get("judged") is not None:
            out.update(fidelity_metrics(s["labels"], s["judged"], s["keep"], tw))
    return out


def _per_label(
    seed: int,
    shots: Shots,
    test: TestSet,
    s: dict[str, Any] | None,
    w: np.ndarray | None,
    tw: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Distribution and diversity of what the method adds (the shots for `real`), per
    label, by the training weights `tw` it trains with."""
    X_shots, y_shots = shots.X, shots.y
    per_label: dict[str, dict[str, Any]] = {}
    for lab in test.labels:
        Xt = test.X[test.y == lab]
        test_lengths = test.lengths[test.y == lab]
        if s is None or w is None:
            mask = y_shots == lab
            Xs, ws = X_shots[mask], None
            ts = [r.text for r in shots.records if r.label == lab]
            n = int(mask.sum())
            lengths = np.array([word_count(t) for t in ts], dtype=np.float64)
        else:
            mask = (s["labels"] == lab) & s["keep"]
            if not mask.any() or tw[mask].sum() <= 0:
                continue
            Xs, ws = s["X"][mask], tw[mask] / tw[mask].sum()
            src = [t for t, k in zip(s["texts"], mask, strict=True) if k]
            n = int(mask.sum())
            ts = [src[i] for i in systematic_resample(ws, n, seed)]
            lengths = np.array([word_count(t) for t in src], dtype=np.float64)
        entry: dict[str, Any] = {
            "n": n,
            "mmd2_test": mmd2(Xs, Xt, test.bandwidth, weights_x=ws),
            "distinct_1": distinct_n(ts, 1),
            "distinct_2": distinct_n(ts, 2),
            "cosine_diversity": cosine_diversity(Xs, ws),
            "length_w1": length_distance(lengths, test_lengths, ws),
        }
        if ws is not None:
            entry["ess"] = effective_sample_size(ws)
            entry["zero_weight_share"] = float(np.mean(ws <= 1e-12))
            real_lab = X_shots[y_shots == lab]
            entry["mmd2_shots"] = mmd2(Xs, real_lab, test.bandwidth, weights_x=ws)
        per_label[lab] = entry
    return per_label
