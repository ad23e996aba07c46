"""Label fidelity of each named local generator on every bundled corpus.

For each corpus and generator, `synalign generate` runs as a user types it: 16 shots per
label from the corpus's `pool` split (the training pool without its validation split; the
test split is never read), `--samples-per-label` candidates per label, everything else at
its default (the label check included). A measurement judge, logistic regression on the
bundled embedder's vectors of the whole pool, then reads every written sample:

- judge agreement: the share of candidates (accepted and rejected, empty answers left
  out) the judge reads as the label they were written for, and the same share among the
  accepted ones;
- what the label check rejects (share of candidates), and the share of judge-flipped
  samples it caught;
- samples per second and CPU-seconds per accepted sample, for the whole command.

The judge's own accuracy on the corpus's validation split is reported beside it, so its
reading can be trusted as far as it goes. Run folders are kept under `runs/generators/`:
a re-run reuses every LLM answer (its timings are then the first run's, read back from
the figures stored beside the run folder).

    python benchmarks/bench_generators.py
    python benchmarks/bench_generators.py --corpora rotten-tomatoes --samples-per-label 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, timed_command, write

from synalign.backends.embed.embedders import SentenceTransformerEmbedder
from synalign.backends.llm.generators import generator_names
from synalign.evaluation.models import LogRegClassifier
from synalign.io.corpora import list_datasets, load_split

RUNS = Path(__file__).resolve().parents[1] / "runs" / "generators"
SHOTS = 16


def generate(corpus: str, model: str, per_label: int) -> dict[str, Any]:
    """Runs (or resumes) the command; its figures are stored beside the run folder."""
    name = f"{corpus}--{model}"
    figures_path = RUNS / f"{name}.timing.json"
    if figures_path.is_file() and (RUNS / name / "synthetic.jsonl").is_file():
        return json.loads(figures_path.read_text())
    argv = [
        sys.executable, "-m", "synalign", "generate", "--dataset", corpus,
        "--set", 'data.split="pool"', "--shots", str(SHOTS),
        "--samples-per-label", str(per_label), "--model", model,
        "--runs-dir", str(RUNS), "--name", name,
    ]  # fmt: skip
    figures = timed_command(argv)
    figures_path.write_text(json.dumps(figures))
    return figures


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open()] if path.is_file() else []


def measure(corpus: str, model: str, per_label: int, judge: Any, embed: Any) -> dict[str, Any]:
    timing = generate(corpus, model, per_label)
    run = RUNS / f"{corpus}--{model}"
    kept = rows(run / "synthetic.jsonl")
    dropped = [r for r in rows(run / "rejected.jsonl") if r.get("text")]
    texts = [r["text"] for r in kept + dropped]
    labels = np.array([str(r["label"]) for r in kept + dropped])
    judged = judge.predict(embed(texts)) if texts else np.array([])
    agree = judged == labels
    accepted = np.arange(len(texts)) < len(kept)
    flips = ~agree
    n_candidates = len(rows(run / "rejected.jsonl")) + len(kept)
    return {
        "candidates": n_candidates,
        "accepted": len(kept),
        "judge_agreement": round(float(agree.mean()), 3) if texts else None,
        "judge_agreement_accepted": round(float(agree[accepted].mean()), 3) if kept else None,
        "check_rejected": round(1 - len(kept) / n_candidates, 3) if n_candidates else None,
        "flips_caught": round(float((~accepted & flips).sum() / flips.sum()), 3)
        if flips.any()
        else None,
        "samples_per_second": round(n_candidates / timing["seconds"], 3),
        "cpu_seconds_per_accepted": round(timing["cpu_seconds"] / max(1, len(kept)), 2),
        **timing,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=",".join(d.name for d in list_datasets()))
    parser.add_argument("--models", default=",".join(generator_names()))
    parser.add_argument("--samples-per-label", type=int, default=40)
    args = parser.parse_args(argv)
    RUNS.mkdir(parents=True, exist_ok=True)
    embedder = SentenceTransformerEmbedder()

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(embedder.encode(texts), dtype=np.float64)

    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_generators.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "setting": {"shots_per_label": SHOTS, "samples_per_label": args.samples_per_label},
        "corpora": {},
    }
    for corpus in args.corpora.split(","):
        pool, validation = load_split(corpus, "pool"), load_split(corpus, "validation")
        judge = LogRegClassifier().fit(embed([r.text for r in pool]), [r.label for r in pool])
        accuracy = float(
            np.mean(
                judge.predict(embed([r.text for r in validation])) == [r.label for r in validation]
            )
        )
        entry: dict[str, Any] = {"judge_validation_accuracy": round(accuracy, 3), "models": {}}
        report["corpora"][corpus] = entry
        for model in args.models.split(","):
            entry["models"][model] = m = measure(
                corpus, model, args.samples_per_label, judge, embed
            )
            print(f"{corpus} {model}: {m}", flush=True)
            save(report, args.samples_per_label)
    path = save(report, args.samples_per_label)
    print(f"written: {path}")
    return 0


def save(report: dict[str, Any], per_label: int) -> Path:
    """Writes what is measured so far (called after every corpus and generator)."""
    report["load_after"] = load()
    md = header("Label fidelity per local generator", report)
    md += [
        f"`synalign generate` on each bundled corpus's pool split, {SHOTS} shots and "
        f"{per_label} candidates per label, defaults otherwise; judge: logistic "
        "regression on the bundled embedder's vectors of the whole pool.",
        "",
        "| corpus (judge accuracy on validation) | generator | judge agreement (all / "
        "accepted) | check rejected | flips caught | samples/s | CPU s per accepted |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus, entry in report["corpora"].items():
        for model, m in entry["models"].items():
            md.append(
                f"| {corpus} ({entry['judge_validation_accuracy']:.2f}) | {model} | "
                f"{m['judge_agreement']} / {m['judge_agreement_accepted']} | "
                f"{m['check_rejected']} | {m['flips_caught']} | {m['samples_per_second']} | "
                f"{m['cpu_seconds_per_accepted']} |"
            )
    return write("generators", report, md)


if __name__ == "__main__":
    raise SystemExit(main())
