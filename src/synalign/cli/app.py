"""The `synalign` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from synalign import __version__
from synalign.config import AlignConfig, GenerateConfig, build_config, load_config
from synalign.errors import ConfigError, SynAlignError

# Defaults shared with the pipeline config, so `synalign align` weights like a run does.
_ALIGN_DEFAULTS = AlignConfig()
_GENERATE_DEFAULTS = GenerateConfig()

app = typer.Typer(
    help="SynAlign: few-shot LLM synthetic data that follows your real data's distribution.\n\n"
    "Exploration (a Gaussian process picks diverse demonstration clusters), latent attribute "
    "reasoning (the LLM names what a cluster has in common, then writes new samples that "
    "carry it) and alignment (MMD weights per synthetic sample, then resampling).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="The real labelled corpora bundled with SynAlign.")
app.add_typer(datasets_app, name="datasets")

out = Console()
err = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config key, e.g. --set generate.samples_per_label=100 "
        "(repeatable; values are read as TOML literals).",
    ),
]
LLMOption = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="LLM backend: 'llamacpp' (local GGUF; the bundled model by default) or 'openai' "
        "(any OpenAI-compatible endpoint; key from $OPENAI_API_KEY).",
    ),
]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model name for --llm openai.")]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="Endpoint for --llm openai; $OPENAI_BASE_URL if unset."),
]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where LLM calls and embeddings run: 'local' (this process) or 'ray' (the "
        "workers of a Ray cluster; pip install 'synalign[ray]'). Same outputs either way.",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster for --executor ray: 'auto' (started here with `ray start --head`) "
        "or HOST:6379; $RAY_ADDRESS, else a Ray instance on this machine, if unset.",
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(help="Run name: the folder under --runs-dir (config key `name`)."),
]
RunsDirOption = Annotated[
    str | None, typer.Option(help="Parent folder of run directories (config key `runs_dir`).")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Re-run every stage even if it is up to date.")
]


def _version(value: bool) -> None:
    if value:
        out.print(f"synalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """SynAlign command line."""


def _quiet_libraries() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("transformers", "sentence_transformers", "torch", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _llm_overrides(llm: str | None, model: str | None, base_url: str | None) -> list[str]:
    """The backend flags as config overrides (strings quoted as TOML)."""
    sets = []
    for key, value in (("llm.backend", llm), ("llm.model", model), ("llm.base_url", base_url)):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return sets


def _executor_overrides(executor: str | None, ray_address: str | None) -> list[str]:
    """--executor / --ray-address as config overrides (set only when given)."""
    sets = []
    for key, value in (("executor", executor), ("ray_address", ray_address)):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return sets


def _run_pipeline(config: Any, until: str, force: bool) -> Any:
    from synalign.backends.llm.factory import check_llm_config
    from synalign.pipeline.runner import Pipeline
    from synalign.progress import RichReporter

    check_llm_config(config.llm)
    if config.executor == "ray":
        from synalign.backends.ray.executor import check_ray

        check_ray()
    _quiet_libraries()
    return Pipeline(config, reporter=RichReporter(err)).run(until=until, force=force)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in x.items()) or "-"
    return "-" if x is None else str(x)


def _llm_calls(metrics: dict[str, Any]) -> str:
    usage = metrics.get("llm_usage") or {}
    parts = []
    for stage in ("describe", "generate"):
        u = usage.get(stage) or {}
        text = (
            f"{stage}: {u.get('calls', 0)} made, {u.get('cache_hits', 0)} cached, "
            f"{u.get('completion_tokens', 0)} tokens out, {u.get('retries', 0)} retried"
        )
        if u.get("scorings") or u.get("scoring_cache_hits"):
            text += (
                f", label check {u.get('scorings', 0)} scored, "
                f"{u.get('scoring_cache_hits', 0)} cached"
            )
        parts.append(text)
    return "; ".join(parts)


def _priced(metrics: dict[str, Any]) -> bool:
    return any(v is not None for v in (metrics.get("llm_cost") or {}).values())


def _summary_table(metrics: dict[str, Any], wall: float) -> Table:
    table = Table(title="SynAlign run summary", show_header=True, header_style="bold")
    table.add_column("label")
    table.add_column("value", overflow="fold")
    rows = [
        ("real examples", metrics.get("real_records")),
        ("labels", metrics.get("labels")),
        ("demonstration clusters", metrics.get("clusters")),
        ("attribute lines parsed", metrics.get("attributes_parsed")),
        ("samples generated", metrics.get("generated")),
        ("samples accepted", metrics.get("accepted")),
        ("samples rejected", metrics.get("rejected")),
        ("accepted per label", metrics.get("synthetic_per_label")),
        ("MMD² before alignment", metrics.get("mmd2_before")),
        ("MMD² after alignment", metrics.get("mmd2_after")),
        ("effective sample size", metrics.get("ess")),
        ("aligned samples written", metrics.get("aligned")),
        ("LLM calls (attributes, samples)", _llm_calls(metrics)),
        ("LLM cost", _fmt(metrics.get("llm_cost")) if _priced(metrics) else "not priced"),
        ("stage seconds", metrics.get("seconds")),
        ("wall time (this invocation)", f"{wall:.1f} s"),
        ("run directory", metrics.get("run_dir")),
    ]
    for k, v in rows:
        table.add_row(k, _fmt(v))
    return table


@app.command()
def demo(
    samples_per_label: Annotated[
        int, typer.Option(help="Candidate synthetic samples written per label.")
    ] = 50,
    shots: Annotated[int, typer.Option(help="Real examples per label (few-shot).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
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
    MiniLM embedder. Ends with a summary table and the run directory.
    """
    config = build_config(
        {
            "name": name,
            "runs_dir": runs_dir,
            "seed": seed,
            "data": {"dataset": "rotten-tomatoes", "shots": shots},
            "generate": {"samples_per_label": samples_per_label},
        },
        [*_llm_overrides(llm, model, base_url), *_executor_overrides(executor, ray_address)],
        source="command-line options",
    )
    start = time.perf_counter()
    summary = _run_pipeline(config, "report", force)
    out.print(_summary_table(summary.metrics, time.perf_counter() - start))
    out.print(f"aligned samples: {summary.run_dir / 'aligned.jsonl'}")


@app.command()
def run(
    config_file: Annotated[Path, typer.Argument(help="TOML config file (see README).")],
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
    """Run the whole pipeline from a TOML config; finished stages are skipped.

    --name and --runs-dir override the config's `name` and `runs_dir`."""
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
            *_llm_overrides(llm, model, base_url),
            *_executor_overrides(executor, ray_address),
        ],
    )
    start = time.perf_counter()
    summary = _run_pipeline(config, "report", force)
    out.print(_summary_table(summary.metrics, time.perf_counter() - start))


def _data_overrides(
    dataset: str | None,
    input_file: Path | None,
    text_column: str,
    label_column: str,
    shots: int | None,
) -> dict[str, Any]:
    if (dataset is None) == (input_file is None):
        raise SynAlignError("give exactly one of --dataset NAME or --input FILE")
    data: dict[str, Any] = {"text_column": text_column, "label_column": label_column}
    if dataset:
        data["dataset"] = dataset
    else:
        data["path"] = str(input_file)
    if shots is not None:
        data["shots"] = shots
    return data


@app.command()
def generate(
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Real labelled texts: JSONL, CSV, TSV, Parquet or HF folder."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A bundled corpus instead of --input.")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    shots: Annotated[
        int | None, typer.Option(help="Real examples drawn per label; all if unset.")
    ] = None,
    samples_per_label: Annotated[
        int, typer.Option(help="Candidate synthetic samples written per label.")
    ] = 160,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
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
    data = _data_overrides(dataset, input_file, text_column, label_column, shots)
    config = build_config(
        {
            "name": name,
            "runs_dir": runs_dir,
            "seed": seed,
            "data": data,
            "generate": {"samples_per_label": samples_per_label},
        },
        [
            *_llm_overrides(llm, model, base_url),
            *(set_ or []),
            *_executor_overrides(executor, ray_address),
        ],
        source="command-line options",
    )
    summary = _run_pipeline(config, "generate", force)
    out.print(f"synthetic samples: {summary.run_dir / 'synthetic.jsonl'}")
    out.print(f"rejected samples:  {summary.run_dir / 'rejected.jsonl'}")


@app.command()
def align(
    real: Annotated[Path, typer.Option(help="Real labelled texts (any supported format).")],
    synthetic: Annotated[Path, typer.Option(help="Synthetic labelled texts to weight.")],
    output: Annotated[
        Path, typer.Option("--out", help="Where to write the resampled set (.jsonl/.csv/.parquet).")
    ],
    text_column: Annotated[str, typer.Option(help="Text column in both files.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column in both files.")] = "label",
    size_per_label: Annotated[
        int | None, typer.Option(help="Samples drawn per label; as many as given if unset.")
    ] = None,
    bandwidth: Annotated[
        float | None, typer.Option(help="RBF length scale; median heuristic if unset.")
    ] = None,
    ess_floor: Annotated[
        float,
        typer.Option(
            help="Least effective sample size per label, as a share of its samples; "
            "0: no floor, 1: equal weights.",
            min=0.0,
            max=1.0,
        ),
    ] = _ALIGN_DEFAULTS.ess_floor,
    scope: Annotated[
        str, typer.Option(help="'label' (match each label) or 'joint' (all labels at once).")
    ] = _ALIGN_DEFAULTS.scope,
    label_check: Annotated[
        str,
        typer.Option(
            help="Drop synthetic texts whose label the real texts contradict first: "
            "'classifier', 'knn' or 'none' (the LLM's own check needs the LLM: see "
            "generate.label_check)."
        ),
    ] = "classifier",
    seed: Annotated[int, typer.Option(help="Seed for resampling.")] = 0,
) -> None:
    """MMD-weight a synthetic set against real data and resample it (no LLM needed)."""
    import numpy as np

    from synalign.backends.embed.embedders import SentenceTransformerEmbedder
    from synalign.io.tables import read_records, write_records
    from synalign.lar.label_check.embedding import METHODS as CHECKS
    from synalign.lar.label_check.embedding import LabelConsistencyFilter
    from synalign.sda.aligner import SCOPES, MMDAligner

    _quiet_libraries()
    if scope not in SCOPES:
        raise ConfigError(f"--scope {scope!r}: choose one of {', '.join(SCOPES)}")
    if label_check not in (*CHECKS, "none"):
        raise ConfigError(f"--label-check {label_check!r}: choose one of {', '.join(CHECKS)}, none")
    real_rows = read_records(real, text_column, label_column)
    syn_rows = read_records(synthetic, text_column, label_column)
    for w in real_rows.warnings + syn_rows.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False, soft_wrap=True)
    real_labels = {r.label for r in real_rows.records}
    unknown = sorted({r.label for r in syn_rows.records} - real_labels)
    if unknown:
        raise SynAlignError(
            f"{synthetic}: label(s) {', '.join(map(repr, unknown))} do not occur in {real}; "
            "every synthetic label needs real examples to align to"
        )
    embedder = SentenceTransformerEmbedder()
    for path, rows in ((real, real_rows), (synthetic, syn_rows)):
        report = embedder.token_report([r.text for r in rows.records])
        for w in report.warnings(f"texts in {path}"):
            err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False, soft_wrap=True)
    X_real = embedder.encode([r.text for r in real_rows.records])
    X_syn = embedder.encode([r.text for r in syn_rows.records])
    real_labels_list = [r.label for r in real_rows.records]
    records = syn_rows.records
    if label_check != "none":
        check = LabelConsistencyFilter(method=label_check).fit(X_real, real_labels_list)  # type: ignore[arg-type]
        outcome = check.check(X_syn, [r.label for r in records])
        err.print(
            f"label check ({label_check}): {int((~outcome.keep).sum())} of {len(records)} "
            "synthetic texts read as another label and were dropped",
            highlight=False,
        )
        records = [r for r, k in zip(records, outcome.keep, strict=True) if k]
        X_syn = X_syn[outcome.keep]
    aligner = MMDAligner(bandwidth=bandwidth, seed=seed, ess_floor=ess_floor, scope=scope).fit(
        X_syn, X_real, [r.label for r in records], real_labels_list
    )
    picks = aligner.resample(size_per_label, seed=seed)
    rows = [
        {**records[i].to_dict(), "weight": float(aligner.weights_[i])} for i in np.asarray(picks)
    ]
    write_records(output, rows)
    table = Table(title="alignment", header_style="bold")
    for col in ("label", "MMD² before", "MMD² after", "effective sample size"):
        table.add_column(col)
    for lab in aligner.labels_:
        table.add_row(
            lab,
            _fmt(aligner.mmd2_before_[lab]),
            _fmt(aligner.mmd2_after_[lab]),
            _fmt(aligner.ess_[lab]),
        )
    out.print(table)
    out.print(f"aligned samples: {output}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/demo.")],
    output: Annotated[Path, typer.Argument(help="Output file or folder.")],
    which: Annotated[
        str,
        typer.Option(
            help="'aligned' (resampled set) or 'synthetic' (every accepted sample with its "
            "MMD weight, for weighted training)."
        ),
    ] = "aligned",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="jsonl, csv, parquet or hf (Hugging Face save_to_disk folder); "
            "from the extension if unset.",
        ),
    ] = None,
) -> None:
    """Write a run's synthetic data as JSONL, CSV, Parquet or a Hugging Face dataset."""
    import numpy as np

    from synalign.io.tables import read_jsonl, write_records

    if which not in ("aligned", "synthetic"):
        raise SynAlignError(f"--which {which!r}: choose 'aligned' or 'synthetic'")
    source = run_dir / f"{which}.jsonl"
    if not source.is_file():
        raise SynAlignError(
            f"{source}: not found; run the pipeline first (synalign run / demo) "
            "or check the run directory"
        )
    rows = read_jsonl(source)
    if which == "synthetic":
        weights_path = run_dir / "weights.npy"
        if not weights_path.is_file():
            raise SynAlignError(f"{weights_path}: not found; run the align stage first")
        weights = np.load(weights_path, allow_pickle=False)
        if len(weights) != len(rows):
            raise SynAlignError(
                f"{weights_path} has {len(weights)} weights for {len(rows)} samples in "
                f"{source}; re-run the align stage"
            )
        rows = [{**r, "weight": float(w)} for r, w in zip(rows, weights, strict=True)]
    write_records(output, rows, fmt=fmt)
    out.print(f"wrote {len(rows)} rows to {output}")


def _eval_table(metrics: dict[str, Any]) -> Table:
    from synalign.report.render import format_delta

    table = Table(title="evaluation on the real test split", header_style="bold")
    columns = (
        "method",
        "accuracy %",
        "macro-F1 %",
        "Δ F1 vs real [95% CI]",
        "Δ F1 vs naive [95% CI]",
        "MMD² to test",
        "ESS/n",
    )
    for col in columns:
        table.add_column(col)
    paired = metrics.get("paired", {})

    def pct(s: dict[str, Any] | None) -> str:
        if not s or s.get("mean") is None:
            return "-"
        return f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}"

    for name, m in metrics["methods"].items():
        table.add_row(
            name,
            pct(m["accuracy"]),
            pct(m["macro_f1"]),
            format_delta(paired.get("real", {}).get(name, {}).get("macro_f1")),
            format_delta(paired.get("naive", {}).get(name, {}).get("macro_f1")),
            _fmt(m["mmd2_test"]["mean"]),
            _fmt(m["ess_ratio"]["mean"]),
        )
    return table


@app.command()
def evaluate(
    dataset: Annotated[
        str | None,
        typer.Option(help="Bundled corpus: shots from its train split, tested on its test split."),
    ] = None,
    train: Annotated[
        Path | None, typer.Option(help="Your labelled training pool (shots are drawn from it).")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Your labelled test file.")] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    shots: Annotated[int, typer.Option(help="Real examples per label, drawn per seed.")] = 16,
    seeds: Annotated[
        str, typer.Option(help="A count (5 = seeds 0-4) or a list (0,4,7; one seed: 7,).")
    ] = "5",
    samples_per_label: Annotated[
        int, typer.Option(help="Candidate synthetic samples per label and generation variant.")
    ] = 160,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma list of real, naive, synalign, no-esm, no-lar, no-check, llm-check "
            "(local model only), classifier-check, knn-check, fixed-check, no-sda, "
            "no-floor, joint, "
            "resample, kmm, judge-check (with --judge), or 'all' ('real' is always "
            "included). Each is described in the report."
        ),
    ] = "all",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Downstream model: 'logreg' (logistic regression on frozen embeddings) or "
            "'finetune' (fine-tunes MiniLM on the CPU). The LLM is set with --set llm.*.",
        ),
    ] = "logreg",
    c: Annotated[
        float, typer.Option("--C", help="Logistic regression C, the same for every method.")
    ] = 1.0,
    epochs: Annotated[int, typer.Option(help="Epochs for --model finetune.")] = 4,
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
    from synalign.evaluation.budget_curve import curve_lines, parse_multiples
    from synalign.evaluation.runner import Evaluation, load_eval_config, parse_methods, parse_seeds
    from synalign.progress import RichReporter

    _quiet_libraries()
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
            "shots": shots,
            "seeds": parse_seeds(seeds),
            "samples_per_label": samples_per_label,
            "methods": parse_methods(methods, judge),
            "model": model,
            "C": c,
            "finetune_epochs": epochs,
            "test_per_label": test_per_label,
            "coverage_clusters": coverage_clusters,
            "judge": judge,
            "validation": validation,
            "curve": parse_multiples(curve),
            "overrides": [*(set_ or []), *_executor_overrides(executor, ray_address)],
        },
        source=None,
    )
    start = time.perf_counter()
    evaluation = Evaluation(config, reporter=RichReporter(err))
    metrics = evaluation.run()
    out.print(_eval_table(metrics))
    for line in curve_lines(metrics.get("curve", {})):
        out.print(line)
    out.print(
        f"LLM calls made: {evaluation.llm_calls_} · wall time {time.perf_counter() - start:.1f} s"
    )
    out.print(f"report: {evaluation.report_dir_ / 'report.html'}")


@app.command()
def report(
    eval_dir: Annotated[Path, typer.Argument(help="A finished evaluation folder, e.g. runs/eval.")],
) -> None:
    """Rebuild an evaluation's report (metrics.json, report.md, report.html, plots) from
    its saved per-seed results, without generating or training anything."""
    from synalign.report.render import build_report

    _quiet_libraries()
    folder = build_report(eval_dir)
    out.print(f"report: {folder / 'report.html'}")


@datasets_app.command("list")
def datasets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the bundled real corpora and their labels."""
    from synalign.io.corpora import list_datasets

    infos = list_datasets()
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {"name": i.name, "labels": list(i.labels), "description": i.description}
                    for i in infos
                ]
            )
        )
        return
    table = Table(title="bundled datasets", header_style="bold")
    for col in ("name", "labels", "description"):
        table.add_column(col, overflow="fold")
    for i in infos:
        table.add_row(i.name, ", ".join(i.labels), i.description)
    out.print(table)


def _click_classes() -> tuple[type[Exception], type[Exception]]:
    """UsageError and ClickException of the click that typer runs on: typer >= 0.29 ships
    its own copy of click, whose exceptions are not the `click` package's."""
    bases = {c.__name__: c for c in typer.BadParameter.__mro__}
    return bases["UsageError"], bases["ClickException"]


def _closest(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _command_of(argv: list[str]) -> tuple[str, Any]:
    """The command path a user typed (`synalign datasets list`) and its click command:
    a parse error raised before the command's context exists carries neither."""
    command: Any = typer.main.get_command(app)
    path = ["synalign"]
    for arg in argv:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return " ".join(path), command


def usage_line(e: Exception, argv: list[str]) -> str:
    """A usage error as one line: what was wrong, the closest valid option or command,
    and where the help is."""
    ctx = getattr(e, "ctx", None)
    path, command = _command_of(argv)
    if ctx is not None:
        path, command = ctx.command_path, ctx.command
    hint = None
    if type(e).__name__ == "NoSuchOption":
        message = " ".join(str(getattr(e, "message", e)).split())
        options = [o for p in command.params for o in (*p.opts, *p.secondary_opts)]
        hint = _closest(str(getattr(e, "option_name", "")), [*options, "--help"])
    else:
        message = " ".join(e.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        if message.startswith("No such command"):
            message = message.split(". Did you mean", 1)[0]  # click's own hint, reworded
            name = message.split("'")[1] if "'" in message else ""
            hint = _closest(name, list(getattr(command, "commands", {})))
    suggestion = f" (did you mean {hint}?)" if hint else ""
    return f"{message[:1].lower()}{message[1:]}{suggestion}; see '{path} --help'"


def main() -> None:
    """Entry point: user mistakes end in one line on stderr, never a traceback."""
    usage_error, click_exception = _click_classes()
    try:
        code = app(standalone_mode=False, prog_name="synalign")
    except SynAlignError as e:
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare `synalign`: its help
            ctx = getattr(e, "ctx", None)
            out.print(ctx.get_help() if ctx is not None else "", highlight=False, markup=False)
            sys.exit(2)
        err.print(
            f"[bold red]error:[/bold red] {escape(usage_line(e, sys.argv[1:]))}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except click_exception as e:
        e.show()  # type: ignore[attr-defined]
        sys.exit(e.exit_code)  # type: ignore[attr-defined]
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit code 130
        err.print(
            "interrupted; everything received so far is kept. Re-run the same command to resume."
        )
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
