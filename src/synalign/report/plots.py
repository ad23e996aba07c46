"""The report's plots, each drawn from summaries and arrays and returned as PNG bytes.

The plots never read files, so the report decides what to load and a plot can be drawn
from any results held in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import numpy as np

# The learned weightings whose weights the projection and the weight histogram show.
PROJECTED = ("synalign", "no-lar", "no-esm", "kmm")
WEIGHTED = ("synalign", "kmm", "imp-loss")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A figure on the non-interactive backend, so reports build without a display."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), squeeze=False)


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes; closed, so many reports in one process do not pile up."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def equal_shares(weights: np.ndarray, groups: Any) -> np.ndarray:
    """Each weight times its group's size over its group's total, so 1 is an equal share
    within the group (a label, or all of a retrieval run's queries); 0 throughout a group
    whose weights are all 0."""
    w = np.asarray(weights, dtype=np.float64)
    g = np.asarray(groups)
    out = np.zeros_like(w)
    for group in dict.fromkeys(g.tolist()):
        m = g == group
        if w[m].sum() > 0:
            out[m] = w[m] / w[m].sum() * m.sum()
    return out


def plot_scores(methods: dict[str, Any], held_out: str, n_seeds: int) -> bytes:
    """Accuracy and macro-F1 per method: mean with a one-sd error bar, each seed a dot.

    `methods` is the summary's per-method statistics; `held_out` names the texts tested on.
    """
    names = list(methods)
    fig, axes = _figure(max(6.0, 1.1 * len(names) + 2), 3.6, ncols=2)
    for ax, metric, title in zip(
        axes[0], ("accuracy", "macro_f1"), ("accuracy", "macro-F1"), strict=True
    ):
        means = [methods[n][metric]["mean"] for n in names]
        sds = [methods[n][metric]["sd"] for n in names]
        x = np.arange(len(names))
        colors = ["#999999" if n == "real" else "#4c72b0" for n in names]
        ax.bar(x, means, yerr=sds, color=colors, capsize=4, alpha=0.85)
        for i, n in enumerate(names):
            seeds = methods[n][metric]["per_seed"]
            ax.scatter(
                np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)),
                seeds,
                s=12,
                color="black",
                zorder=3,
            )
        if "real" in methods:
            ax.axhline(methods["real"][metric]["mean"], color="#555555", ls="--", lw=1)
        lo = min(min(methods[n][metric]["per_seed"]) for n in names)
        hi = max(max(methods[n][metric]["per_seed"]) for n in names)
        pad = max(0.02, (hi - lo) * 0.3)
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(f"{title} on the real {held_out} ({n_seeds} seeds)")
    return _png(fig)


def plot_projection(
    arrays: dict[str, np.ndarray] | None,
    test: dict[str, np.ndarray] | None,
    methods: dict[str, Any],
    seed: int,
) -> bytes | None:
    """PCA of real test, real shots and synthetic embeddings, before and after MMD weights.

    `arrays` are one seed's saved arrays, `test` the saved test sample, `methods` the
    evaluation's method definitions; None when the arrays to draw are missing.
    """
    from sklearn.decomposition import PCA

    method = next((m for m in PROJECTED if arrays and f"w__{m}" in arrays), None)
    if arrays is None or test is None or method is None:
        return None
    variant = methods[method]["variant"]
    Xs, ys, w = arrays[f"X_syn__{variant}"], arrays[f"y_syn__{variant}"], arrays[f"w__{method}"]
    Xr, yr = arrays["X_shots"], arrays["y_shots"]
    Xt, yt = test["X"], test["y"]
    pca = PCA(n_components=2, random_state=0).fit(np.vstack([Xt, Xr, Xs]))
    Pt, Pr, Ps = pca.transform(Xt), pca.transform(Xr), pca.transform(Xs)
    labels = list(dict.fromkeys(yt.tolist() + yr.tolist()))
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    fig, axes = _figure(11.0, 4.8, ncols=2)
    scaled = equal_shares(w, ys)
    for ax, after in zip(axes[0], (False, True), strict=True):
        for j, lab in enumerate(labels):
            color = cmap(j % 10)
            ax.scatter(*Pt[yt == lab].T, s=8, color=color, alpha=0.25, lw=0)
            m = ys == lab
            if after:
                size = 28.0 * scaled[m]
                ax.scatter(*Ps[m].T, s=size, color=color, alpha=0.8, marker="^", lw=0)
                zero = m & (scaled <= 1e-9)
                ax.scatter(*Ps[zero].T, s=10, color=color, alpha=0.5, marker="x", lw=0.8)
            else:
                ax.scatter(*Ps[m].T, s=28, color=color, alpha=0.7, marker="^", lw=0)
            ax.scatter(*Pr[yr == lab].T, s=30, color=color, edgecolor="black", lw=0.8, label=lab)
        ax.set_title(
            f"after {method} weights (area ∝ weight, x = weight 0)"
            if after
            else "synthetic before weighting (equal weights)"
        )
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0][0].legend(title="real shots (dots: real test)", fontsize=8, loc="best")
    fig.suptitle(f"seed {seed}: {variant} synthetic set (triangles) vs real data", fontsize=10)
    return _png(fig)


def plot_weights(
    per_seed: Iterable[dict[str, np.ndarray] | None], methods: dict[str, Any]
) -> bytes | None:
    """Distribution of n·w (1 = an equal share) for the learned weightings, all seeds.

    `per_seed` yields each seed's saved arrays (None where a seed has none); None when no
    seed has learned weights; `methods` are the evaluation's method definitions.
    """
    series: dict[str, list[float]] = {}
    for arrays in per_seed:
        if arrays is None:
            continue
        for method in WEIGHTED:
            key = f"w__{method}"
            if key not in arrays:
                continue
            variant = methods[method]["variant"]
            y = arrays[f"y_syn__{variant}"]
            w = arrays[key]
            scaled = equal_shares(w, y)
            for lab in dict.fromkeys(y.tolist()):
                m = y == lab
                if w[m].sum() > 0:
                    series.setdefault(method, []).extend(scaled[m].tolist())
    if not series:
        return None
    fig, axes = _figure(7.5, 3.6)
    ax = axes[0][0]
    top = max(max(v) for v in series.values())
    bins = np.linspace(0.0, max(top, 2.0), 40)
    for method, values in series.items():
        arr = np.asarray(values)
        zero = float(np.mean(arr <= 1e-9))
        ax.hist(
            arr,
            bins=bins,
            histtype="step",
            lw=1.6,
            label=f"{method} ({zero:.0%} at zero, n={arr.size})",
        )
    ax.axvline(1.0, color="#555555", ls="--", lw=1)
    ax.set_xlabel("weight × label's synthetic count (1 = equal share)")
    ax.set_ylabel("synthetic samples")
    ax.set_title("weight distribution over all seeds")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_coverage(coverage: dict[str, Any], k: int) -> bytes | None:
    """Share of real test clusters covered by the demonstrations, round by round."""
    if not coverage:
        return None
    fig, axes = _figure(6.0, 3.6)
    ax = axes[0][0]
    names = {"gp": "ESM (GP)", "random": "random"}
    for kind in ("gp", "random"):
        if kind not in coverage:
            continue
        mean, sd = np.asarray(coverage[kind]["mean"]), np.asarray(coverage[kind]["sd"])
        x = np.arange(1, mean.size + 1)
        ax.plot(x, mean, marker="o", ms=3, label=names[kind])
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    if "all_shots" in coverage:
        ax.axhline(
            coverage["all_shots"]["mean"],
            color="#555555",
            ls="--",
            lw=1,
            label="every real shot shown",
        )
    rounds = max(len(coverage[kind]["mean"]) for kind in ("gp", "random") if kind in coverage)
    ax.set_xticks(np.unique(np.linspace(1, rounds, min(rounds, 12)).round().astype(int)))
    ax.set_xlim(0.5, rounds + 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("round (demonstration clusters per label)")
    ax.set_ylabel(f"test clusters covered (k={k})")
    ax.set_title("demonstration coverage of the real test distribution")
    ax.legend()
    return _png(fig)


def plot_curve(curve: dict[str, Any], real: dict[str, Any], shots: int) -> bytes | None:
    """Macro-F1 against candidates per label, each method's mean with its 95% interval
    of the paired difference to `real` drawn around it; the real shots alone at 0."""
    if not curve:
        return None
    fig, axes = _figure(6.4, 3.8)
    ax = axes[0][0]
    base = 100 * real["mean"]
    colors = {"naive": "#dd8452", "synalign": "#4c72b0"}
    for name, points in curve.items():
        xs = [0] + [p["candidates_per_label"] for p in points.values()]
        ys = [base] + [100 * p["macro_f1"]["mean"] for p in points.values()]
        lo = [base] + [
            base + 100 * (p["vs_real"]["ci_low"] if p["vs_real"]["ci_low"] is not None else 0)
            for p in points.values()
        ]
        hi = [base] + [
            base + 100 * (p["vs_real"]["ci_high"] if p["vs_real"]["ci_high"] is not None else 0)
            for p in points.values()
        ]
        color = colors.get(name)
        ax.plot(xs, ys, marker="o", label=name, color=color)
        ax.fill_between(xs, lo, hi, alpha=0.15, color=color)
    ax.axhline(base, color="#555555", ls="--", lw=1, label="real shots alone")
    ax.set_xscale("symlog", linthresh=max(1, shots))
    budgets = {p["candidates_per_label"] for pts in curve.values() for p in pts.values()}
    ticks = sorted({0, *budgets})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(f"candidate synthetic samples per label ({shots} real shots per label)")
    ax.set_ylabel("macro-F1 %")
    ax.set_title("macro-F1 against the synthetic budget (band: 95% CI of Δ vs real)")
    ax.legend(fontsize=8)
    return _png(fig)
