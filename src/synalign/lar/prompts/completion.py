"""Few-shot completion prompts for base models: one sample per call, stop at newline."""

from __future__ import annotations

import json
from collections.abc import Collection

from synalign.backends.llm.base import Prompt
from synalign.lar.prompts.base import (
    TAG_END,
    WORKED_EXAMPLES,
    ParsedSample,
    TaskSpec,
    clean_text,
    format_attributes,
    parse_attribute_line,
)


def _quote(text: str) -> str:
    return json.dumps(clean_text(text), ensure_ascii=False)


class CompletionPrompts:
    """Few-shot patterns for base models; every call yields one sample."""

    name = "completion"
    samples_per_call = 1
    stop = ("\n",)

    def attributes(self, task: TaskSpec, texts: list[str], variant: int = 0) -> Prompt:
        n = len(WORKED_EXAMPLES)
        shots = [WORKED_EXAMPLES[(variant + i) % n] for i in range(2)]
        blocks = [
            "Each group of texts below is followed by a description of what the texts "
            "have in common."
        ]
        for shot_texts, attrs in shots:
            lines = "\n".join(f"- {_quote(t)}" for t in shot_texts)
            blocks.append(f"Texts:\n{lines}\nAttributes: {format_attributes(attrs)}")
        lines = "\n".join(f"- {_quote(t)}" for t in texts)
        blocks.append(f"Texts:\n{lines}\nAttributes: tone:")
        return Prompt(text="\n\n".join(blocks))

    def parse_attributes(self, text: str) -> dict[str, str]:
        return parse_attribute_line(text)

    def samples(
        self,
        task: TaskSpec,
        label: str,
        texts: list[str],
        attributes: dict[str, str] | None,
        k: int,
    ) -> Prompt:
        desc = task.describe(label)
        header = f"{task.title}s labelled {desc}."
        if attributes:
            header = (
                f"{task.title}s labelled {desc}, sharing these attributes: "
                f"{format_attributes(attributes)}."
            )
        tag = f"{task.title} ({desc}{TAG_END}"
        blocks = [header] + [f"{tag} {clean_text(t)}" for t in texts] + [tag]
        return Prompt(text="\n\n".join(blocks))

    def parse_output(
        self, text: str, finish_reason: str = "stop", labels: Collection[str] = ()
    ) -> list[ParsedSample]:
        """Always one item (possibly empty), cut off if the token limit ended it before the
        newline. The label is the prompt's, never the model's: a tag line the model writes
        itself is caught by `echo_markers`."""
        first, newline, _ = text.partition("\n")
        return [
            ParsedSample(clean_text(first), truncated=finish_reason == "length" and not newline)
        ]

    def parse_samples(self, text: str) -> list[str]:
        return [p.text for p in self.parse_output(text) if p.problem is None]

    def echo_markers(self, task: TaskSpec, labels: Collection[str]) -> tuple[str, ...]:
        """Prompt scaffolding that must never appear in a sample: every label's tag line
        (`Movie review (positive):`) and the header."""
        descs = sorted({task.describe(label) for label in labels})
        return tuple(f"{task.title} ({d}):" for d in descs) + tuple(
            f"{task.title}s labelled {d}" for d in descs
        )
