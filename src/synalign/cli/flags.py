"""Config keys in error messages, followed by the flag that sets them.

Library errors name config keys (`name`, `llm.base_url`, 'data.shots'), which is what a
config file or `--set` user needs; someone who typed a flag needs the flag. An option
that sets a key names it in its help text ("(config key `KEY`)", see
`synalign.cli.options.keyed`), so each command's own options say which keys it can name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

_KEYED_HELP = re.compile(r"config key `([^`]+)`")


class CommandWithParams(Protocol):
    """A click command: only its parameters are read."""

    params: Sequence[Any]


def config_flags(command: CommandWithParams) -> dict[str, str]:
    """Config key -> the command's long flag that sets it, read from the options' help."""
    flags: dict[str, str] = {}
    for param in command.params:
        match = _KEYED_HELP.search(getattr(param, "help", None) or "")
        long = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if match and long:
            flags.setdefault(match.group(1), long[0])
    return flags


def _mentions(key: str) -> list[tuple[re.Pattern[str], bool]]:
    """How a message can name `key`, each with whether the flag joins parentheses around
    it. Plain words such as `name` or `seed` count only when backquoted, parenthesised or
    called a config key; a dotted or underscored key also counts bare or quoted, unless it
    is part of a longer name, a path or a `--set KEY=VALUE`."""
    k = re.escape(key)
    forms = [
        (re.compile(rf"\((`?){k}\1\)"), True),
        (re.compile(rf"`{k}`"), False),
        (re.compile(rf"config key (['\"]){k}\1"), False),
    ]
    if "." in key or "_" in key:
        forms.append(
            (re.compile(rf"(?<![\w./\\-])(?<!--set )(['\"]?){k}\1(?![\w=/\\-]|\.\w)"), False)
        )
    return forms


def _first_mention(message: str, key: str) -> tuple[int, bool] | None:
    """Where the flag of `key` goes (after its first mention), and whether it goes inside
    the parentheses around the key."""
    found = [
        (match.start(), match.end(), in_parens)
        for pattern, in_parens in _mentions(key)
        if (match := pattern.search(message))
    ]
    if not found:
        return None
    _, end, in_parens = min(found)
    return (end - 1, True) if in_parens else (end, False)


def flag_hint(message: str, command: CommandWithParams) -> str:
    """`message` with the flag of `command` that sets each config key it names after the
    key's first mention: "`name` (--name)", "llm.base_url (--base-url)", "(name; --name)".
    A key whose flag the message already names is left as it is."""
    inserts: list[tuple[int, str]] = []
    for key, flag in config_flags(command).items():
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", message):
            continue
        place = _first_mention(message, key)
        if place is None:
            continue
        at, in_parens = place
        inserts.append((at, f"; {flag}" if in_parens else f" ({flag})"))
    for at, text in sorted(inserts, reverse=True):
        message = message[:at] + text + message[at:]
    return message
