"""Local generation with llama.cpp; the bundled Gemma 3 270M base model by default."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synalign.backends.llm.base import (
    Completion,
    OnResult,
    Prompt,
    Request,
    SamplingParams,
    generate,
    sample_seed,
)
from synalign.backends.llm.generators import bundled_model_path, model_sha256
from synalign.backends.llm.stream_decoder import Job, StreamDecoder, load_model
from synalign.errors import ConfigError


def llama_get_logits(ctx: Any) -> Any:
    """The last decoded token's logits (llama.cpp's C API)."""
    import llama_cpp

    return llama_cpp.llama_get_logits(ctx)


class LlamaCppLLM:
    """llama-cpp-python in-process; loaded on first use so building one is cheap.

    Every request of a `stream` call goes through one `StreamDecoder`: up to
    `parallel_samples` samples, of any prompts, are decoded together, each prompt read
    once. Chat prompts are written out with the model's own chat template first.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        parallel_samples: int = 32,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        if self.model_path is not None and not self.model_path.is_file():
            raise ConfigError(
                f"{self.model_path}: model file not found; set llm.model_path to a GGUF file "
                "or leave it unset for the bundled model"
            )
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.parallel_samples = max(1, parallel_samples)
        self._model: Any = None
        self._decoder: StreamDecoder | None = None
        self._chat_format: Any = None
        self._scorer: Any = None
        self._scored_prefix: list[int] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> LlamaCppLLM:
        """A loaded model is a shared handle, not state: copies of an estimator that holds
        one (`sklearn.clone`) use the same model instead of loading it again."""
        return self

    @property
    def backend(self) -> str:
        return "llamacpp"

    @property
    def model(self) -> str:
        path = self.model_path or Path("gemma-3-270m-q4_k_m.gguf")
        return path.name

    @property
    def model_sha256(self) -> str:
        """The model file's sha256: what a run's samples were written by, exactly."""
        return model_sha256(self.model_path or bundled_model_path())

    def _weights(self) -> Any:
        if self._model is None:
            self.model_path = self.model_path or bundled_model_path()
            self._model = load_model(str(self.model_path))
        return self._model

    def _stream_decoder(self) -> StreamDecoder:
        if self._decoder is None:
            self._decoder = StreamDecoder(
                self._weights(),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_seq=self.parallel_samples,
            )
        return self._decoder

    def _context(self, n_ctx: int) -> Any:
        """A high-level llama-cpp-python context on the model file, quietly loaded."""
        from llama_cpp import Llama

        self.model_path = self.model_path or bundled_model_path()
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            return Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_batch=512,
                verbose=False,
                seed=0,
            )

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in (self._weights().metadata() or {})

    def _scoring_model(self, n_tokens: int) -> Any:
        """A context with full logits access, grown (in steps of 2,048) to hold `n_tokens`."""
        need = -(-max(n_tokens, 2048) // 2048) * 2048
        if self._scorer is None or self._scorer.n_ctx() < need:
            self._scorer = self._context(need)
            self._scored_prefix = []
        return self._scorer

    def continuation_logprobs(
        self, prefix: str, query: str, continuations: Sequence[str]
    ) -> list[float]:
        """log p(continuation | prefix + query); the prefix stays in the context between calls."""
        import numpy as np
        from scipy.special import log_softmax

        model = self._scoring_model(0)
        tokenize = model.tokenize
        pre = tokenize(prefix.encode(), add_bos=True, special=False)
        ask = tokenize(query.encode(), add_bos=False, special=False)
        conts = [tokenize(c.encode(), add_bos=False, special=False) for c in continuations]
        if any(not c for c in conts):
            raise ValueError("every continuation must be at least one token")
        total = len(pre) + len(ask) + max(len(c) for c in conts)
        if total > model.n_ctx():
            model = self._scoring_model(total)
        if self._scored_prefix != pre:
            model.reset()
            model.eval(pre)
            self._scored_prefix = pre
        n_vocab = model.n_vocab()

        def logprobs_after(tokens: list[int], start: int) -> Any:
            model.n_tokens = start
            model.eval(tokens)
            z = np.ctypeslib.as_array(llama_get_logits(model.ctx), shape=(n_vocab,))
            return log_softmax(z.astype(np.float64))

        base = len(pre) + len(ask)
        first = logprobs_after(ask, len(pre))
        out = []
        for tokens in conts:
            total_lp = float(first[tokens[0]])
            for j in range(1, len(tokens)):
                total_lp += float(logprobs_after([tokens[j - 1]], base + j - 1)[tokens[j]])
            out.append(total_lp)
        model.n_tokens = len(pre)
        return out

    def generate(
        self, prompt: Prompt, params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        return generate(self, prompt, params, indices)

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """All requests decoded together; each answer is final the moment it is yielded."""
        decoder = self._stream_decoder()
        jobs = [
            Job(
                self._prompt_tokens(decoder, r.prompt),
                r.params,
                sample_seed(r.params.seed, r.index),
            )
            for r in requests
        ]
        for pos, completion in decoder.run(jobs):
            if on_result:
                on_result(pos, completion)
            yield pos, completion

    def _prompt_tokens(self, decoder: StreamDecoder, prompt: Prompt) -> tuple[int, ...]:
        if prompt.messages is None:
            return decoder.tokenize(prompt.text or "")
        formatted = self._chat_formatter()(
            messages=[{"role": r, "content": c} for r, c in prompt.messages]
        )
        return decoder.tokenize(formatted.prompt, add_bos=not formatted.added_special)

    def _chat_formatter(self) -> Any:
        """The model's own chat template, as llama-cpp-python's chat completion applies it."""
        if self._chat_format is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            model = self._weights()
            template = (model.metadata() or {}).get("tokenizer.chat_template")
            if not template:
                raise ConfigError(
                    f"{self.model}: chat prompts need a model with a chat template; "
                    'set llm.prompt_family = "completion"'
                )
            eos, bos = model.token_eos(), model.token_bos()
            self._chat_format = Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        return self._chat_format


def _runs(requests: Sequence[Request], size: int) -> Iterator[list[int]]:
    """Positions of consecutive requests with one prompt and one set of parameters, in
    pieces of at most `size`."""
    group: list[int] = []
    for pos, request in enumerate(requests):
        if group and (
            len(group) >= size
            or request.prompt != requests[group[0]].prompt
            or request.params != requests[group[0]].params
        ):
            yield group
            group = []
        group.append(pos)
    if group:
        yield group
