"""LLM backends behind one protocol, plus the response cache that makes runs resumable."""

from synalign.llm.base import LLM, Completion, Prompt, SamplingParams
from synalign.llm.cache import CachedLLM, ResponseCache

__all__ = ["LLM", "CachedLLM", "Completion", "Prompt", "ResponseCache", "SamplingParams"]
