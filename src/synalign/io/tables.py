"""Reading the user's labelled texts and writing run outputs.

Readers turn every malformed input into an `InputError` naming the file and the place, so
the CLI can show one actionable line instead of a parser traceback. Writers are atomic so an
interrupted run never leaves a half-written file where a complete one is expected.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import numbers
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from synalign.errors import ConfigError, InputError
from synalign.records import SURROGATE as _SURROGATE
from synalign.records import (
    Record,
    has_line_break,
    has_surrogate,
    quoted,
    without_surrogates,
)

READ_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
WRITE_FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf")
_RESERVED = ("id", "text", "label")
# A CSV written from a numeric column with gaps spells 1 as "1.0"; read it as the same label.
_INTEGRAL_FLOAT = re.compile(r"[+-]?\d+\.0+")


@dataclass
class LoadResult:
    """Records plus the non-fatal problems found, for the caller to show or log."""

    records: list[Record]
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Table:
    """Rows as dicts with a human location for each ("line 4", "row 2") for error messages."""

    columns: list[str]
    rows: list[dict[str, Any]]
    where: list[str]
    untyped: bool = False


# --------------------------------------------------------------------------- reading


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

    With `dedupe` (what a run does with its real data) a row repeating an earlier row's
    text under the same label is dropped too, as it would only give that text more weight
    in exploration and alignment, and a text that occurs under two different labels is kept
    under both; each is counted in one warning. Without it every row is returned as written.
    """
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise InputError(f"{source}: no such file or folder; check the path")
    if p.is_dir():
        table = _read_hf_folder(p, source)
    else:
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            table = _parse_jsonl(_read_utf8(p, source), source)
        elif suffix == ".json":
            table = _parse_json(_read_utf8(p, source), source)
        elif suffix in (".csv", ".tsv"):
            delimiter = "\t" if suffix == ".tsv" else ","
            table = _parse_delimited(_read_utf8(p, source), source, delimiter)
        elif suffix == ".parquet":
            table = _read_parquet(p, source)
        else:
            kinds = ", ".join(READ_SUFFIXES)
            raise InputError(
                f"{source}: unsupported file type '{p.suffix or '(none)'}'; use one of {kinds}"
                " or a Hugging Face datasets folder made by save_to_disk"
            )
    return _to_records(table, source, text_column, label_column, id_column, dedupe)


def validate_labelled(records: list[Record], source: str, min_per_label: int = 1) -> list[str]:
    """Reject data that cannot be aligned per label; warn about labels too thin to learn from."""
    counts = Counter(r.label for r in records)
    if not counts:
        raise InputError(f"{source} has no labelled rows; add rows with a text and a label")
    if len(counts) < 2:
        (only,) = counts
        raise InputError(
            f"{source} has only one label '{only}'; SynAlign needs at least two labels"
            " (check --label-column / data.label_column, or add examples of another label)"
        )
    warnings: list[str] = []
    for label, n in counts.items():
        if n < min_per_label:
            s = "s" if n != 1 else ""
            warnings.append(
                f"label '{label}' in {source} has only {n} example{s}, fewer than"
                f" explore.cluster_size ({min_per_label}): its demonstration clusters hold"
                f" {n} text{s} each and its synthetic texts may be poorly matched; add"
                " examples or lower explore.cluster_size"
            )
    return warnings


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read one of the run directory's own JSONL files (blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file; check the path")
    return _parse_jsonl(_read_utf8(p, str(path)), str(path), allow_empty=True).rows


def _read_utf8(p: Path, source: str) -> str:
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{source}: cannot read file ({e.strerror or e})") from e
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"{source} is UTF-16 encoded (it starts with a UTF-16 byte order mark); re-save it"
            " as UTF-8 (e.g. 'CSV UTF-8' in Excel)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(
            f"{source} line {line} column {column} (byte {e.start}) is not valid UTF-8; the"
            " file must be UTF-8 encoded, so re-save it as UTF-8 (e.g. iconv -f cp1252 -t utf-8)"
        ) from e
    return text.removeprefix("\ufeff")


def _json_problem(e: json.JSONDecodeError, indent: int = 0) -> str:
    """`column 15: invalid JSON (unterminated string)` from a decoder error; `indent` is
    whitespace stripped from the line before decoding it."""
    what = e.msg.removesuffix(" at").removesuffix(" starting")
    return f"column {e.colno + indent}: invalid JSON ({what[:1].lower()}{what[1:]})"


def _json_line_rows(text: str, source: str) -> Iterator[tuple[int, Any]]:
    # Split on "\n" only: str.splitlines would also break on U+2028 etc. inside JSON strings.
    lines = text.split("\n")
    last = max((i for i, raw in enumerate(lines, 1) if raw.strip()), default=0)
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            cut = (
                "; the file looks cut off (was it completely written?)"
                if lineno == last and (e.pos >= len(line) or e.msg.startswith("Unterminated"))
                else ""
            )
            indent = len(raw) - len(raw.lstrip())
            raise InputError(
                f"{source} line {lineno} {_json_problem(e, indent)}; each line must be one complete"
                f" JSON object{cut}"
            ) from e


def _parse_jsonl(text: str, source: str, allow_empty: bool = False) -> _Table:
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    for lineno, obj in _json_line_rows(text, source):
        if not isinstance(obj, dict):
            raise InputError(
                f"{source} line {lineno}: expected a JSON object, found {_json_kind(obj)};"
                ' write one object like {"text": ..., "label": ...} per line'
            )
        rows.append(obj)
        where.append(f"line {lineno}")
    if not rows and not allow_empty:
        raise InputError(f"{source} is empty; it needs one JSON object per line")
    return _Table(_union_columns(rows), rows, where)


def _parse_json(text: str, source: str) -> _Table:
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"{source} is empty; it needs a JSON array of objects")
    if stripped[0] == "{":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":
                raise InputError(f"{source} line {e.lineno} {_json_problem(e)}") from e
            return _parse_jsonl(text, source)
        return _Table(list(obj), [obj], ["line 1"])
    if stripped[0] != "[":
        raise InputError(f"{source}: expected a JSON array of objects or one JSON object per line")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{source} line {e.lineno} {_json_problem(e)}") from e
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(
                f"{source}: item {i} of the JSON array is {_json_kind(item)}, not an object;"
                ' every item must look like {"text": ..., "label": ...}'
            )
        rows.append(item)
    if not rows:
        raise InputError(f"{source} holds an empty JSON array; add labelled rows")
    return _Table(_union_columns(rows), rows, [f"item {i}" for i in range(len(rows))])


def _json_kind(obj: Any) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    return "a number"


@contextlib.contextmanager
def _large_csv_fields() -> Iterator[None]:
    """Allow long texts: the csv module's default 128 KiB field cap rejects real documents."""
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _parse_delimited(text: str, source: str, delimiter: str) -> _Table:
    kind = "TSV" if delimiter == "\t" else "CSV"
    shown = "tab" if delimiter == "\t" else "','"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    with _large_csv_fields():
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise InputError(_quote_problem(text, start, delimiter, source, kind, e)) from e
            if not fields:
                continue
            if header is None:
                header = fields
                dupes = sorted({c for c in header if header.count(c) > 1})
                if dupes:
                    raise InputError(
                        f"{source}: column '{dupes[0]}' appears more than once in the header;"
                        " give every column a distinct name"
                    )
                continue
            if len(fields) > len(header):
                raise InputError(
                    f"{source} line {start}: {len(fields)} fields but the header has"
                    f" {len(header)}; quote fields that contain the delimiter ({shown})"
                )
            row: dict[str, Any] = dict.fromkeys(header)
            row.update(zip(header, fields, strict=False))
            rows.append(row)
            where.append(f"line {start}")
    if header is None:
        raise InputError(f"{source} is empty; it needs a header row and labelled rows")
    if not rows:
        raise InputError(
            f"{source} has a header ({', '.join(header)}) but no rows; add labelled rows"
        )
    return _Table(header, rows, where, untyped=True)


def _quote_problem(
    text: str, start: int, delimiter: str, source: str, kind: str, error: csv.Error
) -> str:
    """Point at the quote that broke a row: one never closed, or text after a closing one."""
    lines = text.split("\n")
    i = sum(len(ln) + 1 for ln in lines[: start - 1])
    field_start, quoted, opened = True, False, -1
    found: tuple[str, int] | None = None
    while i < len(text) and found is None:
        c = text[i]
        if quoted:
            if c == '"' and text[i + 1 : i + 2] == '"':
                i += 1
            elif c == '"':
                quoted = False
                if text[i + 1 : i + 2] not in (delimiter, "\n", "\r", ""):
                    found = ("after", i + 1)
        elif c == '"' and field_start:
            quoted, opened = True, i
        elif c == "\n":
            break
        field_start = not quoted and c in (delimiter, "\n")
        i += 1
    if found is None and quoted:
        found = ("open", opened)
    if found is None:
        return (
            f"{source}: {kind} parse error in the row starting on line {start} ({error});"
            " check for an unbalanced or stray double quote"
        )
    what, at = found
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    if what == "open":
        return (
            f"{source} line {line} column {column}: this double quote opens a quoted field"
            " that is never closed (the file ends inside it); close it, or write a quote"
            ' inside a field as two quotes ("")'
        )
    return (
        f"{source} line {line} column {column}: text follows the closing double quote of a"
        f' quoted field; quote the whole field and write a quote inside it as two quotes ("")'
    )


def _read_parquet(p: Path, source: str) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{source}: not a readable Parquet file ({e})") from e
    columns = list(table.column_names)
    if table.num_rows == 0:
        raise InputError(f"{source} has no rows (columns: {', '.join(columns)}); add labelled rows")
    rows = table.to_pylist()
    return _Table(columns, rows, [f"row {i}" for i in range(len(rows))])


def _is_hf_folder(p: Path) -> bool:
    return (p / "dataset_dict.json").is_file() or (p / "state.json").is_file()


def _read_hf_folder(p: Path, source: str) -> _Table:
    if not _is_hf_folder(p):
        raise InputError(
            f"{source} is a folder but not a Hugging Face datasets folder (no state.json or"
            " dataset_dict.json); pass a data file or a folder made by save_to_disk"
        )
    import datasets

    try:
        with _quiet_datasets():
            loaded = datasets.load_from_disk(str(p))
    except Exception as e:
        raise InputError(f"{source}: cannot load the datasets folder ({e})") from e
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if "train" in loaded:
            ds = loaded["train"]
        elif len(splits) == 1:
            ds = loaded[splits[0]]
        elif not splits:
            raise InputError(f"{source} is a DatasetDict with no splits; save one with data")
        else:
            raise InputError(
                f"{source} holds splits {', '.join(splits)} and no 'train' split;"
                " save the split to use on its own with save_to_disk"
            )
    else:
        ds = loaded
    columns = list(ds.column_names)
    if ds.num_rows == 0:
        raise InputError(f"{source} has no rows (columns: {', '.join(columns)}); add labelled rows")
    rows = ds.with_format(None).to_list()
    return _Table(columns, rows, [f"row {i}" for i in range(len(rows))])


def _union_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


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
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, dict | list | tuple | set | bytes):
        raise TypeError(type(value).__name__)
    return str(value).strip() or None


def _cell(value: Any, source: str, where: str, column: str, what: str) -> str | None:
    try:
        return _scalar_str(value)
    except TypeError as e:
        raise InputError(
            f"{source} {where}: column '{column}' holds a {e}, not a single {what};"
            f" put one {what} per row in '{column}'"
        ) from e


def _require_column(table: _Table, source: str, column: str, fix: str) -> None:
    if column not in table.columns:
        found = ", ".join(table.columns) or "(none)"
        raise InputError(f"{source} has no column '{column}' (columns found: {found}); {fix}")


def _to_records(
    table: _Table,
    source: str,
    text_column: str,
    label_column: str,
    id_column: str | None,
    dedupe: bool = False,
) -> LoadResult:
    _require_column(table, source, text_column, "pass --text-column with the right column name")
    _require_column(table, source, label_column, "pass --label-column with the right column name")
    if id_column is not None:
        _require_column(table, source, id_column, "choose an id column that exists")
    skip = {text_column, label_column, id_column, *_RESERVED}
    records: list[Record] = []
    first_seen: dict[str, str] = {}
    empty_text = 0
    no_label = 0
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
        text = _cell(row.get(text_column), source, where, text_column, "text")
        if text is None:
            empty_text += 1
            continue
        label = _cell(row.get(label_column), source, where, label_column, "label")
        if table.untyped and label is not None and _INTEGRAL_FLOAT.fullmatch(label):
            label = str(int(float(label)))
        if label is None:
            no_label += 1
            continue
        if has_line_break(label):
            raise InputError(
                f"{source} {where}: the label in column '{label_column}'"
                f" ({quoted(label)}) holds a line break; a label must"
                " be one line (prompts show it on one), so rename it in the file"
            )
        if not table.untyped:
            raw = row.get(label_column)
            kind = "a string" if isinstance(raw, str) else _json_kind(raw)
            rows, example = spellings.setdefault(label, {}).get(kind, (0, raw))
            spellings[label][kind] = (rows + 1, example)
        if id_column is None:
            rid = str(index)
        else:
            got = _cell(row.get(id_column), source, where, id_column, "id")
            if got is None:
                raise InputError(
                    f"{source} {where}: empty id in column '{id_column}'; every row needs an id"
                )
            if got in first_seen:
                raise InputError(
                    f"{source} {where}: id '{got}' already used at {first_seen[got]};"
                    f" ids in column '{id_column}' must be unique"
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
        warnings.append(f"dropped {_rows(empty_text)} with empty text in {source}")
    if no_label:
        warnings.append(f"dropped {_rows(no_label)} with no label in {source}")
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
            f" label (e.g. {where} '{label}' vs {at} '{other}'); kept under each label"
        )
    for label, kinds in spellings.items():
        if len(kinds) > 1:
            shown = " and as ".join(
                f"{kind} ({json.dumps(example, ensure_ascii=False, default=str)}, {_rows(rows)})"
                for kind, (rows, example) in kinds.items()
            )
            warnings.append(
                f"label '{label}' in {source} is written both as {shown}; labels are read as"
                f" text, so all of them are the label '{label}'"
            )
    if not records:
        raise InputError(
            f"{source} has no rows with both a text ('{text_column}') and a label"
            f" ('{label_column}'); check the column names and the file's contents"
        )
    return LoadResult(records, warnings)


def _printable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- writing


def _umask() -> int:
    """The process umask, so outputs get the permissions a plain open() or mkdir() would give
    rather than the private 0600/0700 of mkstemp/mkdtemp."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every platform lets a folder be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_open(path: str | Path, binary: bool) -> Iterator[IO[Any]]:
    """Yield a temp file beside `path`; it replaces `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if binary:
            f: IO[Any] = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", newline="")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write all of `data` or leave the old file untouched."""
    with _atomic_open(path, binary=True) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text, written atomically."""
    with _atomic_open(path, binary=False) as f:
        f.write(text)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, non-ASCII kept readable, streamed to a temp file."""
    with _atomic_open(path, binary=False) as f:
        for row in rows:
            line = json.dumps(row, ensure_ascii=False)
            if _SURROGATE.search(line):  # kept as a JSON escape, which reads back the same
                line = json.dumps(row)
            f.write(line)
            f.write("\n")


def _infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    if suffix == "":
        return "hf"
    raise ConfigError(
        f"{path}: cannot tell the output format from '{suffix}'; use a .jsonl, .csv or"
        " .parquet name, a folder name without extension, or --format " + "/".join(WRITE_FORMATS)
    )


def _dense(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Give every row every column: Arrow and datasets infer columns from the first row only.
    Lone surrogates become U+FFFD: CSV, Parquet and datasets store UTF-8 only.

    With no rows the columns are id, text and label, so an empty output still has a schema.
    """
    columns = [without_surrogates(c) for c in _union_columns(rows)] or list(_RESERVED)
    clean = [without_surrogates(r) if has_surrogate(r) else r for r in rows]
    return columns, [{c: row.get(c) for c in columns} for row in clean]


def write_records(path: str | Path, rows: list[dict[str, Any]], fmt: str | None = None) -> None:
    """Write output rows as JSONL, CSV, Parquet or a Hugging Face datasets folder."""
    target = Path(path)
    kind = fmt.lower() if fmt else _infer_format(target)
    if kind == "jsonl":
        write_jsonl(target, rows)
    elif kind == "csv":
        _write_csv(target, rows)
    elif kind == "parquet":
        _write_parquet(target, rows)
    elif kind == "hf":
        _write_hf(target, rows)
    else:
        raise ConfigError(f"unknown output format '{fmt}'; use one of {', '.join(WRITE_FORMATS)}")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_csv(target: Path, rows: list[dict[str, Any]]) -> None:
    columns, dense = _dense(rows)
    with _atomic_open(target, binary=False) as f:
        writer = csv.writer(f, lineterminator="\n")
        # Minimal quoting only quotes the delimiter, quote and line terminator characters,
        # so a bare "\r" would be written unquoted and end the row when read back; a row
        # holding one is written with every field quoted instead.
        quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for values in [columns, *([_csv_value(row[c]) for c in columns] for row in dense)]:
            has_cr = any(isinstance(v, str) and "\r" in v for v in values)
            (quoted if has_cr else writer).writerow(values)


def _write_parquet(target: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, dense = _dense(rows)
    try:
        if dense:
            table = pa.Table.from_pylist(dense)
        else:
            table = pa.table({c: pa.array([], pa.string()) for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InputError(f"{target}: rows cannot be stored as Parquet ({e})") from e
    with _atomic_open(target, binary=True) as f:
        pq.write_table(table, f)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Keep the datasets library's progress bars off the user's terminal."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _write_hf(target: Path, rows: list[dict[str, Any]]) -> None:
    import datasets

    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a folder; choose another output path")
    columns, dense = _dense(rows)
    try:
        if dense:
            ds = datasets.Dataset.from_list(dense)
        else:
            # An empty folder must still load: that needs typed columns and one (empty) shard.
            features = datasets.Features({c: datasets.Value("string") for c in columns})
            ds = datasets.Dataset.from_dict({c: [] for c in columns}, features=features)
    except Exception as e:
        raise InputError(f"{target}: rows cannot be stored as a datasets folder ({e})") from e
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        with _quiet_datasets():
            ds.save_to_disk(str(tmp), num_shards=None if dense else 1)
        for item in tmp.iterdir():
            if item.is_file():
                with open(item, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "previous")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old / "previous", target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)
