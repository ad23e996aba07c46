"""The Ray executor: LLM calls and embedding batches run on the actors of a Ray cluster.

Only the work is spread: the response cache, the embedding cache, exploration (ESM) and
alignment (SDA) stay in the driver process, so a run's outputs do not depend on the
executor. The units of work are chosen so that every worker computes what the local
backend would have computed:

- the llama.cpp backend: whole runs of requests that share prompt and parameters, in
  pieces of `llm.parallel_samples` (the same batches `LlamaCppLLM.stream` decodes), each
  answered with `batch_end` on its last completion so that `CachedLLM` stores it whole;
- an OpenAI-compatible backend: one request at a time, on workers bound round-robin to the
  endpoints of `llm.base_url` (one URL or a list); a new request goes to the least
  loaded worker, at most `llm.concurrency` in flight on each;
- embeddings: texts sorted by length as `SentenceTransformer.encode` sorts them, cut into
  batches of `embed.batch_size` (the very batches a local `encode` forms), vectors put
  back in input order.

A worker that dies (killed, out of memory, its node lost) is replaced and its unfinished
units are sent again; a unit is delivered once, when it is complete, so no answer the
driver received is ever asked for twice. Ray is imported only when a Ray executor is built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.backends.llm.base import Completion, OnResult, Request, can_score
from synalign.errors import ConfigError, SynAlignError

if TYPE_CHECKING:
    from synalign.backends.embed.embedders import Embedder
    from synalign.backends.llm.base import LLM
    from synalign.config import LLMConfig, RunConfig

RAY_MISSING = (
    "executor 'ray' needs Ray, which is not installed: pip install 'synalign[ray]' "
    "(or pip install 'ray>=2.9'), or use --executor local"
)


def import_ray() -> Any:
    """The `ray` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def connect(address: str | None) -> Any:
    """Join the Ray cluster at `address` ('auto', HOST:PORT, ray://...); with None, the
    cluster named by $RAY_ADDRESS, else a Ray instance started on this machine. Nothing is
    done if this process is already connected."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = address or os.environ.get("RAY_ADDRESS") or "this machine"
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise SynAlignError(
                f"cannot connect to the Ray cluster at {where} ({detail}); start one with "
                "`ray start --head` and pass --ray-address auto (or HOST:6379)"
            ) from None
    return ray


def check_ray() -> None:
    """Raise the one-line error now if Ray is missing, before any stage runs."""
    import_ray()


def executor_llm(config: RunConfig) -> LLM:
    """The configured LLM backend, behind Ray workers when `executor = "ray"`."""
    if config.executor == "ray":
        return RayLLM(config)
    from synalign.backends.llm.factory import make_llm

    return make_llm(config.llm)


def executor_embedder(config: RunConfig) -> Embedder:
    """The configured embedder, on Ray workers when `executor = "ray"`."""
    if config.executor == "ray":
        return RayEmbedder(config)
    from synalign.backends.embed.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(config.embed.model, batch_size=config.embed.batch_size)


# ----- workers (plain classes; made Ray actors when a pool is built) ------------------------


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


# ----- the pool ------------------------------------------------------------------------------


@dataclass
class _Slot:
    make: Callable[[], Any]
    actor: Any = None
    epoch: int = 0
    load: int = 0


class WorkerPool:
    """Actors placed round-robin over the cluster's nodes; units go to the least loaded
    one. A dead actor is replaced and its units are sent again; the pool gives up when
    workers keep dying without finishing anything, or when one cannot start at all."""

    def __init__(self, ray: Any, makers: list[Callable[[], Any]], capacity: int, what: str):
        self.ray = ray
        self.slots = [_Slot(make) for make in makers]
        self.capacity = max(1, capacity)
        self.what = what
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


def _nodes(ray: Any) -> list[str]:
    """The IDs of the alive nodes that have CPUs."""
    nodes = [
        n
        for n in ray.nodes()
        if n.get("Alive") and float((n.get("Resources") or {}).get("CPU", 0)) > 0
    ]
    return [str(n["NodeID"]) for n in nodes]


def _placement(ray: Any, nodes: list[str], i: int) -> dict[str, Any]:
    if not nodes:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = nodes[i % len(nodes)]
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=True)}


def _abspath(path: str | None) -> str | None:
    """A file path the workers can open: absolute, symlinks kept (the name is part of the
    cache key)."""
    return None if path is None else os.path.abspath(path)


# ----- the LLM ------------------------------------------------------------------------------


class RayLLM:
    """The LLM protocol over a pool of Ray actors each holding the configured backend."""

    def __init__(self, config: RunConfig) -> None:
        from synalign.backends.llm.factory import base_urls, check_llm_config

        import_ray()
        c = config.llm
        check_llm_config(c)
        self.config = config
        self.retries = 0
        self._seen: dict[tuple[int, int], int] = {}
        self._pool: WorkerPool | None = None
        self._chat: bool | None = None
        self._urls: list[str | None] = list(base_urls(c)) if c.backend == "openai" else [None]
        self._urls = self._urls or [None]
        self._worker_config = self._for_workers(c)
        names = self._worker_config(self._urls[0])
        if c.backend == "llamacpp":
            from synalign.backends.llm.llamacpp import LlamaCppLLM

            self._local: Any = LlamaCppLLM(names.model_path, n_ctx=c.n_ctx, n_threads=1)
        else:
            from synalign.backends.llm.factory import make_llm

            self._local = make_llm(names)

    def _for_workers(self, c: LLMConfig) -> Callable[[str | None], LLMConfig]:
        """What each worker builds its backend from: paths made absolute, the API key and
        endpoint resolved here (a worker's node has neither the driver's environment nor
        its working directory)."""
        from pydantic import SecretStr

        key = c.api_key.get_secret_value() if c.api_key else os.environ.get(c.api_key_env)
        model_path = _abspath(c.model_path)

        def build(url: str | None) -> LLMConfig:
            return c.model_copy(
                update={
                    "base_url": url,
                    "model_path": model_path,
                    "api_key": SecretStr(key) if key else None,
                }
            )

        return build

    @property
    def backend(self) -> str:
        return str(self._local.backend)

    @property
    def scores_continuations(self) -> bool:
        return can_score(self._local)

    def continuation_logprobs(
        self, prefix: str, query: str, continuations: Sequence[str]
    ) -> list[float]:
        """Label checks score on the driver, with the same model file as the workers: a
        scoring pass is a small share of the work, and the answer matches a local run."""
        if not can_score(self._local):
            raise TypeError(f"the {self.backend} backend cannot score continuations")
        return list(self._local.continuation_logprobs(prefix, query, continuations))

    @property
    def model(self) -> str:
        return str(self._local.model)

    @property
    def has_chat_template(self) -> bool:
        if self.config.llm.backend == "openai":
            return bool(self._local.has_chat_template)
        if self._chat is None:
            self._chat = bool(self.pool().call("info")[1])
        return self._chat

    def pool(self) -> WorkerPool:
        if self._pool is None:
            ray = connect(self.config.ray_address)
            nodes = _nodes(ray)
            c = self.config.llm
            if c.backend == "openai":
                n = self.config.ray_actors or len(self._urls)
                cls = ray.remote(OpenAIWorker)
                options = {"num_cpus": 0, "max_concurrency": max(1, c.concurrency)}
                capacity = max(1, c.concurrency)
            else:
                n = self.config.ray_actors or max(1, len(nodes))
                cls = ray.remote(LLMWorker)
                options = {"num_cpus": 0, "max_concurrency": 1}
                capacity = 2  # one decoding, one waiting: the worker never idles

            def maker(i: int) -> Callable[[], Any]:
                cfg = self._worker_config(self._urls[i % len(self._urls)])
                opts = {**options, **_placement(ray, nodes, i), "max_restarts": 0}
                return lambda: cls.options(**opts).remote(cfg)

            self._pool = WorkerPool(ray, [maker(i) for i in range(n)], capacity, "LLM")
        return self._pool

    def _units(self, requests: Sequence[Request]) -> list[list[int]]:
        if self.config.llm.backend == "llamacpp":
            from synalign.backends.llm.llamacpp import _runs

            return list(_runs(requests, max(1, self.config.llm.parallel_samples)))
        return [[pos] for pos in range(len(requests))]

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        if not requests:
            return
        pool = self.pool()
        units = self._units(requests)

        def submit(actor: Any, unit: list[int]) -> Any:
            return actor.complete.remote([requests[p] for p in unit])

        for u, (completions, retries), worker in pool.run(units, submit):
            unit = units[u]
            self._seen[worker] = max(retries, self._seen.get(worker, 0))
            self.retries = sum(self._seen.values())
            for pos, completion in zip(unit, completions, strict=True):
                if on_result:
                    on_result(pos, completion)
                yield pos, completion


# ----- the embedder -------------------------------------------------------------------------


class RayEmbedder:
    """`SentenceTransformerEmbedder.encode` with its batches encoded on Ray actors."""

    def __init__(self, config: RunConfig) -> None:
        from synalign.backends.embed.embedders import BUNDLED_MODEL, SentenceTransformerEmbedder

        import_ray()
        self.config = config
        model = config.embed.model
        self._model = (
            model if model == BUNDLED_MODEL or not Path(model).is_dir() else _abspath(model)
        )
        self.batch_size = config.embed.batch_size
        self._local = SentenceTransformerEmbedder(model, batch_size=self.batch_size)
        self._pool: WorkerPool | None = None
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return self._local.name

    def token_report(self, texts: Sequence[str]) -> Any:
        """Counted on the driver: it needs the tokenizer only."""
        return self._local.token_report(texts)

    def pool(self) -> WorkerPool:
        if self._pool is None:
            ray = connect(self.config.ray_address)
            nodes = _nodes(ray)
            cls = ray.remote(EmbedWorker)

            def maker(i: int) -> Callable[[], Any]:
                opts = {"num_cpus": 0, "max_restarts": 0, **_placement(ray, nodes, i)}
                args = (self._model, self.batch_size, None)
                return lambda: cls.options(**opts).remote(*args)

            n = max(1, len(nodes))
            self._pool = WorkerPool(ray, [maker(i) for i in range(n)], 2, "embedding")
        return self._pool

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        pool = self.pool()
        if not texts:
            if self._dim is None:
                self._dim = int(pool.call("info")[1])
            return np.zeros((0, self._dim), dtype=np.float32)
        # the order and batches of SentenceTransformer.encode, so each vector is computed
        # exactly as a local call computes it
        order = np.argsort([-len(t) for t in texts])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out: np.ndarray | None = None

        def submit(actor: Any, batch: np.ndarray) -> Any:
            return actor.encode.remote([texts[j] for j in batch])

        for b, vecs, _ in pool.run(batches, submit):
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[batches[b]] = vecs
        assert out is not None
        return out
