"""The method from Python: real data in memory in, a weighted synthetic set out.

    from synalign import SynAlign
    result = SynAlign(samples_per_label=50, shots=16).generate(df)
    result.to_pandas()

    # queries for a retriever: (query, doc_id) pairs and the corpus (id, text)
    result = SynAlign(task="retrieval", shots=32, queries=200).generate(pairs, corpus=docs)
    result.to_pairs()  # anchor, positive, weight: what sentence-transformers trains on

The estimator runs the same pipeline as `synalign run`; with `run_dir` the run is
resumable exactly like the command line's, without it the files live in a temporary
folder that is gone when `generate` returns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel
from sklearn.base import BaseEstimator

from synalign.backends.llm.base import LLM
from synalign.config import RunConfig, build_config
from synalign.errors import ConfigError
from synalign.lar.prompts import PromptFamily
from synalign.progress import Reporter
from synalign.records import Record

if TYPE_CHECKING:
    from synalign.pipeline.retrieval import RetrievalTask
    from synalign.report.data_card import RunFacts

BUNDLED = "bundled"


@dataclass
class SynAlignResult:
    """A run's synthetic set: every accepted sample with its MMD weight and provenance
    (demonstration ids and texts, attributes, model, seed), the resampled set, the
    rejected samples with their reasons, and the run's summary figures."""

    samples: list[dict[str, Any]]
    weights: np.ndarray
    aligned: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    skipped: list[str] = field(default_factory=list)
    """Stages found up to date in `run_dir` and not run again."""
    facts: RunFacts | None = field(default=None, repr=False)
    """What the data card says about the run, read before its directory can go away."""
    report: Path | None = None
    """The run's report.html (samples, attributes, rejections, weights, plots); None when
    the run's files were temporary."""

    def to_records(self, which: str = "samples") -> list[dict[str, Any]]:
        """`samples` (each with its `weight`, for weighted training) or `aligned` (the
        set resampled by weight)."""
        if which == "aligned":
            return [dict(r) for r in self.aligned]
        if which != "samples":
            raise ValueError(f"which={which!r}: choose 'samples' or 'aligned'")
        return [{**r, "weight": float(w)} for r, w in zip(self.samples, self.weights, strict=True)]

    def to_pairs(self, which: str = "samples") -> list[dict[str, Any]]:
        """A retrieval run's queries as (anchor, positive) pairs, with `weight` for
        `samples`: the columns sentence-transformers' trainers take."""
        from synalign.pipeline.run_export import pair_rows

        return pair_rows(self.to_records(which), which == "samples", "this result")

    def to_pandas(self, which: str = "samples") -> Any:
        import pandas as pd

        return pd.DataFrame(self.to_records(which))

    def data_card(self, which: str = "samples") -> str:
        """The Markdown data card `synalign export` writes beside the same rows: how they
        were made, filtered and weighted, and what they are for."""
        from synalign.report.data_card import data_card

        if self.facts is None:
            raise ValueError("this result holds no run facts; build it with SynAlign.generate")
        exported = "synthetic" if which == "samples" else which
        return data_card(self.facts, self.to_records(which), exported)

    def to_hf(self, which: str = "samples") -> Any:
        """A Hugging Face `datasets.Dataset`; its `info.description` is the data card."""
        from datasets import Dataset, DatasetInfo

        frame = self.to_pandas(which)
        info = DatasetInfo(description=self.data_card(which)) if self.facts else None
        return Dataset.from_pandas(frame, info=info, preserve_index=False)


def _rows_of(data: Any) -> list[dict[str, Any]]:
    """Rows of a pandas DataFrame, a Hugging Face Dataset or an iterable of mappings."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return list(data.to_dict(orient="records"))
    if hasattr(data, "column_names") and hasattr(data, "to_list"):  # datasets.Dataset
        return list(data.to_list())
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        rows = list(data)
        for i, row in enumerate(rows):
            if isinstance(row, Record):
                rows[i] = row.to_dict()
            elif not isinstance(row, Mapping):
                raise ConfigError(
                    f"real data row {i}: a {type(row).__name__}, not a mapping; give a list "
                    "of dicts, a pandas DataFrame or a Hugging Face Dataset"
                )
        return [dict(r) for r in rows]
    raise ConfigError(
        f"real data of type {type(data).__name__}: give a list of dicts, a pandas "
        "DataFrame or a Hugging Face Dataset"
    )


def _settings_dict(settings: Any) -> dict[str, Any]:
    """`settings` as config data; a section given anything but a mapping is a mistake that
    would otherwise surface as a TypeError once the parameters are merged into it."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"settings {type(settings).__name__}: give a mapping of config keys, e.g. "
            '{"generate": {"attributes": False}}'
        )
    sections = {n for n, f in RunConfig.model_fields.items() if _is_section(f.annotation)}
    for key, value in settings.items():
        if key in sections and not isinstance(value, Mapping):
            raise ConfigError(
                f"settings[{key!r}] = {str(value)[:60]!r}: [{key}] is a section; give it a "
                f'mapping of its keys, e.g. {{"{key}": {{...}}}}'
            )
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in settings.items()}


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class SynAlign(BaseEstimator):
    """Few-shot synthetic data that follows the real data's distribution.

    `llm`: "bundled" (the packaged Gemma model through llama.cpp), a GGUF file path, an
    OpenAI-compatible endpoint URL (with `model`), or any object with the LLM protocol.
    `prompts`: a prompt family object (the prompt and parse methods of
    `synalign.lar.prompts.PromptFamily`) to use instead of the built-in ones.
    `settings`: further config keys, e.g. {"generate": {"attributes": False}}.
    `task`: "classification" (labelled texts) or "retrieval" (queries for the documents
    of a corpus given to `generate`; real data are (query, doc_id) pairs, columns as in
    the `retrieval` config section; `queries` documents get one query each).
    """

    def __init__(
        self,
        llm: Any = BUNDLED,
        model: str | None = None,
        samples_per_label: int = 50,
        shots: int | None = None,
        seed: int = 0,
        run_dir: str | Path | None = None,
        text_column: str = "text",
        label_column: str = "label",
        item_name: str | None = None,
        label_descriptions: dict[str, str] | None = None,
        prompts: PromptFamily | None = None,
        settings: dict[str, Any] | None = None,
        reporter: Reporter | None = None,
        task: str = "classification",
        queries: int | None = None,
    ) -> None:
        self.llm = llm
        self.model = model
        self.samples_per_label = samples_per_label
        self.shots = shots
        self.seed = seed
        self.run_dir = run_dir
        self.text_column = text_column
        self.label_column = label_column
        self.item_name = item_name
        self.label_descriptions = label_descriptions
        self.prompts = prompts
        self.settings = settings
        self.reporter = reporter
        self.task = task
        self.queries = queries

    def _llm_settings(self) -> dict[str, Any]:
        if self.llm is None or (isinstance(self.llm, str) and self.llm == BUNDLED):
            return {}
        if not isinstance(self.llm, str | Path):
            if not isinstance(self.llm, LLM):
                members = ("backend", "model", "has_chat_template", "stream")
                missing = [m for m in members if not hasattr(self.llm, m)]
                raise ConfigError(
                    f"llm: a {type(self.llm).__name__} is not an LLM (it lacks "
                    f"{', '.join(missing) or 'a member of synalign.backends.llm.base.LLM'}); "
                    "give 'bundled', a GGUF path, an endpoint URL or an LLM backend"
                )
            return {}
        target = str(self.llm)
        if target.startswith(("http://", "https://")):
            return {"backend": "openai", "base_url": target, "model": self.model}
        return {"backend": "llamacpp", "model_path": target}

    def config(self, run_dir: str | Path) -> RunConfig:
        """The run config these parameters make, for a run in `run_dir`."""
        root = Path(run_dir)
        data = _settings_dict(self.settings)
        data.setdefault("data", {}).update(
            {k: v for k, v in (("shots", self.shots), ("item_name", self.item_name)) if v}
        )
        if self.label_descriptions:
            data["data"]["label_descriptions"] = dict(self.label_descriptions)
        data.setdefault("llm", {}).update(self._llm_settings())
        data.setdefault("generate", {})["samples_per_label"] = self.samples_per_label
        if self.task == "retrieval" and self.queries:
            data.setdefault("retrieval", {})["queries"] = self.queries
        data.update(
            {"seed": self.seed, "name": root.name, "runs_dir": str(root.parent), "task": self.task}
        )
        return build_config(data, source="SynAlign settings")

    def fit(self, X: Any, y: Any = None) -> SynAlign:
        """Generate for the real data `X`; the result is `result_`."""
        self.result_ = self.generate(X)
        return self

    def generate(self, data: Any, corpus: Any = None) -> SynAlignResult:
        """Run exploration, attribute reasoning and alignment on real labelled data (for
        `task="retrieval"`: on real pairs, writing queries for `corpus`'s documents)."""
        if self.task not in ("classification", "retrieval"):
            raise ConfigError(f"task={self.task!r}: choose 'classification' or 'retrieval'")
        if corpus is not None and self.task != "retrieval":
            raise ConfigError("corpus= is for task='retrieval'; a classifier's data has none")
        if self.run_dir is not None:
            return self._generate(data, corpus, Path(self.run_dir))
        with tempfile.TemporaryDirectory(prefix="synalign-") as tmp:
            result = self._generate(data, corpus, Path(tmp) / "run")
            result.run_dir = result.report = None
            return result

    def _generate(self, data: Any, corpus: Any, root: Path) -> SynAlignResult:
        from synalign.io import records_from_rows

        config = self.config(root)
        if self.task == "classification":
            records = records_from_rows(
                _rows_of(data), "real data", self.text_column, self.label_column, dedupe=True
            )
            return self._run(config, records.records, records.warnings, root)
        from synalign.pipeline.retrieval import RetrievalTask

        task = RetrievalTask()
        pairs, warnings = self._pairs(config, task, data, corpus)
        return self._run(config, pairs, warnings, root, task)

    def _pairs(
        self, config: RunConfig, task: RetrievalTask, data: Any, corpus: Any
    ) -> tuple[list[Record], list[str]]:
        """The real pairs, checked against the corpus the task reads (once, for the whole
        run); a corpus given in memory is written into the run directory and the config
        points at it."""
        from synalign.io import write_jsonl
        from synalign.io.retrieval import corpus_from_rows, pairs_from_rows
        from synalign.pipeline.run_dir import RunDirectory

        r = config.retrieval
        warnings: list[str] = []
        if corpus is not None:
            docs, warnings = corpus_from_rows(
                _rows_of(corpus), "corpus", r.id_column, r.document_column
            )
            run = RunDirectory(config.run_dir)
            run.check_owned()
            run.create()
            documents = zip(docs.ids, docs.texts, strict=True)
            write_jsonl(run.corpus_file, ({"id": i, "text": t} for i, t in documents))
            r.corpus, r.id_column, r.document_column = str(run.corpus_file), "id", "text"
        elif not (r.corpus or config.data.dataset):
            raise ConfigError(
                "task='retrieval' needs the documents: generate(pairs, corpus=rows with "
                f"{r.id_column!r} and {r.document_column!r}), or settings "
                "{'retrieval': {'corpus': FILE}}"
            )
        pairs, more = pairs_from_rows(
            _rows_of(data), "real pairs", task.corpus(config), r.query_column, r.doc_id_column
        )
        return pairs, warnings + more

    def _run(
        self,
        config: RunConfig,
        records: list[Record],
        warnings: list[str],
        root: Path,
        task: Any = None,
    ) -> SynAlignResult:
        from synalign.pipeline import Pipeline
        from synalign.report.card_files import run_facts

        given = self.llm if isinstance(self.llm, LLM) else None
        pipe = Pipeline(
            config,
            reporter=self.reporter,
            llm=given,
            records=records,
            task=task,
            prompts=self.prompts,
        )
        for w in warnings:
            pipe.reporter.warning(w)
        summary = pipe.run()
        run = pipe.run_dir
        return SynAlignResult(
            samples=run.synthetic(),
            weights=run.weights(),
            aligned=run.aligned(),
            rejected=run.rejected(),
            summary=summary.metrics,
            run_dir=root,
            skipped=list(summary.skipped),
            facts=run_facts(run),
            report=summary.report,
        )
