"""IMP-Loss weights, the published alternative the MMD aligner is compared against.

IMP-Loss (Kuo et al., "Not All LLM-Generated Data Are Equal", ICLR 2025) weights each
synthetic sample's loss by P(y | x) / Q(y | x): P a "quality checker" fitted on the real
examples, Q a "diversity checker" fitted on the synthetic set itself. A sample the real
data finds likely for its label is worth more (quality); one the synthetic set already
makes easy to predict, a near-copy of many others, is worth less (diversity). Both
checkers are logistic regression on the same embeddings the MMD aligner sees, with a C
fixed in advance, so the two weightings differ only in what they ask of the data.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from synalign.sda.kernels import effective_sample_size
from synalign.sda.weights import label_rows, sum_to_one


class ImportanceWeighter(BaseEstimator):
    """IMP-Loss weights per synthetic row, renormalised to sum 1 per label (as the MMD
    aligner's and KMM's are, so every weighting enters training on the same scale)."""

    def __init__(self, C: float = 1.0, max_iter: int = 5000) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(
        self,
        X_syn: np.ndarray,
        X_real: np.ndarray,
        labels_syn: Sequence[Hashable],
        labels_real: Sequence[Hashable],
    ) -> ImportanceWeighter:
        S = np.asarray(X_syn, dtype=np.float64)
        y_syn = np.asarray([str(v) for v in labels_syn])
        y_real = np.asarray([str(v) for v in labels_real])
        missing = sorted(set(y_syn) - set(y_real))
        if missing:
            raise ValueError(f"label {missing[0]!r} has synthetic rows but no real rows")
        quality = self._checker(np.asarray(X_real, dtype=np.float64), y_real)
        p = _probability_of(quality, S, y_syn)
        if len(set(y_syn)) > 1:
            q = _probability_of(self._checker(S, y_syn), S, y_syn)
        else:
            q = np.ones(S.shape[0])  # one label: the diversity checker is certain of it
        ratio = p / np.maximum(q, 1e-12)
        self.quality_, self.diversity_ = p, q
        self.weights_ = np.zeros(S.shape[0], dtype=np.float64)
        self.ess_: dict[Hashable, float] = {}
        for label, idx in label_rows(labels_syn).items():
            self.weights_[idx] = sum_to_one(ratio[idx])
            self.ess_[label] = effective_sample_size(self.weights_[idx])
        return self

    def _checker(self, X: np.ndarray, y: np.ndarray) -> object:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)


def _probability_of(model: object, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The model's probability of each row's own label (0 for a label it never saw)."""
    P = model.predict_proba(X)  # type: ignore[attr-defined]
    classes = list(model.classes_)  # type: ignore[attr-defined]
    col = np.array([classes.index(v) if v in classes else -1 for v in y])
    out = np.where(col >= 0, P[np.arange(len(y)), np.maximum(col, 0)], 0.0)
    return np.asarray(out, dtype=np.float64)
