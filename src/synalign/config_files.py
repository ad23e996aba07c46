"""Reading a TOML config file, whose relative paths are read from the file's own folder.

`path = "train.csv"` in `configs/run.toml` means `configs/train.csv`, wherever the command
is run from, so a config and its data can be moved or shared together. `runs_dir` stays
relative to the working directory: like `--runs-dir` (and its default, `runs`) it says
where runs are written, not which input to read.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from synalign.errors import ConfigError
from synalign.io.files import refuse_special, stat_path

# (section, key) of every setting that names a file or folder to read.
PATH_KEYS: tuple[tuple[str, str], ...] = (
    ("data", "path"),
    ("retrieval", "corpus"),
    ("llm", "model_path"),
    ("embed", "model"),
)


def read_config_file(p: Path) -> dict[str, Any]:
    """The TOML file's tables; a missing, unreadable or malformed file is one line."""
    missing = "config file not found; pass the path to a TOML file"
    status = stat_path(p, str(p), missing, ConfigError)
    if stat.S_ISDIR(status.st_mode):
        raise ConfigError(f"{p} is a folder, not a config file; pass the path to a TOML file")
    refuse_special(status, str(p), "the config", ConfigError)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: invalid TOML: {err}") from err
    except OSError as err:
        raise ConfigError(f"{p}: cannot read it ({err.strerror or err})") from err


def paths_from_folder(data: dict[str, Any], p: Path, names: Collection[str]) -> dict[str, Any]:
    """`data` with each relative path of PATH_KEYS joined to the folder of the config file
    `p` (`~` expanded); a value in `names` (a bundled model's name) is not a path.

    A run folder's own config.toml (beside its state.json) is read as written: it records
    the paths its run used, already resolved when the run was made."""
    if p.name == "config.toml" and (p.parent / "state.json").is_file():
        return data
    out = dict(data)
    for section, key in PATH_KEYS:
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value.strip() or value in names:
            continue
        path = Path(os.path.expanduser(value))
        out[section] = {**out[section], key: str(path if path.is_absolute() else p.parent / path)}
    return out
