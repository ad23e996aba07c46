"""The commands that measure whether synthetic data helps: `evaluate` and `report`.

The options of `evaluate` that name a config key set that key in each pipeline run the
evaluation makes (one per seed and generation variant).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from synalign.cli.console import err, out, quiet_libraries
from synalign.cli.options import (
    BaseUrlOption,
    ExecutorOption,
    LLMOption,
    ModelOption,
    NameOption,
    RayAddressOption,
    RunsDirOption,
    SetOption,
    executor_overrides,
    keyed,
    llm_overrides,
)
from synalign.cli.tables import eval_table
from synalign.errors import SynAlignError


def evaluate(
    task: Annotated[
        str,
        typer.Option(
            help="'classification' (labelled texts) or 'retrieval' (queries for a corpus: "
            "--dataset bbc-headlines, or --corpus with --train and --test pair files).",
        ),
    ] = "classification",
    dataset: Annotated[
        str | None,
        typer.Option(
            help=keyed(
                "Bundled corpus: shots from its train split, tested on its test split.",
                "data.dataset",
            )
        ),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            help=keyed("Your labelled training pool (shots are drawn from it).", "data.path")
        ),
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Your labelled test file.")] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Retrieval: the corpus file (columns --id-column, --text-column)."),
    ] = None,
    id_column: Annotated[str, typer.Option(help="Retrieval: corpus column of ids.")] = "id",
    query_column: Annotated[
        str, typer.Option(help="Retrieval: pairs column holding the query.")
    ] = "query",
    doc_id_column: Annotated[
        str, typer.Option(help="Retrieval: pairs column holding the document id.")
    ] = "doc_id",
    queries: Annotated[
        int, typer.Option(help="Retrieval: synthetic queries per generated set.")
    ] = 160,
    text_column: Annotated[
        str, typer.Option(help=keyed("Column holding the text.", "data.text_column"))
    ] = "text",
    label_column: Annotated[
        str, typer.Option(help=keyed("Column holding the label.", "data.label_column"))
    ] = "label",
    shots: Annotated[
        int | None,
        typer.Option(
            help=keyed(
                "Real examples per label (default 16), or real pairs for --task retrieval "
                "(default 32), drawn per seed.",
                "data.shots",
            )
        ),
    ] = None,
    seeds: Annotated[
        str,
        typer.Option(
            help=keyed("A count (5 = seeds 0-4) or a list (0,4,7; one seed: 7,).", "seed")
        ),
    ] = "5",
    samples_per_label: Annotated[
        int,
        typer.Option(
            help=keyed(
                "Candidate synthetic samples per label and generation variant.",
                "generate.samples_per_label",
            )
        ),
    ] = 160,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma list of real, naive, synalign, no-esm, no-lar, no-check, llm-check "
            "(local model only), classifier-check, knn-check, fixed-check, no-sda, "
            "no-floor, joint, "
            "resample, kmm, imp-loss, judge-check (with --judge), or 'all' ('real' is always "
            "included). Each is described in the report."
        ),
    ] = "all",
    classifier: Annotated[
        str,
        typer.Option(
            "--classifier",
            help="Downstream classifier every method is trained and tested with: 'logreg' "
            "(logistic regression on frozen embeddings), 'setfit' (SetFit: contrastive "
            "fine-tuning of MiniLM, then a logistic head) or 'finetune' (MiniLM fine-tuned "
            "end to end with a linear head). All run on the CPU.",
        ),
    ] = "logreg",
    llm: LLMOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    c: Annotated[
        float, typer.Option("--C", help="Logistic regression C, the same for every method.")
    ] = 1.0,
    epochs: Annotated[int, typer.Option(help="Epochs for --classifier finetune.")] = 4,
    test_per_label: Annotated[
        int | None, typer.Option(help="Test on at most this many texts per label; all if unset.")
    ] = None,
    coverage_clusters: Annotated[
        int, typer.Option(help="k-means clusters per label of the test set for coverage.")
    ] = 10,
    judge: Annotated[
        bool,
        typer.Option(
            help="Measure label fidelity with a classifier fitted on the whole training pool "
            "(for measurement only; no method sees it): how many generated samples read as "
            "their label, and how many wrong ones each label check caught."
        ),
    ] = False,
    validation: Annotated[
        bool,
        typer.Option(
            help="Test on a fifth of the training pool held out from it (stratified, fixed; "
            "by speaker for convention-speeches) instead of the test split or --test: for "
            "choosing settings without ever looking at the test data."
        ),
    ] = False,
    curve: Annotated[
        str,
        typer.Option(
            help="Budget curve: macro-F1 of naive and synalign at these multiples of --shots "
            "candidates per label (0 is the real shots alone), drawn in the report with the "
            "LLM calls and minutes of each point; one generation at the largest budget "
            "serves every point. 'none' draws no curve."
        ),
    ] = "1,3,10",
    name: NameOption = "eval",
    runs_dir: RunsDirOption = "runs",
    set_: SetOption = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Does the synthetic set help? Trains a classifier on real shots alone and with each
    method's synthetic data (SynAlign, a naive baseline, ablations), over several seeds,
    tests on real held-out data, and writes metrics.json, report.md and report.html.
    Re-running the same command reuses every finished generation (nothing is generated
    twice); `synalign report DIR` rebuilds the report alone.
    """
    from synalign.evaluation import Evaluation, load_eval_config, parse_methods, parse_seeds
    from synalign.evaluation.budget_curve import parse_multiples
    from synalign.progress import RichReporter
    from synalign.report.curve import curve_lines

    quiet_libraries()
    for flag, path in (("--train", train), ("--test", test), ("--corpus", corpus)):
        if path is not None and not path.exists():
            raise SynAlignError(f"{flag} {path}: file not found; check the path")
    if task == "retrieval":
        from synalign.cli.retrieval_commands import evaluate_retrieval

        evaluate_retrieval(
            name=name or "retrieval", runs_dir=runs_dir or "runs", dataset=dataset,
            corpus=corpus, train=train, test=test, id_column=id_column,
            document_column=text_column, query_column=query_column,
            doc_id_column=doc_id_column, shots=32 if shots is None else shots, seeds=seeds,
            queries=queries, methods=methods, validation=validation,
            overrides=[
                *(set_ or []),
                *llm_overrides(llm, model, base_url),
                *executor_overrides(executor, ray_address),
            ],
        )  # fmt: skip
        return
    if task != "classification":
        raise SynAlignError(f"--task {task!r}: choose 'classification' or 'retrieval'")
    if train is not None and not train.exists():
        raise SynAlignError(f"--train {train}: file not found")
    if test is not None and not test.exists():
        raise SynAlignError(f"--test {test}: file not found")
    config = load_eval_config(
        {
            "name": name or "eval",
            "runs_dir": runs_dir or "runs",
            "dataset": dataset,
            "train_path": None if train is None else str(train),
            "test_path": None if test is None else str(test),
            "text_column": text_column,
            "label_column": label_column,
            "shots": 16 if shots is None else shots,
            "seeds": parse_seeds(seeds),
            "samples_per_label": samples_per_label,
            "methods": parse_methods(methods, judge),
            "classifier": classifier,
            "C": c,
            "finetune_epochs": epochs,
            "test_per_label": test_per_label,
            "coverage_clusters": coverage_clusters,
            "judge": judge,
            "validation": validation,
            "curve": parse_multiples(curve),
            "overrides": [
                *(set_ or []),
                *llm_overrides(llm, model, base_url),
                *executor_overrides(executor, ray_address),
            ],
        },
        source=None,
    )
    start = time.perf_counter()
    evaluation = Evaluation(config, reporter=RichReporter(err))
    metrics = evaluation.run()
    out.print(eval_table(metrics))
    for line in curve_lines(metrics.get("curve", {})):
        out.print(line)
    out.print(
        f"LLM calls made: {evaluation.llm_calls_} · wall time {time.perf_counter() - start:.1f} s"
    )
    out.print(f"report: {evaluation.report_dir_ / 'report.html'}", soft_wrap=True)


def report(
    eval_dir: Annotated[
        Path, typer.Argument(help="A run directory (e.g. runs/demo) or an evaluation folder.")
    ],
) -> None:
    """Rebuild a report without generating or training anything: a run's report.html
    (samples, attributes, rejections, weights) or an evaluation's report (metrics.json,
    report.md, report.html, plots) from its saved per-seed results."""
    from synalign.evaluation.folder import EvaluationFolder
    from synalign.pipeline.run_dir import RunDirectory
    from synalign.report import build_report

    quiet_libraries()
    if RunDirectory(eval_dir).is_run():
        from synalign.pipeline.runner import rebuild_report

        out.print(f"report: {rebuild_report(eval_dir)}", soft_wrap=True)
        return
    if not EvaluationFolder(eval_dir).info_path.is_file():
        raise SynAlignError(
            f"{eval_dir}: neither a run directory (no state.json) nor an evaluation folder (no"
            " evaluation.json); pass the folder `synalign run`, `demo` or `evaluate` printed"
        )
    if EvaluationFolder(eval_dir).read_info().get("task") == "retrieval":
        from synalign.evaluation.retrieval_report import report_of

        report_of(eval_dir)
        out.print(f"report: {eval_dir / 'report' / 'report.html'}", soft_wrap=True)
        return
    folder = build_report(eval_dir)
    out.print(f"report: {folder / 'report.html'}", soft_wrap=True)
