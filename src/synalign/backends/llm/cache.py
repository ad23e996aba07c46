"""SQLite response cache: a completed call is stored once and never paid for twice."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from synalign.backends.llm.base import (
    LLM,
    Completion,
    OnResult,
    Prompt,
    Request,
    SamplingParams,
    can_score,
    generate,
)
from synalign.backends.sqlite_store import connect, readable
from synalign.errors import SynAlignError


def cache_key(backend: str, model: str, prompt: Prompt, params: SamplingParams, index: int) -> str:
    """Hash of everything that determines one sample."""
    payload = {
        "backend": backend,
        "model": model,
        "prompt": prompt.as_dict(),
        "params": params.as_dict(),
        "index": index,
    }
    return digest(payload)


def digest(payload: object) -> str:
    """SHA-256 of a JSON payload: the cache key of whatever it describes."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


# What the response cache holds, and what deleting it costs.
_DAMAGED = ("the LLM answers received so far", "every answer in it will be asked for again")


class ResponseCache:
    """Key/value store of completions; WAL mode so a killed writer never corrupts it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = connect(
            self.path,
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
            " prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT)",
            *_DAMAGED,
        )
        self._db.execute("PRAGMA synchronous=NORMAL")

    def get(self, key: str) -> Completion | None:
        with self._lock, readable(self.path, *_DAMAGED):
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason"
                " FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Completion(row[0], row[1], row[2], row[3], cached=True)

    def put(self, key: str, completion: Completion) -> None:
        self.put_many([(key, completion)])

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        """One transaction: after a crash either all of `items` are stored or none."""
        with self._lock, readable(self.path, *_DAMAGED):
            self._db.executemany(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                [
                    (key, c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason)
                    for key, c in items
                ],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock, readable(self.path, *_DAMAGED):
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
    retries: int = 0
    # Label checks' scoring passes (no text generated), counted apart from the samples.
    scorings: int = 0
    scoring_cache_hits: int = 0

    def cost(self, price_input: float | None, price_output: float | None) -> float | None:
        """Cost in the prices' currency, from prices per million tokens; None if unpriced."""
        if price_input is None and price_output is None:
            return None
        return (
            self.prompt_tokens * (price_input or 0.0)
            + self.completion_tokens * (price_output or 0.0)
        ) / 1e6

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "retries": self.retries,
            "scorings": self.scorings,
            "scoring_cache_hits": self.scoring_cache_hits,
        }


class CachedLLM:
    """Wraps any LLM: cached samples come from disk, only the missing ones are generated,
    and each new answer is stored the moment it arrives."""

    def __init__(self, llm: LLM, cache: ResponseCache) -> None:
        self.llm = llm
        self.cache = cache
        self.usage = UsageCounter()
        self._lock = threading.Lock()
        # When set, a call that is not cached is refused with this message instead of made.
        self.cache_only: str | None = None

    @property
    def backend(self) -> str:
        return self.llm.backend

    @property
    def model(self) -> str:
        return self.llm.model

    @property
    def model_sha256(self) -> str | None:
        return getattr(self.llm, "model_sha256", None)

    @property
    def has_chat_template(self) -> bool:
        return self.llm.has_chat_template

    def reset_usage(self) -> UsageCounter:
        """Start counting afresh (per stage); returns the counts so far."""
        with self._lock:
            old, self.usage = self.usage, UsageCounter()
        return old

    def _key(self, r: Request) -> str:
        return cache_key(self.backend, self.model, r.prompt, r.params, r.index)

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        keys = [self._key(r) for r in requests]
        missing: list[int] = []
        for pos, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is None:
                missing.append(pos)
                continue
            with self._lock:
                self.usage.cache_hits += 1
            if on_result:
                on_result(pos, hit)
            yield pos, hit
        if not missing:
            return
        if self.cache_only:
            raise SynAlignError(self.cache_only)
        retries_before = getattr(self.llm, "retries", 0)
        batch: list[tuple[int, Completion]] = []

        def store(j: int, completion: Completion) -> None:
            batch.append((missing[j], completion))
            if not completion.batch_end:
                return
            done = list(batch)
            batch.clear()
            self.cache.put_many([(keys[pos], c) for pos, c in done])
            with self._lock:
                for _, c in done:
                    self.usage.calls += 1
                    self.usage.prompt_tokens += c.prompt_tokens
                    self.usage.completion_tokens += c.completion_tokens
                self.usage.retries = getattr(self.llm, "retries", 0) - retries_before
            if on_result:
                for pos, c in done:
                    on_result(pos, c)

        for j, completion in self.llm.stream([requests[p] for p in missing], on_result=store):
            yield missing[j], completion

    def generate(
        self, prompt: Prompt, params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        return generate(self, prompt, params, indices)

    def continuation_logprobs(
        self, prefix: str, query: str, continuations: Sequence[str]
    ) -> list[float]:
        """The wrapped backend's scores, each stored once like a sample."""
        if not can_score(self.llm):
            raise TypeError(f"the {self.backend} backend cannot score continuations")
        key = digest(
            ["continuation_logprobs", self.backend, self.model, prefix, query, list(continuations)]
        )
        hit = self.cache.get(key)
        if hit is not None:
            with self._lock:
                self.usage.scoring_cache_hits += 1
            return [float(v) for v in json.loads(hit.text)]
        if self.cache_only:
            raise SynAlignError(self.cache_only)
        scores = self.llm.continuation_logprobs(prefix, query, continuations)  # type: ignore[attr-defined]
        self.cache.put(key, Completion(text=json.dumps(scores)))
        with self._lock:
            self.usage.scorings += 1
        return scores
