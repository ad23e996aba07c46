"""Prompt families: how a prompt is written for a model and how its answer is parsed.

`completion` suits base models (few-shot patterns, one sample per call, stop at newline);
`chat` suits instruction models (JSON out, several samples per call). Other families can be
added without changing the package: see `PromptFamily` and `register_prompt_family`.
"""

from __future__ import annotations

from collections.abc import Callable

from synalign.lar.prompts.base import (
    ATTRIBUTE_KEYS,
    TAG_END,
    ParsedSample,
    PromptFamily,
    TaskSpec,
    clean_text,
    format_attributes,
    label_problem,
    length_attribute,
    parse_attribute_line,
    shortfall_reason,
    word_count,
    worked_example_values,
)
from synalign.lar.prompts.chat import LABEL_KEYS, ChatPrompts
from synalign.lar.prompts.completion import CompletionPrompts

__all__ = [
    "ATTRIBUTE_KEYS",
    "LABEL_KEYS",
    "TAG_END",
    "ChatPrompts",
    "CompletionPrompts",
    "ParsedSample",
    "PromptFamily",
    "TaskSpec",
    "clean_text",
    "format_attributes",
    "label_problem",
    "length_attribute",
    "parse_attribute_line",
    "prompt_family",
    "prompt_family_names",
    "register_prompt_family",
    "shortfall_reason",
    "word_count",
    "worked_example_values",
]

# `auto` is not a family: a run config uses it to choose chat or completion per model.
_RESERVED = "auto"
_FAMILIES: dict[str, Callable[[], PromptFamily]] = {
    "completion": CompletionPrompts,
    "chat": ChatPrompts,
}

# What `prompt_family` checks a family has, to name what a user's class lacks.
_MEMBERS = (
    "name",
    "samples_per_call",
    "stop",
    "attributes",
    "parse_attributes",
    "samples",
    "parse_output",
    "echo_markers",
)


def register_prompt_family(name: str, family: Callable[[], PromptFamily]) -> None:
    """Make `name` a prompt family: `prompt_family(name)` and `llm.prompt_family = name`
    then build it with `family()` (a class with the `PromptFamily` members, or any
    factory). Registering a name again replaces its family."""
    if not isinstance(name, str) or not name.strip() or name == _RESERVED:
        raise ValueError(f"cannot register a prompt family as {name!r}; choose another name")
    if not callable(family):
        raise TypeError(f"prompt family {name!r} must be a class or factory, got {family!r}")
    _FAMILIES[name] = family


def prompt_family_names() -> tuple[str, ...]:
    """The registered family names, built-in ones first."""
    return tuple(_FAMILIES)


def _choices(names: tuple[str, ...]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def prompt_family(name: str | PromptFamily) -> PromptFamily:
    """The family registered as `name`; a family instance is returned as it is."""
    if not isinstance(name, str):
        family = name
    else:
        factory = _FAMILIES.get(name)
        if factory is None:
            raise ValueError(
                f"unknown prompt family {name!r}; use {_choices(prompt_family_names())}"
            )
        family = factory()
    if not isinstance(family, PromptFamily):
        missing = [m for m in _MEMBERS if not hasattr(family, m)]
        raise TypeError(
            f"{type(family).__name__} is not a prompt family: it lacks {', '.join(missing)}"
        )
    return family
