"""An evaluation's settings and the pipeline config they give each (seed, variant) run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synalign.config import GenerateConfig, RunConfig, build_config, parse_override
from synalign.config_paths import check_location
from synalign.errors import ConfigError
from synalign.evaluation.budget_curve import CURVE_METHODS, DEFAULT_MULTIPLES, candidates_for
from synalign.evaluation.folder import EvaluationFolder
from synalign.evaluation.methods import (
    NEEDS_JUDGE,
    RESERVED_KEYS,
    VARIANTS,
    method,
    parse_methods,
)

_DEFAULT_QUANTILE = GenerateConfig.model_fields["label_check_quantile"].default


class EvalConfig(BaseModel):
    """Everything an evaluation needs; saved with its results so a report can be rebuilt."""

    model_config = ConfigDict(extra="forbid")

    name: str = "eval"
    runs_dir: str = "runs"
    dataset: str | None = None
    train_path: str | None = None
    test_path: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    shots: int = Field(16, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    samples_per_label: int = Field(160, gt=0)
    methods: list[str] = Field(default_factory=lambda: parse_methods("all"))
    classifier: Literal["logreg", "finetune", "setfit"] = "logreg"
    C: float = Field(1.0, gt=0)
    finetune_epochs: int = Field(4, gt=0)
    test_per_label: int | None = Field(None, gt=0)
    coverage_clusters: int = Field(10, gt=1)
    judge: bool = False
    validation: bool = False
    curve: list[float] = Field(default_factory=lambda: list(DEFAULT_MULTIPLES))
    overrides: list[str] = Field(default_factory=list)

    @property
    def eval_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def folder(self) -> EvaluationFolder:
        return EvaluationFolder(self.eval_dir)

    def check(self) -> None:
        """Raise ConfigError for inconsistent options, naming the option to change."""
        check_location(self.name, self.runs_dir, self.seeds)
        if self.dataset and (self.text_column, self.label_column) != ("text", "label"):
            raise ConfigError(
                "--text-column and --label-column apply to --train and --test files; the "
                f"bundled dataset {self.dataset[:60]} has its own columns, so leave them out"
            )
        if self.dataset and (self.train_path or self.test_path):
            raise ConfigError("give either --dataset NAME or --train FILE --test FILE, not both")
        if self.validation and self.test_path:
            raise ConfigError(
                "--validation tests on a fifth of --train held out from it; leave out --test"
            )
        if not self.dataset and not (self.train_path and (self.test_path or self.validation)):
            raise ConfigError(
                "no data: give --dataset NAME (see `synalign datasets list`) or both "
                "--train FILE and --test FILE (or --train FILE --validation)"
            )
        for name in self.methods:
            method(name)
            if name in NEEDS_JUDGE and not self.judge:
                raise ConfigError(f"--methods {name}: needs --judge (it uses the judge)")
        for item in self.overrides:
            key = ".".join(parse_override(item)[0])
            if key in RESERVED_KEYS:
                raise ConfigError(
                    f"--set {key}: the evaluation sets this itself ({RESERVED_KEYS[key]})"
                )
        if self.variants():
            from synalign.backends.llm.factory import check_llm_config

            check_llm_config(self.run_config(self.seeds[0]).llm)

    def variants(self) -> list[str]:
        """Generation variants the chosen methods need, in a fixed order."""
        needed = {method(m).variant for m in self.methods}
        return [v for v in VARIANTS if v in needed]

    def curve_variants(self) -> set[str]:
        """Variants the budget curve is drawn for (generated at the curve's largest budget)."""
        if not self.curve:
            return set()
        return {v for m in CURVE_METHODS if m in self.methods if (v := method(m).variant)}

    def generation_budget(self, variant: str | None, samples_per_cluster: int) -> int:
        """Candidates per label a variant is generated with: the curve's largest point for
        a curve variant (smaller budgets are its first clusters), else samples_per_label."""
        if variant not in self.curve_variants():
            return self.samples_per_label
        top = candidates_for(max(self.curve), self.shots, samples_per_cluster)
        return max(self.samples_per_label, top)

    def run_config(self, seed: int, variant: str | None = None) -> RunConfig:
        """The pipeline config of one (seed, variant); the base config when variant is None."""
        data: dict[str, Any] = {
            "shots": self.shots,
            "text_column": self.text_column,
            "label_column": self.label_column,
        }
        if self.dataset:
            data["dataset"] = self.dataset
            if self.validation:
                data["split"] = "pool"
        elif self.validation:
            data.update(
                path=str(self.folder.validation_pool), text_column="text", label_column="label"
            )
        else:
            data["path"] = self.train_path
        base = {
            "name": variant or "base",
            "runs_dir": str(self.folder.runs_dir(seed)),
            "seed": seed,
            "data": data,
            "generate": {"samples_per_label": self.samples_per_label},
        }
        config = build_config(base, self.overrides, source="command-line options")
        g = config.generate
        g.samples_per_label = self.generation_budget(variant, g.samples_per_cluster)
        if variant is not None:
            explore_method, attributes = VARIANTS[variant]
            config.explore.method = explore_method  # type: ignore[assignment]
            config.generate.attributes = attributes
            # The evaluation applies the label check itself, so that one generated set
            # serves the methods with and without it, and a change to the check's settings
            # regenerates nothing.
            config.generate.label_check = "none"
            config.generate.label_check_threshold = None
            config.generate.label_check_quantile = _DEFAULT_QUANTILE
        return config


_OPTION_OF = {"train_path": "--train", "test_path": "--test", "finetune_epochs": "--epochs"}


def load_eval_config(data: dict[str, Any], source: str | None = None) -> EvalConfig:
    """Validate settings; errors name the file and key, or the command-line option."""
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        got = first.get("input")
        if source is None:
            option = _OPTION_OF.get(key, "--" + key.split(".")[0].replace("_", "-"))
            raise ConfigError(f"{option} {got!r}: {first['msg']}") from err
        raise ConfigError(f"{source}: setting '{key}': {first['msg']} (got {got!r})") from err
