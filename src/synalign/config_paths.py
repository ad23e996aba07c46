"""Run names, folders and seeds a run can use: a run's folder is always one level under
`runs_dir`, so no name can reach a folder the user did not give to SynAlign."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic_core import PydanticCustomError

from synalign.errors import ConfigError

# numpy, scikit-learn and llama.cpp all take a seed of 32 bits.
MAX_SEED = 2**32 - 1
# The longest file name most file systems allow, in bytes.
_NAME_BYTES = 255
_NAME_FIX = (
    "give a plain folder name such as 'demo' (the run is written to runs_dir/NAME; set "
    "runs_dir to choose the parent folder)"
)
_SEED_RULE = f"a seed is a whole number from 0 to {MAX_SEED}"


def name_problem(name: str) -> str | None:
    """Why `name` is not one plain folder name, or None."""
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which is not a folder of its own"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if any(ord(ch) < 32 for ch in name):
        return "holds a control character (a NUL byte or a line break)"
    if len(name.encode("utf-8", "surrogatepass")) > _NAME_BYTES:
        return f"is longer than {_NAME_BYTES} bytes"
    return None


def check_run_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise PydanticCustomError(
            "run_name", "the run name {problem}; " + _NAME_FIX, {"problem": problem}
        )
    return name


def check_folder(path: str) -> str:
    """A folder path the operating system can take (no NUL byte, not empty)."""
    if not path.strip() or "\x00" in path:
        raise PydanticCustomError("folder", "give a folder path (it is empty or holds a NUL byte)")
    return path


def check_seed(seed: int) -> int:
    """A seed every library of the run accepts, checked before any work is done."""
    if not 0 <= seed <= MAX_SEED:
        raise PydanticCustomError("seed", _SEED_RULE)
    return seed


def check_location(name: str, runs_dir: str, seeds: Iterable[int]) -> None:
    """The same checks for an evaluation folder (runs_dir/name) and its seeds."""
    problem = name_problem(name)
    if problem:
        raise ConfigError(f"`name` {name[:60]!r}: the name {problem}; " + _NAME_FIX)
    if not runs_dir.strip() or "\x00" in runs_dir:
        raise ConfigError("`runs_dir`: give a folder path (it is empty or holds a NUL byte)")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"`seed` {bad[0]}: {_SEED_RULE}")
