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

# Files a run writes besides its stage outputs.
_OWN_FILES = ("state.json", "config.toml", "corpus.jsonl", "report.html")


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


def _only_caches(folder: Path) -> bool:
    """A `cache` folder holding nothing but SQLite caches: what a run (or a caller that
    opened a run's caches first, or copied them in to resume from) leaves before it starts."""
    return folder.is_dir() and all(
        f.is_file() and f.name.startswith(("llm.sqlite", "embeddings.sqlite"))
        for f in folder.iterdir()
    )


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
        """The run's folder, marked as SynAlign's (its lock file) from the start, so that
        what is placed in it before the first stage (a corpus given in memory) is its own."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.path(".lock").touch()
        except OSError as err:
            raise SynAlignError(
                f"{self.root}: cannot create the run directory ({err.strerror}); "
                "choose a writable `runs_dir`"
            ) from err

    def lock(self) -> Any:
        return run_lock(self.root)

    def check_owned(self) -> None:
        """Refuse a folder that holds files but is not a run: a run writes config.toml and
        real.jsonl and clears temporary files, which must never touch a user's folder."""
        if not self.root.is_dir():
            if self.root.exists() or self.root.is_symlink():
                raise SynAlignError(
                    f"{self.root} exists and is not a folder; choose another run `name`"
                )
            return
        if self.path(".lock").is_file() or self.is_run():
            return
        if any(item.name != "cache" or not _only_caches(item) for item in self.root.iterdir()):
            raise SynAlignError(
                f"{self.root} already holds files and is not a synalign run folder; choose "
                "another run `name` or `runs_dir` (synalign writes only into folders it made)"
            )

    def drop_unfinished_writes(self) -> None:
        """A killed run leaves hidden temporary files of its own outputs; they are never
        valid outputs. Only the run's own temporary names are removed, nothing else."""
        own = {*_OWN_FILES, *(Path(o).name for outs in OUTPUTS.values() for o in outs)}
        for folder in (self.root, self.path("report")):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for stale in folder.glob(".*.tmp"):
                base = stale.name[1:].rsplit(".", 2)[0]
                if base in own and stale.is_file() and not stale.is_symlink():
                    stale.unlink(missing_ok=True)

    # ----- state ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """`state.json`, or no state at all when it is unreadable or not of its shape (a
        hand-edited file): then every stage runs again, from the caches."""
        p = self.path("state.json")
        if not p.is_file():
            return {}
        try:
            state = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return {}
        if not isinstance(state, dict) or not isinstance(state.get("stages", {}), dict):
            return {}
        stages = state.get("stages", {})
        state["stages"] = {k: v for k, v in stages.items() if isinstance(v, dict)}
        return state

    def stages(self) -> dict[str, dict[str, Any]]:
        """Each finished stage's record: fingerprint, seconds and the stage's figures."""
        return self.state().get("stages", {})

    def stage(self, name: str) -> dict[str, Any]:
        return self.stages().get(name, {})

    def _sums(self, stage: str) -> dict[str, dict[str, Any]]:
        """Size and sha256 of each of a stage's outputs, as they are now."""
        sums = {}
        for name in OUTPUTS[stage]:
            p = self.path(name)
            if p.is_file():
                with p.open("rb") as fh:
                    sha = hashlib.file_digest(fh, "sha256").hexdigest()  # as sha256sum prints
                sums[name] = {"bytes": p.stat().st_size, "sha256": sha}
        return sums

    def damaged(self, stage: str) -> list[str]:
        """The outputs of a finished stage that are missing or no longer hold what the stage
        wrote (cut, edited, replaced); a stage recorded without checksums is checked only
        for its files being there."""
        recorded = self.stage(stage).get("outputs")
        if not isinstance(recorded, dict):
            return [o for o in OUTPUTS[stage] if not self.path(o).is_file()]
        now = self._sums(stage)
        return [o for o in OUTPUTS[stage] if now.get(o) != recorded.get(o)]

    def is_done(self, stage: str, fingerprint: str) -> bool:
        """Finished with these inputs, and its outputs are still what it wrote."""
        return self.stage(stage).get("fingerprint") == fingerprint and not self.damaged(stage)

    def record_stage(self, stage: str, info: dict[str, Any]) -> None:
        """A finished stage: its record, with the checksums of the outputs it wrote."""
        from synalign.io import atomic_write_text

        state = self.state()
        state.setdefault("stages", {})[stage] = {**info, "outputs": self._sums(stage)}
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

    def _damaged_file(self, name: str, reason: str) -> SynAlignError:
        return SynAlignError(
            f"{self.path(name)} is damaged ({reason}); run `synalign run {self.root}` to make "
            "it again from the cache (no new LLM calls)"
        )

    def real(self) -> list[Record]:
        try:
            return [Record.from_dict(r) for r in self._rows("real.jsonl")]
        except (KeyError, TypeError, AttributeError) as err:
            raise self._damaged_file("real.jsonl", f"a row lacks {err}") from None

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
        try:
            weights = np.load(self.path("weights.npy"), allow_pickle=False)
        except (ValueError, EOFError, OSError) as err:
            raise self._damaged_file("weights.npy", str(err).split("\n")[0][:80]) from None
        if weights.ndim != 1 or weights.dtype.kind != "f":
            raise self._damaged_file("weights.npy", f"{weights.shape} {weights.dtype}")
        return weights

    def _json(self, name: str) -> dict[str, Any]:
        try:
            value = json.loads(self.path(name).read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise self._damaged_file(name, "not JSON") from err
        if not isinstance(value, dict):
            raise self._damaged_file(name, "not a JSON object")
        return value

    def alignment(self) -> dict[str, Any]:
        return self._json("align.json")

    def aligned(self) -> list[dict[str, Any]]:
        return self._rows("aligned.jsonl")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        from synalign.io import atomic_write_text

        self._report_folder()
        atomic_write_text(self.path("report/metrics.json"), json.dumps(metrics, indent=2))

    def metrics(self) -> dict[str, Any]:
        return self._json("report/metrics.json")

    # ----- the run's report ----------------------------------------------------------

    def _report_folder(self) -> None:
        folder = self.path("report")
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise SynAlignError(
                f"{folder} is a file, where the run keeps its report folder; move or rename "
                "that file and re-run (synalign does not delete files it did not write)"
            )
        folder.mkdir(exist_ok=True)

    @property
    def config_path(self) -> Path:
        return self.path("config.toml")

    @property
    def report_path(self) -> Path:
        return self.path("report/report.html")

    def write_report(self, html_text: str) -> Path:
        from synalign.io import atomic_write_text

        self._report_folder()
        atomic_write_text(self.report_path, html_text)
        return self.report_path

    def is_run(self) -> bool:
        """A pipeline run's folder (not an evaluation's, nor a datasets folder, which has a
        state.json of its own): it has a stage record and its config or lock."""
        has_own = self.config_path.is_file() or self.path(".lock").is_file()
        return self.path("state.json").is_file() and has_own

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
