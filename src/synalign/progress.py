"""Progress reporting the stages can call without knowing about terminals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class Reporter(Protocol):
    """Receives stage progress; the CLI draws it, a notebook may ignore it."""

    def task(self, description: str, total: int) -> AbstractContextManager[Advance]: ...

    def message(self, text: str) -> None: ...


class SilentReporter:
    """Reports nothing: the default outside the command line."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        yield lambda n=1: None

    def message(self, text: str) -> None:
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
            console=self.console,
            transient=False,
        ) as bar:
            tid = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(tid, n)

    def message(self, text: str) -> None:
        self.console.print(text)
