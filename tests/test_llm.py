"""The local llama.cpp backend and the response cache, on the real bundled model."""

from pathlib import Path

from synalign.backends.llm.base import Prompt, Request, SamplingParams
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.backends.llm.llamacpp import LlamaCppLLM

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


def test_a_stage_is_decoded_together_and_repeats_exactly(gemma: LlamaCppLLM) -> None:
    other = Prompt(
        text="Movie review (negative): Dull and far too long.\n\nMovie review (negative):"
    )
    requests = [Request(PROMPT, PARAMS, i) for i in range(5)] + [Request(other, PARAMS, 0)]
    first = dict(gemma.stream(requests))
    assert sorted(first) == list(range(6))
    assert len({first[i].prompt_tokens for i in range(5)}) == 1
    assert first[5].prompt_tokens != first[0].prompt_tokens
    # every answer is final when it is yielded: a cache may store each one at once
    assert all(c.batch_end for c in first.values())
    # the same requests after other work give the same answers
    gemma.generate(other, SamplingParams(max_tokens=8, seed=9), [0])
    again = dict(gemma.stream(requests))
    assert [again[i].text for i in range(6)] == [first[i].text for i in range(6)]
    assert all(c.completion_tokens <= PARAMS.max_tokens for c in first.values())


def test_same_seed_same_sample_alone_or_beside_others(gemma: LlamaCppLLM) -> None:
    """A sample depends on its prompt, parameters and seed only: decoded one at a time, in
    reverse order, gives what decoding many prompts' samples together gave."""
    texts = [
        "Movie review (negative): Dull and far too long.\n\nMovie review (negative):",
        "Movie review (positive): A joy.\n\nMovie review (positive): Warm and sharp.\n\n"
        "Movie review (positive):",
        "Movie review (negative): A mess.\n\nMovie review (negative):",
    ]
    params = SamplingParams(max_tokens=24, seed=11)
    requests = [Request(Prompt(text=t), params, i) for t in texts for i in range(5)]
    requests += [Request(PROMPT, PARAMS, i) for i in range(3)]
    together = dict(gemma.stream(requests))
    alone = LlamaCppLLM(gemma.model_path, n_ctx=1024, parallel_samples=1)
    one_by_one = {len(requests) - 1 - pos: c for pos, c in alone.stream(requests[::-1])}
    assert [one_by_one[i].text for i in range(len(requests))] == [
        together[i].text for i in range(len(requests))
    ]
    assert len({c.text for c in together.values()}) >= len(requests) - 2


def test_cache_keeps_every_answer_of_an_interrupted_stream(
    gemma: LlamaCppLLM, tmp_path: Path
) -> None:
    llm = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))
    requests = [Request(PROMPT, PARAMS, i) for i in range(6)]
    stream = llm.stream(requests)
    got = [next(stream) for _ in range(3)]
    stream.close()  # the consumer dies mid-stage
    assert len(got) == 3 and len(llm.cache) == 3
    # the re-run decodes only the missing answers and matches an uninterrupted run
    resumed = dict(llm.stream(requests))
    assert llm.usage.calls == 3 + 3 and llm.usage.cache_hits == 3
    fresh = dict(gemma.stream(requests))
    assert [resumed[i].text for i in range(6)] == [fresh[i].text for i in range(6)]
