"""Parsers for the file formats a user's labelled texts come in.

Each parser returns a `Table` whose rows carry a human location ("line 4", "row 2"), and
turns every malformed input into an `InputError` naming the file and the place, so the CLI
can show one actionable line instead of a parser traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synalign.errors import InputError
from synalign.records import clip, quoted

# Column names a record uses for its own fields; kept out of `Record.meta`.
RESERVED_COLUMNS = ("id", "text", "label")


@dataclass
class Table:
    """Rows as dicts with a human location for each ("line 4", "row 2") for error messages."""

    columns: list[str]
    rows: list[dict[str, Any]]
    where: list[str]
    untyped: bool = False


def read_utf8(p: Path, source: str) -> str:
    """The file as text; an encoding problem names the line and says how to re-save it."""
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
            yield lineno, _loads(line)
        except _DuplicateKeyError as e:
            raise InputError(_duplicate_message(source, lineno, e.key)) from e
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


def parse_jsonl(text: str, source: str, allow_empty: bool = False) -> Table:
    """One JSON object per line; `allow_empty` for the run's own files, which may hold none."""
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    for lineno, obj in _json_line_rows(text, source):
        if not isinstance(obj, dict):
            raise InputError(
                f"{source} line {lineno}: expected a JSON object, found {json_kind(obj)};"
                ' write one object like {"text": ..., "label": ...} per line'
            )
        rows.append(obj)
        where.append(f"line {lineno}")
    if not rows and not allow_empty:
        raise InputError(f"{source} is empty; it needs one JSON object per line")
    return Table(union_columns(rows), rows, where)


def parse_json(text: str, source: str) -> Table:
    """A JSON array of objects, one object, or JSON Lines saved with a .json name."""
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"{source} is empty; it needs a JSON array of objects")
    if stripped[0] == "{":
        try:
            obj = _loads(text)
        except _DuplicateKeyError as e:
            raise InputError(_duplicate_message(source, _duplicate_line(text), e.key)) from e
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":
                raise InputError(f"{source} line {e.lineno} {_json_problem(e)}") from e
            return parse_jsonl(text, source)
        return Table(list(obj), [obj], ["line 1"])
    if stripped[0] != "[":
        raise InputError(f"{source}: expected a JSON array of objects or one JSON object per line")
    try:
        items = _loads(text)
    except _DuplicateKeyError as e:
        raise InputError(_duplicate_message(source, _duplicate_line(text), e.key)) from e
    except json.JSONDecodeError as e:
        raise InputError(f"{source} line {e.lineno} {_json_problem(e)}") from e
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(
                f"{source}: item {i} of the JSON array is {json_kind(item)}, not an object;"
                ' every item must look like {"text": ..., "label": ...}'
            )
        rows.append(item)
    if not rows:
        raise InputError(f"{source} holds an empty JSON array; add labelled rows")
    return Table(union_columns(rows), rows, [f"item {i}" for i in range(len(rows))])


class _DuplicateKeyError(ValueError):
    """A JSON object naming one key twice, which json.loads would read as its last value."""

    def __init__(self, key: str, at: int = 0) -> None:
        super().__init__(key)
        self.key = key
        self.at = at


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


def _loads(text: str) -> Any:
    """json.loads, refusing an object that names a key twice: `{"label": "x", "label":
    "y"}` would otherwise silently become "y"."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _duplicate_line(text: str) -> int:
    """The line of the first object in `text` naming a key twice, found by the slower
    pure-Python parser that knows where each object starts (run only to place the error)."""
    import json.decoder
    import json.scanner

    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], strict: bool, *rest: Any) -> Any:
        start = s_and_end[1] - 1

        def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            try:
                return _unique_keys(pairs)
            except _DuplicateKeyError as e:
                raise _DuplicateKeyError(e.key, start) from None

        scan_once, object_hook, _, *memo = rest
        return json.decoder.JSONObject(s_and_end, strict, scan_once, object_hook, check, *memo)

    decoder.parse_object = parse_object  # type: ignore[assignment]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    try:
        decoder.decode(text)
    except _DuplicateKeyError as e:
        return text.count("\n", 0, e.at) + 1
    return 1


def _duplicate_message(source: str, line: int, key: str) -> str:
    return (
        f"{source} line {line}: the key {quoted(key)} appears twice in one JSON object (only"
        " its last value would be read); remove or rename one of them"
    )


def json_kind(obj: Any) -> str:
    """What a JSON value is, in the words an error message uses ("an array", "null")."""
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


def parse_delimited(text: str, source: str, delimiter: str) -> Table:
    """CSV or TSV with a header row; cells stay strings (`untyped`), missing ones None."""
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
                        f"{source}: column '{clip(dupes[0])}' appears more than once in the header;"
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
    return Table(header, rows, where, untyped=True)


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


def read_parquet(p: Path, source: str) -> Table:
    """A Parquet file's rows; an unreadable file is an InputError, not an Arrow traceback."""
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
    return Table(columns, rows, [f"row {i}" for i in range(len(rows))])


def _is_hf_folder(p: Path) -> bool:
    return (p / "dataset_dict.json").is_file() or (p / "state.json").is_file()


def read_hf_folder(p: Path, source: str) -> Table:
    """A `save_to_disk` folder: a Dataset, or the train split (or only split) of a DatasetDict."""
    if not _is_hf_folder(p):
        raise InputError(
            f"{source} is a folder but not a Hugging Face datasets folder (no state.json or"
            " dataset_dict.json); pass a data file or a folder made by save_to_disk"
        )
    import datasets

    try:
        with quiet_datasets():
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
    return Table(columns, rows, [f"row {i}" for i in range(len(rows))])


def union_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order: JSON rows need not share their keys."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Keep the datasets library's progress bars off the user's terminal."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
