"""SQLite response cache: a completed call is stored once and never paid for twice."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from synalign.llm.base import LLM, Completion, Prompt, SamplingParams


def cache_key(backend: str, model: str, prompt: Prompt, params: SamplingParams, index: int) -> str:
    """Hash of everything that determines one sample."""
    payload = {
        "backend": backend,
        "model": model,
        "prompt": prompt.as_dict(),
        "params": params.as_dict(),
        "index": index,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


class ResponseCache:
    """Key/value store of completions; WAL mode so a killed writer never corrupts it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
            " prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT)"
        )
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason"
                " FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Completion(row[0], row[1], row[2], row[3], cached=True)

    def put(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.finish_reason,
                ),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class UsageCounter:
    """What a run asked for and what it actually paid for."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class CachedLLM:
    """Wraps any LLM: cached samples come from disk, only the missing ones are generated."""

    def __init__(self, llm: LLM, cache: ResponseCache) -> None:
        self.llm = llm
        self.cache = cache
        self.usage = UsageCounter()

    @property
    def backend(self) -> str:
        return self.llm.backend

    @property
    def model(self) -> str:
        return self.llm.model

    @property
    def has_chat_template(self) -> bool:
        return self.llm.has_chat_template

    def generate(
        self, prompt: Prompt, params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        keys = [cache_key(self.backend, self.model, prompt, params, i) for i in indices]
        found = {i: self.cache.get(k) for i, k in zip(indices, keys, strict=True)}
        missing = [i for i in indices if found[i] is None]
        self.usage.cache_hits += len(indices) - len(missing)
        if missing:
            fresh = self.llm.generate(prompt, params, missing)
            for i, completion in zip(missing, fresh, strict=True):
                self.cache.put(keys[indices.index(i)], completion)
                found[i] = completion
                self.usage.calls += 1
                self.usage.prompt_tokens += completion.prompt_tokens
                self.usage.completion_tokens += completion.completion_tokens
        return [c for c in (found[i] for i in indices) if c is not None]
