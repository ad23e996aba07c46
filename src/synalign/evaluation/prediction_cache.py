"""Test-set predictions of every classifier an evaluation trains, kept beside its results.

Training SetFit on a synthetic set takes minutes on a CPU; a re-run (after an interrupt,
or to add a method or a seed) reuses every prediction whose training it would repeat
exactly: the same classifier and settings, the same texts, labels, weights and inputs,
tested on the same texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synalign.backends.sqlite_store import connect, readable

_SCHEMA = "CREATE TABLE IF NOT EXISTS predictions (key TEXT PRIMARY KEY, labels TEXT NOT NULL)"
_HOLDS = "the test predictions of the classifiers trained so far"
_COST = "every classifier is trained again; no LLM call is repeated"


def training_key(
    classifier: Any,
    texts: Sequence[str],
    y: Sequence[str],
    sample_weight: np.ndarray,
    X: np.ndarray | None,
    test: Sequence[str] | np.ndarray,
) -> str:
    """What a training and its test depend on, hashed: the classifier's class and settings,
    the training rows (inputs, labels, weights) and the test inputs."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in vars(classifier).items() if not k.endswith("_")}
    digest.update(json.dumps([type(classifier).__name__, settings], default=str).encode())
    digest.update(json.dumps([list(texts), [str(v) for v in y]]).encode())
    digest.update(np.ascontiguousarray(sample_weight, dtype=np.float64).tobytes())
    if X is not None:
        digest.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    if isinstance(test, np.ndarray):
        digest.update(np.ascontiguousarray(test, dtype=np.float64).tobytes())
    else:
        digest.update(json.dumps(list(test)).encode())
    return digest.hexdigest()


class PredictionCache:
    """A SQLite table from training key to the predicted test labels."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path, _SCHEMA, _HOLDS, _COST)

    def get(self, key: str) -> np.ndarray | None:
        with readable(self.path, _HOLDS, _COST):
            query = "SELECT labels FROM predictions WHERE key = ?"
            row = self._db.execute(query, (key,)).fetchone()
        return None if row is None else np.asarray(json.loads(row[0]), dtype=object).astype(str)

    def put(self, key: str, labels: np.ndarray) -> None:
        with readable(self.path, _HOLDS, _COST):
            self._db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?)",
                (key, json.dumps([str(v) for v in labels.tolist()])),
            )
            self._db.commit()
