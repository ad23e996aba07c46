"""What is compared: the generation variants and the methods built on them.

A method is one row of the comparison. Methods that share a generation variant share its
one generated set; they differ in which samples they keep and how they weight them, which
the evaluation computes itself, so comparing them costs no extra LLM call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from synalign.config import GenerateConfig, RunConfig
from synalign.errors import ConfigError

VARIANTS: dict[str, tuple[str, bool]] = {
    "gp-attr": ("gp", True),
    "gp-plain": ("gp", False),
    "random-attr": ("random", True),
    "random-plain": ("random", False),
}
"""Generation variant -> (explore.method, generate.attributes)."""

Weighting = Literal["none", "uniform", "mmd", "kmm", "imp"]


@dataclass(frozen=True)
class Method:
    """One row of the comparison: which generated set it uses, which of its samples it
    keeps and how it weights them.

    `changes` are the settings in which the method differs from the configured pipeline
    (`label_check`, `label_check_threshold`, `ess_floor`, `scope`), plus `use`: how the
    weights enter training ("weights": as sample weights; "resample": as the counts of a
    systematic resample of the same size).
    """

    name: str
    variant: str | None
    weighting: Weighting
    changes: tuple[tuple[str, Any], ...] = ()

    def settings(self, config: RunConfig, scorer: bool = True) -> dict[str, Any]:
        """The method's effective settings under a pipeline config; `scorer`: whether the
        LLM exposes token probabilities (what `label_check = "auto"` resolves by)."""
        from synalign.lar.label_check.likelihood import calibration_quantile, label_check_settings

        out: dict[str, Any] = {
            "label_check": config.generate.label_check,
            "label_check_threshold": config.generate.label_check_threshold,
            "label_check_quantile": config.generate.label_check_quantile,
            "ess_floor": config.align.ess_floor,
            "scope": config.align.scope,
            "bandwidth": config.align.bandwidth,
            "use": "weights",
        }
        out.update(dict(self.changes))
        out["label_check_quantile"] = calibration_quantile(
            out["label_check_threshold"], out["label_check_quantile"]
        )
        out["label_check"], out["label_check_threshold"] = label_check_settings(
            out["label_check"], out["label_check_threshold"], scorer
        )
        return out

    def describe(self, config: RunConfig, scorer: bool = True) -> str:
        """What the method trains on besides the real shots, in words."""
        if self.variant is None:
            return "real examples only"
        s = self.settings(config, scorer)
        explore_method, attributes = VARIANTS[self.variant]
        check = {
            "none": "no label check",
            "judge": "label check by the measurement judge (an upper bound, not a method)",
            "llm": f"LLM label check ({s['label_check_threshold']:g})",
            "combined": f"LLM + classifier label check ({s['label_check_threshold']:g})",
        }.get(s["label_check"], f"{s['label_check']} label check ({s['label_check_threshold']:g})")
        if s["label_check_quantile"] is not None and s["label_check"] not in ("none", "judge"):
            check = check.split(" (")[0] + (
                f" (threshold: the {s['label_check_quantile']:g} quantile of the real shots'"
                " out-of-fold scores, per seed)"
            )
        parts = [
            "GP demonstrations" if explore_method == "gp" else "random demonstrations",
            "attribute step" if attributes else "no attribute step",
            check,
        ]
        if self.weighting == "uniform":
            parts.append("equal weights")
        elif self.weighting == "kmm":
            parts.append("kernel mean matching")
        elif self.weighting == "imp":
            parts.append(
                "IMP-Loss weights (real-shot classifier's P(y|x) over the synthetic set's own)"
            )
        else:
            floor = s["ess_floor"]
            parts.append(
                ("joint " if s["scope"] == "joint" else "")
                + "MMD weights"
                + (f" (ESS ≥ {floor:g} n)" if floor else " (no ESS floor)")
            )
        if s["use"] == "resample":
            parts.append("used by resampling")
        return ", ".join(parts)


_DEFAULT_ATTRIBUTES = GenerateConfig.model_fields["attributes"].default
_GP = "gp-attr" if _DEFAULT_ATTRIBUTES else "gp-plain"
_RANDOM = "random-attr" if _DEFAULT_ATTRIBUTES else "random-plain"
_GP_OTHER = "gp-plain" if _DEFAULT_ATTRIBUTES else "gp-attr"
_NO_CHECK = (("label_check", "none"),)

METHODS: tuple[Method, ...] = (
    Method("real", None, "none"),
    Method("naive", "random-plain", "uniform", _NO_CHECK),
    Method("synalign", _GP, "mmd"),
    Method("no-esm", _RANDOM, "mmd"),
    Method("no-lar" if _DEFAULT_ATTRIBUTES else "with-lar", _GP_OTHER, "mmd"),
    Method("no-check", _GP, "mmd", _NO_CHECK),
    Method("llm-check", _GP, "mmd", (("label_check", "llm"),)),
    Method("classifier-check", _GP, "mmd", (("label_check", "classifier"),)),
    Method("knn-check", _GP, "mmd", (("label_check", "knn"),)),
    # The label check's measured fixed threshold instead of one chosen per run.
    Method("fixed-check", _GP, "mmd", (("label_check_quantile", None),)),
    Method("no-sda", _GP, "uniform"),
    Method("no-floor", _GP, "mmd", (("ess_floor", 0.0),)),
    Method("joint", _GP, "mmd", (("scope", "joint"),)),
    Method("resample", _GP, "mmd", (("use", "resample"),)),
    Method("kmm", _GP, "kmm"),
    # IMP-Loss (Kuo et al., ICLR 2025) on the same generated set: its own quality checker
    # takes the place of the label check.
    Method("imp-loss", _GP, "imp", _NO_CHECK),
    # Not a method: the measurement judge as the label check, an upper bound on what a
    # label check can add (needs --judge; it has seen the whole training pool).
    Method("judge-check", _GP, "mmd", (("label_check", "judge"),)),
)
NEEDS_JUDGE = ("judge-check",)
METHOD_NAMES: tuple[str, ...] = tuple(m.name for m in METHODS)
_METHOD = {m.name: m for m in METHODS}

RESERVED_KEYS: dict[str, str] = {
    "name": "use --name",
    "runs_dir": "use --runs-dir",
    "seed": "use --seeds",
    "data.dataset": "use --dataset",
    "data.path": "use --train",
    "data.split": "the train split is always used for shots",
    "data.shots": "use --shots",
    "data.text_column": "use --text-column",
    "data.label_column": "use --label-column",
    "explore.method": "each method sets it",
    "generate.attributes": "each method sets it",
    "generate.samples_per_label": "use --samples-per-label",
}
"""Keys the evaluation sets itself for every pipeline run; `--set` must not override them."""


def asks_scorer(m: Method) -> bool:
    """Whether the method's own change is a label check that needs token probabilities,
    so that a backend without them leaves the method out."""
    from synalign.lar.label_check.likelihood import NEEDS_SCORER

    return dict(m.changes).get("label_check") in NEEDS_SCORER


def method(name: str) -> Method:
    """Look up a method by name; an unknown name lists the valid ones."""
    try:
        return _METHOD[name]
    except KeyError:
        raise ConfigError(
            f"--methods: unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}"
        ) from None


def parse_seeds(text: str) -> list[int]:
    """`3` -> seeds 0, 1, 2; `0,4,7` -> those seeds (a single seed: `7,`)."""
    raw = text.strip()
    try:
        if "," in raw:
            seeds = [int(p) for p in raw.split(",") if p.strip()]
        else:
            count = int(raw)
            if count < 1:
                raise ConfigError(f"--seeds {text!r}: give a positive count or a list like 0,1,2")
            seeds = list(range(count))
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: give a count (3 means seeds 0,1,2) or a comma list like 0,1,2"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: seeds must be a non-empty list without repeats")
    return seeds


def parse_methods(text: str, judge: bool = False) -> list[str]:
    """Comma list of method names, or `all`; `real` is always included (the baseline).

    `all` includes the judge's upper bound (`judge-check`) only with `judge`.
    """
    if text.strip() in ("", "all"):
        return [n for n in METHOD_NAMES if judge or n not in NEEDS_JUDGE]
    asked = {method(p.strip()).name for p in text.split(",") if p.strip()}
    return [name for name in METHOD_NAMES if name in asked or name == "real"]
