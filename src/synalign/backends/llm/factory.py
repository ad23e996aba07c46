"""Builds the configured backend; the pipeline's only link to concrete LLM classes."""

from __future__ import annotations

import os
from pathlib import Path

from synalign.backends.llm.base import LLM
from synalign.backends.llm.generators import check_generator, generator_path
from synalign.config import LLMConfig
from synalign.errors import ConfigError


def check_llm_config(config: LLMConfig) -> None:
    """Catch what can be checked without loading a model or calling the endpoint, so a run
    stops before its first stage instead of after exploration."""
    if config.backend == "llamacpp" and config.model_path is not None:
        path = Path(config.model_path)
        if path.is_dir():
            raise ConfigError(
                f"llm.model_path {config.model_path}: is a folder, not a model file; set it to"
                " the .gguf file inside, or leave it unset for the bundled model"
            )
        if not path.is_file():
            raise ConfigError(
                f"llm.model_path {config.model_path}: model file not found; set it to a GGUF"
                " file, or leave it unset for the bundled model"
            )
        if not is_gguf(path):
            raise ConfigError(
                f"llm.model_path {config.model_path}: not a GGUF model file (it does not "
                "begin with 'GGUF'); set it to a llama.cpp .gguf file, or leave it unset for "
                "the bundled model"
            )
    if config.backend == "llamacpp" and config.model_path is None and config.model:
        check_generator(config.model)
    if config.backend == "openai":
        for url in base_urls(config):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"llm.base_url {url!r}: not an http(s) URL; write it like"
                    " http://127.0.0.1:8080/v1"
                )


def is_gguf(path: Path) -> bool:
    """A GGUF file begins with these four bytes; llama.cpp fails on anything else with an
    error of its own."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def base_urls(config: LLMConfig) -> list[str]:
    """The configured endpoint(s): llm.base_url (one URL or a list), else $OPENAI_BASE_URL."""
    url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    if not url:
        return []
    return [url] if isinstance(url, str) else list(url)


def make_llm(config: LLMConfig) -> LLM:
    check_llm_config(config)
    if config.backend == "llamacpp":
        from synalign.backends.llm.llamacpp import LlamaCppLLM

        named = config.model_path is None and config.model
        return LlamaCppLLM(
            generator_path(config.model) if named else config.model_path,
            n_ctx=config.n_ctx,
            n_threads=config.threads,
            parallel_samples=config.parallel_samples,
        )
    if config.backend == "openai":
        from synalign.backends.llm.openai_compat import OpenAICompatibleLLM

        key = config.api_key.get_secret_value() if config.api_key else None
        urls = base_urls(config)
        if len(urls) > 1:
            raise ConfigError(
                f"llm.base_url lists {len(urls)} endpoints: spreading requests over several "
                'endpoints needs `executor` = "ray"; or give one URL'
            )
        return OpenAICompatibleLLM(
            model=config.model or "",
            base_url=urls[0] if urls else None,
            api_key=key or os.environ.get(config.api_key_env),
            concurrency=config.concurrency,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
    raise ValueError(f"unknown LLM backend {config.backend!r}")
