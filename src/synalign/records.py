"""The labelled text record that flows between the stages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# A lone UTF-16 surrogate ("\ud800" in JSON, often an emoji cut in half) is not a character:
# UTF-8 cannot store it, so readers, writers and LLM answers put U+FFFD in its place.
SURROGATE = re.compile("[\ud800-\udfff]")
# How much of a user's value (a label, an id, a column name) a message quotes.
SHOWN_CHARS = 60
# How many values a message about many labels names before '... and N more'.
LISTED = 5
# Every character str.splitlines breaks a line at.
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True)
class Record:
    """One labelled text. `id` is stable across runs so provenance can point at it."""

    id: str
    text: str
    label: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "label": self.label}
        out.update(self.meta)
        return out

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        meta = {k: v for k, v in row.items() if k not in ("id", "text", "label")}
        return cls(id=str(row["id"]), text=str(row["text"]), label=str(row["label"]), meta=meta)


def labels_of(records: list[Record]) -> list[str]:
    """Distinct labels in first-seen order, so outputs are stable for a given input."""
    seen: dict[str, None] = {}
    for r in records:
        seen.setdefault(r.label, None)
    return list(seen)


def without_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (nested too) replaced by U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value) if SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_surrogates(v) for v in value)
    return value


def has_surrogate(value: Any) -> bool:
    """Whether `value` holds a lone surrogate in any of its strings."""
    if isinstance(value, str):
        return SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_surrogate(v) for v in value)
    return False


def has_line_break(text: str) -> bool:
    """Whether `text` spans more than one line for any reader (U+2028 included)."""
    return _LINE_BREAK.search(text) is not None


def quoted(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` in double quotes for a one-line message, cut to `limit` characters (see
    `clip`): every line break and control character escaped (JSON escapes all but U+0085,
    U+2028 and U+2029 itself)."""
    import json

    shown = json.dumps(clip(text, limit), ensure_ascii=False)
    return _LINE_BREAK.sub(lambda m: f"\\u{ord(m.group()):04x}", shown)


def clip(value: Any, limit: int = SHOWN_CHARS) -> str:
    """`value` as text of at most `limit` characters, then '…': a message quotes what the
    user wrote, and a 100,000-character label would bury the message it is quoted in."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "\u2026"


def listed(values: Sequence[Any], limit: int = LISTED, quote: str = "'") -> str:
    """`'a', 'b', 'c', ... and 197 more`: the first `limit` values, each clipped, so that
    a message about many labels stays one readable line. A (value, count) pair is shown
    as `'a' (3)`."""

    def show(v: Any) -> str:
        if isinstance(v, tuple):
            return f"{quote}{clip(v[0])}{quote} ({v[1]})"
        return f"{quote}{clip(v)}{quote}"

    shown = ", ".join(show(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown}, ... and {rest} more" if rest > 0 else shown
