"""The local llama.cpp backend and the response cache, on the real bundled model."""

from synalign.llm.base import Prompt, SamplingParams
from synalign.llm.cache import CachedLLM, ResponseCache
from synalign.llm.llamacpp import LlamaCppLLM

PROMPT = Prompt(
    text="Movie review (positive): A joy from start to finish.\n\n"
    "Movie review (positive): Sharp, funny and warm.\n\nMovie review (positive):"
)
PARAMS = SamplingParams(max_tokens=16, seed=3)


def test_same_seed_same_sample_different_index_differs(gemma: LlamaCppLLM) -> None:
    a = gemma.generate(PROMPT, PARAMS, [0, 1, 2])
    b = gemma.generate(PROMPT, PARAMS, [2, 0])
    assert [c.text for c in b] == [a[2].text, a[0].text]
    assert len({c.text for c in a}) > 1
    assert all(c.completion_tokens > 0 and c.prompt_tokens > 0 for c in a)
    assert all("\n" not in c.text for c in a)


def test_cache_serves_repeats_and_survives_reopen(gemma: LlamaCppLLM, tmp_path) -> None:
    path = tmp_path / "llm.sqlite"
    llm = CachedLLM(gemma, ResponseCache(path))
    first = llm.generate(PROMPT, PARAMS, [0, 1])
    assert llm.usage.calls == 2 and llm.usage.cache_hits == 0
    again = llm.generate(PROMPT, PARAMS, [1, 0, 2])
    assert llm.usage.calls == 3 and llm.usage.cache_hits == 2
    assert [again[1].text, again[0].text] == [c.text for c in first]
    llm.cache.close()
    reopened = CachedLLM(gemma, ResponseCache(path))
    assert len(reopened.cache) == 3
    third = reopened.generate(PROMPT, PARAMS, [0, 1, 2])
    assert reopened.usage.calls == 0 and [c.text for c in third[:2]] == [c.text for c in first]
    # a changed sampling parameter is a different request
    reopened.generate(PROMPT, SamplingParams(max_tokens=16, seed=3, temperature=0.5), [0])
    assert reopened.usage.calls == 1


def test_chat_model_through_llamacpp(smollm_path: str) -> None:
    llm = LlamaCppLLM(smollm_path, n_ctx=1024)
    assert llm.has_chat_template
    prompt = Prompt(messages=(("user", "Name one colour. Answer with one word."),))
    out = llm.generate(prompt, SamplingParams(max_tokens=8, stop=(), seed=1), [0])
    assert out[0].text.strip()
