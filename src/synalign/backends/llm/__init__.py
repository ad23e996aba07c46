"""LLM backends behind one protocol, plus the response cache that makes runs resumable."""

from synalign.backends.llm.base import LLM, Completion, Prompt, SamplingParams
from synalign.backends.llm.cache import CachedLLM, ResponseCache

__all__ = ["LLM", "CachedLLM", "Completion", "Prompt", "ResponseCache", "SamplingParams"]
