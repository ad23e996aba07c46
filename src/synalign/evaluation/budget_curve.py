"""How much synthetic data to make: macro-F1 against the synthetic budget.

A curve point is a budget of candidate samples per label, a multiple of the real shots
per label (0 is the real shots alone). The evaluation generates each curve method's
variant once, at the largest budget, and a smaller budget is the same run cut after each
label's first demonstration clusters: the exploration picks clusters one after another
and every cluster is generated and filtered in order, so the cut is a run at that budget
(up to the sampling seeds, which follow the cluster numbers), and every point of the
curve shares one cached generation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from synalign.lar.label_check.embedding import LabelCheck

# Multiples of the real shots per label; the methods the curve is drawn for.
DEFAULT_MULTIPLES: tuple[float, ...] = (1.0, 3.0, 10.0)
CURVE_METHODS: tuple[str, ...] = ("naive", "synalign")


def parse_multiples(text: str) -> list[float]:
    """`1,3,10` -> [1.0, 3.0, 10.0]; `none` or an empty text -> no curve."""
    from synalign.errors import ConfigError

    raw = text.strip().lower()
    if raw in ("", "none", "0"):
        return []
    try:
        values = sorted({float(p) for p in raw.split(",") if p.strip()})
    except ValueError:
        raise ConfigError(
            f"--curve {text!r}: give multiples of --shots like 1,3,10, or 'none'"
        ) from None
    if any(v <= 0 for v in values):
        raise ConfigError(f"--curve {text!r}: multiples must be positive (0 is always drawn)")
    return values


def candidates_for(multiple: float, shots: int, samples_per_cluster: int) -> int:
    """Candidate samples per label of a curve point: whole demonstration clusters."""
    return clusters_for(round(multiple * shots), samples_per_cluster) * samples_per_cluster


def clusters_for(candidates: int, samples_per_cluster: int) -> int:
    """Demonstration clusters per label a run writing `candidates` per label uses."""
    return max(1, math.ceil(candidates / samples_per_cluster))


def first_clusters(demos: Sequence[dict[str, Any]], per_label: int) -> set[int]:
    """The indexes of each label's first `per_label` demonstration clusters."""
    by_label: dict[Hashable, list[int]] = defaultdict(list)
    for row in demos:
        by_label[row["label"]].append(int(row["cluster"]))
    return {i for indexes in by_label.values() for i in sorted(indexes)[:per_label]}


def prefix_mask(
    rows: Sequence[dict[str, Any]], demos: Sequence[dict[str, Any]], per_label: int
) -> np.ndarray:
    """Which generated rows come from each label's first `per_label` clusters."""
    keep = first_clusters(demos, per_label)
    return np.asarray([int(r["cluster"]) in keep for r in rows], dtype=bool)


def subset_check(check: LabelCheck, mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label check's keep decisions for the rows in `mask`. A judge scores each sample
    on its own, so only the rule that a label never loses every sample is re-applied."""
    keep = check.keep[mask].copy()
    sub = labels[mask]
    for label in set(sub.tolist()):
        rows = sub == label
        if not keep[rows].any():
            keep[rows] = True
    return keep


def point_cost(stats: dict[str, Any], clusters: int) -> dict[str, float | None]:
    """LLM requests and generation seconds of a curve point: the variant's measured
    totals in proportion to its share of the demonstration clusters (each cluster costs
    the same number of requests). Seconds are unknown (None) when the stages last ran
    from the response cache: their time is not what generating cost."""
    total = stats.get("clusters") or 0
    if not total:
        return {"llm_requests": None, "seconds": None}
    share = min(1.0, clusters / total)
    requests = stats.get("llm_requests")
    made = stats.get("llm_calls_when_generated")
    return {
        "llm_requests": None if requests is None else round(requests * share),
        "seconds": round(float(stats.get("stage_seconds") or 0.0) * share, 2) if made else None,
    }


def summarise_curve(seeds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per method and budget: macro-F1 over seeds, the paired difference to `real`, and
    the cost; {} when the evaluation drew no curve."""
    from synalign.report.stats import _stats, paired_stats

    if not seeds or not all(s.get("curve") for s in seeds):
        return {}
    real = [s["methods"]["real"]["macro_f1"] for s in seeds]
    out: dict[str, Any] = {}
    for name in seeds[0]["curve"]:
        points: dict[str, Any] = {}
        for key in seeds[0]["curve"][name]:
            per_seed = [s["curve"][name][key] for s in seeds if key in s["curve"].get(name, {})]
            if len(per_seed) != len(seeds):
                continue
            f1 = [p["macro_f1"] for p in per_seed]
            requests = [p.get("llm_requests") for p in per_seed]
            seconds = [p.get("seconds") for p in per_seed]
            points[key] = {
                "multiple": float(key),
                "candidates_per_label": per_seed[0]["candidates_per_label"],
                "kept_rows": _stats([p["kept_rows"] for p in per_seed]),
                "macro_f1": _stats(f1),
                "accuracy": _stats([p["accuracy"] for p in per_seed]),
                "vs_real": paired_stats([a - b for a, b in zip(f1, real, strict=True)]),
                "llm_requests": None if None in requests else int(sum(requests)),
                "minutes": None if None in seconds else round(sum(seconds) / 60, 1),
            }
        out[name] = points
    return out
