"""A run's samples as rows to export: only from files that still hold what their stage
wrote, and only to places outside run and evaluation folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synalign.errors import SynAlignError
from synalign.pipeline.run_dir import EXPORTABLE, RunDirectory


def check_outside_runs(output: Path) -> None:
    """An export (or an aligned file) never goes into a run or evaluation folder, where it
    could replace a file the run depends on."""
    target = output.resolve()
    for folder in (target, *target.parents):
        if not (folder / ".lock").is_file():
            continue
        if RunDirectory(folder).is_run() or (folder / "evaluation.json").is_file():
            raise SynAlignError(
                f"{output} is inside the synalign folder {folder}; write exports outside run "
                "and evaluation folders"
            )


def pair_rows(rows: list[dict[str, Any]], weighted: bool, source: str) -> list[dict[str, Any]]:
    """Query rows as sentence-transformers training pairs: `anchor` (the query) and
    `positive` (its document), plus `weight` when `weighted`."""
    if not rows or "doc_id" not in rows[0]:
        raise SynAlignError(
            f"{source} is not a retrieval run; --pairs (to_pairs() in Python) exports "
            "(query, document) pairs"
        )
    out = []
    for r in rows:
        row = {"anchor": r["text"], "positive": r["document"]}
        if weighted:
            row["weight"] = r["weight"]
        out.append(row)
    return out


def export_rows(run: RunDirectory, which: str, pairs: bool = False) -> list[dict[str, Any]]:
    """`aligned`: the resampled set; `synthetic`: every accepted sample with its MMD
    weight, for weighted training. A missing or damaged file says what to run.

    A retrieval run's rows lead with `anchor` (the query) and `positive` (its document);
    `pairs` keeps only those two (and `weight` for `synthetic`), the columns
    sentence-transformers' trainers take."""
    rows = _rows(run, which)
    if pairs:
        return pair_rows(rows, which == "synthetic", str(run.root))
    if not rows or "doc_id" not in rows[0]:
        return rows
    return [
        {
            "anchor": r["text"],
            "positive": r["document"],
            **{k: v for k, v in r.items() if k not in ("text", "document")},
        }
        for r in rows
    ]


def _check_intact(run: RunDirectory, stages: tuple[str, ...]) -> None:
    """Refuse to export from files that are missing or no longer what their stage wrote,
    naming the command that makes them (again) from the cache."""
    if not run.is_run():
        raise SynAlignError(
            f"{run.root} is not a synalign run folder (no state.json); give the folder of a "
            "run, e.g. runs/demo"
        )
    for stage in stages:
        if stage not in run.stages():
            raise SynAlignError(
                f"{run.root}: the {stage} stage has not run; run `synalign run {run.root}` to "
                "finish the run, then export"
            )
        files = [str(run.path(o)) for o in run.damaged(stage)]
        if files:
            raise SynAlignError(
                f"{', '.join(files)} no longer holds what the {stage} stage wrote; run "
                f"`synalign run {run.root}` to make it again from the cache (no new LLM "
                "calls), then export"
            )


def _rows(run: RunDirectory, which: str) -> list[dict[str, Any]]:
    if which not in EXPORTABLE:
        raise SynAlignError(f"`which` {which!r}: choose 'aligned' or 'synthetic'")
    _check_intact(run, ("generate", "align"))
    if which == "aligned":
        return run.aligned()
    rows = run.synthetic()
    weights = run.weights()
    if len(weights) != len(rows):
        raise SynAlignError(
            f"{run.path('weights.npy')} has {len(weights)} weights for {len(rows)} samples in "
            f"{run.path('synthetic.jsonl')}; run `synalign run {run.root}` to align them again"
        )
    return [{**r, "weight": float(w)} for r, w in zip(rows, weights, strict=True)]
