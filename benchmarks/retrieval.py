"""Do synthetic queries make a fine-tuned retriever better? The retrieval grid, timed.

Runs `synalign evaluate --task retrieval` (every row: zero-shot, bm25, real, naive,
synalign and its ablations, the two field filters alone) on the bundled `bbc-headlines`
corpus with K = 32 real (headline, article) pairs, 5 seeds (3 for the ablations), the
bundled local model and the bundled MiniLM fine-tuned with fixed hyperparameters, then
writes the tables (paired differences with 95% intervals), the wall time and the exact
commands to `benchmarks/results/<tag>.md` and `<tag>.json`.

Every generation, check score and row result is kept in the evaluation folder, so an
interrupted run resumes where it stopped. `--validation` tests on a fifth of the training
pairs instead of the test split: for choosing settings.

    python benchmarks/retrieval.py                 # the full grid (test split): main
                                                   # rows 5 seeds, then ablations 3 seeds
    python benchmarks/retrieval.py --validation    # the same grid on held-out train pairs
    python benchmarks/retrieval.py --seeds 1 --ablation-seeds 0 --queries 32 --tag retrieval-quick
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
MAIN_ROWS = ("zero-shot", "bm25", "real", "naive", "synalign")
ABLATION_ROWS = ("no-esm", "no-lar", "no-check", "no-sda", "roundtrip-check", "likelihood-check")
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the main rows")
    ap.add_argument(
        "--ablation-seeds",
        type=int,
        default=3,
        help="seeds of the ablations and lone checks (0: none); fewer than the main rows'"
        " so the grid fits in about 90 minutes on 2 cores",
    )
    ap.add_argument("--shots", type=int, default=32)
    ap.add_argument("--queries", type=int, default=128)
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

    def evaluate(methods: tuple[str, ...], seeds: int) -> list[str]:
        cmd = [
            synalign, "evaluate", "--task", "retrieval", "--dataset", "bbc-headlines",
            "--shots", str(args.shots), "--seeds", str(seeds), "--queries", str(args.queries),
            "--methods", ",".join(methods), "--name", f"bench-{tag}",
        ]  # fmt: skip
        return [*cmd, "--validation"] if args.validation else cmd

    commands = [evaluate(MAIN_ROWS, args.seeds)]
    if args.ablation_seeds:
        commands.append(evaluate(ABLATION_ROWS, args.ablation_seeds))
    start = time.perf_counter()
    if not args.report_only:
        for cmd in commands:
            print("$", shlex.join(cmd), flush=True)
            where = ["--runs-dir", args.runs_dir]
            subprocess.run([*cmd, *where], check=True, env={**os.environ, "COLUMNS": "160"})
    # One report over every row of both invocations, each over the seeds it has.
    subprocess.run([synalign, "report", str(Path(args.runs_dir) / f"bench-{tag}")], check=True)
    seconds = time.perf_counter() - start
    report = Path(args.runs_dir) / f"bench-{tag}" / "report"
    metrics = json.loads((report / "metrics.json").read_text("utf-8"))
    RESULTS.mkdir(exist_ok=True)
    shown = shlex.join(["python", "benchmarks/retrieval.py", *sys.argv[1:]])
    runs = " then ".join(f"`{shlex.join(['synalign', *c[1:]])}`" for c in commands)
    head = (
        f"# {tag}\n\nCommand: `{shown}` (runs {runs}; the ablations over fewer seeds so the"
        " grid fits in about 90 minutes on 2 cores)\n\n"
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


def _estimate(eval_dir: Path) -> dict[str, Any]:
    """Time and cost of one query for each of a million corpus documents, from what the
    synalign sets of this grid cost (attribute and query calls, tokens, seconds per call),
    scaled by bench_ray.py's estimate (a target document in place of an accepted sample)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_ray import estimate

    measured = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
    targets = 0
    for state_file in sorted(eval_dir.glob("seed-*/gp-attr/state.json")):
        stages = json.loads(state_file.read_text("utf-8"))["stages"]
        used = [stages.get(name, {}).get("llm") or {} for name in ("describe", "generate")]
        if "generate" not in stages or any(u.get("cache_hits") for u in used):
            continue  # not generated, or served from the cache: no cost to measure
        targets += int(stages["generate"]["generated"])
        for name in ("describe", "generate"):
            llm = stages[name].get("llm") or {}
            for key in ("calls", "prompt_tokens", "completion_tokens"):
                measured[key] += int(llm.get(key, 0))
            measured["seconds"] += float(stages[name].get("seconds", 0.0))
    if not targets or not measured["calls"]:
        return {"text": ""}
    # The driver's CPU per call is not measured here: the estimate is bound by the servers.
    prices = {"input": 0.15, "output": 0.6, "server_hour": 0.1}
    est = estimate({**measured, "accepted": targets, "driver_cpu_ray": 0.0}, 0.0, [64], prices)
    per_call = est["server_seconds_per_call"]
    server_hours = est["by_servers"][0]["server_hours"]
    text = (
        "\n## Estimate: queries for 1,000,000 documents\n\n"
        f"From the `synalign` sets this grid generated afresh ({targets} target documents):"
        f" {est['per_accepted_sample']['calls']:.2f} calls per document (attribute calls"
        f" included), {measured['prompt_tokens'] / measured['calls']:.0f} prompt and"
        f" {measured['completion_tokens'] / measured['calls']:.1f} completion tokens per call,"
        f" {per_call:.2f} s per call with the bundled model on this machine, as the grid"
        " measured it (stage seconds over calls; with anything else running, an upper"
        " bound).\n\n"
        f"Totals: {est['calls']:,} calls, {est['prompt_tokens'] / 1e6:,.0f} M prompt tokens,"
        f" {est['completion_tokens'] / 1e6:,.1f} M completion tokens; at API prices of"
        f" $0.15/M input and $0.6/M output tokens: ${est['api_cost']:,.0f}. On servers like"
        f" this one (bundled Gemma 3 270M, 2 cores): {server_hours:,.0f} server-hours, e.g."
        f" {est['by_servers'][0]['hours']:,.1f} h on 64 servers through the Ray executor"
        " (requests are independent; bench_ray.py measured its overhead at a few percent)."
        " The query check keeps about the share shown as `kept` above, so the kept queries"
        " per document are fewer.\n"
    )
    return {
        "text": text,
        "documents": 1_000_000,
        "calls": est["calls"],
        "prompt_tokens": est["prompt_tokens"],
        "completion_tokens": est["completion_tokens"],
        "seconds_per_call": round(per_call, 3),
        "api_cost_usd": est["api_cost"],
        "server_hours": server_hours,
    }


if __name__ == "__main__":
    main()
