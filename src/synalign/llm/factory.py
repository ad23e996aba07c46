"""Builds the configured backend; the pipeline's only link to concrete LLM classes."""

from __future__ import annotations

import os

from synalign.config import LLMConfig
from synalign.llm.base import LLM


def make_llm(config: LLMConfig) -> LLM:
    if config.backend == "llamacpp":
        from synalign.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(config.model_path, n_ctx=config.n_ctx, n_threads=config.threads)
    if config.backend == "openai":
        from synalign.llm.openai_compat import OpenAICompatibleLLM

        key = config.api_key.get_secret_value() if config.api_key else None
        return OpenAICompatibleLLM(
            model=config.model or "",
            base_url=config.base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=key or os.environ.get(config.api_key_env),
            concurrency=config.concurrency,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
    raise ValueError(f"unknown LLM backend {config.backend!r}")
