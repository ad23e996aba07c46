"""Named local generators: assembled from their part packages with a sha256 check, and
an unknown name or missing packages in one line that says how to install them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from synalign.backends.llm import generators
from synalign.backends.llm.generators import Generator, assemble, check_generator
from synalign.cli.options import llm_overrides
from synalign.errors import ConfigError

SCRIPT = Path(sys.executable).parent / "synalign"


def chunks(tmp_path: Path) -> tuple[list[Path], str]:
    parts = []
    whole = b""
    for i, size in enumerate((5000, 1, 70001)):
        data = bytes((i * 7 + j) % 251 for j in range(size))
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(data)
        parts.append(part)
        whole += data
    return parts, hashlib.sha256(whole).hexdigest()


def test_parts_are_joined_in_order_and_checked(tmp_path: Path) -> None:
    parts, sha = chunks(tmp_path)
    target = tmp_path / "models" / "m.gguf"
    assert assemble(parts, sha, target) == target
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    stamp = target.stat().st_mtime_ns
    assert assemble(parts, sha, target) == target  # already there: used as it is
    assert target.stat().st_mtime_ns == stamp


def test_a_wrong_sha256_keeps_nothing(tmp_path: Path) -> None:
    parts, sha = chunks(tmp_path)
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(ConfigError, match="not the pinned"):
        assemble(list(reversed(parts)), sha, target)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_packages_name_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = Generator(
        "absent", "a.gguf", "0" * 64, ("no_such_part_1", "no_such_part_2"), "make generator-absent"
    )
    monkeypatch.setitem(generators.GENERATORS, "absent", absent)
    with pytest.raises(ConfigError, match=r"2 of 2 missing.*make generator-absent"):
        check_generator("absent")
    assert check_generator("gemma-3-270m") is None


def test_model_flag_names_a_generator_or_a_file() -> None:
    assert llm_overrides("llamacpp", "qwen2.5-coder-1.5b", None) == [
        'llm.backend="llamacpp"',
        'llm.model="qwen2.5-coder-1.5b"',
    ]
    assert llm_overrides("llamacpp", "m.gguf", None)[1] == 'llm.model_path="m.gguf"'
    assert llm_overrides("openai", "gpt-x", None)[1] == 'llm.model="gpt-x"'


def test_an_unknown_generator_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            str(SCRIPT),
            "generate",
            "--dataset",
            "rotten-tomatoes",
            "--model",
            "qwen-9000",
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a named local generator" in lines[0]
    assert "gemma-3-270m, qwen2.5-coder-1.5b" in lines[0]
    assert list(tmp_path.iterdir()) == []
