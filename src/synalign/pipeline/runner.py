"""Runs the stages into a run directory, skipping the ones already done.

Each stage records a fingerprint of its inputs and config in `state.json`; a stage whose
fingerprint is unchanged and whose outputs exist is skipped. An interrupted stage is
re-run, and its LLM calls and embeddings come back from the caches under `cache/`.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import CachedEmbedder, Embedder
from synalign.backends.llm.base import LLM
from synalign.backends.llm.cache import CachedLLM
from synalign.backends.llm.factory import check_llm_config
from synalign.config import RunConfig
from synalign.errors import ConfigError, SynAlignError
from synalign.io.toml import to_toml
from synalign.lar.prompts import PromptFamily, TaskSpec
from synalign.pipeline import stages
from synalign.pipeline.components import build_embedder, build_llm, family_for
from synalign.pipeline.run_dir import STAGES, RunDirectory, digest, file_digest
from synalign.pipeline.task import Task, task_of
from synalign.progress import Reporter, SilentReporter
from synalign.records import Record

_WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM}


def _cannot_write(err: OSError | sqlite3.OperationalError) -> bool:
    """A full disk or a read-only folder, which the user can fix; not a bug."""
    if isinstance(err, OSError):
        return err.errno in _WRITE_ERRNOS
    return any(word in str(err) for word in ("full", "readonly", "disk", "unable to open"))


@dataclass
class RunSummary:
    """What a run produced, for the summary table and metrics.json."""

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None


class Pipeline:
    """ESM -> LAR -> SDA over one run directory.

    `records` gives the real data in memory instead of `data.path` / `data.dataset`;
    `llm` and `embedder` replace the configured backends (both still go through the run
    directory's caches, so a re-run repeats no call).
    """

    def __init__(
        self,
        config: RunConfig,
        reporter: Reporter | None = None,
        llm: LLM | None = None,
        embedder: Embedder | None = None,
        records: Sequence[Record] | None = None,
        task: Task | None = None,
        prompts: PromptFamily | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.run_dir = RunDirectory(config.run_dir)
        self.records = None if records is None else list(records)
        self.task = task or task_of(config)
        self._given_llm = llm
        self._given_embedder = embedder
        self._given_prompts = prompts
        self._llm: CachedLLM | None = None
        self._embedder: CachedEmbedder | None = None

    # ----- components (built on first use so skipped stages load nothing) --------------

    @property
    def embedder(self) -> CachedEmbedder:
        if self._embedder is None:
            cache = self.run_dir.embedding_cache
            self._embedder = build_embedder(self.config, cache, self._given_embedder)
        return self._embedder

    @property
    def llm(self) -> CachedLLM:
        if self._llm is None:
            self._llm = build_llm(self.config, self.run_dir.llm_cache, self._given_llm)
        return self._llm

    @property
    def family(self) -> PromptFamily:
        return family_for(self.config, self.llm, self._given_prompts)

    @property
    def spec(self) -> TaskSpec:
        return self.task.spec(self.config)

    def embed(self, texts: list[str], what: str) -> np.ndarray:
        """Embeds in chunks (for the progress bar) taken in order of length, longest first,
        so that every batch holds texts of similar length, as one `encode` call would."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: np.ndarray | None = None
        with self.reporter.task(f"embedding {what}", total=len(texts)) as advance:
            step = max(self.config.embed.batch_size * 16, 1024)
            for start in range(0, len(order), step):
                rows = order[start : start + step]
                vecs = self.embedder.encode([texts[i] for i in rows])
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[rows] = vecs
                advance(len(rows))
        if out is None:
            return np.zeros((0, 384), dtype=np.float32)
        return out

    # ----- running ---------------------------------------------------------------------

    def fingerprint(self, stage: str) -> str:
        """What a stage's outputs depend on: its config sections and the previous stage."""
        c = self.config
        inputs: dict[str, Any] = {"stage": stage, "seed": c.seed}
        if c.task != "classification":
            inputs["task"] = c.task
            inputs["retrieval"] = c.retrieval.model_dump()
        if stage == "ingest":
            inputs["data"] = c.data.model_dump()
            corpus = (
                Path(c.retrieval.corpus) if c.task == "retrieval" and c.retrieval.corpus else None
            )
            if corpus is not None:
                readable = corpus.is_file() or corpus.is_dir()  # a named pipe would block
                inputs["corpus"] = file_digest(corpus) if readable else None
            if self.records is not None:
                inputs["records"] = digest([r.to_dict() for r in self.records])
            elif c.data.path:
                p = Path(c.data.path)
                inputs["file"] = file_digest(p) if p.is_file() or p.is_dir() else None
            return digest(inputs)
        previous = STAGES[STAGES.index(stage) - 1]
        inputs["after"] = self.run_dir.stage(previous).get("fingerprint")
        if stage in ("explore", "align", "report"):
            inputs["embed"] = c.embed.model_dump()
        if stage == "explore":
            inputs["explore"] = c.explore.model_dump()
            if c.task == "classification":
                inputs["clusters_per_label"] = stages.clusters_per_label(self)
        if stage in ("describe", "generate", "report"):
            inputs["generate"] = c.generate.model_dump()
            inputs["llm"] = c.llm.model_dump()
            if self._given_prompts is not None:
                kind = type(self._given_prompts)
                inputs["prompts"] = [
                    kind.__module__,
                    kind.__qualname__,
                    getattr(self._given_prompts, "__dict__", {}),
                ]
        if stage in ("align", "report"):
            inputs["align"] = c.align.model_dump()
        return digest(inputs)

    def run(self, until: str = "report", force: bool = False) -> RunSummary:
        """Run every stage up to `until`, skipping the ones already done."""
        if until not in STAGES:
            raise ConfigError(f"unknown stage {until!r}; choose one of {', '.join(STAGES)}")
        if self._given_llm is None:  # a model file or an endpoint URL that cannot work
            check_llm_config(self.config.llm)
        self.run_dir.check_owned()
        self.run_dir.create()
        with self.run_dir.lock():
            return self._run_locked(until, force)

    def _run_locked(self, until: str, force: bool) -> RunSummary:
        self.run_dir.drop_unfinished_writes()
        self.run_dir.write_config(to_toml(self.config))
        summary = RunSummary(self.run_dir.root)
        rerun = force
        for stage in STAGES[: STAGES.index(until) + 1]:
            fp = self.fingerprint(stage)
            if not rerun and self.run_dir.is_done(stage, fp):
                summary.skipped.append(stage)
                self.reporter.note(f"{stage}: up to date, skipped")
                continue
            # Whatever follows a stage that ran is made again from what it wrote now.
            rerun = True
            start = time.perf_counter()
            try:
                with self._repairing(stage, fp, allow_calls=force):
                    info = (self.task.runner(stage) or stages.RUNNERS[stage])(self) or {}
            except (OSError, sqlite3.OperationalError) as err:
                if not _cannot_write(err):
                    raise
                reason = err.strerror if isinstance(err, OSError) else str(err)
                raise SynAlignError(
                    f"{stage} stage could not write to {self.run_dir.root} ({reason}); free "
                    "space or fix permissions and re-run: finished work and cached LLM answers"
                    " are kept"
                ) from err
            seconds = round(time.perf_counter() - start, 3)
            self.run_dir.record_stage(stage, {"fingerprint": fp, "seconds": seconds, **info})
        if until == "report":
            summary.metrics = self.run_dir.metrics()
        summary.report = self.write_report()
        return summary

    @contextmanager
    def _repairing(self, stage: str, fingerprint: str, allow_calls: bool) -> Iterator[None]:
        """A finished stage whose files were damaged is made again from the response cache
        alone: a repair never pays for an LLM call unless asked to (`force`), and says how
        to ask for it."""
        recorded = self.run_dir.stage(stage).get("fingerprint") == fingerprint
        damaged = self.run_dir.damaged(stage) if recorded and not allow_calls else []
        if not damaged or stage not in ("describe", "generate"):
            if damaged:
                self.reporter.note(f"{stage}: {', '.join(damaged)} changed on disk, made again")
            yield
            return
        files = ", ".join(str(self.run_dir.path(d)) for d in damaged)
        self.llm.cache_only = (
            f"{files} no longer holds what the {stage} stage wrote, and its LLM answers are "
            f"not all in {self.run_dir.llm_cache}; re-run with --force to make them again "
            "(new LLM calls)"
        )
        self.reporter.note(
            f"{stage}: {', '.join(damaged)} changed on disk, made again from the cache"
        )
        try:
            yield
        finally:
            self.llm.cache_only = None

    def write_report(self) -> Path:
        """report/report.html from whatever the run holds now: written at the end of every
        run, whichever stage it stopped at, and by `synalign report RUN_DIR`."""
        from synalign.report.run_report import RunReport

        contents = self.run_dir.contents()
        vectors = None
        if contents["weights"] is not None:  # align embedded both sets: the cache has them
            vectors = (
                self.embed([r["text"] for r in contents["real"]], "real texts"),
                self.embed([r["text"] for r in contents["synthetic"]], "synthetic texts"),
            )
        return self.run_dir.write_report(RunReport().html(contents, vectors))


def rebuild_report(root: str | Path) -> Path:
    """A finished or stopped run's report.html drawn again from its folder (the config it
    last ran with, its rows, its embedding cache), wherever the folder now is."""
    import json

    from synalign.config import load_config

    run_dir = RunDirectory(root)
    folder = run_dir.root.resolve()  # `.` or `..` name no folder of their own
    where = [f"name={json.dumps(folder.name)}", f"runs_dir={json.dumps(str(folder.parent))}"]
    pipeline = Pipeline(load_config(run_dir.config_path, where))
    with run_dir.lock():
        return pipeline.write_report()
