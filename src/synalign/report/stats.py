"""An evaluation's saved results and the statistics over seeds that the report shows.

Nothing here trains or generates: everything is computed from the per-seed results an
evaluation saved, so a report can be rebuilt at any time for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synalign.errors import SynAlignError
from synalign.evaluation.folder import EvaluationFolder

SCORED = (
    "accuracy",
    "macro_f1",
    "mmd2_test",
    "length_w1",
    "kept_rows",
    "check_rejected",
    "judge_agreement_generated",
    "judge_agreement",
    "flips_caught",
    "rejection_precision",
    "mmd2_shots",
    "ess",
    "zero_weight_share",
    "distinct_1",
    "distinct_2",
    "cosine_diversity",
    "synthetic_rows",
    "label_check_threshold",
)
# The scores compared between methods, paired over seeds.
PAIRED_SCORES = ("accuracy", "macro_f1")


@dataclass
class EvaluationResults:
    """What an evaluation folder holds: its settings and one result dict per seed."""

    eval_dir: Path
    info: dict[str, Any]
    seeds: list[dict[str, Any]]
    missing_seeds: list[int] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.info["settings"]

    @property
    def folder(self) -> EvaluationFolder:
        """The folder the results came from, for the arrays the plots need."""
        return EvaluationFolder(self.eval_dir)


def load_results(eval_dir: str | Path) -> EvaluationResults:
    """Read an evaluation folder; a folder that is not one says what to run."""
    folder = EvaluationFolder(eval_dir)
    info = folder.read_info()
    seeds, missing = [], []
    for seed in info["settings"]["seeds"]:
        result = folder.read_seed(seed)
        if result is None:
            missing.append(seed)
        else:
            seeds.append(result)
    if not seeds:
        raise SynAlignError(
            f"{folder.results_dir}: no per-seed results yet; finish the evaluation first "
            "(re-running `synalign evaluate` with the same options resumes it)"
        )
    return EvaluationResults(folder.root, info, seeds, missing)


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean and sample sd of the values that were measured, with every seed's value kept."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "sd": None, "per_seed": values}
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "sd": sd, "per_seed": values}


def paired_stats(deltas: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean paired difference with its two-sided t confidence interval over seeds.

    A method "beats" another only when the whole interval is above zero; with one seed
    there is no interval (None).
    """
    from scipy import stats

    out = {**_stats(deltas), "wins": int(sum(x > 0 for x in deltas)), "seeds": len(deltas)}
    n = len(deltas)
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * out["sd"] / np.sqrt(n)
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    else:
        out["ci_low"] = out["ci_high"] = None
    out["level"] = level
    return out


def summarise(res: EvaluationResults) -> dict[str, Any]:
    """Means and standard deviations over seeds, paired differences to the baselines and
    between each ablation and its full row, generation and coverage."""
    from synalign.evaluation.budget_curve import summarise_curve
    from synalign.report.answer import ablation_contributions

    order = [m for m in res.info["methods"] if all(m in s["methods"] for s in res.seeds)]
    methods = _method_stats(res.seeds, order)
    return {
        "curve": summarise_curve(res.seeds),
        "judge_test_accuracy": res.seeds[0].get("judge_test_accuracy"),
        "methods": methods,
        "paired": paired_to_baselines(res.seeds, order, PAIRED_SCORES),
        "ablations": ablation_contributions(res.seeds, order, PAIRED_SCORES),
        "generation": _generation(res.seeds, res.info.get("variants", {})),
        "coverage": _coverage(res.seeds),
        "test_reference": _test_reference(res.seeds),
    }


def _method_stats(seeds: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """Every scored metric of every method over seeds, plus its mean per-label ESS/n."""
    methods: dict[str, Any] = {}
    for name in order:
        per_seed = [s["methods"][name] for s in seeds]
        entry = {key: _stats([p.get(key) for p in per_seed]) for key in SCORED}
        ratios = []
        for p in per_seed:
            per_label = [e["ess"] / e["n"] for e in p["per_label"].values() if "ess" in e]
            ratios.append(float(np.mean(per_label)) if per_label else None)
        entry["ess_ratio"] = _stats(ratios)
        methods[name] = entry
    return methods


def paired_rows(
    seeds: list[dict[str, Any]], row: str, baseline: str, metrics: tuple[str, ...]
) -> dict[str, Any] | None:
    """Per metric, `row` minus `baseline` paired over the seeds both finished (a seed is
    the unit of replication); None when no seed has both."""
    both = [s["methods"] for s in seeds if row in s["methods"] and baseline in s["methods"]]
    if not both:
        return None
    return {k: paired_stats([m[row][k] - m[baseline][k] for m in both]) for k in metrics}


def paired_to_baselines(
    seeds: list[dict[str, Any]], order: list[str], metrics: tuple[str, ...]
) -> dict[str, Any]:
    """Each row's paired differences to `real` and to `naive`, where those rows ran."""
    paired: dict[str, Any] = {}
    for baseline in ("real", "naive"):
        if baseline not in order:
            continue
        rows = {name: paired_rows(seeds, name, baseline, metrics) for name in order}
        paired[baseline] = {
            name: p for name, p in rows.items() if name != baseline and p is not None
        }
    return paired


def _generation(seeds: list[dict[str, Any]], variants: dict[str, Any]) -> dict[str, Any]:
    """Per generation variant: totals over seeds and the attribute step's averages."""
    generation: dict[str, Any] = {}
    for variant in variants:
        rows = [s["generation"][variant] for s in seeds if variant in s["generation"]]
        if not rows:
            continue
        requests = sum(r.get("llm_requests") or 0 for r in rows)
        new_calls = sum(r.get("llm_calls_when_generated") or 0 for r in rows)
        seconds = sum(r.get("stage_seconds") or 0.0 for r in rows)
        rejected: dict[str, int] = {}
        for r in rows:
            for reason, n in (r.get("rejected") or {}).items():
                rejected[reason] = rejected.get(reason, 0) + n
        attributes: dict[str, dict[str, float]] = {}
        for key in ("tone", "style", "topic"):
            per_seed = [r["attributes"][key] for r in rows if key in (r.get("attributes") or {})]
            if per_seed:
                attributes[key] = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
        generation[variant] = {
            "attributes": attributes,
            "seeds": len(rows),
            "clusters": sum(r.get("clusters") or 0 for r in rows),
            "generated": sum(r.get("generated") or 0 for r in rows),
            "accepted": sum(r.get("accepted") or 0 for r in rows),
            "rejected": rejected,
            "llm_requests": requests,
            "stage_seconds": round(seconds, 1),
            "llm_calls_when_generated": new_calls,
            # Cached answers cost next to nothing, so time is per call actually made.
            "seconds_per_call": round(seconds / new_calls, 3) if new_calls else None,
        }
    return generation


def _coverage(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean coverage curves of ESM and random demonstrations, with the all-shots ceiling."""
    coverage: dict[str, Any] = {}
    for kind in ("gp", "random"):
        curves = [s["coverage"][kind] for s in seeds if s.get("coverage", {}).get(kind)]
        if not curves:
            continue
        length = max(len(c) for c in curves)
        padded = np.asarray([c + [c[-1]] * (length - len(c)) for c in curves])
        coverage[kind] = {
            "mean": padded.mean(axis=0).tolist(),
            "sd": padded.std(axis=0).tolist(),
            "final": _stats([c[-1] for c in curves]),
        }
    ceiling = [s["coverage_all_shots"] for s in seeds if "coverage_all_shots" in s]
    if coverage and ceiling:
        coverage["all_shots"] = _stats(ceiling)
    return coverage


def _test_reference(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Diversity of real test texts, the yardstick for the synthetic sets' diversity."""
    reference = [s.get("test_reference") or {} for s in seeds]
    return {
        key: _stats([r.get(key) for r in reference if key in r])
        for key in ("n", "distinct_1", "distinct_2", "cosine_diversity")
        if any(key in r for r in reference)
    }
