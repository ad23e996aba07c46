"""Which fine-tuning settings should the retrieval evaluation use? Chosen on validation.

Runs the retrieval grid with `validation=True` (a fixed fifth of bbc-headlines' training
pairs held out as queries; the test split is never read) once with the evaluation's
settings, then once per candidate setting on the same generated sets (their run folders
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
# Candidates, fixed before any was run: more updates, a higher rate, both.
CANDIDATES: dict[str, dict[str, Any]] = {
    "base": BASE,
    "long": {"steps": 48},
    "hot": {"steps": 12, "lr": 1e-4},
    "long-hot": {"steps": 48, "lr": 1e-4},
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=128)
    ap.add_argument("--only", default=",".join(CANDIDATES))
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
        config = dataclasses.replace(base, name=f"sweep-{tag}", fine_tune=CANDIDATES[tag])
        if tag != "base":
            config.eval_dir.mkdir(parents=True, exist_ok=True)
            _copy_generations(base.eval_dir, config.eval_dir)
        start = time.perf_counter()
        metrics = RetrievalEvaluation(config, reporter=RichReporter()).run()
        out["settings"][tag] = {
            "fine_tune": metrics["fine_tune"],
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
        "| setting | steps | lr | " + " | ".join(ROWS) + " | synalign − real | "
        "synalign − naive | seconds |",
        "|---" * (len(ROWS) + 6) + "|",
    ]
    for tag, s in out["settings"].items():
        ft = s["fine_tune"]
        scores = " | ".join(f"{100 * s['mrr@10'][r]:.2f}" for r in ROWS)
        lines.append(
            f"| {tag} | {ft['steps']} | {ft['lr']:g} | {scores} | "
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
