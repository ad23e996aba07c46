"""What every prompt family shares: the task's words, the parsed sample, attribute lines.

Real texts are always placed as quoted data inside delimiters, never as instructions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from synalign.backends.llm.base import Prompt
from synalign.records import SURROGATE, has_line_break

ATTRIBUTE_KEYS = ("tone", "style", "topic")

# Scaffolding for the base model: varied so it has no single answer to copy. The length
# attribute is measured from the demonstrations, never asked of the model.
WORKED_EXAMPLES: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
    (
        (
            "The blender stopped working after a week and the seller never answered.",
            "Two weeks late, box crushed, one part missing. Not ordering again.",
        ),
        {
            "tone": "frustrated, blunt",
            "style": "short first-person complaint",
            "topic": "faulty products and poor customer service",
        },
    ),
    (
        (
            "Late goal from the captain seals a 2-1 away win for the league leaders.",
            "Injury-hit champions held to a goalless draw at home.",
        ),
        {
            "tone": "neutral, factual",
            "style": "compact news headline with names and scores",
            "topic": "football match results",
        },
    ),
    (
        (
            "Honestly the easiest bread I have ever made, and the crust is perfect!",
            "My kids asked for seconds. Adding extra garlic next time.",
        ),
        {
            "tone": "warm, enthusiastic",
            "style": "casual personal comment with exclamations",
            "topic": "home cooking recipes",
        },
    ),
    (
        (
            "Since the update my laptop drops the wifi every few minutes. Any fix?",
            "Printer shows offline although it is connected. What should I check?",
        ),
        {
            "tone": "puzzled, polite",
            "style": "question with technical details",
            "topic": "computer troubleshooting",
        },
    ),
)


def worked_example_values() -> dict[str, set[str]]:
    """Every attribute value the worked examples show, per key: an attribute line that
    repeats one describes the scaffolding, not the demonstrations."""
    out: dict[str, set[str]] = {key: set() for key in ATTRIBUTE_KEYS}
    for _, attrs in WORKED_EXAMPLES:
        for key, value in attrs.items():
            out[key].add(value.lower())
    return out


@dataclass(frozen=True)
class TaskSpec:
    """What the texts are, in words a prompt can use."""

    item_name: str = "text"
    label_descriptions: dict[str, str] = field(default_factory=dict)

    def describe(self, label: str) -> str:
        return self.label_descriptions.get(label, label)

    @property
    def title(self) -> str:
        return self.item_name[:1].upper() + self.item_name[1:]


def clean_text(text: str) -> str:
    """One line, no surrounding quotes, valid Unicode: what a sample or demonstration looks
    like in a prompt (an HTTP answer can carry a lone surrogate, which UTF-8 cannot store)."""
    text = " ".join(SURROGATE.sub("\ufffd", text).split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class ParsedSample:
    """One item of an LLM answer that was meant to be a sample.

    `problem` is a rejection reason (see `filters.REASONS`) when the item is not a usable
    sample at all (`unparseable`, `wrong_label`, `truncated`); `truncated` marks a text
    that the token limit cut off, which the sample filter rejects unless it finds a more
    telling reason (an endless loop is also cut off by the limit).
    """

    text: str
    truncated: bool = False
    problem: str | None = None


def shortfall_reason(raw: str, finish_reason: str, parsed: list[ParsedSample]) -> str:
    """Why a call gave fewer samples than asked, counted once per missing sample: `empty`
    answer, `truncated` by the token limit, `unparseable` (no item that is a sample
    attempt), or just `missing` (a well-formed answer with too few items)."""
    if not raw.strip():
        return "empty"
    if finish_reason == "length":
        return "truncated"
    return "missing" if any(p.problem != "unparseable" for p in parsed) else "unparseable"


def length_attribute(texts: list[str]) -> str:
    """Measured, not asked: the model copies worked examples' lengths otherwise."""
    mean = sum(word_count(t) for t in texts) / max(len(texts), 1)
    return f"about {max(1, round(mean))} words"


def format_attributes(attributes: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in attributes.items() if v)


def parse_attribute_line(text: str, first_key: str = "tone") -> dict[str, str]:
    """Parse `tone: x; style: y; topic: z` (the prompt already wrote the first key)."""
    line = f"{first_key}:{text}".split("\n", 1)[0]
    out: dict[str, str] = {}
    for part in line.split(";"):
        key, sep, value = part.partition(":")
        key = key.strip().lower()
        value = value.strip().strip(".").strip()
        if sep and key in ATTRIBUTE_KEYS and value and key not in out:
            out[key] = value[:80]
    return out


# What ends a label's tag line in a completion prompt (`Review (positive): ...`).
TAG_END = "):"


def label_problem(description: str) -> str | None:
    """Why a label (as the prompts name it) cannot be shown in a prompt, or None: the
    completion prompt writes one `Text (label): sample` line per example and the label
    check one `Label: label` line, so a line break or the tag's own end would break them."""
    if has_line_break(description):
        return "holds a line break"
    if TAG_END in description:
        return f"holds '{TAG_END}', which ends the completion prompt's label tag"
    return None


@runtime_checkable
class PromptFamily(Protocol):
    """How prompts are written for one kind of model and how its answers are read.

    The generator needs nothing else from a family, so a model that wants other prompts
    needs no change to SynAlign: write a class with these members and register it,

        class TersePrompts:
            name = "terse"
            samples_per_call = 1  # samples one call yields; 0: all `k` in one call
            stop = ("\\n",)

            def attributes(self, task, texts, variant=0): return Prompt(text=...)
            def parse_attributes(self, text): return parse_attribute_line(text)
            def samples(self, task, label, texts, attributes, k): return Prompt(text=...)
            def parse_output(self, text, finish_reason="stop", labels=()):
                return [ParsedSample(clean_text(text))]
            def echo_markers(self, task, labels): return ()

        register_prompt_family("terse", TersePrompts)

    after which `llm.prompt_family = "terse"` selects it in a run config and
    `prompt_family("terse")` builds it; `prompt_family` also takes an instance as it is.
    Real texts given to `attributes` and `samples` are data: quote or delimit them (see
    `clean_text`), never let them read as instructions. `parse_output` returns one
    `ParsedSample` per item the model meant as a sample, with `problem` set for items that
    are not usable; `echo_markers` lists prompt scaffolding that must never appear in a
    sample, so the sample filter can reject answers that copy the prompt.
    """

    @property
    def name(self) -> str: ...

    @property
    def samples_per_call(self) -> int: ...

    @property
    def stop(self) -> tuple[str, ...]: ...

    def attributes(self, task: TaskSpec, texts: list[str], variant: int = 0) -> Prompt:
        """The prompt asking what `texts` have in common (tone, style, topic)."""
        ...

    def parse_attributes(self, text: str) -> dict[str, str]:
        """The attributes in an answer to `attributes`, keyed by `ATTRIBUTE_KEYS`."""
        ...

    def samples(
        self,
        task: TaskSpec,
        label: str,
        texts: list[str],
        attributes: dict[str, str] | None,
        k: int,
    ) -> Prompt:
        """The prompt asking for `k` new texts of `label` like `texts`."""
        ...

    def parse_output(
        self, text: str, finish_reason: str = "stop", labels: Collection[str] = ()
    ) -> list[ParsedSample]:
        """The sample attempts in an answer to `samples`."""
        ...

    def echo_markers(self, task: TaskSpec, labels: Collection[str]) -> tuple[str, ...]:
        """Prompt text that marks a sample as a copy of the prompt."""
        ...
