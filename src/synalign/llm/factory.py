"""Builds the configured backend; the pipeline's only link to concrete LLM classes."""

from __future__ import annotations

from synalign.config import LLMConfig
from synalign.llm.base import LLM


def make_llm(config: LLMConfig) -> LLM:
    if config.backend == "llamacpp":
        from synalign.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(config.model_path, n_ctx=config.n_ctx, n_threads=config.threads)
    raise ValueError(f"unknown LLM backend {config.backend!r}")
