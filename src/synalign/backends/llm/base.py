"""The LLM protocol the stages depend on; concrete backends live beside it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Everything that changes what a sampler returns; part of every cache key."""

    temperature: float = 0.9
    top_p: float = 0.95
    min_p: float | None = 0.05
    max_tokens: int = 64
    stop: tuple[str, ...] = ("\n",)
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Prompt:
    """A completion prompt (`text`) or a chat conversation (`messages`), never both."""

    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.messages is None):
            raise ValueError("a Prompt has either text or messages")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def as_dict(self) -> dict[str, Any]:
        if self.messages is not None:
            return {"messages": [{"role": r, "content": c} for r, c in self.messages]}
        return {"text": self.text}


@dataclass(frozen=True)
class Completion:
    """One sampled answer with its token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = field(default=False, compare=False)
    # False on all but the last answer of a batch decoded together: a cache stores a batch
    # whole or not at all, so a resumed run decodes the same batches as an uninterrupted one.
    batch_end: bool = field(default=True, compare=False)


def sample_seed(seed: int, index: int) -> int:
    """Independent, order-free seed for sample `index`, so any subset can be redrawn alone."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class Request:
    """Sample number `index` of `prompt` under `params`: the unit that is cached and paid."""

    prompt: Prompt
    params: SamplingParams
    index: int = 0


OnResult = Callable[[int, Completion], None]


@runtime_checkable
class LLM(Protocol):
    """A text generator.

    `stream` yields `(position, completion)` as each request finishes, in any order, and
    calls `on_result` first (from whichever thread received it) so that a caller can
    persist every answer the moment it exists.
    """

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def has_chat_template(self) -> bool: ...

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]: ...


@runtime_checkable
class ContinuationScorer(Protocol):
    """An LLM that can read its own next-token probabilities (a local model).

    `continuation_logprobs` returns, for each continuation, log p(continuation | prefix +
    query) under the model; the prefix is shared by many queries and read once.
    """

    def continuation_logprobs(
        self, prefix: str, query: str, continuations: Sequence[str]
    ) -> list[float]: ...


def can_score(llm: object) -> bool:
    """Whether `llm` (or the backend a cache wraps) can score continuations; a wrapper
    whose answer depends on its backend says so in `scores_continuations`."""
    inner = getattr(llm, "llm", llm)
    flag = getattr(inner, "scores_continuations", None)
    if flag is not None:
        return bool(flag)
    return isinstance(inner, ContinuationScorer)


def model_digest(llm: object) -> dict[str, str]:
    """`{"model_sha256": ...}` when the backend knows its model file's digest (a local
    model), else nothing: what a sample row records of the exact model that wrote it."""
    digest = getattr(llm, "model_sha256", None)
    return {"model_sha256": digest} if digest else {}


def generate(
    llm: LLM, prompt: Prompt, params: SamplingParams, indices: Sequence[int]
) -> list[Completion]:
    """Samples `indices` of one prompt, in the order asked."""
    requests = [Request(prompt, params, i) for i in indices]
    out: dict[int, Completion] = dict(llm.stream(requests))
    return [out[pos] for pos in range(len(requests))]
