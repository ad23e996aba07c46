"""Reading a run's facts for its data card, and placing the card beside an export without
ever replacing a README.md that SynAlign did not write."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synalign import __version__
from synalign.errors import SynAlignError
from synalign.report.data_card import RunFacts, card_file_of

if TYPE_CHECKING:
    from synalign.pipeline.run_dir import RunDirectory

CARD_NAME = "README.md"
_SAMPLING = ("temperature", "top_p", "min_p", "max_tokens", "stop")


def _read(reader: Any, default: Any) -> Any:
    """A run file a card can do without: a missing or unreadable one leaves its part blank
    instead of failing the export the card goes with."""
    try:
        return reader()
    except (SynAlignError, OSError, ValueError):
        return default


def _generators(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    keys = ("backend", "model", "prompt_family", "model_sha256")
    seen = dict.fromkeys(tuple(str(r.get(k, "?")) for k in keys) for r in rows)
    return [dict(zip(keys, values, strict=True)) for values in seen]


def _sampling(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each setting's distinct values (per-request seeds left out: they come from the run
    seed)."""
    out: dict[str, list[Any]] = {}
    for key in _SAMPLING:
        values: list[Any] = []
        for r in rows:
            params = r.get("sampling")
            value = params.get(key) if isinstance(params, dict) else None
            if value is not None and value not in values:
                values.append(value)
        if values:
            out[key] = sorted(values, key=str) if len(values) > 1 else values
    return out


def _source_note(config: dict[str, Any]) -> str:
    """A bundled corpus's own description."""
    name = (config.get("data") or {}).get("dataset")
    if not name:
        return ""
    try:
        if config.get("task") == "retrieval":
            from synalign.io.retrieval import retrieval_dataset_description

            return retrieval_dataset_description(name)
        from synalign.io.corpora import dataset_info

        return dataset_info(name).description
    except (SynAlignError, KeyError):
        return ""


def run_facts(run: RunDirectory) -> RunFacts:
    """What the card says about the run in `run`, through its readers."""
    config = run.config_values()
    real = _read(run.real, [])
    synthetic = _read(run.synthetic, [])
    rejected = _read(run.rejected, [])
    generate = run.stage("generate")
    return RunFacts(
        name=str(config.get("name") or run.root.name),
        version=__version__,
        config=config,
        real_records=len(real),
        real_groups=dict(Counter(r.label for r in real)),
        generators=_generators(synthetic + rejected),
        sampling=_sampling(synthetic + rejected),
        accepted=len(synthetic),
        rejected=dict(Counter(str(r.get("reason")) for r in rejected)),
        checks={k: generate[k] for k in ("label_check", "query_check") if k in generate},
        alignment=_read(run.alignment, {}),
        source_note=_source_note(config),
    )


def _described(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = [line.rstrip("\n") for _, line in zip(range(40), f, strict=False)]
    except OSError:
        return None
    return card_file_of(head)


def card_path(output: Path, fmt: str) -> Path | None:
    """Where the card of `output` goes: inside a datasets folder, its README.md; beside a
    file, README.md unless one is there that SynAlign did not write or that describes
    another file still present, then `<file name>.README.md`. None when that is taken by
    a file SynAlign did not write either."""
    if fmt == "hf":
        return output / CARD_NAME
    beside = output.parent / CARD_NAME
    if not beside.exists():
        return beside
    described = _described(beside)
    if described is not None and (
        described == output.name or not (output.parent / described).exists()
    ):
        return beside
    own = output.parent / f"{output.name}.{CARD_NAME}"
    if not own.exists() or _described(own) is not None:
        return own
    return None


def write_data_card(output: Path, fmt: str, text: str) -> Path | None:
    """Write the card of `output`; where it went, or None if every place was taken."""
    from synalign.io import atomic_write_text
    from synalign.records import without_surrogates

    path = card_path(output, fmt)
    if path is not None:
        atomic_write_text(path, without_surrogates(text))
    return path
