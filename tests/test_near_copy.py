"""The near-copy check: linear time on long texts, difflib's decisions on real ones.

The decisions expected are those of difflib's SequenceMatcher ratio on the normalised
texts at the default threshold (0.8), the measure the filter has always used; the pairs
are real bundled texts against edited copies of themselves and against unrelated texts
of their label (benchmarks/bench_near_copy.py runs the same comparison at scale).
"""

from __future__ import annotations

import difflib
import random
import time

import pytest

from synalign.io.corpora import bbc_articles, load_corpus
from synalign.lar.filters import SampleFilter, normalise
from synalign.lar.near_copy import EXACT_CELLS, is_near_copy, similarity

THRESHOLD = 0.8


def old_decision(sample: str, demo: str) -> bool:
    ratio = difflib.SequenceMatcher(None, normalise(sample), normalise(demo), autojunk=False)
    return ratio.ratio() >= THRESHOLD


def edited(words: list[str], k: int, vocab: list[str], rng: random.Random) -> str:
    """k substitutions, insertions or deletions at random places."""
    out = list(words)
    for _ in range(k):
        op, at = rng.randrange(3), rng.randrange(len(out))
        if op == 0:
            out[at] = rng.choice(vocab)
        elif op == 1 or len(out) < 2:
            out.insert(at, rng.choice(vocab))
        else:
            del out[at]
    return " ".join(out)


def pairs_of(texts: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(sample, demonstration): edited copies over a range of edits, a span of another
    text put in, and unrelated texts."""
    vocab = [w for t in texts for w in t.split()]
    out = []
    for n, text in enumerate(texts):
        words = text.split()
        for share in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
            out.append((edited(words, round(share * len(words)), vocab, rng), text))
        other = texts[(n + 1) % len(texts)]
        span = len(words) // 4
        at = rng.randrange(len(words) - span + 1)
        out.append((" ".join(words[:at] + other.split()[:span] + words[at + span :]), text))
        out.append((other, text))
    return out


def filter_decision(sample: str, demo: str) -> bool:
    f = SampleFilter(min_words=1, max_words=100_000, near_copy=THRESHOLD, language=False).fit([])
    return f.reason(sample, [demo]) == "near_copy"


@pytest.fixture(scope="module")
def articles() -> list[tuple[str, str]]:
    return [(label, raw) for label, _, raw in bbc_articles()]


def test_long_sample_against_long_demonstration_is_fast(articles: list[tuple[str, str]]) -> None:
    words = " ".join(raw for _, raw in articles[:400]).split()
    demo = " ".join(words[:20_000])
    samples = [" ".join(words[20_000 + i * 2_000 : 22_000 + i * 2_000]) for i in range(20)]
    copied = " ".join(words[5_000:7_000])  # a span of the demonstration itself
    f = SampleFilter(max_words=50_000).fit(samples[10:])
    start = time.perf_counter()
    assert f.reason(samples[0], [demo]) is None
    one = time.perf_counter() - start
    reasons = [f.reason(s, [demo]) for s in [*samples[1:], copied]]
    twenty = time.perf_counter() - start
    assert one < 2 and twenty < 2, (one, twenty)
    assert "near_copy" not in reasons  # 2,000 of 22,000 words: at most 0.18 by length


def test_long_similar_lengths_are_decided_fast(articles: list[tuple[str, str]]) -> None:
    """2,000 words against 2,000 words, where lengths cannot decide: difflib needs seconds."""
    words = " ".join(raw for _, raw in articles[:100]).split()
    demo = normalise(" ".join(words[:2_000]))
    rng = random.Random(0)
    near = normalise(edited(words[:2_000], 100, words, rng))
    unrelated = normalise(" ".join(words[4_000:6_000]))
    for sample, expected in ((near, True), (unrelated, False)):
        start = time.perf_counter()
        assert is_near_copy(sample, demo, THRESHOLD) is expected
        assert time.perf_counter() - start < 2


@pytest.mark.parametrize("corpus", ["bbc-news", "rotten-tomatoes", "convention-speeches"])
def test_decisions_on_real_texts_match_difflib(corpus: str) -> None:
    rng = random.Random(1)
    by_label: dict[str, list[str]] = {}
    for record in load_corpus(corpus):
        by_label.setdefault(record.label, []).append(record.text)
    texts = [t for label in sorted(by_label) for t in rng.sample(by_label[label], 6)]
    pairs = pairs_of(texts, rng)
    wrong = [(s, d) for s, d in pairs if filter_decision(s, d) != old_decision(s, d)]
    assert not wrong, wrong[:3]
    copies = sum(old_decision(s, d) for s, d in pairs)
    assert 0.3 * len(pairs) < copies < 0.9 * len(pairs)  # both decisions well represented


def test_decisions_on_whole_articles_match_difflib(articles: list[tuple[str, str]]) -> None:
    """Whole articles are too long for difflib's own ratio: the linear-time path decides."""
    rng = random.Random(2)
    texts = [raw for _, raw in articles[::50] if 150 <= len(raw.split()) <= 400][:6]
    pairs = pairs_of(texts, rng)
    assert all(len(normalise(s)) * len(normalise(d)) > EXACT_CELLS for s, d in pairs)
    wrong = [(s[:60], d[:60]) for s, d in pairs if filter_decision(s, d) != old_decision(s, d)]
    assert not wrong, wrong
    copies = sum(old_decision(s, d) for s, d in pairs)
    assert 0.3 * len(pairs) < copies < 0.95 * len(pairs)


def test_short_pairs_get_difflibs_own_ratio() -> None:
    a = normalise("A slow but rewarding drama about two brothers.")
    b = normalise("A slow but rewarding drama about two brother")
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    assert similarity(a, b) == ratio
    assert similarity("", "") == 1.0
    assert similarity("abc", "abcdefghijkl", at_least=0.8) < 0.8  # decided by the lengths
