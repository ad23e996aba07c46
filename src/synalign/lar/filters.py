"""Validation of generated samples: each rejection carries a reason that is counted."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from synalign.lar.near_copy import is_near_copy
from synalign.lar.prompts import word_count

# Every reason a generated sample can be rejected for, in the order they are checked
# (`unparseable`, `missing` and `wrong_label` are decided from the LLM's answer
# before the filter sees a text, and so is `truncated` for a cut chat item; the script
# cue of `wrong_language` is checked right after `empty`).
REASONS = (
    "empty",  # nothing but whitespace or punctuation
    "unparseable",  # a chat answer (or one of its items) that holds no sample text
    "missing",  # a chat answer with fewer samples than asked
    "wrong_label",  # a chat item whose own label is not the one asked for
    "refusal",  # the model declines ("I cannot help with that")
    "narration",  # the model talks about its answer ("Sure! Here are 5 reviews:")
    "too_short",
    "too_long",
    "prompt_echo",  # prompt scaffolding: tag lines, headers, example tags
    "copy_of_real",
    "repetitive",  # a loop: the same words over and over
    "truncated",  # cut off by the token limit
    "wrong_language",  # not in the language (script, common words) of the real texts
    "near_copy",
    "duplicate",
    "copy_of_document",  # a query that is a verbatim span of its own document
    "not_specific",  # a query that does not single out its document (retrieval check)
    "label_mismatch",  # the real texts read it as another label (generate.label_check)
)

_PROMPT_MARKERS = re.compile(r"(^|\s)(attributes:|texts:|<example>|</example>)", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+")  # a run of letters: digits and '_' are not words here
# Assistant talk where a sample should be: a chat model that declines, or that introduces
# or closes its answer. Each is switched off when it matches a real text (see SampleFilter).
_ASSISTANT_TALK: dict[str, re.Pattern[str]] = {
    "refusal": re.compile(
        r"^\W*(?:i(?:'m| am) sorry,? but i\b|sorry,? (?:but )?i (?:can(?:no|')t|won't)\b"
        r"|i (?:can(?:no|')t|can not|won't|will not|(?:am|'m) (?:unable|not able) to)"
        r" (?:help|assist|comply|fulfil|provide|create|generate|write|produce|do that)\b"
        r"|as an ai\b|as a (?:large )?language model\b|i(?:'m| am) an ai\b)",
        re.IGNORECASE,
    ),
    "narration": re.compile(
        r"^\W*(?:(?:sure|certainly|of course|okay|ok|absolutely|here you go)\b[\s!,.]*"
        r"(?:here|below|these|the following|i(?:'ll| will| can|'d| would)(?: be happy to)?"
        r" (?:help|write|create|generate|give|provide|do)\b)"
        r"|here (?:is|are|'s) (?:\d+|some|a few|a list|another|more|new|two|three|four|five"
        r"|six|seven|eight|nine|ten)\b[^.!?]*:"
        r"|(?:below|the following) (?:is|are) (?:\d+|some|a few|the|my|your|an?)\b)"
        r"|\bi hope (?:these|this|that) helps?\W*$|\blet me know if you (?:need|want|would)\b",
        re.IGNORECASE,
    ),
}
# one to four characters repeated at least twelve times in a row ("hahahaha...", "!!!!...")
_CHAR_LOOP = re.compile(r"(\S{1,4}?)\1{11,}")


def normalise(text: str) -> str:
    """Case, punctuation and spacing folded: what makes two texts 'the same'."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# A cluster's demonstrations are compared with each of its samples in turn.
_normalised_demo = functools.lru_cache(maxsize=64)(normalise)


def words_of(text: str) -> list[str]:
    """Lower-cased letter runs: the tokens the language and repetition checks count."""
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=8192)
def script_of(char: str) -> str:
    """The Unicode script of a letter, from its name (LATIN, CYRILLIC, CJK, HANGUL, ...)."""
    if char.isascii():
        return "LATIN"
    parts = unicodedata.name(char, "UNKNOWN").split()
    if len(parts) > 1 and parts[1] == "LATIN":  # FULLWIDTH LATIN ...
        return "LATIN"
    return parts[0]


def script_share(text: str, scripts: frozenset[str]) -> tuple[float, int]:
    """Share of the text's letters that are in `scripts`, and how many letters it has."""
    if text.isascii():
        n = sum(c.isalpha() for c in text)
        return (1.0 if "LATIN" in scripts else 0.0), n
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0, 0
    return sum(script_of(c) in scripts for c in letters) / len(letters), len(letters)


def repetition(words: Sequence[str]) -> tuple[int, int]:
    """Word trigrams in a text and how many of them repeat an earlier one."""
    grams = list(zip(words, words[1:], words[2:], strict=False))
    return len(grams), len(grams) - len(set(grams))


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    at = q * (len(values) - 1)
    lo = int(at)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (at - lo)


class _CharTrigrams:
    """Letter-trigram model (interpolated with bigrams, unigrams and a floor) of the real
    texts' words, scored as mean log-probability per character. `minus` removes one fitted
    text's own counts, for leave-one-out scores."""

    _LAMBDAS = (0.6, 0.3, 0.09, 0.01)

    def __init__(self, strings: Sequence[str]) -> None:
        self.own = [self._counts(s) for s in strings]
        self.tri: Counter[str] = Counter()
        self.bi: Counter[str] = Counter()
        self.uni: Counter[str] = Counter()
        self.ctx2: Counter[str] = Counter()
        self.ctx1: Counter[str] = Counter()
        for tri, bi, uni, ctx2, ctx1 in self.own:
            self.tri.update(tri)
            self.bi.update(bi)
            self.uni.update(uni)
            self.ctx2.update(ctx2)
            self.ctx1.update(ctx1)
        self.total = sum(self.uni.values())
        self.alphabet = len(self.uni) + 10  # room for letters never seen

    @staticmethod
    def _counts(s: str) -> tuple[Counter[str], ...]:
        return (
            Counter(s[i : i + 3] for i in range(len(s) - 2)),
            Counter(s[i : i + 2] for i in range(len(s) - 1)),
            Counter(s),
            Counter(s[i : i + 2] for i in range(len(s) - 2)),
            Counter(s[i] for i in range(len(s) - 1)),
        )

    def score(self, s: str, minus: tuple[Counter[str], ...] | None = None) -> float:
        empty: Counter[str] = Counter()
        tri_o, bi_o, uni_o, ctx2_o, ctx1_o = minus or (empty,) * 5
        total = self.total - (sum(uni_o.values()) if minus else 0)
        l3, l2, l1, l0 = self._LAMBDAS
        log_p = 0.0
        for i in range(2, len(s)):
            gram = s[i - 2 : i + 1]
            ctx2 = self.ctx2[gram[:2]] - ctx2_o[gram[:2]]
            ctx1 = self.ctx1[gram[1]] - ctx1_o[gram[1]]
            p = l0 / self.alphabet
            if ctx2 > 0:
                p += l3 * (self.tri[gram] - tri_o[gram]) / ctx2
            if ctx1 > 0:
                p += l2 * (self.bi[gram[1:]] - bi_o[gram[1:]]) / ctx1
            if total > 0:
                p += l1 * (self.uni[gram[2]] - uni_o[gram[2]]) / total
            log_p += math.log(p)
        return log_p / max(len(s) - 2, 1)


class LanguageProfile:
    """What the real texts' language looks like, learnt from the real texts only.

    Script: a text is foreign when most of its letters (at least 4) are in scripts that
    make up under 1% of the real letters (Cyrillic or Chinese text for English data).

    Words: a text of at least `min_words` words is foreign when both
    - the share of its words among the `n_common` words found in the most real texts
      (mostly the language's function words: the, of, and, ...) is below `margin` times
      the `quantile` of that share over the real texts, and
    - its letters are less likely under a letter-trigram model of the real texts than
      the `char_quantile` of the real texts.
    Both thresholds come from leave-one-out scores (each real text against a profile of
    the others), so they are honest for texts the profile has not seen. The two cues err
    on different texts (a terse English line without function words still reads as
    English letter by letter), so requiring both keeps false rejections rare. With fewer
    than `min_texts` real texts of `min_words` words the word cue is off.

    Calibrated on the bundled corpora, fitting on 16 or 32 training texts per label and
    scoring all held-out texts: see tests/test_filters.py.
    """

    def __init__(
        self,
        n_common: int = 50,
        min_words: int = 8,
        quantile: float = 0.05,
        margin: float = 0.5,
        char_quantile: float = 0.05,
        min_texts: int = 8,
        max_texts: int = 1000,
    ) -> None:
        self.n_common = n_common
        self.min_words = min_words
        self.quantile = quantile
        self.margin = margin
        self.char_quantile = char_quantile
        self.min_texts = min_texts
        self.max_texts = max_texts

    def fit(self, texts: Sequence[str]) -> LanguageProfile:
        letters: Counter[str] = Counter()
        doc_freq: Counter[str] = Counter()
        tokenised = []
        for text in texts:
            if text.isascii():
                letters["LATIN"] += sum(c.isalpha() for c in text)
            else:
                letters.update(script_of(c) for c in text if c.isalpha())
            words = words_of(text)
            tokenised.append(words)
            doc_freq.update(set(words))
        total = sum(letters.values())
        self.scripts_ = frozenset(s for s, n in letters.items() if n >= 0.01 * total)
        ranked = sorted(doc_freq.items(), key=lambda kv: (-kv[1], kv[0]))
        self.common_ = frozenset(w for w, _ in ranked[: self.n_common])
        # leave-one-out scores, on an evenly spaced subset of a large corpus
        step = max(1, -(-len(tokenised) // self.max_texts))
        sample = tokenised[::step]
        self.chars_ = _CharTrigrams([_letters(w) for w in sample])
        self.char_scores_ = sorted(
            self.chars_.score(_letters(w), own)
            for w, own in zip(sample, self.chars_.own, strict=True)
        )
        shares = []
        for words in sample:
            if len(words) < self.min_words:
                continue
            own = set(words)
            head = ranked[: self.n_common + len(own)]
            loo = sorted(head, key=lambda kv: (-(kv[1] - (kv[0] in own)), kv[0]))
            common = {w for w, _ in loo[: self.n_common]}
            shares.append(sum(w in common for w in words) / len(words))
        shares.sort()
        self.shares_ = shares
        self.threshold_ = (
            self.margin * _quantile(shares, self.quantile) if len(shares) >= self.min_texts else 0.0
        )
        self.char_threshold_ = _quantile(self.char_scores_, self.char_quantile)
        return self

    def foreign_script(self, text: str) -> bool:
        """Most of the text's letters (at least 4) are in scripts the real texts hardly use."""
        share, n_letters = script_share(text, self.scripts_)
        return n_letters >= 4 and share < 0.5

    def foreign_words(self, words: Sequence[str]) -> bool:
        """Few common words and unlikely letters, compared with real texts."""
        if len(words) < self.min_words:
            return False
        if sum(w in self.common_ for w in words) / len(words) >= self.threshold_:
            return False
        return self.chars_.score(_letters(words)) < self.char_threshold_

    def foreign(self, text: str, words: Sequence[str] | None = None) -> bool:
        return self.foreign_script(text) or self.foreign_words(
            words_of(text) if words is None else words
        )


def _fold_quotes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _letters(words: Sequence[str]) -> str:
    return " " + " ".join(words) + " "


class SampleFilter:
    """Rejects empty, badly sized, echoed, copied, looping, foreign and duplicate samples.

    `repeat_share`: a text of at least `repeat_min` word trigrams is `repetitive` when at
    least this share of its trigrams repeat an earlier one (or a unit of up to four
    characters runs eight times); real texts essentially never do.
    `language`: check `wrong_language` against a `LanguageProfile` of the real texts.
    `refusal` / `narration`: assistant talk instead of a sample; a pattern that matches
    any real text is part of the data's own language and is not applied.
    """

    def __init__(
        self,
        min_words: int = 4,
        max_words: int | None = None,
        near_copy: float = 0.8,
        extra_markers: Iterable[str] = (),
        repeat_share: float = 0.3,
        repeat_min: int = 6,
        language: bool = True,
    ) -> None:
        self.min_words = min_words
        self.max_words = max_words
        self.near_copy = near_copy
        self.extra_markers = tuple(extra_markers)
        self.repeat_share = repeat_share
        self.repeat_min = repeat_min
        self.language = language

    def fit(self, real_texts: Iterable[str]) -> SampleFilter:
        texts = list(real_texts)
        self.real_ = {normalise(t) for t in texts}
        longest = max((word_count(t) for t in texts), default=50)
        self.max_words_ = self.max_words or max(2 * longest, self.min_words + 1)
        self.language_ = LanguageProfile().fit(texts) if self.language and texts else None
        folded = [_fold_quotes(t) for t in texts]
        self.assistant_talk_ = {
            why: pattern
            for why, pattern in _ASSISTANT_TALK.items()
            if not any(pattern.search(t) for t in folded)
        }
        self.seen_: set[str] = set()
        return self

    def is_repetitive(self, text: str, words: Sequence[str]) -> bool:
        total, repeats = repetition(words)
        if total >= self.repeat_min and repeats >= self.repeat_share * total:
            return True
        return _CHAR_LOOP.search(text) is not None

    def reason(
        self,
        text: str,
        demos: Iterable[str] = (),
        *,
        truncated: bool = False,
        markers: Iterable[str] = (),
    ) -> str | None:
        """Why `text` is rejected, or None; an accepted text is remembered for de-duplication.

        `truncated`: the token limit cut the text off (rejected unless a more telling reason
        applies). `markers`: prompt scaffolding, compared case-insensitively.
        """
        norm = normalise(text)
        if not norm:
            return "empty"
        if self.language_ is not None and self.language_.foreign_script(text):
            return "wrong_language"  # before the word count: Chinese has no spaces
        folded = _fold_quotes(text)
        for why, pattern in self.assistant_talk_.items():
            if pattern.search(folded):
                return why
        n_words = word_count(text)
        if n_words < self.min_words:
            return "too_short"
        if n_words > self.max_words_:
            return "too_long"
        lowered = text.lower()
        if (
            _PROMPT_MARKERS.search(text)
            or any(m in text for m in self.extra_markers)
            or any(m.lower() in lowered for m in markers)
        ):
            return "prompt_echo"
        if norm in self.real_:
            return "copy_of_real"
        words = words_of(text)
        if self.is_repetitive(text, words):
            return "repetitive"
        if truncated:
            return "truncated"
        if self.language_ is not None and self.language_.foreign_words(words):
            return "wrong_language"
        if any(is_near_copy(norm, _normalised_demo(d), self.near_copy) for d in demos):
            return "near_copy"
        if norm in self.seen_:
            return "duplicate"
        self.seen_.add(norm)
        return None
