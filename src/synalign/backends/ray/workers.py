"""The Ray workers and the pool that keeps them busy.

Workers are plain classes, made Ray actors only when a pool is built, so this module loads
without Ray. A worker that dies is replaced and its unfinished units are sent again; a
unit is delivered once, when it is complete.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.backends.llm.base import Completion, Request
from synalign.errors import SynAlignError

if TYPE_CHECKING:
    from synalign.config import LLMConfig


class LLMWorker:
    """Holds one backend (llama.cpp, or an OpenAI-compatible client for one endpoint)."""

    def __init__(self, config: LLMConfig) -> None:
        from synalign.backends.llm.factory import make_llm

        _all_cores(config.threads)
        self.llm = make_llm(config)

    def info(self) -> tuple[int, bool]:
        return os.getpid(), bool(self.llm.has_chat_template)

    def complete(self, requests: list[Request]) -> tuple[list[Completion], int]:
        """The completions of `requests` in order, and this worker's retries so far."""
        out = dict(self.llm.stream(requests))
        return [out[i] for i in range(len(requests))], int(getattr(self.llm, "retries", 0))


class OpenAIWorker:
    """An OpenAI-compatible endpoint: requests run concurrently on the actor's event loop
    over one client (kept-alive connections), with the backend's retry policy."""

    def __init__(self, config: LLMConfig) -> None:
        import threading

        from synalign.backends.llm.factory import make_llm

        self.llm: Any = make_llm(config)
        self._client: Any = None
        self._stop = threading.Event()

    def info(self) -> tuple[int, bool]:
        return os.getpid(), bool(self.llm.has_chat_template)

    async def complete(self, requests: list[Request]) -> tuple[list[Completion], int]:
        import asyncio

        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.llm.base_url,
                api_key=self.llm._api_key,
                timeout=self.llm.timeout,
                max_retries=0,
            )
        out = await asyncio.gather(
            *(self.llm._with_retries(self._client, r, self._stop) for r in requests)
        )
        return list(out), int(self.llm.retries)


class EmbedWorker:
    """A sentence-transformers model using all cores of its node."""

    def __init__(self, model: str, batch_size: int, threads: int | None) -> None:
        threads = _all_cores(threads)
        import torch

        from synalign.backends.embed.embedders import SentenceTransformerEmbedder

        torch.set_num_threads(threads)
        self.embedder = SentenceTransformerEmbedder(model, batch_size=batch_size)

    def info(self) -> tuple[int, int]:
        st = self.embedder._load()
        return os.getpid(), int(st.get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)


def _all_cores(threads: int | None) -> int:
    """Ray starts workers with OMP_NUM_THREADS=1; a worker here owns its node's cores (or
    `threads` of them). Set before the worker loads llama.cpp or torch."""
    n = threads or os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(n)
    return n


@dataclass
class _Slot:
    """One worker's place: how to start its actor, which incarnation runs, units in flight."""

    make: Callable[[], Any]
    actor: Any = None
    epoch: int = 0
    load: int = 0


class WorkerPool:
    """Actors placed round-robin over the cluster's nodes; units go to the least loaded
    one. A dead actor is replaced and its units are sent again; the pool gives up when
    workers keep dying without finishing anything, or when one cannot start at all."""

    def __init__(self, ray: Any, makers: list[Callable[[], Any]], capacity: int, what: str) -> None:
        self.ray = ray
        self.slots = [_Slot(make) for make in makers]
        self.capacity = max(1, capacity)
        self.what = what
        self.closed = False  # its actors were killed (see cluster.release)
        self.deaths = 0
        self._strikes = 0  # deaths since a unit last finished
        self._next = 0
        for slot in self.slots:
            slot.actor = slot.make()

    @property
    def actors(self) -> list[Any]:
        return [slot.actor for slot in self.slots]

    def _pick(self) -> _Slot:
        n = len(self.slots)
        order = [self.slots[(self._next + i) % n] for i in range(n)]
        slot = min(order, key=lambda s: s.load)
        self._next = (self.slots.index(slot) + 1) % n
        return slot

    def _replace(self, slot: _Slot) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(slot.actor, no_restart=True)
        slot.actor = slot.make()
        slot.epoch += 1

    def call(self, method: str, *args: Any) -> Any:
        """One call on the first worker (replacing it if it died)."""
        for _ in range(3):
            slot = self.slots[0]
            try:
                return self.ray.get(getattr(slot.actor, method).remote(*args))
            except self._lost_errors() as err:
                self._note_death(err)
                self._replace(slot)
            except self.ray.exceptions.RayTaskError as err:
                raise _cause(err) from None
        raise SynAlignError(f"Ray {self.what} workers keep dying; see the Ray logs")

    def _lost_errors(self) -> tuple[type[BaseException], ...]:
        e = self.ray.exceptions
        return (e.RayActorError, e.WorkerCrashedError, e.ObjectLostError, e.NodeDiedError)

    def _note_death(self, err: BaseException) -> None:
        self.deaths += 1
        self._strikes += 1
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "")
        if getattr(err, "actor_init_failed", False):  # it would fail again: say why now
            kind, _, why = detail.partition(": ")
            if why and kind.rpartition(".")[2] in ("ConfigError", "SynAlignError"):
                raise SynAlignError(f"a Ray {self.what} worker could not start: {why}") from None
            raise SynAlignError(
                f"a Ray {self.what} worker could not start ({detail[:300]}); check that every "
                "node has synalign, its dependencies and the model installed"
            ) from None
        if self._strikes > max(4, 3 * len(self.slots)):
            raise SynAlignError(
                f"Ray {self.what} workers died {self._strikes} times in a row "
                f"({detail[:200]}); check the nodes' memory and the Ray logs "
                "(/tmp/ray/session_latest/logs); finished work is kept"
            ) from None

    def run(
        self, units: Sequence[Any], submit: Callable[[Any, Any], Any]
    ) -> Iterator[tuple[int, Any, tuple[int, int]]]:
        """Yields `(unit index, result, (worker number, incarnation))` as units finish;
        `submit(actor, unit)` starts one."""
        ray = self.ray
        lost = self._lost_errors()
        pending = deque(range(len(units)))
        inflight: dict[Any, tuple[int, _Slot, int]] = {}
        try:
            while pending or inflight:
                while pending:
                    slot = self._pick()
                    if slot.load >= self.capacity:
                        break
                    i = pending.popleft()
                    inflight[submit(slot.actor, units[i])] = (i, slot, slot.epoch)
                    slot.load += 1
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                i, slot, epoch = inflight.pop(ref)
                slot.load -= 1
                try:
                    result = ray.get(ref)
                except lost as err:
                    if slot.epoch == epoch:  # the first failure seen from this actor
                        self._note_death(err)
                        self._replace(slot)
                    pending.appendleft(i)
                    continue
                except ray.exceptions.RayTaskError as err:
                    raise _cause(err) from None
                self._strikes = 0
                yield i, result, (self.slots.index(slot), epoch)
        finally:
            for ref, (_, slot, _) in inflight.items():
                slot.load -= 1
                with contextlib.suppress(Exception):  # finished, or not cancellable
                    ray.cancel(ref)


def _cause(err: Any) -> BaseException:
    """The worker's own exception (a SynAlignError reads as one line), else Ray's."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, SynAlignError) else err
