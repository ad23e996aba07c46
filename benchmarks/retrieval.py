"""Do synthetic queries make a fine-tuned retriever better? The retrieval grid, timed.

Runs `synalign evaluate --task retrieval` (every row: zero-shot, bm25, real, naive,
synalign and its ablations, the two field filters alone) on the bundled `bbc-headlines`
corpus with K = 32 real (headline, article) pairs, 5 seeds, the bundled local model and
the bundled MiniLM fine-tuned with fixed hyperparameters, then writes the tables (paired
differences with 95% intervals), the wall time and the exact command to
`benchmarks/results/<tag>.md` and `<tag>.json`.

Every generation, check score and row result is kept in the evaluation folder, so an
interrupted run resumes where it stopped. `--validation` tests on a fifth of the training
pairs instead of the test split: for choosing settings.

    python benchmarks/retrieval.py                 # the full grid (test split)
    python benchmarks/retrieval.py --validation    # the same grid on held-out train pairs
    python benchmarks/retrieval.py --seeds 1 --queries 32 --tag retrieval-quick
    python benchmarks/retrieval.py --report-only   # tables of what has finished so far
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="5")
    ap.add_argument("--shots", type=int, default=32)
    ap.add_argument("--queries", type=int, default=160)
    ap.add_argument("--methods", default="all")
    ap.add_argument("--validation", action="store_true")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"))
    ap.add_argument("--tag", default=None)
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild the report of the rows and seeds finished so far",
    )
    args = ap.parse_args()
    tag = args.tag or ("retrieval-validation" if args.validation else "retrieval")
    synalign = str(Path(sys.executable).parent / "synalign")
    cmd = [
        synalign, "evaluate", "--task", "retrieval", "--dataset", "bbc-headlines",
        "--shots", str(args.shots), "--seeds", args.seeds, "--queries", str(args.queries),
        "--methods", args.methods, "--name", f"bench-{tag}", "--runs-dir", args.runs_dir,
    ]  # fmt: skip
    if args.validation:
        cmd.append("--validation")
    start = time.perf_counter()
    if args.report_only:
        report_cmd = [synalign, "report", str(Path(args.runs_dir) / f"bench-{tag}")]
        subprocess.run(report_cmd, check=True)
    else:
        print("$", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "COLUMNS": "160"})
    seconds = time.perf_counter() - start
    report = Path(args.runs_dir) / f"bench-{tag}" / "report"
    metrics = json.loads((report / "metrics.json").read_text("utf-8"))
    RESULTS.mkdir(exist_ok=True)
    shown = shlex.join(["python", "benchmarks/retrieval.py", *sys.argv[1:]])
    head = (
        f"# {tag}\n\nCommand: `{shown}` (runs `{shlex.join(['synalign', *cmd[1:-2]])}`)\n\n"
        f"Wall time of this invocation: {seconds / 60:.1f} min on {os.cpu_count()} cores"
        f" ({platform.machine()}, Python {platform.python_version()}); finished parts of an"
        " earlier invocation are reused, so a resumed run's time is only its own part.\n\n"
    )
    if args.report_only:
        head += (
            "Rebuilt from the rows and seeds finished so far (`--report-only`): each row is"
            " summarised over the seeds it has (column `seeds`).\n\n"
        )
    body = (report / "report.md").read_text("utf-8").split("\n", 1)[1]
    png = report / "query-lengths.png"
    if png.is_file():
        (RESULTS / f"{tag}-query-lengths.png").write_bytes(png.read_bytes())
        body = body.replace("](query-lengths.png)", f"]({tag}-query-lengths.png)")
    (RESULTS / f"{tag}.md").write_text(head + body, encoding="utf-8")
    (RESULTS / f"{tag}.json").write_text(
        json.dumps({"command": shown, "seconds": round(seconds, 1), **metrics}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS / (tag + '.md')}")


if __name__ == "__main__":
    main()
