"""Kernel mean matching, the library baseline the MMD aligner is measured against."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from synalign.sda.kernels import check_bandwidth, effective_sample_size
from synalign.sda.weights import label_rows, sum_to_one


class KMMWeighter(BaseEstimator):
    """Kernel mean matching (skada's KMMReweightAdapter), fitted per label like MMDAligner.

    KMM bounds each weight (`B`) and lets their sum float within a tolerance, where the
    MMD aligner works on the simplex; weights are renormalised to sum 1 per label so both
    enter training on the same scale.
    """

    def __init__(
        self, bandwidth: float, B: float = 1000.0, tol: float = 1e-6, max_iter: int = 1000
    ) -> None:
        self.bandwidth = bandwidth
        self.B = B
        self.tol = tol
        self.max_iter = max_iter

    def fit(
        self,
        X_syn: np.ndarray,
        X_real: np.ndarray,
        labels_syn: Sequence[Hashable],
        labels_real: Sequence[Hashable],
    ) -> KMMWeighter:
        from skada import KMMReweightAdapter

        check_bandwidth(self.bandwidth)
        S = np.asarray(X_syn, dtype=np.float64)
        R = np.asarray(X_real, dtype=np.float64)
        gamma = 1.0 / (2.0 * self.bandwidth**2)
        real_rows = label_rows(labels_real)
        self.weights_ = np.zeros(S.shape[0], dtype=np.float64)
        self.ess_: dict[Hashable, float] = {}
        for label, idx in label_rows(labels_syn).items():
            if label not in real_rows:
                raise ValueError(f"label {label!r} has synthetic rows but no real rows to match")
            Xs, Xr = S[idx], R[real_rows[label]]
            if idx.shape[0] == 1:
                w = np.ones(1)
            else:
                adapter = KMMReweightAdapter(
                    gamma=gamma, B=self.B, tol=self.tol, max_iter=self.max_iter
                )
                domain = np.r_[np.ones(Xs.shape[0]), -np.ones(Xr.shape[0])].astype(int)
                adapter.fit(np.vstack([Xs, Xr]), sample_domain=domain)
                w = np.clip(np.asarray(adapter.source_weights_, dtype=np.float64), 0.0, None)
                w = sum_to_one(w)
            self.weights_[idx] = w
            self.ess_[label] = effective_sample_size(w)
        return self
