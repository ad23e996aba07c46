"""Which fine-tuning settings and query-check threshold should retrieval use? Chosen on
validation pairs.

Runs the retrieval grid with `validation=True` (a fixed fifth of bbc-headlines' training
pairs held out as queries; the test split is never read) once with the evaluation's
settings, then once per candidate (fine-tuning settings, or the round-trip check's
threshold) on the same generated sets (their run folders
are copied, so no LLM call is repeated), rows zero-shot, real, naive and synalign. Writes
MRR@10 per setting and row with synalign's paired differences to real and naive, to
`benchmarks/results/retrieval-sweep.md` and `.json`. Every finished row is kept, so an
interrupted sweep resumes.

    python benchmarks/retrieval_sweep.py                   # 3 seeds, 128 queries
    python benchmarks/retrieval_sweep.py --seeds 2 --only long
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from synalign.evaluation.retrieval_runner import RetrievalEvaluation
from synalign.evaluation.retrieval_settings import RetrievalEvalConfig
from synalign.progress import RichReporter

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
BASE = {"steps": 12}
# Fine-tuning candidates, fixed before any was run: more updates, a higher rate, both.
CANDIDATES: dict[str, dict[str, Any]] = {
    "base": BASE,
    "long": {"steps": 48},
    "hot": {"steps": 12, "lr": 1e-4},
    "long-hot": {"steps": 48, "lr": 1e-4},
}
# Query-check candidates (base fine-tuning): a stricter round-trip threshold, the rank of
# the real pairs' median (q50) or upper quartile (q25) instead of their 90th percentile.
# Only `synalign` depends on them; the other rows are taken from the base run.
CHECKS: dict[str, list[str]] = {
    "q25": ["retrieval.check_quantile=0.25"],
    "q50": ["retrieval.check_quantile=0.5"],
}
ROWS = ["zero-shot", "real", "naive", "synalign"]


def _copy_generations(source: Path, target: Path) -> None:
    """The base run's generated sets and embedding cache, so a candidate makes no call."""
    for seed_dir in sorted(source.glob("seed-*")):
        if not (target / seed_dir.name).exists():
            shutil.copytree(seed_dir, target / seed_dir.name)
    cache = source / "cache" / "embeddings.sqlite"
    if cache.is_file() and not (target / "cache" / "embeddings.sqlite").exists():
        (target / "cache").mkdir(parents=True, exist_ok=True)
        shutil.copy2(cache, target / "cache" / "embeddings.sqlite")


def _copy_rows(source: Path, target: Path, rows: list[str]) -> None:
    """The base run's finished results of `rows`, which a check candidate does not change."""
    for result in sorted((source / "results").glob("seed-*.json")):
        done = target / "results" / result.name
        if done.exists():
            continue
        data = json.loads(result.read_text("utf-8"))
        data["methods"] = {k: v for k, v in data["methods"].items() if k in rows}
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(data), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=128)
    ap.add_argument("--only", default=",".join([*CANDIDATES, *CHECKS]))
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"))
    args = ap.parse_args()
    base = RetrievalEvalConfig(
        name="sweep-base",
        runs_dir=args.runs_dir,
        dataset="bbc-headlines",
        shots=32,
        seeds=list(range(args.seeds)),
        queries=args.queries,
        methods=ROWS,
        validation=True,
        fine_tune=BASE,
    )
    out: dict[str, Any] = {"seeds": base.seeds, "queries": args.queries, "settings": {}}
    for tag in ["base"] + [t for t in args.only.split(",") if t and t != "base"]:
        config = dataclasses.replace(
            base,
            name=f"sweep-{tag}",
            fine_tune=CANDIDATES.get(tag, BASE),
            overrides=CHECKS.get(tag, []),
        )
        if tag != "base":
            config.eval_dir.mkdir(parents=True, exist_ok=True)
            _copy_generations(base.eval_dir, config.eval_dir)
        if tag in CHECKS:
            _copy_rows(base.eval_dir, config.eval_dir, [r for r in ROWS if r != "synalign"])
        start = time.perf_counter()
        metrics = RetrievalEvaluation(config, reporter=RichReporter()).run()
        out["settings"][tag] = {
            "fine_tune": metrics["fine_tune"],
            "check": " ".join(CHECKS.get(tag, [])) or "check_quantile=0.1",
            "seconds": round(time.perf_counter() - start, 1),
            "mrr@10": {r: metrics["methods"][r]["mrr@10"]["mean"] for r in ROWS},
            "synalign - real": metrics["paired"]["real"]["synalign"]["mrr@10"],
            "synalign - naive": metrics["paired"]["naive"]["synalign"]["mrr@10"],
        }
        _write(out)


def _interval(d: dict[str, Any]) -> str:
    return f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]"


def _write(out: dict[str, Any]) -> None:
    lines = [
        "# retrieval-sweep",
        "",
        "Command: `python benchmarks/retrieval_sweep.py` (bbc-headlines, K = 32, validation"
        f" pairs from the training split, seeds {out['seeds']}, up to {out['queries']} "
        "synthetic queries per set; the test split is not read).",
        "",
        "| setting | steps | lr | check | " + " | ".join(ROWS) + " | synalign − real | "
        "synalign − naive | seconds (this invocation) |",
        "|---" * (len(ROWS) + 7) + "|",
    ]
    for tag, s in out["settings"].items():
        ft = s["fine_tune"]
        scores = " | ".join(f"{100 * s['mrr@10'][r]:.2f}" for r in ROWS)
        lines.append(
            f"| {tag} | {ft['steps']} | {ft['lr']:g} | {s.get('check', '')} | {scores} | "
            f"{_interval(s['synalign - real'])} | {_interval(s['synalign - naive'])} | "
            f"{s['seconds']} |"
        )
    lines.append("")
    lines.append("MRR@10 ×100 on the validation queries; differences with 95% t intervals.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retrieval-sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "retrieval-sweep.json").write_text(json.dumps(out, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
