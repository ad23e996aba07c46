"""Validation of generated samples: each rejection carries a reason that is counted."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from synalign.prompts import word_count

REASONS = (
    "empty",
    "too_short",
    "too_long",
    "prompt_echo",
    "copy_of_real",
    "near_copy",
    "duplicate",
)

_PROMPT_MARKERS = re.compile(r"(^|\s)(attributes:|texts:|<example>|</example>)", re.IGNORECASE)


def normalise(text: str) -> str:
    """Case, punctuation and spacing folded: what makes two texts 'the same'."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class SampleFilter:
    """Rejects empty, badly sized, echoed, copied and duplicate samples."""

    def __init__(
        self,
        min_words: int = 4,
        max_words: int | None = None,
        near_copy: float = 0.8,
        extra_markers: Iterable[str] = (),
    ) -> None:
        self.min_words = min_words
        self.max_words = max_words
        self.near_copy = near_copy
        self.extra_markers = tuple(extra_markers)

    def fit(self, real_texts: Iterable[str]) -> SampleFilter:
        texts = list(real_texts)
        self.real_ = {normalise(t) for t in texts}
        longest = max((word_count(t) for t in texts), default=50)
        self.max_words_ = self.max_words or max(2 * longest, self.min_words + 1)
        self.seen_: set[str] = set()
        return self

    def reason(self, text: str, demos: Iterable[str] = ()) -> str | None:
        """Why `text` is rejected, or None; an accepted text is remembered for de-duplication."""
        norm = normalise(text)
        if not norm:
            return "empty"
        words = word_count(text)
        if words < self.min_words:
            return "too_short"
        if words > self.max_words_:
            return "too_long"
        if _PROMPT_MARKERS.search(text) or any(m in text for m in self.extra_markers):
            return "prompt_echo"
        if norm in self.real_:
            return "copy_of_real"
        for demo in demos:
            ratio = difflib.SequenceMatcher(None, norm, normalise(demo), autojunk=False).ratio()
            if ratio >= self.near_copy:
                return "near_copy"
        if norm in self.seen_:
            return "duplicate"
        self.seen_.add(norm)
        return None
