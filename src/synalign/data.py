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
from synalign.records import Record

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
) -> LoadResult:
    """Load labelled texts from JSONL, JSON, CSV, TSV, Parquet or a `save_to_disk` folder.

    Columns other than text, label and id are kept in `Record.meta` (minus the names
    `id`, `text` and `label`, which would clash with the record's own fields on output).
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
    return _to_records(table, source, text_column, label_column, id_column)


def validate_labelled(records: list[Record], source: str, min_per_label: int = 1) -> list[str]:
    """Reject data that cannot be aligned per label; warn about labels too thin to learn from."""
    counts = Counter(r.label for r in records)
    if not counts:
        raise InputError(f"{source} has no labelled rows; add rows with a text and a label")
    if len(counts) < 2:
        (only,) = counts
        raise InputError(
            f"{source} has only one label '{only}'; SynAlign needs at least two labels"
        )
    warnings: list[str] = []
    for label, n in counts.items():
        if n < min_per_label:
            warnings.append(
                f"label '{label}' in {source} has only {n} example{'s' if n != 1 else ''}"
                f" (fewer than {min_per_label}); its synthetic texts may be poorly matched"
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
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(
            f"{source} line {line} (byte {e.start}) is not valid UTF-8; the file must be"
            " UTF-8 encoded, so re-save it as UTF-8"
        ) from e
    return text.removeprefix("\ufeff")


def _json_line_rows(text: str, source: str) -> Iterator[tuple[int, Any]]:
    # Split on "\n" only: str.splitlines would also break on U+2028 etc. inside JSON strings.
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                f"{source} line {lineno}: invalid JSON ({e.msg} at column {e.colno});"
                " each line must be one complete JSON object"
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
                raise InputError(
                    f"{source} line {e.lineno}: invalid JSON ({e.msg} at column {e.colno})"
                ) from e
            return _parse_jsonl(text, source)
        return _Table(list(obj), [obj], ["line 1"])
    if stripped[0] != "[":
        raise InputError(f"{source}: expected a JSON array of objects or one JSON object per line")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{source} line {e.lineno}: invalid JSON ({e.msg} at column {e.colno})"
        ) from e
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
                raise InputError(
                    f"{source}: {kind} parse error in the row starting on line {start} ({e});"
                    " check for an unbalanced or stray double quote"
                ) from e
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


def _read_parquet(p: Path, source: str) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{source}: not a readable Parquet file ({e})") from e
    columns = list(table.column_names)
    if table.num_rows == 0:
        raise InputError(f"{source} has no rows (columns: {', '.join(columns)})")
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
        raise InputError(f"{source} has no rows (columns: {', '.join(columns)})")
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
    for index, (row, where) in enumerate(zip(table.rows, table.where, strict=True)):
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
        meta = {k: v for k, v in row.items() if k not in skip}
        records.append(Record(id=rid, text=text, label=label, meta=meta))
    warnings: list[str] = []
    if empty_text:
        warnings.append(f"dropped {_rows(empty_text)} with empty text in {source}")
    if no_label:
        warnings.append(f"dropped {_rows(no_label)} with no label in {source}")
    if not records:
        raise InputError(
            f"{source} has no rows with both a text ('{text_column}') and a label"
            f" ('{label_column}'); check the column names and the file's contents"
        )
    return LoadResult(records, warnings)


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
            f.write(json.dumps(row, ensure_ascii=False))
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

    With no rows the columns are id, text and label, so an empty output still has a schema.
    """
    columns = _union_columns(rows) or list(_RESERVED)
    return columns, [{c: row.get(c) for c in columns} for row in rows]


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
        writer.writerow(columns)
        for row in dense:
            writer.writerow([_csv_value(row[c]) for c in columns])


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
