"""The labelled text record that flows between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
