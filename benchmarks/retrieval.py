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
from typing import Any

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
    estimate = _estimate(Path(args.runs_dir) / f"bench-{tag}")
    (RESULTS / f"{tag}.md").write_text(head + body + estimate["text"], encoding="utf-8")
    (RESULTS / f"{tag}.json").write_text(
        json.dumps(
            {
                "command": shown,
                "seconds": round(seconds, 1),
                **metrics,
                "estimate_1m_documents": {k: v for k, v in estimate.items() if k != "text"},
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS / (tag + '.md')}")


def _estimate(eval_dir: Path, documents: int = 1_000_000) -> dict[str, Any]:
    """Time and cost of one query for each of `documents` corpus documents, from what the
    synalign sets of this grid cost (attribute and query calls, tokens, seconds per call),
    as bench_ray.py estimates a million classification samples."""
    totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
    targets = 0
    for state_file in sorted(eval_dir.glob("seed-*/gp-attr/state.json")):
        stages = json.loads(state_file.read_text("utf-8"))["stages"]
        if "generate" not in stages:
            continue
        targets += int(stages["generate"]["generated"])
        for name in ("describe", "generate"):
            llm = stages[name].get("llm") or {}
            for key in ("calls", "prompt_tokens", "completion_tokens"):
                totals[key] += int(llm.get(key, 0))
            totals["seconds"] += float(stages[name].get("seconds", 0.0))
    if not targets or not totals["calls"]:
        return {"text": ""}
    scale = documents / targets
    calls, prompt, completion = (
        totals[k] * scale for k in ("calls", "prompt_tokens", "completion_tokens")
    )
    per_call = totals["seconds"] / totals["calls"]
    price = prompt / 1e6 * 0.15 + completion / 1e6 * 0.6
    hours = calls * per_call / 3600
    text = (
        f"\n## Estimate: queries for {documents:,} documents\n\n"
        f"From the `synalign` sets of this grid ({targets} target documents over the seeds):"
        f" {totals['calls'] / targets:.2f} calls per document (attribute calls included),"
        f" {totals['prompt_tokens'] / totals['calls']:.0f} prompt and"
        f" {totals['completion_tokens'] / totals['calls']:.1f} completion tokens per call,"
        f" {per_call:.2f} s per call with the bundled model on this machine, as the grid"
        " measured it (stage seconds over calls; with anything else running, an upper"
        " bound).\n\n"
        f"Totals: {calls:,.0f} calls, {prompt / 1e6:,.0f} M prompt tokens,"
        f" {completion / 1e6:,.1f} M completion tokens; at API prices of $0.15/M input and"
        f" $0.6/M output tokens: ${price:,.0f}. On servers like this one (bundled Gemma 3"
        f" 270M, 2 cores): {hours:,.0f} server-hours, e.g. {hours / 64:,.1f} h on 64 servers"
        " through the Ray executor (requests are independent; bench_ray.py measured its"
        " overhead at a few percent). The query check keeps about"
        " the share shown as `kept` above, so the kept queries per document are fewer.\n"
    )
    return {
        "text": text,
        "documents": documents,
        "calls": round(calls),
        "prompt_tokens": round(prompt),
        "completion_tokens": round(completion),
        "seconds_per_call": round(per_call, 3),
        "api_cost_usd": round(price, 2),
        "server_hours": round(hours, 1),
    }


if __name__ == "__main__":
    main()
