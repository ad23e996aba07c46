"""Reading the user's labelled texts and the run directory's own JSONL files.

Labels are normalised to text and problems that do not stop a run (dropped rows, labels
spelled two ways) come back as warnings for the caller to show or log.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synalign.errors import ConfigError, InputError
from synalign.io.files import COMPRESSED_SUFFIXES, refuse_compressed, refuse_special, stat_path
from synalign.io.formats import (
    RESERVED_COLUMNS,
    Table,
    json_kind,
    parse_delimited,
    parse_json,
    parse_jsonl,
    read_hf_folder,
    read_parquet,
    read_utf8,
    union_columns,
)
from synalign.records import SURROGATE as _SURROGATE
from synalign.records import (
    Record,
    clip,
    has_line_break,
    has_surrogate,
    listed,
    quoted,
    without_surrogates,
)

READ_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
# A CSV written from a numeric column with gaps spells 1 as "1.0"; read it as the same label.
_INTEGRAL_FLOAT = re.compile(r"[+-]?\d+\.0+")
# How numeric writers spell NaN and the infinities as text (Python, JSON, pandas, R).
_NOT_A_NUMBER = re.compile(r"[+-]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity|INFINITY)")


@dataclass
class LoadResult:
    """Records plus the non-fatal problems found, for the caller to show or log."""

    records: list[Record]
    warnings: list[str] = field(default_factory=list)


def read_records(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = None,
    dedupe: bool = False,
) -> LoadResult:
    """Load labelled texts from JSONL, JSON, CSV, TSV, Parquet or a `save_to_disk` folder.

    Columns other than text, label and id are kept in `Record.meta` (minus the names
    `id`, `text` and `label`, which would clash with the record's own fields on output).

    Labels are always text: a number becomes its decimal spelling (1 and 1.0 -> "1",
    2.5 -> "2.5", true -> "true"), so a column mixing 0 and "neg" reads as the labels "0"
    and "neg". When one label is written both as a number and as a string (1 and "1") the
    rows are merged under one label and a warning says so. Rows with an empty, null or
    whitespace-only text or label are dropped; each kind of drop is counted in one warning.
    NaN and the infinities are missing values too, as numbers and as the text writers
    spell them with ('nan', 'inf', 'Infinity'), so a file reads the same in every format.

    With `dedupe` (what a run does with its real data) a row repeating an earlier row's
    text under the same label is dropped too, as it would only give that text more weight
    in exploration and alignment, and a text that occurs under two different labels is kept
    under both; each is counted in one warning. Without it every row is returned as written.
    """
    p = Path(path)
    source = str(path)
    status = stat_path(p, source)
    if stat.S_ISDIR(status.st_mode):
        table = read_hf_folder(p, source)
    else:
        refuse_special(status, source)
        suffix = p.suffix.lower()
        if suffix in READ_SUFFIXES or suffix in COMPRESSED_SUFFIXES:
            refuse_compressed(p, source)
        if suffix in (".jsonl", ".ndjson"):
            table = parse_jsonl(read_utf8(p, source), source)
        elif suffix == ".json":
            table = parse_json(read_utf8(p, source), source)
        elif suffix in (".csv", ".tsv"):
            delimiter = "\t" if suffix == ".tsv" else ","
            table = parse_delimited(read_utf8(p, source), source, delimiter)
        elif suffix == ".parquet":
            table = read_parquet(p, source)
        else:
            kinds = ", ".join(READ_SUFFIXES)
            raise InputError(
                f"{source}: unsupported file type '{p.suffix or '(none)'}'; use one of {kinds}"
                " or a Hugging Face datasets folder made by save_to_disk"
            )
    return _to_records(table, source, text_column, label_column, id_column, dedupe)


def records_from_rows(
    rows: list[dict[str, Any]],
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = None,
    dedupe: bool = False,
) -> LoadResult:
    """Records from rows already in memory (a DataFrame's or a Dataset's), checked as a
    file's rows are; problems name the row by its position."""
    table = Table(union_columns(rows), rows, [f"row {i}" for i in range(len(rows))])
    return _to_records(table, source, text_column, label_column, id_column, dedupe)


def validate_labelled(records: list[Record], source: str, min_per_label: int = 1) -> list[str]:
    """Reject data that cannot be aligned per label; warn about labels too thin to learn
    from, in one line however many there are."""
    counts = Counter(r.label for r in records)
    if not counts:
        raise InputError(f"{source} has no labelled rows; add rows with a text and a label")
    if len(counts) < 2:
        (only,) = counts
        raise InputError(
            f"{source} has only one label '{clip(only)}'; SynAlign needs at least two labels"
            " (check data.label_column, or add examples of another label)"
        )
    thin = [(label, n) for label, n in counts.items() if n < min_per_label]
    if len(thin) == 1:
        ((label, n),) = thin
        s = "s" if n != 1 else ""
        return [
            f"label '{clip(label)}' in {source} has only {n} example{s}, fewer than"
            f" explore.cluster_size ({min_per_label}): its demonstration clusters hold"
            f" {n} text{s} each and its synthetic texts may be poorly matched; add"
            " examples or lower explore.cluster_size"
        ]
    if thin:
        return [
            f"{len(thin)} labels in {source} have fewer examples than explore.cluster_size"
            f" ({min_per_label}): {listed(thin)}; their demonstration clusters hold fewer"
            " texts and their synthetic texts may be poorly matched; add examples or lower"
            " explore.cluster_size"
        ]
    return []


def check_label_descriptions(descriptions: dict[str, str], labels: list[str], source: str) -> None:
    """Refuse `data.label_descriptions` entries for labels the data does not have: a
    misspelt label would otherwise leave the real one undescribed without a word."""
    known = set(labels)
    unknown = [label for label in descriptions if label not in known]
    if not unknown:
        return
    which = "label" if len(unknown) == 1 else "labels"
    close = difflib.get_close_matches(unknown[0], labels, n=1)
    hint = f" (did you mean '{clip(close[0])}'?)" if close else ""
    raise ConfigError(
        f"data.label_descriptions names the {which} {listed(unknown)}{hint}, not found in"
        f" {source}, whose labels are {listed(labels, limit=10)}; fix the spelling or remove"
        " the entry"
    )


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read one of the run directory's own JSONL files (blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file; check the path")
    return parse_jsonl(read_utf8(p, str(path)), str(path), allow_empty=True).rows


def _scalar_str(value: Any) -> str | None:
    """Canonical string for a label or id; None for null/blank so the row can be dropped."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, dict | list | tuple | set | bytes):
        raise TypeError(type(value).__name__)
    return str(value).strip() or None


def not_a_number(value: Any) -> bool:
    """NaN or an infinity, as a number or as the text a writer spells one with ('nan',
    'inf', 'Infinity'): a missing value, in every format alike."""
    if isinstance(value, str):
        return _NOT_A_NUMBER.fullmatch(value.strip()) is not None
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return not math.isfinite(float(value))
    return False


def _cell(value: Any, source: str, where: str, column: str, what: str) -> str | None:
    try:
        return _scalar_str(value)
    except TypeError as e:
        raise InputError(
            f"{source} {where}: column '{clip(column)}' holds a {e}, not a single {what};"
            f" put one {what} per row in '{clip(column)}'"
        ) from e


def _require_column(table: Table, source: str, column: str, fix: str) -> None:
    if column not in table.columns:
        found = listed(table.columns, limit=20, quote="") or "(none)"
        raise InputError(f"{source} has no column '{clip(column)}' (columns found: {found}); {fix}")


def _to_records(
    table: Table,
    source: str,
    text_column: str,
    label_column: str,
    id_column: str | None,
    dedupe: bool = False,
) -> LoadResult:
    _require_column(table, source, text_column, "set data.text_column to the right column name")
    _require_column(table, source, label_column, "set data.label_column to the right column name")
    if id_column is not None:
        _require_column(table, source, id_column, "choose an id column that exists")
    skip = {text_column, label_column, id_column, *RESERVED_COLUMNS}
    records: list[Record] = []
    first_seen: dict[str, str] = {}
    empty_text = 0
    no_label = 0
    # where a text or label was NaN or an infinity (counted among the empty ones)
    nan_text: list[str] = []
    nan_label: list[str] = []
    # label -> how it was written ("a number", "a string", ...) -> (rows, first raw value)
    spellings: dict[str, dict[str, tuple[int, Any]]] = {}
    # text -> label -> where it first occurs, to drop repeats and spot conflicting labels
    seen_text: dict[str, dict[str, str]] = {}
    duplicates: list[tuple[str, str]] = []
    conflicts: list[tuple[str, str, str, str]] = []
    surrogates: list[tuple[str, str]] = []
    for index, (row, where) in enumerate(zip(table.rows, table.where, strict=True)):
        bad = [str(k) for k, v in row.items() if has_surrogate(k) or has_surrogate(v)]
        if bad:
            surrogates.append((where, bad[0]))
            row = without_surrogates(row)
        raw_text, raw = row.get(text_column), row.get(label_column)
        text = _cell(raw_text, source, where, text_column, "text")
        if text is None or not_a_number(raw_text):
            empty_text += 1
            nan_text += [where] if not_a_number(raw_text) else []
            continue
        label = _cell(raw, source, where, label_column, "label")
        if table.untyped and label is not None and _INTEGRAL_FLOAT.fullmatch(label):
            label = str(int(float(label)))
        if label is None or not_a_number(raw):
            no_label += 1
            nan_label += [where] if not_a_number(raw) else []
            continue
        if has_line_break(label):
            raise InputError(
                f"{source} {where}: the label in column '{label_column}'"
                f" ({quoted(label)}) holds a line break; a label must"
                " be one line (prompts show it on one), so rename it in the file"
            )
        if not table.untyped:
            kind = "a string" if isinstance(raw, str) else json_kind(raw)
            rows, example = spellings.setdefault(label, {}).get(kind, (0, raw))
            spellings[label][kind] = (rows + 1, example)
        if id_column is None:
            rid = str(index)
        else:
            got = _cell(row.get(id_column), source, where, id_column, "id")
            if got is None:
                raise InputError(
                    f"{source} {where}: empty id in column '{clip(id_column)}'; every row"
                    " needs an id"
                )
            if got in first_seen:
                raise InputError(
                    f"{source} {where}: id '{clip(got)}' already used at {first_seen[got]};"
                    f" ids in column '{clip(id_column)}' must be unique"
                )
            first_seen[got] = where
            rid = got
        if dedupe:
            labels_of_text = seen_text.setdefault(text, {})
            if label in labels_of_text:
                duplicates.append((where, labels_of_text[label]))
                continue
            if labels_of_text:
                other, at = next(iter(labels_of_text.items()))
                conflicts.append((where, label, at, other))
            labels_of_text[label] = where
        meta = {k: v for k, v in row.items() if k not in skip}
        records.append(Record(id=rid, text=text, label=label, meta=meta))
    warnings: list[str] = []
    if surrogates:
        where, column = surrogates[0]
        warnings.append(
            f"replaced lone surrogates (invalid Unicode such as '\\ud800', often half an"
            f" emoji) with U+FFFD in {_rows(len(surrogates))} of {source} (e.g. {where},"
            f" column '{_printable(column)}'); fix the text at its source to keep the character"
        )
    if empty_text:
        warnings.append(f"dropped {_rows(empty_text)} with empty text in {source}{_nan(nan_text)}")
    if no_label:
        warnings.append(f"dropped {_rows(no_label)} with no label in {source}{_nan(nan_label)}")
    if duplicates:
        where, first = duplicates[0]
        warnings.append(
            f"dropped {_rows(len(duplicates))} repeating an earlier row's text and label in"
            f" {source} (e.g. {where} repeats {first})"
        )
    if conflicts:
        where, label, at, other = conflicts[0]
        warnings.append(
            f"{_rows(len(conflicts))} in {source} repeat a text already seen under another"
            f" label (e.g. {where} '{clip(label)}' vs {at} '{clip(other)}'); kept under each"
            " label"
        )
    warnings += _spelling_warnings(spellings, source)
    if not records:
        raise InputError(
            f"{source} has no rows with both a text ('{text_column}') and a label"
            f" ('{label_column}'); check the column names and the file's contents"
        )
    return LoadResult(records, warnings)


def _spelling_warnings(spellings: dict[str, dict[str, tuple[int, Any]]], source: str) -> list[str]:
    """One line for the labels written both as a number and as a string (1 and "1")."""
    mixed = [(label, kinds) for label, kinds in spellings.items() if len(kinds) > 1]
    if not mixed:
        return []
    label, kinds = mixed[0]
    shown = " and as ".join(
        f"{kind} ({clip(json.dumps(example, ensure_ascii=False, default=str))}, {_rows(rows)})"
        for kind, (rows, example) in kinds.items()
    )
    if len(mixed) == 1:
        return [
            f"label '{clip(label)}' in {source} is written both as {shown}; labels are read as"
            f" text, so all of them are the label '{clip(label)}'"
        ]
    return [
        f"{len(mixed)} labels in {source} are each written in more than one way:"
        f" {listed([m[0] for m in mixed])} (e.g. '{clip(label)}' as {shown}); labels are"
        " read as text, so each is one label"
    ]


def _nan(where: list[str]) -> str:
    """Where NaN or an infinity stood for a missing value, for the drop warning."""
    if not where:
        return ""
    return f" ({len(where)} of them NaN or infinity, e.g. {where[0]}, which count as missing)"


def _printable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"
