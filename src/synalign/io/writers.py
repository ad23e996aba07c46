"""Writing run outputs as JSONL, CSV, Parquet or a Hugging Face datasets folder.

Every writer replaces its target atomically, so a reader never sees a partial output, and
only a file or a datasets folder that SynAlign wrote: never a folder the user made.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synalign.errors import ConfigError, InputError
from synalign.io.atomic import atomic_open, fsync_dir, umask
from synalign.io.formats import RESERVED_COLUMNS, quiet_datasets, union_columns
from synalign.io.targets import EXPORT_MARKER, cannot_write, check_output, is_own_export
from synalign.records import SURROGATE as _SURROGATE
from synalign.records import has_surrogate, without_surrogates

WRITE_FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, non-ASCII kept readable, streamed to a temp file."""
    with atomic_open(path, binary=False) as f:
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
        " .parquet name, a folder name without extension, or set the format to "
        + "/".join(WRITE_FORMATS)
    )


def _dense(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Give every row every column: Arrow and datasets infer columns from the first row only.
    Lone surrogates become U+FFFD: CSV, Parquet and datasets store UTF-8 only.

    With no rows the columns are id, text and label, so an empty output still has a schema.
    """
    columns = [without_surrogates(c) for c in union_columns(rows)] or list(RESERVED_COLUMNS)
    clean = [without_surrogates(r) if has_surrogate(r) else r for r in rows]
    return columns, [{c: row.get(c) for c in columns} for row in clean]


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """The format `write_records` writes `path` in: `fmt`, else the one its name implies."""
    return fmt.lower() if fmt else _infer_format(Path(path))


def write_records(
    path: str | Path,
    rows: list[dict[str, Any]],
    fmt: str | None = None,
    description: str | None = None,
) -> None:
    """Write output rows as JSONL, CSV, Parquet or a Hugging Face datasets folder;
    `description` (a data card) goes into a datasets folder's info, where
    `load_from_disk(...).info.description` shows it."""
    target = Path(path)
    kind = output_format(target, fmt)
    if kind not in WRITE_FORMATS:
        raise ConfigError(f"unknown output format '{fmt}'; use one of {', '.join(WRITE_FORMATS)}")
    check_output(target, kind)
    try:
        if kind == "jsonl":
            write_jsonl(target, rows)
        elif kind == "csv":
            _write_csv(target, rows)
        elif kind == "parquet":
            _write_parquet(target, rows)
        else:
            _write_hf(target, rows, description)
    except OSError as err:
        raise cannot_write(target, err) from err


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
    with atomic_open(target, binary=False) as f:
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
    # Parquet cannot store a struct with no field: a column of empty mappings (every
    # `attributes` of a run without the attribute step) is stored as nulls.
    empty = [c for c in columns if dense and all(row[c] == {} for row in dense)]
    dense = [{**row, **dict.fromkeys(empty)} for row in dense] if empty else dense
    try:
        if dense:
            table = pa.Table.from_pylist(dense)
        else:
            table = pa.table({c: pa.array([], pa.string()) for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InputError(f"{target}: rows cannot be stored as Parquet ({e})") from e
    with atomic_open(target, binary=True) as f:
        pq.write_table(table, f)


def _write_hf(target: Path, rows: list[dict[str, Any]], description: str | None = None) -> None:
    import datasets

    columns, dense = _dense(rows)
    info = datasets.DatasetInfo(description=without_surrogates(description or ""))
    try:
        if dense:
            ds = datasets.Dataset.from_list(dense, info=info)
        else:
            # An empty folder must still load: that needs typed columns and one (empty) shard.
            features = datasets.Features({c: datasets.Value("string") for c in columns})
            info.features = features  # the two must agree
            ds = datasets.Dataset.from_dict({c: [] for c in columns}, features=features, info=info)
    except Exception as e:
        raise InputError(f"{target}: rows cannot be stored as a datasets folder ({e})") from e
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        with quiet_datasets():
            ds.save_to_disk(str(tmp), num_shards=None if dense else 1)
        (tmp / EXPORT_MARKER).write_text("written by synalign export\n", encoding="utf-8")
        for item in tmp.iterdir():
            if item.is_file():
                with open(item, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~umask())
        if target.exists() and is_own_export(target):  # else an empty folder: renamed over
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
    fsync_dir(target.parent)
