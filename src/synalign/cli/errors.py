"""Command-line mistakes as one line: what was wrong, the closest valid option or
command, and where the help is."""

from __future__ import annotations

from typing import Any

import typer


def click_exceptions() -> tuple[type[Exception], type[Exception]]:
    """UsageError and ClickException of the click that typer runs on: typer >= 0.29 ships
    its own copy of click, whose exceptions are not the `click` package's."""
    bases = {c.__name__: c for c in typer.BadParameter.__mro__}
    return bases["UsageError"], bases["ClickException"]


def _closest(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def command_of(root: Any, argv: list[str]) -> tuple[str, Any]:
    """The command path a user typed (`synalign datasets list`) and its click command,
    found from `root` (the click command of the whole app): an error raised before the
    command's context exists, or after it has closed, carries neither."""
    command = root
    path = ["synalign"]
    for arg in argv:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return " ".join(path), command


def usage_line(e: Exception, argv: list[str], root: Any) -> str:
    """A usage error as one line: what was wrong, the closest valid option or command,
    and where the help is."""
    ctx = getattr(e, "ctx", None)
    path, command = command_of(root, argv)
    if ctx is not None:
        path, command = ctx.command_path, ctx.command
    hint = None
    if type(e).__name__ == "NoSuchOption":
        message = " ".join(str(getattr(e, "message", e)).split())
        options = [o for p in command.params for o in (*p.opts, *p.secondary_opts)]
        hint = _closest(str(getattr(e, "option_name", "")), [*options, "--help"])
    else:
        message = " ".join(e.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        if message.startswith("No such command"):
            message = message.split(". Did you mean", 1)[0]  # click's own hint, reworded
            name = message.split("'")[1] if "'" in message else ""
            hint = _closest(name, list(getattr(command, "commands", {})))
    suggestion = f" (did you mean {hint}?)" if hint else ""
    return f"{message[:1].lower()}{message[1:]}{suggestion}; see '{path} --help'"
