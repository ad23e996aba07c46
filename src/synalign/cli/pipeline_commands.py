"""The commands that make a run: `demo`, `run` (from a TOML config) and `generate`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from synalign.cli.console import err, out, quiet_libraries
from synalign.cli.options import (
    BaseUrlOption,
    ExecutorOption,
    ForceOption,
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
from synalign.cli.tables import summary_table
from synalign.config import build_config, load_config
from synalign.errors import SynAlignError

SamplesPerLabelOption = Annotated[
    int,
    typer.Option(
        help=keyed("Candidate synthetic samples written per label.", "generate.samples_per_label")
    ),
]
SeedOption = Annotated[int, typer.Option(help=keyed("Seed for every random choice.", "seed"))]


def run_pipeline(config: Any, until: str, force: bool) -> Any:
    """Check what can be checked up front (LLM settings, Ray), then run the stages up to
    `until` with progress on stderr."""
    from synalign.backends.llm.factory import check_llm_config
    from synalign.pipeline.runner import Pipeline
    from synalign.progress import RichReporter

    check_llm_config(config.llm)
    if config.executor == "ray":
        from synalign.backends.ray import check_ray

        check_ray()
    quiet_libraries()
    return Pipeline(config, reporter=RichReporter(err)).run(until=until, force=force)


def demo(
    samples_per_label: SamplesPerLabelOption = 50,
    shots: Annotated[
        int, typer.Option(help=keyed("Real examples per label (few-shot).", "data.shots"))
    ] = 16,
    seed: SeedOption = 0,
    name: NameOption = "demo",
    runs_dir: RunsDirOption = "runs",
    llm: LLMOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    force: ForceOption = False,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Run all three stages on the bundled rotten-tomatoes corpus with the bundled model.

    16 real reviews per label, the local Gemma 3 270M model through llama.cpp, the bundled
    MiniLM embedder. Ends with a summary table, the run directory and the path of its
    report.html (samples, attributes, rejections, weights, plots).
    """
    config = build_config(
        {
            "name": name,
            "runs_dir": runs_dir,
            "seed": seed,
            "data": {"dataset": "rotten-tomatoes", "shots": shots},
            "generate": {"samples_per_label": samples_per_label},
        },
        [*llm_overrides(llm, model, base_url), *executor_overrides(executor, ray_address)],
        source="command-line options",
    )
    start = time.perf_counter()
    summary = run_pipeline(config, "report", force)
    out.print(summary_table(summary.metrics, time.perf_counter() - start))
    out.print(f"aligned samples: {summary.run_dir / 'aligned.jsonl'}")
    out.print(f"report: {summary.report}", soft_wrap=True)


def run(
    config_file: Annotated[
        Path,
        typer.Argument(help="TOML config file (see README), or a run folder to carry on."),
    ],
    set_: SetOption = None,
    name: NameOption = None,
    runs_dir: RunsDirOption = None,
    llm: LLMOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    force: ForceOption = False,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Run the whole pipeline from a TOML config, or carry on a run folder (its own
    config.toml, e.g. after `generate`); finished stages are skipped, damaged ones repaired.

    --name and --runs-dir override the config's `name` and `runs_dir`."""
    from synalign.pipeline.run_dir import RunDirectory

    if config_file.is_dir():
        folder = RunDirectory(config_file.resolve())
        if not folder.is_run():
            raise SynAlignError(
                f"{config_file} is a folder but not a synalign run; give a TOML config file "
                "or a run folder (one with state.json)"
            )
        config_file = folder.config_path
        name = folder.root.name if name is None else name
        runs_dir = str(folder.root.parent) if runs_dir is None else runs_dir
    location = [
        f"{key}={json.dumps(value)}"
        for key, value in (("name", name), ("runs_dir", runs_dir))
        if value is not None
    ]
    config = load_config(
        config_file,
        [
            *location,
            *(set_ or []),
            *llm_overrides(llm, model, base_url),
            *executor_overrides(executor, ray_address),
        ],
    )
    start = time.perf_counter()
    summary = run_pipeline(config, "report", force)
    out.print(summary_table(summary.metrics, time.perf_counter() - start))
    out.print(f"report: {summary.report}", soft_wrap=True)


def data_overrides(
    dataset: str | None,
    input_file: Path | None,
    text_column: str,
    label_column: str,
    shots: int | None,
) -> dict[str, Any]:
    """The `data` section `generate` runs on: a bundled corpus or the user's file."""
    if (dataset is None) == (input_file is None):
        raise SynAlignError("give exactly one of --dataset NAME or --input FILE")
    data: dict[str, Any] = {"text_column": text_column, "label_column": label_column}
    if dataset:
        _refuse_columns(dataset, text_column, label_column)
        data["dataset"] = dataset
    else:
        data["path"] = str(input_file)
    if shots is not None:
        data["shots"] = shots
    return data


def _refuse_columns(dataset: str, text_column: str, label_column: str) -> None:
    """--text-column / --label-column name columns of an --input file; with a bundled
    corpus they would be ignored, so giving them is a mistake worth one line."""
    from synalign.io.corpora import list_datasets
    from synalign.records import clip

    given = [
        flag
        for flag, value, default in (
            ("--text-column", text_column, "text"),
            ("--label-column", label_column, "label"),
        )
        if value != default
    ]
    if given:
        verb, it = ("applies", "it") if len(given) == 1 else ("apply", "them")
        labelled = dataset in {info.name for info in list_datasets()}
        has = "has the columns text and label" if labelled else "brings its own columns"
        raise SynAlignError(
            f"{' and '.join(given)} {verb} to --input files; the bundled dataset"
            f" {clip(dataset)} {has}, so leave {it} out"
        )


def generate(
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help=keyed("Real labelled texts: JSONL, CSV, TSV, Parquet or HF folder.", "data.path"),
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help=keyed("A bundled corpus instead of --input.", "data.dataset")),
    ] = None,
    text_column: Annotated[
        str, typer.Option(help=keyed("Column holding the text.", "data.text_column"))
    ] = "text",
    label_column: Annotated[
        str, typer.Option(help=keyed("Column holding the label.", "data.label_column"))
    ] = "label",
    shots: Annotated[
        int | None,
        typer.Option(help=keyed("Real examples drawn per label; all if unset.", "data.shots")),
    ] = None,
    samples_per_label: SamplesPerLabelOption = 160,
    seed: SeedOption = 0,
    name: NameOption = "generate",
    runs_dir: RunsDirOption = "runs",
    llm: LLMOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Exploration and attribute reasoning only: writes synthetic.jsonl, no alignment."""
    data = data_overrides(dataset, input_file, text_column, label_column, shots)
    config = build_config(
        {
            "name": name,
            "runs_dir": runs_dir,
            "seed": seed,
            "data": data,
            "generate": {"samples_per_label": samples_per_label},
        },
        [
            *llm_overrides(llm, model, base_url),
            *(set_ or []),
            *executor_overrides(executor, ray_address),
        ],
        source="command-line options",
    )
    summary = run_pipeline(config, "generate", force)
    out.print(f"synthetic samples: {summary.run_dir / 'synthetic.jsonl'}")
    out.print(f"rejected samples:  {summary.run_dir / 'rejected.jsonl'}")
    out.print(f"report: {summary.report}", soft_wrap=True)
