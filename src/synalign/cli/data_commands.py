"""The commands on data files: `align` (MMD-weight a synthetic file against a real one),
`export` (a run's samples in another format) and `datasets list`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from synalign.cli.console import err, out, quiet_libraries
from synalign.cli.tables import format_cell
from synalign.config import AlignConfig, EmbedConfig, GenerateConfig
from synalign.errors import ConfigError, SynAlignError

# Defaults shared with the pipeline config, so `synalign align` checks and weights like a
# run does.
_ALIGN_DEFAULTS = AlignConfig()
_EMBED_DEFAULTS = EmbedConfig()
_GENERATE_DEFAULTS = GenerateConfig()


def _read_with_ids(path: Path, text_column: str, label_column: str) -> Any:
    """The real file with its own `id` column when it has a usable one (a run's
    `real.jsonl` does), so a synthetic sample's `demo_ids` point at the right texts."""
    from synalign.errors import InputError
    from synalign.io import read_records

    try:
        return read_records(path, text_column, label_column, id_column="id")
    except InputError:
        return read_records(path, text_column, label_column)


def _demo_ids(records: list[Any], real_ids: set[str], real: Path) -> list[list[str]]:
    """Each synthetic sample's demonstration ids (a JSON list, also as CSV text), or none
    at all when they do not name rows of the real file: then no sample can be judged by
    the texts it was written from, and the check says so."""
    out: list[list[str]] = []
    for r in records:
        d = r.meta.get("demo_ids")
        if isinstance(d, str) and d.strip().startswith("["):
            try:
                d = json.loads(d)
            except json.JSONDecodeError:
                d = None
        out.append([str(x) for x in d] if isinstance(d, list) else [])
    named = {x for ids in out for x in ids}
    if named and not named <= real_ids:
        err.print(
            f"[yellow]warning:[/yellow] the synthetic samples' demo_ids do not name rows of "
            f"{escape(str(real))} (its `id` column); the label check judges every sample "
            "with all real texts",
            highlight=False,
            soft_wrap=True,
        )
        return [[] for _ in out]
    return out


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
    label_check_threshold: Annotated[
        float | None,
        typer.Option(
            help="A fixed label-check threshold; if unset, chosen from the real texts' "
            "out-of-fold scores as a run chooses it (generate.label_check_quantile).",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    embed_model: Annotated[
        str,
        typer.Option(help="Embedder: the bundled MiniLM or a local sentence-transformers folder."),
    ] = _EMBED_DEFAULTS.model,
    seed: Annotated[int, typer.Option(help="Seed for the label check and resampling.")] = 0,
) -> None:
    """MMD-weight a synthetic set against real data and resample it (no LLM needed).

    The same label check and weighting as a run's: a synthetic file exported from a run
    keeps its `demo_ids`, so the check never judges a sample by the texts it copied."""
    import numpy as np

    from synalign.backends.embed.embedders import SentenceTransformerEmbedder
    from synalign.config_paths import MAX_SEED
    from synalign.io import output_format, read_records, write_records
    from synalign.io.targets import check_output
    from synalign.lar.label_check.embedding import METHODS as CHECKS
    from synalign.pipeline.run_export import check_outside_runs
    from synalign.pipeline.tail import CheckSettings, Labelled, check_and_weight
    from synalign.sda import SCOPES

    quiet_libraries()
    if scope not in SCOPES:
        raise ConfigError(f"--scope {scope!r}: choose one of {', '.join(SCOPES)}")
    if label_check not in (*CHECKS, "none"):
        raise ConfigError(f"--label-check {label_check!r}: choose one of {', '.join(CHECKS)}, none")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed {seed}: a seed is a whole number from 0 to {MAX_SEED}")
    check_outside_runs(output)  # before the work: a place it cannot write loses nothing
    check_output(output, output_format(output))
    real_rows = _read_with_ids(real, text_column, label_column)
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
    embedder = SentenceTransformerEmbedder(embed_model, batch_size=_EMBED_DEFAULTS.batch_size)
    for path, rows in ((real, real_rows), (synthetic, syn_rows)):
        report = embedder.token_report([r.text for r in rows.records])
        for w in report.warnings(f"texts in {path}"):
            err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False, soft_wrap=True)
    reals, records = real_rows.records, syn_rows.records
    real_set = Labelled(
        [r.text for r in reals],
        [r.label for r in reals],
        embedder.encode([r.text for r in reals]),
        [r.id for r in reals],
    )
    demo_ids = _demo_ids(records, {r.id for r in reals}, real)
    syn_set = Labelled(
        [r.text for r in records],
        [r.label for r in records],
        embedder.encode([r.text for r in records]),
        demo_ids,
    )
    quantile = _GENERATE_DEFAULTS.label_check_quantile
    check, weighting = check_and_weight(
        real_set,
        syn_set,
        CheckSettings(label_check, label_check_threshold, quantile),
        seed=seed,
        bandwidth=bandwidth,
        ess_floor=ess_floor,
        scope=scope,
    )
    if label_check != "none":
        chosen = " (chosen from the real texts)" if check.calibrated else ""
        err.print(
            f"label check ({label_check}, threshold {check.threshold:.2f}{chosen}): "
            f"{int((~check.keep).sum())} of {len(records)} synthetic texts read as another "
            "label and were dropped",
            highlight=False,
        )
    aligner = weighting.aligner
    kept = np.flatnonzero(check.keep)
    picks = aligner.resample(size_per_label, seed=seed)
    rows = [
        {**records[kept[i]].to_dict(), "weight": float(aligner.weights_[i])}
        for i in np.asarray(picks)
    ]
    write_records(output, rows)
    table = Table(title="alignment", header_style="bold")
    for col in ("label", "MMD² before", "MMD² after", "effective sample size"):
        table.add_column(col)
    for lab in aligner.labels_:
        table.add_row(
            lab,
            format_cell(aligner.mmd2_before_[lab]),
            format_cell(aligner.mmd2_after_[lab]),
            format_cell(aligner.ess_[lab]),
        )
    out.print(table)
    out.print(f"aligned samples: {output}")
    page = _align_report(output, reals, records, check, aligner, (real_set.X, syn_set.X[kept]))
    out.print(f"report: {page}", soft_wrap=True)


def _align_report(
    output: Path, reals: list[Any], records: list[Any], check: Any, aligner: Any, vectors: Any
) -> Path:
    """`<output>.report.html`: the run report of a file-level alignment (no LLM stages)."""
    import numpy as np

    from synalign.io import atomic_write_text
    from synalign.report.run_report import RunReport

    kept = set(np.flatnonzero(check.keep).tolist())
    scores = np.asarray(check.scores, dtype=float)
    contents = {
        "root": str(output),
        "config_toml": f"name = {json.dumps(output.name + ' (synalign align)')}\n",
        "stages": {},
        "real": [r.to_dict() for r in reals],
        "demos": [],
        "attributes": [],
        "synthetic": [records[i].to_dict() for i in sorted(kept)],
        "rejected": [
            {**records[i].to_dict(), "reason": "label_mismatch", "label_check_score": scores[i]}
            for i in range(len(records))
            if i not in kept
        ],
        "weights": np.asarray(aligner.weights_, dtype=np.float64),
        "alignment": {
            "bandwidth": float(aligner.bandwidth_),
            "mmd2_before": aligner.mmd2_before_,
            "mmd2_after": aligner.mmd2_after_,
            "ess": aligner.ess_,
        },
    }
    page = output.with_name(output.name + ".report.html")
    atomic_write_text(page, RunReport().html(contents, vectors))
    return page


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
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs",
            help="Retrieval runs: only the (anchor, positive) columns (and weight with "
            "--which synthetic), as sentence-transformers training takes them.",
        ),
    ] = False,
) -> None:
    """Write a run's synthetic data as JSONL, CSV, Parquet or a Hugging Face dataset, with
    a data card (README.md) that says how it was made, filtered and weighted."""
    from synalign.io import output_format, write_records
    from synalign.pipeline.run_dir import EXPORTABLE, RunDirectory
    from synalign.pipeline.run_export import check_outside_runs, export_rows
    from synalign.report.card_files import CARD_NAME, run_facts, write_data_card
    from synalign.report.data_card import data_card

    if which not in EXPORTABLE:
        raise SynAlignError(f"--which {which!r}: choose 'aligned' or 'synthetic'")
    run = RunDirectory(run_dir)
    kind = output_format(output, fmt)
    check_outside_runs(output)
    rows = export_rows(run, which, pairs=pairs)
    card = data_card(run_facts(run), rows, which, output.name, kind)
    write_records(output, rows, fmt=kind, description=card)
    out.print(f"wrote {len(rows)} rows to {output}")
    where = write_data_card(output, kind, card)
    if where is None:
        err.print(
            f"[yellow]warning:[/yellow] no data card written: {escape(str(output.parent))} "
            f"already holds a {CARD_NAME} and a {escape(output.name)}.{CARD_NAME} that "
            "synalign did not write",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(f"data card: {escape(str(where))}", highlight=False, soft_wrap=True)


def datasets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the bundled real corpora and their labels."""
    from synalign.io.corpora import list_datasets
    from synalign.io.retrieval import retrieval_dataset_description, retrieval_dataset_names

    rows = [
        {
            "name": i.name,
            "task": "classification",
            "labels": list(i.labels),
            "description": i.description,
        }
        for i in list_datasets()
    ] + [
        {
            "name": n,
            "task": "retrieval",
            "labels": [],
            "description": retrieval_dataset_description(n),
        }
        for n in retrieval_dataset_names()
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="bundled datasets", header_style="bold")
    for col in ("name", "task", "labels", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["task"], ", ".join(r["labels"]) or "-", r["description"])
    out.print(table)
