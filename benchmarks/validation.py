"""Choosing defaults without the test split: label checks and budgets on validation data.

Runs `synalign evaluate --validation` (shots from each bundled corpus's `pool` split,
tested on its `validation` split; the `test` split is never read) on every bundled corpus
at each synthetic budget, compares the label-check rules and the budgets by their paired
difference in macro-F1 to `real` and to `naive`, averaged over the corpora, and writes
the table, the budget curves, what the per-run threshold picked on each corpus, and the
choice to `benchmarks/results/<tag>.md` and `.json`.

Each corpus is one evaluation folder: its variants are generated once, at the largest
budget (the curve's 10x point), and a smaller budget is the same generation cut after
fewer clusters, so a second budget costs no generation and a re-run costs none at all.

    python benchmarks/validation.py                      # every corpus
    python benchmarks/validation.py --corpora rotten-tomatoes --seeds 3  # a subset
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, write

CORPORA = "rotten-tomatoes,convention-speeches,bbc-news"
# Label-check rules compared (`synalign` is the configured default).
METHODS = "real,naive,synalign,no-check,llm-check,classifier-check,fixed-check"
SHOTS = 16
# Curve multiples per corpus: a BBC text costs about three times a review to generate.
CURVES: dict[str, list[float]] = {"bbc-news": [1.0, 3.0]}
DEFAULT_CURVE = [1.0, 3.0, 10.0]
OLD_BUDGET = 40
# Seeds per corpus as measured (one session's time): a convention seed costs about 1.5
# review seeds, a BBC seed (five labels, longer texts) about 3.
SEEDS = {"rotten-tomatoes": 5, "convention-speeches": 3, "bbc-news": 2}
SAMPLES_PER_CLUSTER = 5  # the pipeline's default


def budgets_of(corpus: str) -> list[int]:
    """The former default budget (40 candidates per label) and the curve's largest point."""
    from synalign.evaluation.budget_curve import candidates_for

    top = candidates_for(max(CURVES.get(corpus, DEFAULT_CURVE)), SHOTS, SAMPLES_PER_CLUSTER)
    return [OLD_BUDGET, top]


def _delta(entry: dict[str, Any] | None) -> str:
    from synalign.report import format_delta

    return format_delta(entry)


def _corpus_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the choice needs from one evaluation: per method the macro-F1, the paired
    differences, the label check's rejections and the thresholds it used per seed."""
    out: dict[str, Any] = {}
    for name, m in metrics["methods"].items():
        thresholds = [s["methods"][name].get("label_check_threshold") for s in metrics["per_seed"]]
        out[name] = {
            "macro_f1": m["macro_f1"],
            "vs_real": metrics["paired"].get("real", {}).get(name, {}).get("macro_f1"),
            "vs_naive": metrics["paired"].get("naive", {}).get(name, {}).get("macro_f1"),
            "check_rejected": m["check_rejected"]["mean"],
            "rejection_precision": m["rejection_precision"]["mean"],
            "thresholds": thresholds,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default=CORPORA, help="Comma list of bundled corpora.")
    parser.add_argument(
        "--seeds", default=None, help="Count or comma list (default: per corpus, SEEDS)."
    )
    parser.add_argument("--runs-dir", default="runs/validation", help="Evaluation folders.")
    parser.add_argument("--tag", default="validation", help="Output name under results/.")
    args = parser.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rich.console import Console

    from synalign.backends.llm.factory import make_llm
    from synalign.evaluation import EvalConfig, Evaluation, parse_methods, parse_seeds
    from synalign.progress import RichReporter

    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    reporter = RichReporter(Console(stderr=True))
    llm = None
    report: dict[str, Any] = {
        "command": command("validation.py", argv or sys.argv[1:]),
        "seeds": {},
        "shots": SHOTS,
        "budgets": {c: budgets_of(c) for c in corpora},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "corpora": {},
    }
    started = time.perf_counter()
    for corpus in corpora:
        entry: dict[str, Any] = {"budgets": {}}
        seeds = parse_seeds(args.seeds or str(SEEDS.get(corpus, 3)))
        report["seeds"][corpus] = seeds
        for budget in budgets_of(corpus):
            config = EvalConfig(
                name=corpus,
                runs_dir=args.runs_dir,
                dataset=corpus,
                validation=True,
                shots=SHOTS,
                seeds=seeds,
                samples_per_label=budget,
                curve=CURVES.get(corpus, DEFAULT_CURVE),
                judge=True,
                methods=parse_methods(METHODS, judge=True),
            )
            if llm is None:
                llm = make_llm(config.run_config(seeds[0]).llm)
            start = time.perf_counter()
            evaluation = Evaluation(config, reporter=reporter, llm=llm)
            metrics = evaluation.run()
            key = "largest" if budget == budgets_of(corpus)[-1] else str(budget)
            entry["budgets"][key] = {
                "candidates_per_label": budget,
                "seconds": round(time.perf_counter() - start, 1),
                "llm_calls": evaluation.llm_calls_,
                "methods": _corpus_rows(metrics),
            }
            entry["curve"] = metrics["curve"]
            entry["generation"] = metrics["generation"]
        report["corpora"][corpus] = entry
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["choice"] = choose(report)
    lines = render(report)
    path = write(args.tag, report, lines)
    print("\n".join(lines))
    print(f"written: {path}")
    return 0


def choose(report: dict[str, Any]) -> dict[str, Any]:
    """The (method, budget) with the highest mean paired gain over `real`, averaged over
    the corpora (each corpus counts once, whatever its seed-to-seed noise)."""
    scores: dict[str, list[float]] = {}
    for entry in report["corpora"].values():
        for budget, b in entry["budgets"].items():
            for name, m in b["methods"].items():
                if name == "real" or not m["vs_real"] or m["vs_real"]["mean"] is None:
                    continue
                scores.setdefault(f"{name} @ {budget}", []).append(100 * m["vs_real"]["mean"])
    n = len(report["corpora"])
    mean = {k: sum(v) / len(v) for k, v in scores.items() if len(v) == n}
    ranked = sorted(mean, key=mean.__getitem__, reverse=True)
    return {"ranking": [[k, round(mean[k], 2)] for k in ranked], "picked": ranked[:1]}


def render(report: dict[str, Any]) -> list[str]:
    corpora = list(report["corpora"])
    lines = [
        "# Choosing defaults on validation data",
        "",
        f"Command: `{report['command']}`",
        "",
        f"K = {report['shots']} real shots per label from each corpus's `pool` split (seeds: "
        + "; ".join(f"{c} {', '.join(map(str, s))}" for c, s in report["seeds"].items())
        + "), tested on its `validation` split (a fifth of "
        "the training split held out, by speaker for convention-speeches); the test split is "
        "never read. Bundled Gemma 3 270M, MiniLM embeddings, logistic regression C = 1. "
        "Budgets are candidate samples per label: 40 (the former default) and `largest`, the "
        "curve's largest point (160; 50 on bbc-news, where a text costs three times as much). "
        "Δ: paired macro-F1 difference in points "
        "[95% t-interval] (seeds won).",
        "",
        "| method @ budget | "
        + " | ".join(f"{c}: F1 / Δ vs real / Δ vs naive" for c in corpora)
        + " | mean Δ vs real |",
        "|---|" + "---|" * (len(corpora) + 1),
    ]
    ranking = dict((k, v) for k, v in report["choice"]["ranking"])
    keys = sorted(
        {
            f"{n} @ {b}"
            for e in report["corpora"].values()
            for b, x in e["budgets"].items()
            for n in x["methods"]
        }
    )
    for key in keys:
        name, budget = key.split(" @ ")
        cells = []
        for corpus in corpora:
            m = report["corpora"][corpus]["budgets"].get(budget, {}).get("methods", {}).get(name)
            if m is None:
                cells.append("-")
                continue
            f1 = m["macro_f1"]
            cells.append(
                f"{100 * f1['mean']:.1f} ± {100 * f1['sd']:.1f} / {_delta(m['vs_real'])} / "
                f"{_delta(m['vs_naive'])}"
            )
        mean = ranking.get(key)
        lines.append(
            f"| {key} | " + " | ".join(cells) + f" | {'-' if mean is None else f'{mean:+.2f}'} |"
        )
    lines += [
        "",
        "Label checks (budget, corpus: rejected share, precision against the judge; "
        "thresholds used per seed):",
        "",
    ]
    for corpus in corpora:
        for budget, b in report["corpora"][corpus]["budgets"].items():
            for name, m in b["methods"].items():
                if m["check_rejected"] is None or name in ("real", "naive", "no-check"):
                    continue
                ts = ", ".join("-" if t is None else f"{t:.2f}" for t in m["thresholds"])
                prec = m["rejection_precision"]
                lines.append(
                    f"- {corpus} @ {budget}, {name}: rejected {100 * m['check_rejected']:.1f}%, "
                    f"precision {'-' if prec is None else f'{100 * prec:.0f}%'}; thresholds {ts}"
                )
    lines += [
        "",
        "Budget curves (macro-F1 %, Δ vs real; LLM requests and generation minutes "
        "over all seeds):",
        "",
    ]
    for corpus in corpora:
        for name, points in report["corpora"][corpus].get("curve", {}).items():
            parts = [
                f"{p['candidates_per_label']}: {100 * p['macro_f1']['mean']:.1f} "
                f"({_delta(p['vs_real'])}; {p['llm_requests']} requests, "
                f"{'-' if p['minutes'] is None else p['minutes']} min)"
                for p in points.values()
            ]
            lines.append(f"- {corpus}, {name}: " + "; ".join(parts))
    lines += [
        "",
        "Ranking by mean Δ vs real over the corpora: "
        + ", ".join(f"{k} {v:+.2f}" for k, v in report["choice"]["ranking"]),
        "",
        f"Wall time {report['seconds'] / 60:.1f} min (a re-run reuses every generation).",
        "",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
