"""What a retrieval evaluation compares and with which settings.

Every row trains the same bundled bi-encoder with the same fixed hyperparameters on the
same K real pairs (drawn per seed), plus a synthetic set; rows differ only in how the set
was made, checked and weighted. Test queries are real held-out queries, searched against
the whole corpus; no synthetic query is written for a document a test query points to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synalign.config import RunConfig, build_config
from synalign.config_paths import check_location
from synalign.errors import ConfigError
from synalign.evaluation.folder import EvaluationFolder
from synalign.evaluation.methods import VARIANTS

Check = Literal["default", "none", "roundtrip", "likelihood"]


@dataclass(frozen=True)
class RetrievalMethod:
    """One row: `variant` is the generated set it uses (None: no synthetic data), `check`
    the query check applied to it (`default`: the pipeline's), `weighting` how its kept
    queries are weighted; `trains`: whether the bi-encoder is fine-tuned at all."""

    name: str
    variant: str | None
    check: Check = "default"
    weighting: Literal["mmd", "uniform"] = "mmd"
    trains: bool = True
    description: str = ""


RETRIEVAL_METHODS: tuple[RetrievalMethod, ...] = (
    RetrievalMethod("zero-shot", None, trains=False, description="the bundled embedder as is"),
    RetrievalMethod("bm25", None, trains=False, description="BM25 (bm25s), no training"),
    RetrievalMethod("real", None, description="fine-tuned on the K real pairs only"),
    RetrievalMethod(
        "naive",
        "random-plain",
        "none",
        "uniform",
        description="+ queries from random demonstrations, no attribute step, no check, "
        "equal weights (InPars' plain recipe)",
    ),
    RetrievalMethod(
        "synalign",
        "gp-attr",
        description="+ GP demonstrations and documents, attribute step, the query check, "
        "MMD weights",
    ),
    RetrievalMethod(
        "no-esm", "random-attr", description="synalign with random demonstrations and documents"
    ),
    RetrievalMethod("no-lar", "gp-plain", description="synalign without the attribute step"),
    RetrievalMethod("no-check", "gp-attr", "none", description="synalign without the query check"),
    RetrievalMethod(
        "no-sda", "gp-attr", weighting="uniform", description="synalign with equal weights"
    ),
    RetrievalMethod(
        "roundtrip-check",
        "random-plain",
        "roundtrip",
        "uniform",
        description="naive + the round-trip check alone (Promptagator's filter)",
    ),
    RetrievalMethod(
        "likelihood-check",
        "random-plain",
        "likelihood",
        "uniform",
        description="naive + the likelihood check alone (InPars' filter)",
    ),
)
RETRIEVAL_METHOD_NAMES = tuple(m.name for m in RETRIEVAL_METHODS)
_BY_NAME = {m.name: m for m in RETRIEVAL_METHODS}
METRICS = ("mrr@10", "ndcg@10", "recall@1", "recall@10")


def retrieval_method(name: str) -> RetrievalMethod:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"--methods: unknown retrieval method {name!r}; choose from "
            f"{', '.join(RETRIEVAL_METHOD_NAMES)}"
        ) from None


def parse_retrieval_methods(text: str) -> list[str]:
    """Comma list or `all`; `real` is always included (the baseline)."""
    if text.strip() in ("", "all"):
        return list(RETRIEVAL_METHOD_NAMES)
    asked = {retrieval_method(p.strip()).name for p in text.split(",") if p.strip()}
    return [n for n in RETRIEVAL_METHOD_NAMES if n in asked or n == "real"]


@dataclass
class RetrievalEvalConfig:
    """A retrieval evaluation: the data (a bundled corpus, or corpus + train + test
    files), the seeds, the methods and the fixed fine-tuning settings."""

    name: str = "retrieval"
    runs_dir: str = "runs"
    dataset: str | None = None
    corpus: str | None = None
    train: str | None = None
    test: str | None = None
    id_column: str = "id"
    document_column: str = "text"
    query_column: str = "query"
    doc_id_column: str = "doc_id"
    shots: int = 32
    seeds: list[int] = field(default_factory=lambda: list(range(5)))
    queries: int = 160
    methods: list[str] = field(default_factory=lambda: list(RETRIEVAL_METHOD_NAMES))
    overrides: list[str] = field(default_factory=list)
    max_test: int | None = None
    validation: bool = False
    # Every trained row takes the same number of updates (batch 32, lr 2e-5), fixed in
    # advance: more pairs must help by what they teach, not by more training steps.
    fine_tune: dict[str, Any] = field(default_factory=lambda: {"steps": 12})

    @property
    def eval_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def folder(self) -> EvaluationFolder:
        return EvaluationFolder(self.eval_dir)

    def check(self) -> None:
        check_location(self.name, self.runs_dir, self.seeds)
        if self.dataset and (self.corpus or self.train or self.test):
            raise ConfigError("give either --dataset or --corpus with --train and --test, not both")
        if not self.dataset and not (self.corpus and self.train and self.test):
            raise ConfigError(
                "--task retrieval needs --dataset (see `synalign datasets list`) or all of "
                "--corpus, --train and --test"
            )
        if self.shots < 1:
            raise ConfigError(f"--shots {self.shots}: give a positive number of real pairs")

    def variants(self) -> list[str]:
        """The generated sets the chosen methods need, in a fixed order."""
        wanted = {retrieval_method(n).variant for n in self.methods}
        return [v for v in VARIANTS if v in wanted]

    def default_check(self) -> str:
        """The query check the pipeline would run with this evaluation's settings: what the
        `synalign` row and the ablations that keep the check use."""
        return self.run_config(self.seeds[0], keep_check=True).retrieval.check

    def run_config(
        self, seed: int, variant: str | None = None, keep_check: bool = False
    ) -> RunConfig:
        """The pipeline config of one seed's generated set: no query check (each row
        applies its own), the variant's exploration and attribute step."""
        data: dict[str, Any] = {"shots": self.shots}
        retrieval: dict[str, Any] = {
            "queries": self.queries,
            "query_column": self.query_column,
            "doc_id_column": self.doc_id_column,
        }
        if self.dataset:
            data.update(dataset=self.dataset, split="pool" if self.validation else "train")
        else:
            data["path"] = str(self.folder.validation_pool if self.validation else self.train)
            retrieval.update(
                corpus=str(self.folder.corpus_without_test),
                id_column="id",
                document_column="text",
            )
        raw: dict[str, Any] = {
            "name": variant or "none",
            "runs_dir": str(self.folder.runs_dir(seed)),
            "seed": seed,
            "task": "retrieval",
            "data": data,
            "retrieval": retrieval,
        }
        config = build_config(raw, self.overrides, source="command-line options")
        updates: dict[str, Any] = {} if keep_check else {"check": "none"}
        if variant is not None:
            explore_method, attributes = VARIANTS[variant]
            config.explore.method = explore_method  # type: ignore[assignment]
            config.generate.attributes = attributes
        for key, value in updates.items():
            setattr(config.retrieval, key, value)
        return config
