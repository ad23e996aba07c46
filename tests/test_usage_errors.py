"""Command-line mistakes as a user types them, through the installed `synalign` script.

Every usage error of every command ends in one line on stderr (what was wrong, the
closest valid option or command, where the help is) with exit code 2, on the typer and
click versions the set-up installs from the lock (checked here too).
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "synalign"
DOWN = "http://127.0.0.1:9/v1"  # the discard port: nothing listens


def typed(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`synalign ARGS` run by the console script the set-up installed."""
    assert SCRIPT.is_file(), f"{SCRIPT}: the set-up installs the console script"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def usage_error(proc: subprocess.CompletedProcess[str], command: str, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert line.endswith(f"; see '{command} --help'"), line
    for needle in needles:
        assert needle in line, line
    assert proc.stdout == ""
    return line


# (arguments, the command whose help is named, what the line must say)
CASES = [
    # unknown option, with the closest valid one where there is one
    (["demo", "--shot", "3"], "synalign demo", "no such option: --shot (did you mean --shots?)"),
    (["run", "c.toml", "--forse"], "synalign run", "--forse (did you mean --force?)"),
    (
        ["generate", "--samples-per-lable", "3"],
        "synalign generate",
        "(did you mean --samples-per-label?)",
    ),
    (["align", "--ess-flor", "0.5"], "synalign align", "(did you mean --ess-floor?)"),
    (["export", "a", "b", "--formt", "csv"], "synalign export", "(did you mean --format?)"),
    (["evaluate", "--seed", "3"], "synalign evaluate", "(did you mean --seeds?)"),
    (["report", "r", "--force"], "synalign report", "no such option: --force"),
    (["datasets", "list", "--jsn"], "synalign datasets list", "(did you mean --json?)"),
    (["--versio"], "synalign", "(did you mean --version?)"),
    (["generate", "--bogus", "1"], "synalign generate", "no such option: --bogus"),
    # unknown command
    (["frobnicate"], "synalign", "no such command 'frobnicate'"),
    (["genrate"], "synalign", "no such command 'genrate' (did you mean generate?)"),
    (["datasets", "lst"], "synalign datasets", "'lst' (did you mean list?)"),
    # a value of the wrong type or out of range
    (["demo", "--shots", "abc"], "synalign demo", "invalid value for '--shots'"),
    (["generate", "--seed", "x"], "synalign generate", "invalid value for '--seed'"),
    (["evaluate", "--C", "high"], "synalign evaluate", "invalid value for '--C'"),
    (["evaluate", "--test-per-label", "1.5"], "synalign evaluate", "'--test-per-label'"),
    (
        ["align", "--real", "a", "--synthetic", "b", "--out", "c", "--ess-floor", "2"],
        "synalign align",
        "invalid value for '--ess-floor'",
    ),
    (["run", "c.toml", "--force=yes"], "synalign run", "'--force' does not take a value"),
    (["datasets", "list", "--json=3"], "synalign datasets list", "does not take a value"),
    # a missing value
    (["demo", "--seed"], "synalign demo", "option '--seed' requires an argument"),
    (["run", "c.toml", "--runs-dir"], "synalign run", "'--runs-dir' requires an argument"),
    (["generate", "--input"], "synalign generate", "'--input' requires an argument"),
    (["align", "--real"], "synalign align", "'--real' requires an argument"),
    (["export", "a", "b", "--which"], "synalign export", "'--which' requires an argument"),
    (["evaluate", "--seeds"], "synalign evaluate", "'--seeds' requires an argument"),
    # a missing required argument or option, and one too many
    (["run"], "synalign run", "missing argument 'config_file'"),
    (["export", "runs/demo"], "synalign export", "missing argument 'output'"),
    (["report"], "synalign report", "missing argument 'eval_dir'"),
    (["align"], "synalign align", "missing option '--real'"),
    (["align", "--real", "a", "--synthetic", "b"], "synalign align", "missing option '--out'"),
    (["report", "a", "b"], "synalign report", "unexpected extra argument"),
    (["datasets"], "synalign datasets", "missing command"),
]


@pytest.mark.parametrize(("args", "command", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_usage_error_is_one_line(args: list[str], command: str, needle: str) -> None:
    usage_error(typed(*args), command, needle)


def test_every_command_is_covered() -> None:
    """A new command gets its own usage cases: each command above is exercised."""
    import typer.main

    from synalign.cli.app import app

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"demo", "run", "generate", "align", "export", "evaluate", "report"} <= commands
    covered = {c[1].split()[1] for c in CASES if len(c[1].split()) > 1}
    assert commands <= covered, commands - covered


def test_bare_command_prints_help() -> None:
    proc = typed()
    assert proc.returncode == 2
    assert "Usage: synalign" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["demo", "run", "generate", "evaluate"])
def test_every_command_that_writes_a_run_takes_its_location(command: str) -> None:
    text = typed(command, "--help").stdout
    assert "--name" in text and "--runs-dir" in text


def test_run_takes_runs_dir_and_name(tmp_path: Path) -> None:
    """`synalign run CONFIG --runs-dir X --name Y` writes the run to X/Y, not where the
    config says; the run stops in one line at the unreachable endpoint."""
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "from-config"\nruns_dir = "elsewhere"\n[data]\ndataset = "rotten-tomatoes"\n'
        'shots = 3\n[llm]\nbackend = "openai"\nmodel = "m"\n'
        f'base_url = "{DOWN}"\nmax_retries = 0\n'
    )
    proc = typed("run", str(config), "--runs-dir", str(tmp_path / "X"), "--name", "Y", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert (tmp_path / "X" / "Y" / "real.jsonl").is_file()
    assert not (tmp_path / "elsewhere").exists()
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith(f"error: LLM endpoint {DOWN} still failing"), proc.stderr


@pytest.mark.parametrize(
    ("task", "needle"),
    [("classification", "--shots 0: "), ("retrieval", "--shots 0: give a positive number")],
)
def test_zero_shots_is_refused_not_replaced_by_the_default(
    task: str, needle: str, tmp_path: Path
) -> None:
    """`--shots 0` is a mistake to report, not a request for the default budget: one line,
    and no evaluation starts."""
    dataset = "bbc-headlines" if task == "retrieval" else "rotten-tomatoes"
    args = ["--task", task, "--dataset", dataset, "--shots", "0", "--runs-dir", str(tmp_path)]
    proc = typed("evaluate", *args)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not any(tmp_path.iterdir())


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_setup_installed_the_locked_versions() -> None:
    """The set-up installs from the lock: what runs here is what the lock names."""
    pins = _lock()
    assert {"typer", "click", "rich", "pydantic", "numpy", "torch"} <= set(pins)
    wrong = {
        name: (version, metadata.version(name))
        for name, version in pins.items()
        if metadata.version(name) != version
    }
    assert not wrong, wrong


def test_lock_records_how_it_was_made() -> None:
    header = (ROOT / "constraints.txt").read_text().split("\n\n")[0]
    assert "make lock" in header and "tools/lock.py" in header
    assert re.search(r"pip \d+\.\d+", header) and "CPython 3." in header
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"typer>=' in pyproject  # ranges stay for installing into other environments
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("-c $(LOCK)") >= 5  # every install of the set-up is constrained
