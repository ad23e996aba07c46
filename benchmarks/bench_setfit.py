"""Does SynAlign beat what a user would train instead? SetFit and logistic regression, on
the validation split of every bundled corpus.

For each seed, corpus, generator and classifier this runs the evaluation a user runs
(`synalign evaluate --dataset C --validation --classifier CLF --model GEN --methods
real,naive,synalign,imp-loss`): K = 16 shots per label from the corpus's `pool` split,
tested on its `validation` split; the test split is never read. Each finished seed is
written to `benchmarks/results/setfit/` at once and never run again, so the grid can be
stopped and resumed across sessions; the tables in `benchmarks/results/setfit.md` are
rebuilt from those files after every seed.

The two classifiers of one (corpus, generator) share one generation: the second
evaluation folder starts with copies of the first one's caches (LLM answers, label-check
scores, embeddings), so it makes no LLM call the first one made.

    python benchmarks/bench_setfit.py                          # Gemma, 5 seeds, every corpus
    python benchmarks/bench_setfit.py --generators gemma-3-270m,qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, command, git_state, machine, now, write

CORPORA = "rotten-tomatoes,convention-speeches,bbc-news,cfpb-complaints,disaster-messages"
METHODS = ["real", "naive", "synalign", "imp-loss"]
# The paper's ablations, run with --ablations for the generator and classifier that win.
ABLATIONS = ["real", "synalign", "no-esm", "no-lar", "no-check", "no-sda"]
CLASSIFIERS = "logreg,setfit"
SHOTS = 16
# Candidates per label: 3 x K, a point of the budget curve the logistic-regression
# validation measured (validation.md: +4.8 for synalign on rotten-tomatoes at 50), chosen
# for what a 14-label corpus costs to generate on 2 cores (672 candidates per variant).
BUDGET = 48
SEED_FILES = RESULTS / "setfit"


def grid_part(args: argparse.Namespace) -> str:
    """What sets this run apart from the main grid (K = 16, the main rows), in file names."""
    return ("" if args.shots == SHOTS else f"__k{args.shots}") + (
        "__ablations" if args.ablations else ""
    )


def seed_file(corpus: str, generator: str, classifier: str, seed: int, part: str = "") -> Path:
    return SEED_FILES / f"{corpus}__{generator}__{classifier}{part}__seed-{seed}.json"


def share_caches(runs: Path, corpus: str, generator: str, target: Path) -> None:
    """Copy the caches of the other classifiers' folders of (corpus, generator) into
    `target` where it has none yet: every LLM answer and score is then reused."""
    for source in sorted(runs.glob(f"{corpus}--{generator}--*")):
        if source == target:
            continue
        for cache in source.rglob("cache/*.sqlite"):
            copy = target / cache.relative_to(source)
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                # SQLite's backup reads what the write-ahead log holds too; a file copy
                # would miss every answer not yet checkpointed into the main file.
                with sqlite3.connect(cache) as src, sqlite3.connect(copy) as dst:
                    src.backup(dst)
                src.close()
                dst.close()


def run_seed(args: argparse.Namespace, corpus: str, generator: str, clf: str, seed: int) -> None:
    from synalign.evaluation import EvalConfig, Evaluation
    from synalign.progress import RichReporter

    runs = Path(args.runs_dir)
    name = f"{corpus}--{generator}--{clf}" + ("" if args.shots == SHOTS else f"--k{args.shots}")
    share_caches(runs, corpus, generator, runs / name)
    config = EvalConfig(
        name=name,
        runs_dir=str(runs),
        dataset=corpus,
        validation=True,
        shots=args.shots,
        seeds=[seed],
        samples_per_label=args.budget,
        methods=ABLATIONS if args.ablations else METHODS,
        classifier=clf,  # type: ignore[arg-type]
        curve=[],
        overrides=[f"llm.model={json.dumps(generator)}"],
    )
    load_before = os.getloadavg()
    start = time.perf_counter()
    evaluation = Evaluation(config, reporter=RichReporter())
    evaluation.run()
    result = config.folder.read_seed(seed) or {}
    record = {
        "corpus": corpus,
        "generator": generator,
        "classifier": clf,
        "seed": seed,
        "shots": args.shots,
        "budget": args.budget,
        "date": now(),
        "seconds": round(time.perf_counter() - start, 1),
        "llm_calls": evaluation.llm_calls_,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "methods": {
            m: {k: r.get(k) for k in ("macro_f1", "accuracy", "kept_rows", "synthetic_rows")}
            for m, r in result.get("methods", {}).items()
        },
        "generation": result.get("generation", {}),
    }
    SEED_FILES.mkdir(parents=True, exist_ok=True)
    path = seed_file(corpus, generator, clf, seed, grid_part(args))
    path.write_text(json.dumps(record, indent=2) + "\n")


def summarise(args: argparse.Namespace) -> None:
    """The tables, from every seed file written so far."""
    from synalign.report import format_delta, paired_stats

    records = [json.loads(p.read_text()) for p in sorted(SEED_FILES.glob("*.json"))]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        rows_run = ",".join(r["methods"])
        key = (r["corpus"], r["generator"], r["classifier"], str(r.get("shots", SHOTS)), rows_run)
        groups.setdefault(key, []).append(r)
    rows: dict[str, Any] = {}
    md = [
        "# SynAlign against SetFit and logistic regression, on validation splits",
        "",
        f"- Updated (UTC): {now()}; command: `{command('bench_setfit.py', sys.argv[1:])}`",
        f"- Commit: {git_state()['commit']}; machine: {machine()['cpus']} CPUs",
        "- K shots per label from each corpus's `pool` split, tested on its `validation` "
        f"split (the test split is never read); {BUDGET} candidates per label; rows as in "
        "`synalign evaluate`: `real` (the shots alone), `naive`, `synalign`, `imp-loss`, "
        "and the ablations where run.",
        "- Cells: macro-F1 % mean over seeds for `real`; for every other row the paired "
        "macro-F1 difference to `real` in points [95% t-interval] (seeds won). Minutes: wall "
        "time per seed (generation, label check and training), with the 1-minute load "
        "average before it.",
    ]
    for rows_run in sorted({k[4] for k in groups}, key=len):
        names = rows_run.split(",")[1:]
        md += [
            "",
            "| corpus | generator | classifier | K | seeds | real | "
            + " | ".join(f"{n} Δ" for n in names)
            + " | minutes per seed (load) |",
            "|---|---|---|---|---|---|" + "---|" * len(names) + "---|",
        ]
        for key in sorted(k for k in groups if k[4] == rows_run):
            rs = sorted(groups[key], key=lambda r: r["seed"])
            real = [r["methods"]["real"]["macro_f1"] for r in rs]
            entry: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
            entry["real"] = sum(real) / len(real)
            cells = []
            for m in names:
                deltas = [r["methods"][m]["macro_f1"] - x for r, x in zip(rs, real, strict=True)]
                entry[m] = paired_stats(deltas)
                cells.append(format_delta(entry[m]))
            minutes = sum(r["seconds"] for r in rs) / len(rs) / 60
            load = sum(r["load_before"][0] for r in rs) / len(rs)
            rows["/".join(key[:4]) + "/" + rows_run] = entry
            md.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(rs)} | "
                f"{100 * entry['real']:.1f} | "
                + " | ".join(cells)
                + f" | {minutes:.1f} ({load:.1f}) |"
            )
    write("setfit", {"rows": rows, "seed_files": len(records)}, md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=CORPORA)
    parser.add_argument("--generators", default="gemma-3-270m")
    parser.add_argument("--classifiers", default=CLASSIFIERS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--shots", type=int, default=SHOTS)
    parser.add_argument("--ablations", action="store_true", help="rows: " + ",".join(ABLATIONS))
    parser.add_argument("--runs-dir", default="runs/bench-setfit")
    args = parser.parse_args()
    for seed in range(args.seeds):
        for corpus in args.corpora.split(","):
            for generator in args.generators.split(","):
                for clf in args.classifiers.split(","):
                    if seed_file(corpus, generator, clf, seed, grid_part(args)).exists():
                        continue
                    print(f"== seed {seed} · {corpus} · {generator} · {clf}", flush=True)
                    run_seed(args, corpus, generator, clf, seed)
                    summarise(args)
    summarise(args)


if __name__ == "__main__":
    main()
