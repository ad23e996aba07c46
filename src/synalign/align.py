"""Synthetic distribution alignment (SDA).

Each synthetic example gets a weight so that the weighted synthetic set is as close as
possible, in RBF-kernel MMD, to the real set of the same label. Off-distribution
generations end up with (near) zero weight and are dropped by resampling.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy.sparse.linalg import eigsh

from synalign.kernels import effective_sample_size, median_bandwidth, rbf_kernel

ALL_LABEL = "__all__"
"""The group name used when `fit` is called without labels."""

_BLOCK_ENTRIES = 1 << 22
_DENSE_EIG_MAX = 64


def _as_rows(X: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array of embeddings, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return A


def _groups(labels: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Row indices per label, labels in first-seen order."""
    rows: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        rows.setdefault(label, []).append(i)
    return {label: np.asarray(idx, dtype=np.intp) for label, idx in rows.items()}


def _mean_kernel_rows(X: np.ndarray, Y: np.ndarray, bandwidth: float) -> np.ndarray:
    """Row means of k(X, Y), in blocks so a large real set never needs a full kernel matrix."""
    block = max(1, _BLOCK_ENTRIES // Y.shape[0])
    out = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], block):
        out[start : start + block] = rbf_kernel(X[start : start + block], Y, bandwidth).mean(axis=1)
    return out


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Exact Euclidean projection onto {w >= 0, sum w = 1} (sort-based, O(n log n))."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ks = np.arange(1, u.shape[0] + 1)
    rho = int(np.flatnonzero(u - css / ks > 0)[-1])
    theta = css[rho] / (rho + 1)
    return np.maximum(v - theta, 0.0)


def _largest_eigenvalue(K: np.ndarray) -> float:
    n = K.shape[0]
    if n <= _DENSE_EIG_MAX:
        return float(np.linalg.eigvalsh(K)[-1])
    # A fixed start vector keeps ARPACK deterministic.
    value = eigsh(K, k=1, which="LA", return_eigenvectors=False, v0=np.ones(n))
    return float(value[0])


def _solve_simplex_qp(
    K: np.ndarray, b: np.ndarray, const: float, max_iter: int, tol: float
) -> tuple[np.ndarray, float, int]:
    """Minimise w'Kw - 2 w'b + const over the simplex with restarted FISTA.

    Returns the best iterate seen (never worse than the uniform start), its objective and
    the number of iterations run.
    """
    n = K.shape[0]
    w = np.full(n, 1.0 / n)
    Kw = K @ w

    def objective(x: np.ndarray, Kx: np.ndarray) -> float:
        return float(x @ Kx - 2.0 * (x @ b) + const)

    f = objective(w, Kw)
    best_w, best_f = w.copy(), f
    if n == 1:
        return best_w, best_f, 0
    # Slightly overestimate the Lipschitz constant so the step is always safe.
    L = 2.0 * _largest_eigenvalue(K) * (1.0 + 1e-8)
    y, Ky, t = w, Kw, 1.0
    momentum = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        grad = 2.0 * (Ky - b)
        w_new = project_to_simplex(y - grad / L)
        Kw_new = K @ w_new
        f_new = objective(w_new, Kw_new)
        if f_new < best_f:
            best_w, best_f = w_new.copy(), f_new
        if f_new > f:
            if not momentum:
                # A plain projected-gradient step cannot go up: this is rounding at the optimum.
                break
            # Function-value restart: drop the momentum and step from the last iterate.
            y, Ky, t, momentum = w, Kw, 1.0, False
            continue
        change = f - f_new
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        y = w_new + beta * (w_new - w)
        Ky = Kw_new + beta * (Kw_new - Kw)
        w, Kw, f, t, momentum = w_new, Kw_new, f_new, t_new, beta > 0.0
        if change <= tol * max(abs(f), 1e-12):
            break
    return best_w, best_f, n_iter


class MMDAligner:
    """Weights synthetic rows so each label's weighted synthetic set matches its real set.

    The weights minimise the biased squared MMD exactly over the probability simplex, one
    label at a time, with a single kernel bandwidth shared by all labels so MMD values are
    comparable across labels.
    """

    def __init__(
        self,
        bandwidth: float | None = None,
        max_iter: int = 3000,
        tol: float = 1e-9,
        seed: int = 0,
    ) -> None:
        self.bandwidth = bandwidth
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    def fit(
        self,
        X_syn: np.ndarray,
        X_real: np.ndarray,
        labels_syn: Sequence[str] | None = None,
        labels_real: Sequence[str] | None = None,
    ) -> MMDAligner:
        """Learn one weight per synthetic row (weights sum to 1 within each label)."""
        S = _as_rows(X_syn, "X_syn")
        R = _as_rows(X_real, "X_real")
        if S.shape[1] != R.shape[1]:
            raise ValueError(
                f"synthetic embeddings have {S.shape[1]} dimensions but real ones {R.shape[1]}"
            )
        if (labels_syn is None) != (labels_real is None):
            raise ValueError("give labels for both the synthetic and the real rows, or neither")
        if self.bandwidth is not None and not (np.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise ValueError(f"bandwidth must be positive, got {self.bandwidth!r}")
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be non-negative, got {self.max_iter}")

        if labels_syn is None or labels_real is None:
            syn_groups = {ALL_LABEL: np.arange(S.shape[0])}
            real_groups = {ALL_LABEL: np.arange(R.shape[0])}
        else:
            lab_s, lab_r = list(labels_syn), list(labels_real)
            if len(lab_s) != S.shape[0]:
                raise ValueError(f"{len(lab_s)} synthetic labels for {S.shape[0]} rows")
            if len(lab_r) != R.shape[0]:
                raise ValueError(f"{len(lab_r)} real labels for {R.shape[0]} rows")
            syn_groups = _groups(lab_s)
            real_groups = _groups(lab_r)
            for label in syn_groups:
                if label not in real_groups:
                    raise ValueError(
                        f"label {label!r} has synthetic rows but no real rows to match"
                    )

        self.bandwidth_ = (
            float(self.bandwidth)
            if self.bandwidth is not None
            else median_bandwidth(R, S, seed=self.seed)
        )
        self.labels_ = list(syn_groups)
        self.missing_labels_ = [label for label in real_groups if label not in syn_groups]
        self.weights_ = np.zeros(S.shape[0], dtype=np.float64)
        self.mmd2_before_: dict[Hashable, float] = {}
        self.mmd2_after_: dict[Hashable, float] = {}
        self.ess_: dict[Hashable, float] = {}
        self.n_iter_: dict[Hashable, int] = {}
        self._rows = syn_groups

        for label, idx in syn_groups.items():
            Xs, Xr = S[idx], R[real_groups[label]]
            K = rbf_kernel(Xs, Xs, self.bandwidth_)
            b = _mean_kernel_rows(Xs, Xr, self.bandwidth_)
            const = float(_mean_kernel_rows(Xr, Xr, self.bandwidth_).mean())
            uniform = np.full(idx.shape[0], 1.0 / idx.shape[0])
            before = float(uniform @ K @ uniform - 2.0 * (uniform @ b) + const)
            w, after, n_iter = _solve_simplex_qp(K, b, const, self.max_iter, self.tol)
            self.weights_[idx] = w
            self.mmd2_before_[label] = max(before, 0.0)
            self.mmd2_after_[label] = max(min(after, before), 0.0)
            self.ess_[label] = effective_sample_size(w)
            self.n_iter_[label] = n_iter
        return self

    def resample(
        self, n_per_label: int | dict[str, int] | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Draw synthetic row indices by weight with systematic resampling.

        Systematic resampling has the lowest variance of the standard schemes and never
        draws a zero-weight row. `None` keeps each label's synthetic count; a dict gives
        counts per label (labels left out get 0; labels in `missing_labels_` are ignored).
        Indices come back grouped by label in `labels_` order, sorted within a label.
        """
        if not hasattr(self, "weights_"):
            raise RuntimeError("call fit before resample")
        counts = self._counts(n_per_label)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        out: list[np.ndarray] = []
        for label in self.labels_:
            idx = self._rows[label]
            count = counts[label]
            if count == 0:
                continue
            w = self.weights_[idx]
            cdf = np.cumsum(w / w.sum())
            cdf[-1] = 1.0
            positions = (rng.random() + np.arange(count)) / count
            picks = np.minimum(np.searchsorted(cdf, positions, side="right"), idx.shape[0] - 1)
            out.append(np.sort(idx[picks]))
        if not out:
            return np.zeros(0, dtype=np.intp)
        return np.concatenate(out).astype(np.intp, copy=False)

    def _counts(self, n_per_label: int | dict[str, int] | None) -> dict[Hashable, int]:
        if n_per_label is None:
            return {label: int(self._rows[label].shape[0]) for label in self.labels_}
        if isinstance(n_per_label, dict):
            unknown = [
                k for k in n_per_label if k not in self._rows and k not in self.missing_labels_
            ]
            if unknown:
                raise ValueError(f"unknown label(s) in n_per_label: {unknown!r}")
            counts = {label: int(n_per_label.get(label, 0)) for label in self.labels_}
        else:
            counts = {label: int(n_per_label) for label in self.labels_}
        negative = {label: c for label, c in counts.items() if c < 0}
        if negative:
            raise ValueError(f"sample counts must be non-negative, got {negative!r}")
        return counts
