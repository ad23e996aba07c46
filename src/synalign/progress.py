"""Progress reporting the stages can call without knowing about terminals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[..., None]
"""`advance(n, status=...)`: n more items done, and an optional status text."""


class Reporter(Protocol):
    """Receives stage progress; the CLI draws it, a notebook may ignore it."""

    def task(self, description: str, total: int) -> AbstractContextManager[Advance]: ...

    def message(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...


class SilentReporter:
    """Reports nothing: the default outside the command line."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        yield lambda n=1, status=None: None

    def message(self, text: str) -> None:
        return None

    def warning(self, text: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None


class RichReporter:
    """Progress bars with counts and ETA on the terminal."""

    def __init__(self, console: object | None = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        ) as bar:
            tid = bar.add_task(description, total=total, status="")

            def advance(n: int = 1, status: str | None = None) -> None:
                if status is None:
                    bar.advance(tid, n)
                else:
                    bar.update(tid, advance=n, status=status)

            yield advance

    def message(self, text: str) -> None:
        self.console.print(text)

    def warning(self, text: str) -> None:
        """A plain-text warning; brackets in it are shown, not read as markup."""
        from rich.markup import escape

        self.console.print(
            f"[yellow]warning:[/yellow] {escape(text)}", highlight=False, soft_wrap=True
        )

    def note(self, text: str) -> None:
        """A plain-text aside, dimmed."""
        from rich.markup import escape

        self.console.print(f"[dim]{escape(text)}[/dim]", highlight=False, soft_wrap=True)
