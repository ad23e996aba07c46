"""SIGKILL at points in every stage, then re-run: the run always completes, its outputs are
those of an uninterrupted run with the same seed, and no file is ever half-written."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Everything a finished run writes that must not depend on interruptions (metrics.json
# holds wall times and the run directory, so it is compared without them).
OUTPUTS = (
    "real.jsonl",
    "demos.jsonl",
    "attributes.jsonl",
    "synthetic.jsonl",
    "rejected.jsonl",
    "aligned.jsonl",
    "weights.npy",
    "align.json",
)

CONFIG = """
runs_dir = "{runs_dir}"
name = "{name}"
seed = 3

[data]
dataset = "rotten-tomatoes"
shots = 6

[generate]
samples_per_label = 8
samples_per_cluster = 4
"""


def _cached(run_dir: Path) -> int:
    db = run_dir / "cache" / "llm.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _stage_reached(run_dir: Path) -> str:
    """The first stage state.json does not record as done: where the kill landed."""
    try:
        done = json.loads((run_dir / "state.json").read_text("utf-8")).get("stages", {})
    except FileNotFoundError:
        done = {}
    for stage in ("ingest", "explore", "describe", "generate", "align", "report"):
        if stage not in done:
            return stage
    return "finished"


def _check_whole(run_dir: Path) -> None:
    """Every file present parses completely: nothing half-written."""
    for path in run_dir.rglob("*"):
        if not path.is_file() or path.name.endswith((".tmp", ".lock")) or "cache" in path.parts:
            continue
        if path.suffix == ".jsonl":
            text = path.read_text("utf-8")
            assert text == "" or text.endswith("\n"), path
            for line in text.splitlines():
                json.loads(line)
        elif path.suffix == ".json":
            json.loads(path.read_text("utf-8"))
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
    for db in (run_dir / "cache").glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _write_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(CONFIG.format(runs_dir=tmp_path, name=name), encoding="utf-8")
    return path


def _command(config: Path) -> list[str]:
    return [sys.executable, "-m", "synalign", "run", str(config)]


def test_sigkill_in_every_stage_then_resume_gives_the_uninterrupted_outputs(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    start = time.monotonic()
    done = subprocess.run(
        _command(_write_config(tmp_path, "reference")), capture_output=True, text=True
    )
    uninterrupted = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    calls = _cached(reference)
    state = json.loads((reference / "state.json").read_text("utf-8"))
    scorings = state["stages"]["generate"]["llm"]["scorings"]
    assert scorings > 1  # the default label check asks the LLM too
    assert calls == 4 + 16 + scorings  # 2 clusters per label: 4 attribute calls, 16 samples

    run_dir = tmp_path / "killed"
    config = _write_config(tmp_path, "killed")

    def reached(stage: str) -> Callable[[], bool]:
        order = ("ingest", "explore", "describe", "generate", "align", "report", "finished")
        return lambda: order.index(_stage_reached(run_dir)) >= order.index(stage)

    def cached(n: int) -> Callable[[], bool]:
        return lambda: _cached(run_dir) >= n

    rng = random.Random(7)
    # The start of each stage that lasts long enough to be hit, points between the LLM
    # batches, then two random moments (last, so that a late one cannot jump past the
    # fixed points). A trigger already met when a process starts is skipped.
    triggers: list[tuple[str, Callable[[], bool] | float]] = [
        ("explore started", reached("explore")),
        ("first attribute answer cached", cached(1)),
        ("generate started", reached("generate")),
        ("first sample batch cached", cached(4 + 4)),
        ("third sample batch cached", cached(4 + 12)),
        ("label check scoring", cached(4 + 16 + 2)),
        ("align started", reached("align")),
        (f"after {(d := rng.uniform(1.0, uninterrupted)):.1f} s", d),
        (f"after {(d := rng.uniform(1.0, uninterrupted / 2)):.1f} s", d),
    ]
    landed: list[tuple[str, str]] = []
    for what, trigger in triggers:
        if callable(trigger) and trigger():
            continue
        proc = subprocess.Popen(_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        began = time.monotonic()
        while proc.poll() is None:
            if callable(trigger) and trigger():
                break
            if not callable(trigger) and time.monotonic() - began >= trigger:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed.append((what, _stage_reached(run_dir)))
        else:
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        _check_whole(run_dir)
        if _stage_reached(run_dir) == "finished":
            break

    done = subprocess.run(_command(config), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(run_dir.rglob(".*.tmp")), "a stale temporary file was left behind"
    for name in OUTPUTS:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    ours = json.loads((run_dir / "report" / "metrics.json").read_text("utf-8"))
    theirs = json.loads((reference / "report" / "metrics.json").read_text("utf-8"))
    for key in ("seconds", "run_dir", "config", "llm_usage", "llm_cost"):
        ours.pop(key), theirs.pop(key)
    assert ours == theirs
    # the cache holds the reference's calls and no others
    assert _cached(run_dir) == calls
    stages = {stage for _, stage in landed}
    points = "; ".join(f"{w} -> {s}" for w, s in landed)
    print(f"\nSIGKILL points survived: {len(landed)}: {points}")
    assert len(landed) >= 6
    assert {"explore", "describe", "generate", "align"} <= stages
