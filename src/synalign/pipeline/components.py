"""What a run config builds: the embedder, the LLM, the prompt family, the generator.

Backend policy lives here (the executor picks local or Ray workers; llama.cpp gets a
`min_p` floor; the answer length follows the real texts), not in the stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synalign.backends.embed.embedders import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from synalign.backends.llm.base import LLM, SamplingParams, model_digest
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.config import RunConfig
from synalign.lar.generator import LatentAttributeGenerator
from synalign.lar.prompts import PromptFamily, TaskSpec, prompt_family, word_count
from synalign.records import Record


def build_embedder(config: RunConfig, cache: Path, given: Embedder | None = None) -> CachedEmbedder:
    """The configured embedder (on Ray workers when the executor is Ray), behind a cache."""
    base: Embedder
    if given is not None:
        base = given
    elif config.executor != "local":
        from synalign.backends.ray import executor_embedder

        base = executor_embedder(config)
    else:
        base = SentenceTransformerEmbedder(config.embed.model, batch_size=config.embed.batch_size)
    return CachedEmbedder(base, cache)


def build_llm(config: RunConfig, cache: Path, given: LLM | None = None) -> CachedLLM:
    """The configured LLM behind the response cache that makes a stage resumable."""
    from synalign.backends.ray import executor_llm

    base = given or executor_llm(config)
    return CachedLLM(base, ResponseCache(cache))


def family_for(config: RunConfig, llm: LLM, given: PromptFamily | None = None) -> PromptFamily:
    """A given family (checked for the members the generator calls), else the configured
    one; `auto`: chat prompts for a model with a chat template, completion prompts else."""
    if given is not None:
        return prompt_family(given)
    name: Any = config.llm.prompt_family
    if name == "auto":
        name = "chat" if llm.has_chat_template else "completion"
    return prompt_family(name)


def sampling_for(
    config: RunConfig, real: Sequence[Record]
) -> tuple[SamplingParams, SamplingParams]:
    """Sampling for samples and for attribute lines. The answer budget follows the real
    texts' 95th-percentile length, so long texts are not cut and short ones not padded."""
    c = config.llm
    words = sorted(word_count(r.text) for r in real)
    p95 = words[min(len(words) - 1, int(0.95 * len(words)))] if words else 40
    max_tokens = c.max_tokens or max(32, min(512, int(p95 * 2) + 16))
    min_p = c.min_p
    if min_p is None and c.backend == "llamacpp":
        min_p = 0.05
    sampling = SamplingParams(
        temperature=c.temperature, top_p=c.top_p, min_p=min_p, max_tokens=max_tokens
    )
    attribute_sampling = SamplingParams(temperature=0.7, top_p=c.top_p, min_p=min_p, max_tokens=48)
    return sampling, attribute_sampling


def build_generator(
    config: RunConfig, llm: LLM, family: PromptFamily, task: TaskSpec, real: Sequence[Record]
) -> LatentAttributeGenerator:
    from synalign.lar.filters import SampleFilter

    g = config.generate
    sampling, attribute_sampling = sampling_for(config, real)
    sample_filter = SampleFilter(
        min_words=g.min_words, max_words=g.max_words, near_copy=g.near_copy
    ).fit(r.text for r in real)
    return LatentAttributeGenerator(
        llm=llm,
        family=family,
        task=task,
        use_attributes=g.attributes,
        samples_per_cluster=g.samples_per_cluster,
        sampling=sampling,
        attribute_sampling=attribute_sampling,
        sample_filter=sample_filter,
        seed=config.seed,
    )


def llm_progress(llm: CachedLLM, advance: Callable[..., None]) -> Callable[..., None]:
    """Wraps a progress bar's advance with the live LLM figures of the stage."""
    start = time.perf_counter()

    def progress(n: int = 1, accepted: int | None = None, rejected: int | None = None) -> None:
        usage = llm.usage
        rate = usage.completion_tokens / max(time.perf_counter() - start, 1e-9)
        parts = [] if accepted is None else [f"accepted {accepted}", f"rejected {rejected}"]
        parts += [f"{rate:.0f} tok/s", f"{usage.retries} retried"]
        advance(n, status=" · ".join(parts))

    return progress


def stage_usage(config: RunConfig, llm: CachedLLM) -> dict[str, Any]:
    """This stage's LLM usage (then reset), with its cost when prices are configured."""
    usage = llm.reset_usage()
    c = config.llm
    return {
        "model": llm.model,
        **model_digest(llm),
        "llm": usage.as_dict(),
        "cost": usage.cost(c.price_input_per_million, c.price_output_per_million),
    }
