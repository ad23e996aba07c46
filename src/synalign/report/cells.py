"""Statistics over seeds as table cells: one format per kind of number, '-' when unmeasured."""

from __future__ import annotations

from typing import Any


def pct(stats: dict[str, Any] | None) -> str:
    """`81.2 ± 1.3`: a share's mean and sd over seeds, in percent."""
    if not stats or stats.get("mean") is None:
        return "-"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['sd']:.1f}"


def num(stats: dict[str, Any] | None, fmt: str = "{:.4f}") -> str:
    """The mean over seeds alone, where the spread would crowd the table."""
    if not stats or stats.get("mean") is None:
        return "-"
    return fmt.format(stats["mean"])


def thresholds(stats: dict[str, Any] | None) -> str:
    """A label check's threshold: one value when fixed, each seed's when chosen per run."""
    values = [v for v in (stats or {}).get("per_seed", []) if v is not None]
    if not values:
        return "-"
    if max(values) - min(values) < 1e-9:
        return f"{values[0]:.2f}"
    return ", ".join(f"{v:.2f}" for v in values)


def format_delta(entry: dict[str, Any] | None) -> str:
    """`+1.2 [+0.3, +2.1] (5/5)`: mean paired difference in points, 95% interval, wins."""
    if not entry or entry.get("mean") is None:
        return "-"
    interval = ""
    if entry.get("ci_low") is not None:
        interval = f" [{100 * entry['ci_low']:+.1f}, {100 * entry['ci_high']:+.1f}]"
    return f"{100 * entry['mean']:+.1f}{interval} ({entry['wins']}/{entry['seeds']})"
