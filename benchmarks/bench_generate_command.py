"""Wall time of `synalign generate --dataset rotten-tomatoes --shots 16`, old against new.

The same command, run back to back on the same machine: first with the source of a
baseline commit (a git worktree put first on PYTHONPATH), then with this checkout's. Each
run starts from an empty run folder (no cached LLM answers), with the defaults: 160
candidates per label, the bundled Gemma 3 270M, all cores. Reported per run: wall time,
CPU time, each stage's seconds from the run's state.json, accepted and rejected samples,
and the load average before and after.

    python benchmarks/bench_generate_command.py                   # baseline dec6c22
    python benchmarks/bench_generate_command.py --baseline REF --set 'llm.model="..."'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, timed_command, write

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["generate", "--dataset", "rotten-tomatoes", "--shots", "16"]


def run(source: Path, runs_dir: Path, name: str, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    argv = [sys.executable, "-m", "synalign", *COMMAND, *extra]
    timing = timed_command([*argv, "--runs-dir", str(runs_dir), "--name", name], env)
    state = json.loads((runs_dir / name / "state.json").read_text())
    stages = {k: round(v.get("seconds", 0.0), 1) for k, v in state.get("stages", {}).items()}
    accepted = sum(1 for _ in (runs_dir / name / "synthetic.jsonl").open())
    rejected = sum(1 for _ in (runs_dir / name / "rejected.jsonl").open())
    return {
        "source": str(source),
        "seconds": timing["seconds"],
        "cpu_seconds": timing["cpu_seconds"],
        "stages": stages,
        "accepted": accepted,
        "rejected": rejected,
        "load_before": timing["load_before"],
        "load_after": timing["load_after"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="dec6c22", help="git ref of the old source")
    parser.add_argument("--set", action="append", default=[], help="passed to both runs")
    args = parser.parse_args(argv)
    extra = [x for s in args.set for x in ("--set", s)]
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_generate_command.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "timed": "synalign " + " ".join(COMMAND + extra),
        "baseline": args.baseline,
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            runs = Path(tmp) / "runs"
            report["runs"] = {
                "baseline": run(base / "src", runs, "baseline", extra),
                "current": run(ROOT / "src", runs, "current", extra),
            }
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                check=False,
                capture_output=True,
            )
    r = report["runs"]
    ratio = r["current"]["seconds"] / r["baseline"]["seconds"]
    report["current_over_baseline_wall_time"] = round(ratio, 3)
    report["load_after"] = load()
    for name, x in r.items():
        print(
            f"{name:9s} {x['seconds']:7.1f} s wall  {x['cpu_seconds']:7.1f} s CPU  "
            f"stages {x['stages']}  accepted {x['accepted']} rejected {x['rejected']}"
        )
    print(f"current / baseline wall time: {ratio:.2f} (target <= 0.50)")
    md = header("`synalign generate` wall time, baseline against current", report)
    md += [
        f"Command: `{report['timed']}`, each from an empty run folder; baseline = "
        f"{args.baseline}, current = this checkout; run back to back.",
        "",
        "| run | wall s | CPU s | stage seconds | accepted | rejected | load before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in r.items():
        stages = ", ".join(f"{k} {v}" for k, v in x["stages"].items())
        md.append(
            f"| {name} | {x['seconds']} | {x['cpu_seconds']} | {stages} | {x['accepted']} | "
            f"{x['rejected']} | {x['load_before'][0]} / {x['load_after'][0]} |"
        )
    md += ["", f"- Current / baseline wall time: {ratio:.2f} (target <= 0.50)"]
    slug = "generate-command" + (
        "-" + "-".join(args.set).replace('"', "").replace("=", "-").replace(".", "-")
        if args.set
        else ""
    )
    path = write(slug, report, md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
