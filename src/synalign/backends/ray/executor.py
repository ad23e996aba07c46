"""The Ray executor: LLM calls and embedding batches run on the actors of a Ray cluster.

Only the work is spread: the response cache, the embedding cache, exploration (ESM) and
alignment (SDA) stay in the driver process, so a run's outputs do not depend on the
executor. The units of work are chosen so that every worker computes what the local
backend would have computed:

- the llama.cpp backend: runs of requests that share prompt and parameters, in pieces of
  `llm.parallel_samples` (a sample does not depend on what is decoded beside it, so any
  grouping gives the local answers), each answered with `batch_end` on its last
  completion so that `CachedLLM` stores it whole;
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

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.backends.llm.base import Completion, OnResult, Request, can_score
from synalign.backends.ray.cluster import (
    connect,
    cpu_nodes,
    import_ray,
    own,
    placement,
    released_on_error,
)
from synalign.backends.ray.workers import EmbedWorker, LLMWorker, OpenAIWorker, WorkerPool

if TYPE_CHECKING:
    from synalign.backends.embed.embedders import Embedder
    from synalign.backends.llm.base import LLM
    from synalign.config import LLMConfig, RunConfig


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


def _abspath(path: str | None) -> str | None:
    """A file path the workers can open: absolute, symlinks kept (the name is part of the
    cache key)."""
    return None if path is None else os.path.abspath(path)


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
    def model_sha256(self) -> str | None:
        return getattr(self._local, "model_sha256", None)

    @property
    def has_chat_template(self) -> bool:
        if self.config.llm.backend == "openai":
            return bool(self._local.has_chat_template)
        if self._chat is None:
            with released_on_error():
                self._chat = bool(self.pool().call("info")[1])
        return self._chat

    def pool(self) -> WorkerPool:
        """The workers, started on first use (again after a release); they are stopped
        when this object is dropped or the process exits."""
        if self._pool is None or self._pool.closed:
            ray = connect(self.config.ray_address)
            nodes = cpu_nodes(ray)
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
                opts = {**options, **placement(ray, nodes, i), "max_restarts": 0}
                return lambda: cls.options(**opts).remote(cfg)

            self._pool = WorkerPool(ray, [maker(i) for i in range(n)], capacity, "LLM")
            own(self._pool, self)
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
        units = self._units(requests)

        def submit(actor: Any, unit: list[int]) -> Any:
            return actor.complete.remote([requests[p] for p in unit])

        with released_on_error():
            for u, (completions, retries), worker in self.pool().run(units, submit):
                unit = units[u]
                self._seen[worker] = max(retries, self._seen.get(worker, 0))
                self.retries = sum(self._seen.values())
                for pos, completion in zip(unit, completions, strict=True):
                    if on_result:
                        on_result(pos, completion)
                    yield pos, completion


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
        """The workers, started on first use (again after a release); they are stopped
        when this object is dropped or the process exits."""
        if self._pool is None or self._pool.closed:
            ray = connect(self.config.ray_address)
            nodes = cpu_nodes(ray)
            cls = ray.remote(EmbedWorker)

            def maker(i: int) -> Callable[[], Any]:
                opts = {"num_cpus": 0, "max_restarts": 0, **placement(ray, nodes, i)}
                args = (self._model, self.batch_size, None)
                return lambda: cls.options(**opts).remote(*args)

            n = max(1, len(nodes))
            self._pool = WorkerPool(ray, [maker(i) for i in range(n)], 2, "embedding")
            own(self._pool, self)
        return self._pool

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with released_on_error():
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
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
