"""Plots of one pipeline run: where the synthetic samples sit next to the real ones, how
long they are, and how the learned weights spread. Each returns PNG bytes from arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synalign.report.plots import _figure, _png, equal_shares

MAX_POINTS = 4000
"""Points drawn per group; larger sets are subsampled (seeded) so a plot of 100,000
samples stays as light and as readable as one of 1,000."""


def _subsample(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def plot_run_projection(
    real: np.ndarray,
    real_groups: Sequence[str],
    synthetic: np.ndarray,
    synthetic_groups: Sequence[str],
    weights: np.ndarray | None,
) -> bytes:
    """Real and synthetic embeddings on the two principal axes of both, before and (with
    `weights`) after weighting: a synthetic point's area follows its weight, a weight of
    zero is drawn as an x."""
    import matplotlib
    from sklearn.decomposition import PCA

    both = np.vstack([real, synthetic])
    pca = PCA(n_components=2, random_state=0).fit(both)
    pr, ps = pca.transform(real), pca.transform(synthetic)
    groups = list(dict.fromkeys([*real_groups, *synthetic_groups]))
    cmap = matplotlib.colormaps["tab10"]
    panels = (False, True) if weights is not None else (False,)
    fig, axes = _figure(5.5 * len(panels), 4.6, ncols=len(panels))
    yr, ys = np.asarray(real_groups), np.asarray(synthetic_groups)
    shown = _subsample(len(ps))
    share = np.ones(len(ps)) if weights is None else equal_shares(weights, ys)
    for ax, after in zip(axes[0], panels, strict=True):
        for j, group in enumerate(groups):
            color = cmap(j % 10)
            m = shown[ys[shown] == group]
            if after:
                alive = m[share[m] > 1e-9]
                ax.scatter(*ps[alive].T, s=18.0 * share[alive], color=color, alpha=0.6, lw=0)
                dead = m[share[m] <= 1e-9]
                ax.scatter(*ps[dead].T, s=10, color=color, alpha=0.4, marker="x", lw=0.7)
            else:
                ax.scatter(*ps[m].T, s=14, color=color, alpha=0.5, marker="^", lw=0)
            ax.scatter(
                *pr[yr == group].T,
                s=34,
                color=color,
                edgecolor="black",
                lw=0.8,
                label=str(group)[:24],
            )
        ax.set_title(
            "after weighting (area ∝ weight, x = weight 0)"
            if after
            else "synthetic (triangles) vs real (circled), equal weights"
        )
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    if len(groups) <= 10:
        axes[0][0].legend(fontsize=8, loc="best")
    return _png(fig)


def plot_run_lengths(
    real: Sequence[int], synthetic: Sequence[int], weights: np.ndarray | None
) -> bytes:
    """Share of texts by length in words: real, synthetic as generated, and (with
    `weights`) synthetic as weighted."""
    fig, axes = _figure(7.0, 3.4)
    ax = axes[0][0]
    top = int(np.percentile([*real, *synthetic], 99)) + 2 if len(real) + len(synthetic) else 2
    bins = np.linspace(0, top + 1, min(top + 2, 26))
    series = [("real", np.asarray(real), None), ("synthetic", np.asarray(synthetic), None)]
    if weights is not None:
        series.append(("synthetic, weighted", np.asarray(synthetic), weights))
    for name, values, w in series:
        if values.size:
            mean = np.average(values, weights=w)
            label = f"{name} (mean {mean:.1f})"
            ax.hist(
                np.minimum(values, top),
                bins=bins,
                weights=w,
                density=True,
                histtype="step",
                lw=1.6,
                label=label,
            )
    ax.set_xlabel("words (the last bin holds everything longer)")
    ax.set_ylabel("share")
    ax.set_title("lengths: real vs synthetic")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_run_weights(weights: np.ndarray, groups: Sequence[str]) -> bytes:
    """Weights times the group's synthetic count (1 = an equal share), per group."""
    fig, axes = _figure(7.0, 3.4)
    ax = axes[0][0]
    g = np.asarray(groups)
    scaled = equal_shares(weights, g)
    bins = np.linspace(0.0, max(2.0, float(scaled.max(initial=0.0))), 40)
    for group in list(dict.fromkeys(g.tolist()))[:10]:
        values = scaled[g == group]
        zero = float(np.mean(values <= 1e-9))
        ax.hist(
            values,
            bins=bins,
            histtype="step",
            lw=1.5,
            label=f"{str(group)[:24]} ({zero:.0%} at zero, n={values.size})",
        )
    ax.axvline(1.0, color="#555555", ls="--", lw=1)
    ax.set_xlabel("weight × the group's synthetic count (1 = equal share)")
    ax.set_ylabel("synthetic samples")
    ax.set_title("MMD weight distribution")
    ax.legend(fontsize=8)
    return _png(fig)
