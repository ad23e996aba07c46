"""Per-label weights: uniform, scaled to training mass, and systematic resampling."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def label_rows(labels: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Row indices of each label, in order of first appearance."""
    rows: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        rows.setdefault(label, []).append(i)
    return {label: np.asarray(idx, dtype=np.intp) for label, idx in rows.items()}


def label_shares(labels: Sequence[Hashable]) -> dict[Hashable, float]:
    """Each label's share of the rows: the label mix a synthetic set should follow."""
    counts: dict[Hashable, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {label: c / len(labels) for label, c in counts.items()}


def counts_by_share(total: int, shares: dict[Hashable, float]) -> dict[Hashable, int]:
    """Split `total` draws between labels in proportion to `shares` (largest remainder,
    ties to the label first listed), so the counts add up to `total` exactly."""
    mass = sum(shares.values())
    if total <= 0 or mass <= 0:
        return {label: 0 for label in shares}
    exact = {label: total * share / mass for label, share in shares.items()}
    counts = {label: int(np.floor(x)) for label, x in exact.items()}
    order = sorted(shares, key=lambda label: -(exact[label] - counts[label]))
    for label in order[: total - sum(counts.values())]:
        counts[label] += 1
    return counts


def uniform(n: int) -> np.ndarray:
    """n equal weights summing to 1: the starting point and fallback of every weighting."""
    return np.full(n, 1.0 / n)


def sum_to_one(weights: np.ndarray) -> np.ndarray:
    """Weights scaled to sum 1; uniform when they carry no mass at all."""
    total = weights.sum()
    return weights / total if total > 0 else uniform(weights.shape[0])


def uniform_weights(labels: Sequence[Hashable]) -> np.ndarray:
    """Equal weights summing to 1 within each label (the no-weighting baseline)."""
    w = np.zeros(len(labels), dtype=np.float64)
    for idx in label_rows(labels).values():
        w[idx] = uniform(idx.shape[0])
    return w


def training_weights(
    weights: np.ndarray,
    labels: Sequence[Hashable],
    shares: dict[Hashable, float] | None = None,
) -> np.ndarray:
    """Per-label weights (summing to 1) times the label's training mass.

    Without `shares` a label's mass is its row count (mean weight 1 within a label). With
    `shares` (the real label mix) the rows' total count is split between labels by those
    shares, so a label the label check thinned out keeps its place in the mix.
    """
    w = np.asarray(weights, dtype=np.float64).copy()
    rows = label_rows(labels)
    n = len(labels)
    for label, idx in rows.items():
        mass = idx.shape[0] if shares is None else n * shares.get(label, 0.0)
        total = w[idx].sum()
        w[idx] = w[idx] / total * mass if total > 0 else mass / idx.shape[0]
    return w


def training_weights_of(
    weights: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    use: str,
    seed: int,
    shares: dict[Hashable, float] | None = None,
) -> np.ndarray:
    """Each synthetic row's training weight; 0 for rows the label check rejected.

    "weights": the kept rows' weights scaled to each label's mass (see
    `training_weights`). "resample": how many times a systematic resample of the kept rows
    (as many draws as kept rows, split between labels like the masses) draws each row.
    """
    out = np.zeros(len(labels), dtype=np.float64)
    idx = np.flatnonzero(keep)
    if use == "weights":
        out[idx] = training_weights(weights[idx], labels[idx].tolist(), shares)
        return out
    groups = label_rows(labels[idx].tolist())
    sizes = (
        {label: rows.size for label, rows in groups.items()}
        if shares is None
        else counts_by_share(idx.size, {label: shares.get(label, 0.0) for label in groups})
    )
    for label, rows in groups.items():
        members = idx[rows]
        picks = systematic_resample(weights[members], sizes[label], seed)
        out[members] = np.bincount(picks, minlength=members.size)
    return out


def systematic_resample(
    weights: np.ndarray, count: int, seed: int | np.random.Generator
) -> np.ndarray:
    """Indices drawn by weight with systematic resampling (uniform weights: each once).

    One uniform offset per call; a Generator for `seed` lets several calls share one
    stream of offsets.
    """
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    positions = (np.random.default_rng(seed).random() + np.arange(count)) / count
    return np.minimum(np.searchsorted(cdf, positions, side="right"), w.shape[0] - 1)
