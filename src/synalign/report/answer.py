"""The sentences a report opens with: did `synalign` beat `real` and `naive`, and which
stage or check helped most.

A reader who stops after the title should still leave with the verdict and its
uncertainty, worded by the same rule as the tables: a difference counts only when its
paired 95% interval over seeds lies wholly on one side of 0.
"""

from __future__ import annotations

from typing import Any

from synalign.report.stats import paired_rows

# Ablation row: (the row with the part, the row without it, the part). A `no-*` row is
# `synalign` with one part removed; a lone check is `naive` with one part added.
ABLATIONS: dict[str, tuple[str, str, str]] = {
    "no-esm": ("synalign", "no-esm", "ESM's choice of demonstrations"),
    "no-lar": ("synalign", "no-lar", "the LAR attribute step"),
    "no-check": ("synalign", "no-check", "the label check"),
    "no-sda": ("synalign", "no-sda", "SDA's MMD weighting"),
    "no-floor": ("synalign", "no-floor", "the ESS floor"),
    "roundtrip-check": ("roundtrip-check", "naive", "the round-trip check"),
    "likelihood-check": ("likelihood-check", "naive", "the likelihood check"),
}
# Where a task names a part differently, by `summary["task"]`.
TASK_PARTS: dict[str, dict[str, str]] = {"retrieval": {"no-check": "the query check"}}


def ablation_contributions(
    seeds: list[dict[str, Any]], rows: list[str], metrics: tuple[str, ...]
) -> dict[str, Any]:
    """Per ablation row present: the row with the part minus the row without it, paired
    over the seeds both finished.

    Positive means the part helped, whether it was removed from `synalign` or added alone
    to `naive`, so every ablation ranks on one scale.
    """
    out: dict[str, Any] = {}
    for row in rows:
        if row not in ABLATIONS:
            continue
        with_part, without, _ = ABLATIONS[row]
        if with_part not in rows or without not in rows:
            continue
        paired = paired_rows(seeds, with_part, without, metrics)
        if paired is not None:
            out[row] = {"with": with_part, "without": without, **paired}
    return out


def answer_sentences(
    summary: dict[str, Any], metric: str, label: str, real_name: str | None = None
) -> list[str]:
    """One sentence per comparison of `synalign` with `real` and `naive` on `metric`, then
    one on which stage or check helped most; `label` is the metric's name for readers and
    `real_name` what `real` is in words (the model a user would train without SynAlign,
    e.g. "SetFit on the real shots"), so the first sentence names the bar to beat."""
    sentences = [
        _versus(summary, baseline, metric, label, real_name if baseline == "real" else None)
        for baseline in ("real", "naive")
    ]
    return [*sentences, _helped_most(summary, metric, label)]


def _interval(p: dict[str, Any]) -> str:
    """`(paired 95% interval +0.3 to +3.9 over 5 seeds)`, or why there is none."""
    n = p["seeds"]
    if p.get("ci_low") is None:
        return f"(on {n} seed{'s' if n != 1 else ''}, too few for an interval)"
    level = round(100 * p.get("level", 0.95))
    return (
        f"(paired {level}% interval {100 * p['ci_low']:+.1f} to {100 * p['ci_high']:+.1f} "
        f"over {n} seeds)"
    )


def _side(p: dict[str, Any]) -> int:
    """+1 when the interval is above 0, -1 when below, 0 when it includes 0 or is missing."""
    if p.get("ci_low") is None:
        return 0
    return 1 if p["ci_low"] > 0 else (-1 if p["ci_high"] < 0 else 0)


def _versus(
    summary: dict[str, Any], baseline: str, metric: str, label: str, name: str | None = None
) -> str:
    """`synalign` beat / fell below / was not separated from `baseline`, by how much."""
    methods = summary.get("methods", {})
    missing = [r for r in ("synalign", baseline) if r not in methods]
    if missing:
        rows = " and ".join(f"`{r}`" for r in missing)
        verb = "were" if len(missing) > 1 else "was"
        return f"{rows} {verb} not run, so there is no `synalign` vs `{baseline}` comparison."
    p = summary.get("paired", {}).get(baseline, {}).get("synalign", {}).get(metric)
    if not p or p.get("mean") is None:
        return f"`synalign` and `{baseline}` share no seed, so they cannot be compared."
    side = _side(p)
    size = f"{100 * abs(p['mean']):.1f} points"
    row = f"{name} (`{baseline}`)" if name else f"`{baseline}`"
    if side > 0:
        return f"`synalign` beat {row} on {label} by {size} {_interval(p)}."
    if side < 0:
        return f"`synalign` fell below {row} on {label} by {size} {_interval(p)}."
    return (
        f"`synalign` was not separated from {row} on {label}: "
        f"{100 * p['mean']:+.1f} points {_interval(p)}."
    )


def _helped_most(summary: dict[str, Any], metric: str, label: str) -> str:
    """The ablation whose part made the largest separated gain, or plainly that none did."""
    found = {
        row: c
        for row, c in summary.get("ablations", {}).items()
        if c.get(metric, {}).get("mean") is not None
    }
    if not found:
        return (
            "No ablation rows were run, so this evaluation does not say which stage or "
            "check helped most."
        )
    parts = {row: part for row, (_, _, part) in ABLATIONS.items()}
    parts.update(TASK_PARTS.get(summary.get("task", ""), {}))
    run = "(ablations run: " + ", ".join(f"`{row}`" for row in found) + ")"
    side = {row: _side(c[metric]) for row, c in found.items()}
    mean = {row: c[metric]["mean"] for row, c in found.items()}
    if any(v > 0 for v in side.values()):
        best = max((row for row in found if side[row] > 0), key=mean.__getitem__)
        c, p = found[best], found[best][metric]
        gain = f"{100 * p['mean']:.1f} points of {label} {_interval(p)}"
        how = (
            f"removing it (`{best}`) cost `synalign` {gain}"
            if c["with"] == "synalign"
            else f"adding it alone to `{c['without']}` (`{best}`) gained {gain}"
        )
        return f"Of the ablations run, {parts[best]} helped most: {how}."
    if any(v < 0 for v in side.values()):
        worst = min((row for row in found if side[row] < 0), key=mean.__getitem__)
        return f"No stage or check was separated as helping on {label} {run}; " + _diff(
            found[worst], metric, f"{parts[worst]} hurt"
        )
    # Each ablation is compared with the row it ablates: `synalign`, or `naive` for a lone check.
    compared = (c["without"] if c["with"] == row else c["with"] for row, c in found.items())
    against = " or ".join(f"`{name}`" for name in dict.fromkeys(compared))
    best = max(found, key=mean.__getitem__)
    return f"No ablation was separated from {against} on {label} {run}; " + _diff(
        found[best], metric, f"the largest difference was {parts[best]}"
    )


def _diff(c: dict[str, Any], metric: str, lead: str) -> str:
    """`lead`: `with` minus `without` = +1.0 points (interval)."""
    p = c[metric]
    return (
        f"{lead}: `{c['with']}` minus `{c['without']}` = {100 * p['mean']:+.1f} points "
        f"{_interval(p)}."
    )
