"""Where an output may be written: checked before any work is done, so a mistake costs
nothing, and never over a folder that SynAlign did not write."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from synalign.errors import ConfigError

# Left inside every datasets folder SynAlign writes: the only kind of folder it replaces.
EXPORT_MARKER = ".synalign-export"
# What a datasets folder written by SynAlign holds (besides its Arrow shards).
_DATASETS_FILES = {EXPORT_MARKER, "README.md", "dataset_info.json", "state.json"}


def is_own_export(folder: Path) -> bool:
    """A datasets folder SynAlign wrote and nobody has added to since."""
    if not (folder / EXPORT_MARKER).is_file():
        return False
    for item in folder.iterdir():
        shard = item.name.startswith("data-") and item.name.endswith(".arrow")
        if item.is_symlink() or not item.is_file() or not (shard or item.name in _DATASETS_FILES):
            return False
    return True


def cannot_write(path: Path, err: OSError) -> ConfigError:
    """An operating-system refusal as one line the user can act on."""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and any(
        p.exists() and not p.is_dir() for p in path.parents
    ):
        parent = next(p for p in path.parents if p.exists() and not p.is_dir())
        return ConfigError(f"{path}: {parent} is a file, not a folder; choose another output path")
    return ConfigError(f"{path}: cannot write there ({reason}); choose a writable output path")


def check_output(path: Path, kind: str) -> None:
    """Refuse an output path that cannot be written, or whose writing would replace a
    folder (or anything in one) that SynAlign did not write, before the work starts."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(
                    f"{path}: {parent} is a file, not a folder; choose another output path"
                )
            break
    if path.is_dir() and not path.is_symlink():
        if kind != "hf":
            raise ConfigError(
                f"{path} is a folder; give a file name such as {path / 'data'}.{kind}"
            )
        if any(path.iterdir()) and not is_own_export(path):
            raise ConfigError(
                f"{path} is a folder that synalign did not write; synalign never replaces "
                "it: give a new folder name for the datasets export"
            )
    elif path.exists() and kind == "hf":
        raise ConfigError(f"{path} exists and is not a folder; choose another output path")
    _probe(path)


def _probe(path: Path) -> None:
    """Create (and remove) a file where the output will go: an unwritable place is found
    now rather than after the work is done."""
    folder = next((p for p in path.parents if p.is_dir()), Path("."))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise cannot_write(path, err) from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
