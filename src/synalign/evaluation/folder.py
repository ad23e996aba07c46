"""The evaluation folder's layout: the only module that knows its file names.

evaluation.json            settings, resolved pipeline config, package versions
validation-pool.jsonl      the training pool when held-out texts come from it
corpus-without-test.jsonl  retrieval: the corpus its pipeline runs see (from files)
seed-S/VARIANT/            a pipeline run directory (stages up to generate)
results/seed-S.json        every metric of seed S
results/seed-S.npz         embeddings and weights the plots need
results/test-sample.npz    a fixed sample of test embeddings for the projection plot
cache/                     embeddings and the LLM's label scores
report/                    metrics.json, report.md, report.html, PNG plots
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synalign.errors import SynAlignError


def text_array(values: Sequence[str]) -> np.ndarray:
    """Strings as a numpy array that `np.load(allow_pickle=False)` reads back."""
    return np.asarray(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


class EvaluationFolder:
    """Reads and writes an evaluation's files; callers name what they want, not paths."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def info_path(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def corpus_without_test(self) -> Path:
        """A retrieval evaluation's corpus minus the documents only test queries point to:
        what its pipeline runs write queries for."""
        return self.root / "corpus-without-test.jsonl"

    @property
    def validation_pool(self) -> Path:
        return self.root / "validation-pool.jsonl"

    def runs_dir(self, seed: int) -> Path:
        """Parent of the seed's pipeline run directories (one per generated variant)."""
        return self.root / f"seed-{seed}"

    def cache(self, name: str) -> Path:
        return self.root / "cache" / name

    def check_owned(self) -> None:
        """Refuse a folder that holds files but is not an evaluation: an evaluation writes
        and replaces files in its folder, which must never be a user's own."""
        from synalign.errors import SynAlignError

        if self.root.exists() and not self.root.is_dir():
            raise SynAlignError(f"{self.root} exists and is not a folder; choose another `name`")
        if not self.root.is_dir() or (self.root / ".lock").is_file():
            return
        if self.info_path.is_file() or self.results_dir.is_dir():
            return
        files = [p for p in self.root.rglob("*") if not p.is_dir()]
        if files and all(p.parent.name == "cache" and ".sqlite" in p.name for p in files):
            return  # caches copied in from another evaluation: resumed, never replaced
        if any(self.root.iterdir()):
            raise SynAlignError(
                f"{self.root} already holds files and is not a synalign evaluation folder; "
                "choose another `name` or `runs_dir` (synalign writes only into folders it made)"
            )

    def prepare(self) -> None:
        self.results_dir.mkdir(parents=True, exist_ok=True)

    # ----- writing -------------------------------------------------------------------

    def write_info(self, info: dict[str, Any]) -> None:
        from synalign.io import atomic_write_text

        atomic_write_text(self.info_path, json.dumps(info, indent=2))

    def write_seed(self, seed: int, result: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        from synalign.io import atomic_write_text

        atomic_write_text(self.results_dir / f"seed-{seed}.json", json.dumps(result, indent=2))
        self._save_npz(self.results_dir / f"seed-{seed}.npz", arrays)

    def write_seed_result(self, seed: int, result: dict[str, Any]) -> None:
        """A seed's metrics alone (a retrieval evaluation keeps no arrays)."""
        from synalign.io import atomic_write_text

        self.results_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.results_dir / f"seed-{seed}.json", json.dumps(result, indent=2))

    def write_test_sample(self, X: np.ndarray, y: Sequence[str]) -> None:
        self._save_npz(
            self.results_dir / "test-sample.npz",
            {"X": np.asarray(X, dtype=np.float32), "y": text_array(list(y))},
        )

    @staticmethod
    def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
        from synalign.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    # ----- reading -------------------------------------------------------------------

    def read_info(self) -> dict[str, Any]:
        """The evaluation's settings; a folder that is not one says what to run."""
        if not self.info_path.is_file():
            raise SynAlignError(
                f"{self.root}: not an evaluation folder (no evaluation.json); "
                "run `synalign evaluate` first, or pass the folder it printed"
            )
        try:
            return json.loads(self.info_path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SynAlignError(
                f"{self.info_path}: unreadable ({e}); re-run `synalign evaluate`"
            ) from e

    def read_seed(self, seed: int) -> dict[str, Any] | None:
        """A finished seed's metrics, or None while it is not finished."""
        path = self.results_dir / f"seed-{seed}.json"
        return json.loads(path.read_text("utf-8")) if path.is_file() else None

    def seed_arrays(self, seed: int) -> dict[str, np.ndarray] | None:
        return self._load_npz(self.results_dir / f"seed-{seed}.npz")

    def test_sample(self) -> dict[str, np.ndarray] | None:
        return self._load_npz(self.results_dir / "test-sample.npz")

    @staticmethod
    def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
