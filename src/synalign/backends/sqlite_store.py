"""The SQLite files behind the caches: a damaged one is named, with what deleting it costs,
instead of surfacing as a database traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synalign.errors import SynAlignError


@contextmanager
def readable(path: Path, holds: str, cost: str) -> Iterator[None]:
    """Turn a damaged database into one line: which cache, and what deleting it costs.
    A full disk or a read-only folder (OperationalError) is left to the caller."""
    try:
        yield
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as err:
        raise SynAlignError(
            f"{path} is damaged ({err}); it holds {holds}: delete it and re-run ({cost})"
        ) from None


def connect(path: Path, schema: str, holds: str, cost: str) -> sqlite3.Connection:
    """Open (or create) a cache database in WAL mode, with its table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with readable(path, holds, cost):
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(schema)
        db.commit()
    return db
