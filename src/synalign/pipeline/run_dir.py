"""The run directory: the only module that knows its file names and `state.json`'s schema.

config.toml        the resolved config of the last invocation
state.json         per stage: the fingerprint of its inputs, seconds, and its figures
real.jsonl         the real records the run saw (after `data.shots`)
demos.jsonl        demonstration clusters chosen by exploration
attributes.jsonl   the attribute line written for each cluster
synthetic.jsonl    accepted synthetic samples, with provenance
rejected.jsonl     rejected samples, each with its reason
weights.npy        one MMD weight per synthetic sample
align.json         bandwidth, MMD² before and after, effective sample sizes
aligned.jsonl      the resampled set, each row with its weight
report/            metrics.json, and report.html: what the run made, for a person to read
cache/             LLM answers and embeddings, so an interrupted stage repeats nothing
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from synalign.errors import SynAlignError
from synalign.records import Record

STAGES = ("ingest", "explore", "describe", "generate", "align", "report")

OUTPUTS: dict[str, tuple[str, ...]] = {
    "ingest": ("real.jsonl",),
    "explore": ("demos.jsonl",),
    "describe": ("attributes.jsonl",),
    "generate": ("synthetic.jsonl", "rejected.jsonl"),
    "align": ("aligned.jsonl", "weights.npy", "align.json"),
    "report": ("report/metrics.json",),
}

EXPORTABLE = ("aligned", "synthetic")


def digest(obj: Any) -> str:
    """A stable hash of JSON-able inputs: a stage's fingerprint."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """Hash of a file's or a folder's bytes, so an edited input re-runs ingest."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run directory: a second one refuses instead of interleaving writes."""
    path = run_dir / ".lock"
    try:
        handle = path.open("a+")
    except OSError as err:
        raise SynAlignError(
            f"{run_dir}: cannot write in the run directory ({err.strerror}); "
            "check its permissions or choose another `runs_dir`"
        ) from err
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SynAlignError(
                f"{run_dir} is in use by another synalign process (pid {holder}); wait for it "
                "to finish or choose another run `name`"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pair_rows(rows: list[dict[str, Any]], weighted: bool, source: str) -> list[dict[str, Any]]:
    """Query rows as sentence-transformers training pairs: `anchor` (the query) and
    `positive` (its document), plus `weight` when `weighted`."""
    if not rows or "doc_id" not in rows[0]:
        raise SynAlignError(
            f"{source} is not a retrieval run; --pairs (to_pairs() in Python) exports "
            "(query, document) pairs"
        )
    out = []
    for r in rows:
        row = {"anchor": r["text"], "positive": r["document"]}
        if weighted:
            row["weight"] = r["weight"]
        out.append(row)
    return out


class RunDirectory:
    """Reads and writes one run's files; callers name what they want, never a path."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def llm_cache(self) -> Path:
        return self.root / "cache" / "llm.sqlite"

    @property
    def embedding_cache(self) -> Path:
        return self.root / "cache" / "embeddings.sqlite"

    @property
    def corpus_file(self) -> Path:
        """The documents of a retrieval run whose corpus came from memory (the Python API):
        kept beside the run so a resumed run reads, and fingerprints, the same corpus."""
        return self.root / "corpus.jsonl"

    def create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SynAlignError(
                f"{self.root}: cannot create the run directory ({err.strerror}); "
                "choose a writable `runs_dir`"
            ) from err

    def lock(self) -> Any:
        return run_lock(self.root)

    def drop_unfinished_writes(self) -> None:
        """A killed run leaves hidden temporary files; they are never valid outputs."""
        for stale in self.root.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)

    # ----- state ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        p = self.path("state.json")
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def stages(self) -> dict[str, dict[str, Any]]:
        """Each finished stage's record: fingerprint, seconds and the stage's figures."""
        return self.state().get("stages", {})

    def stage(self, name: str) -> dict[str, Any]:
        return self.stages().get(name, {})

    def is_done(self, stage: str, fingerprint: str) -> bool:
        """Finished with these inputs, and its outputs are still there."""
        outputs_exist = all(self.path(o).exists() for o in OUTPUTS[stage])
        return self.stage(stage).get("fingerprint") == fingerprint and outputs_exist

    def record_stage(self, stage: str, info: dict[str, Any]) -> None:
        from synalign.io import atomic_write_text

        state = self.state()
        state.setdefault("stages", {})[stage] = info
        atomic_write_text(self.path("state.json"), json.dumps(state, indent=2, sort_keys=True))

    # ----- stage outputs -------------------------------------------------------------

    def write_config(self, toml: str) -> None:
        from synalign.io import atomic_write_text

        atomic_write_text(self.config_path, toml)

    def config_values(self) -> dict[str, Any]:
        """The resolved config of the last invocation as plain values, for a data card to
        name the settings the data was made with; empty when it is missing or unreadable."""
        if not self.config_path.is_file():
            return {}
        try:
            return tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return {}

    def _write_rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        from synalign.io import write_jsonl

        write_jsonl(self.path(name), rows)

    def _rows(self, name: str) -> list[dict[str, Any]]:
        from synalign.io import read_jsonl

        return read_jsonl(self.path(name))

    def write_real(self, records: list[Record]) -> None:
        self._write_rows("real.jsonl", [r.to_dict() for r in records])

    def real(self) -> list[Record]:
        return [Record.from_dict(r) for r in self._rows("real.jsonl")]

    def write_demos(self, rows: list[dict[str, Any]]) -> None:
        self._write_rows("demos.jsonl", rows)

    def demos(self) -> list[dict[str, Any]]:
        return self._rows("demos.jsonl")

    def write_attributes(self, rows: list[dict[str, Any]]) -> None:
        self._write_rows("attributes.jsonl", rows)

    def attributes(self) -> list[dict[str, Any]]:
        return self._rows("attributes.jsonl")

    @property
    def rejected_path(self) -> Path:
        """Named in messages that send the user to look at every rejected sample."""
        return self.path("rejected.jsonl")

    def write_generated(
        self, accepted: list[dict[str, Any]], rejected: list[dict[str, Any]]
    ) -> None:
        self._write_rows("rejected.jsonl", rejected)
        self._write_rows("synthetic.jsonl", accepted)

    def synthetic(self) -> list[dict[str, Any]]:
        return self._rows("synthetic.jsonl")

    def rejected(self) -> list[dict[str, Any]]:
        return self._rows("rejected.jsonl")

    def write_alignment(
        self, weights: np.ndarray, info: dict[str, Any], aligned: list[dict[str, Any]]
    ) -> None:
        from synalign.io import atomic_write_bytes, atomic_write_text

        buf = io.BytesIO()
        np.save(buf, np.asarray(weights, dtype=np.float64), allow_pickle=False)
        atomic_write_bytes(self.path("weights.npy"), buf.getvalue())
        atomic_write_text(self.path("align.json"), json.dumps(info, indent=2))
        self._write_rows("aligned.jsonl", aligned)

    def weights(self) -> np.ndarray:
        return np.load(self.path("weights.npy"), allow_pickle=False)

    def alignment(self) -> dict[str, Any]:
        return json.loads(self.path("align.json").read_text("utf-8"))

    def aligned(self) -> list[dict[str, Any]]:
        return self._rows("aligned.jsonl")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        from synalign.io import atomic_write_text

        self.path("report").mkdir(exist_ok=True)
        atomic_write_text(self.path("report/metrics.json"), json.dumps(metrics, indent=2))

    def metrics(self) -> dict[str, Any]:
        return json.loads(self.path("report/metrics.json").read_text("utf-8"))

    # ----- the run's report ----------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path("config.toml")

    @property
    def report_path(self) -> Path:
        return self.path("report/report.html")

    def write_report(self, html_text: str) -> Path:
        from synalign.io import atomic_write_text

        self.path("report").mkdir(exist_ok=True)
        atomic_write_text(self.report_path, html_text)
        return self.report_path

    def is_run(self) -> bool:
        """A pipeline run's folder (not an evaluation's): it has a stage record."""
        return self.path("state.json").is_file()

    def contents(self) -> dict[str, Any]:
        """Everything a run's report shows, from whichever stages have finished: the
        config's TOML text, the stage records, and each stage's rows. Weights are left out
        when they no longer match the synthetic set (generate ran again after align)."""

        def rows(name: str) -> list[dict[str, Any]]:
            return self._rows(name) if self.path(name).is_file() else []

        config = self.config_path
        synthetic = rows("synthetic.jsonl")
        done = "align" in self.stages() and self.path("weights.npy").is_file()
        weights = self.weights() if done else None
        if weights is not None and len(weights) != len(synthetic):
            weights = None
        return {
            "root": str(self.root),
            "config_toml": config.read_text("utf-8") if config.is_file() else "",
            "stages": self.stages(),
            "real": rows("real.jsonl"),
            "demos": rows("demos.jsonl"),
            "attributes": rows("attributes.jsonl"),
            "synthetic": synthetic,
            "rejected": rows("rejected.jsonl"),
            "weights": weights,
            "alignment": self.alignment() if weights is not None else None,
        }

    # ----- export --------------------------------------------------------------------

    def export_rows(self, which: str, pairs: bool = False) -> list[dict[str, Any]]:
        """`aligned`: the resampled set; `synthetic`: every accepted sample with its MMD
        weight, for weighted training. A missing or stale file says which stage to run.

        A retrieval run's rows lead with `anchor` (the query) and `positive` (its
        document); `pairs` keeps only those two (and `weight` for `synthetic`), the columns
        sentence-transformers' trainers take."""
        rows = self._export_rows(which)
        if pairs:
            return pair_rows(rows, which == "synthetic", str(self.root))
        if not rows or "doc_id" not in rows[0]:
            return rows
        return [
            {
                "anchor": r["text"],
                "positive": r["document"],
                **{k: v for k, v in r.items() if k not in ("text", "document")},
            }
            for r in rows
        ]

    def _export_rows(self, which: str) -> list[dict[str, Any]]:
        if which not in EXPORTABLE:
            raise SynAlignError(f"`which` {which!r}: choose 'aligned' or 'synthetic'")
        source = self.path(f"{which}.jsonl")
        if not source.is_file():
            raise SynAlignError(
                f"{source}: not found; run the pipeline first (synalign run / demo) "
                "or check the run directory"
            )
        rows = self._rows(f"{which}.jsonl")
        if which == "aligned":
            return rows
        weights_path = self.path("weights.npy")
        if not weights_path.is_file():
            raise SynAlignError(f"{weights_path}: not found; run the align stage first")
        weights = self.weights()
        if len(weights) != len(rows):
            raise SynAlignError(
                f"{weights_path} has {len(weights)} weights for {len(rows)} samples in "
                f"{source}; re-run the align stage"
            )
        return [{**r, "weight": float(w)} for r, w in zip(rows, weights, strict=True)]
