"""Readers, writers and validation in synalign.io."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synalign.errors import ConfigError, InputError
from synalign.io import (
    LoadResult,
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
    read_records,
    validate_labelled,
    write_jsonl,
    write_records,
)
from synalign.records import Record

ROWS = [
    {"text": "A warm, funny film.", "label": "pos"},
    {"text": "Dull and far too long.", "label": "neg"},
    {"text": 'Ünïcödé and a, comma "quoted"\nand a newline', "label": "pos"},
    {"text": "Plot holes everywhere.", "label": "neg"},
]
EXPECTED = [Record(id=str(i), text=r["text"], label=r["label"]) for i, r in enumerate(ROWS)]


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, **kwargs: str) -> str:
    with pytest.raises(InputError) as info:
        read_records(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


# --------------------------------------------------------------------------- formats


def test_jsonl_reads_records_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n\n", encoding="utf-8")
    result = read_records(path)
    assert isinstance(result, LoadResult)
    assert result.records == EXPECTED
    assert result.warnings == []


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_delimited_round_trip_with_quotes_and_newlines(tmp_path: Path, suffix: str) -> None:
    import csv

    path = tmp_path / f"d{suffix}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t" if suffix == ".tsv" else ",")
        writer.writerow(["text", "label"])
        for r in ROWS:
            writer.writerow([r["text"], r["label"]])
    assert read_records(path).records == EXPECTED


def test_parquet_reads_records_and_keeps_other_columns_as_meta(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    table = pa.Table.from_pylist([{**r, "source": f"s{i}"} for i, r in enumerate(ROWS)])
    pq.write_table(table, path)
    records = read_records(path).records
    assert records == EXPECTED
    assert [r.meta for r in records] == [{"source": f"s{i}"} for i in range(len(ROWS))]


def test_json_array_and_json_lines_in_a_json_file(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    assert read_records(array).records == EXPECTED
    lines = tmp_path / "l.json"
    lines.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    assert read_records(lines).records == EXPECTED


def test_hf_dataset_folder(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    assert read_records(folder).records == EXPECTED


def test_hf_dataset_dict_prefers_train_then_only_split(tmp_path: Path) -> None:
    import datasets

    other = [{"text": "other split", "label": "x"}, {"text": "more", "label": "y"}]
    both = tmp_path / "both"
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_list(other), "train": datasets.Dataset.from_list(ROWS)}
    ).save_to_disk(str(both))
    assert read_records(both).records == EXPECTED

    single = tmp_path / "single"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(single))
    assert read_records(single).records == EXPECTED

    ambiguous = tmp_path / "ambiguous"
    datasets.DatasetDict(
        {"dev": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(other)}
    ).save_to_disk(str(ambiguous))
    message = _error(ambiguous)
    assert "dev" in message and "test" in message


def test_custom_columns_and_id_column(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    rows = [
        {"review": "  great  ", "stars": 5, "key": "a", "text": "ignored", "id": 9},
        {"review": "awful", "stars": 1.0, "key": "b"},
        {"review": "fine", "stars": True, "key": "c"},
    ]
    write_jsonl(path, rows)
    result = read_records(path, text_column="review", label_column="stars", id_column="key")
    assert [(r.id, r.text, r.label) for r in result.records] == [
        ("a", "great", "5"),
        ("b", "awful", "1"),
        ("c", "fine", "true"),
    ]
    assert result.records[0].meta == {}


def test_integral_float_labels_in_csv_match_integer_labels(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "f.csv", "text,label\na,1.0\nb,0\nc,2.5\n")
    assert [r.label for r in read_records(path).records] == ["1", "0", "2.5"]


def test_empty_texts_and_null_labels_dropped_with_counted_warnings(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    write_jsonl(
        path,
        [
            {"text": "kept", "label": "a"},
            {"text": "", "label": "a"},
            {"text": "   \t", "label": "b"},
            {"text": None, "label": "b"},
            {"label": "b"},
            {"text": "no label", "label": None},
            {"text": "kept too", "label": "b"},
        ],
    )
    result = read_records(path)
    assert [(r.id, r.text) for r in result.records] == [("0", "kept"), ("6", "kept too")]
    assert f"dropped 4 rows with empty text in {path}" in result.warnings
    assert f"dropped 1 row with no label in {path}" in result.warnings
    assert len(result.warnings) == 2


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    _error(tmp_path / "nope.jsonl")


def test_plain_directory_is_not_a_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "plainfolder"
    folder.mkdir()
    (folder / "x.txt").write_text("hi")
    assert "save_to_disk" in _error(folder)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    message = _error(path)
    assert ".jsonl" in message and ".parquet" in message and ".tsv" in message


def test_undecodable_bytes_name_line_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    message = _error(path)
    assert "line 2" in message and "UTF-8" in message and "byte" in message


def test_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nok,a\nok,b\ncaf\xe9,b\n")
    assert "line 4" in _error(path)


def test_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', encoding="utf-8")
    message = _error(path)
    assert "line 2" in message and "JSON" in message


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "arr.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n["b", "y"]\n', encoding="utf-8")
    message = _error(path)
    assert "line 3" in message and "object" in message


def test_invalid_json_array(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n {"text": "a", "label": "x"},\n {"text": }\n]', encoding="utf-8")
    assert "line 3" in _error(path)


def test_json_array_item_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[{"text": "a", "label": "x"}, "b"]', encoding="utf-8")
    assert "item 1" in _error(path)


def test_csv_unbalanced_quote(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "q.csv", 'text,label\ngood,a\n"open quote,b\nmore,c\n')
    message = _error(path)
    assert "line 3" in message and "quote" in message


def test_csv_too_many_fields(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "wide.csv", "text,label\na,x\nb,c,y\n")
    assert "line 3" in _error(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n  \n"),
        ("empty.csv", ""),
        ("header.csv", "text,label\n"),
        ("empty.json", "[]"),
    ],
)
def test_empty_inputs(tmp_path: Path, name: str, content: str) -> None:
    _error(_write_csv(tmp_path / name, content))


def test_parquet_without_rows_and_corrupt_parquet(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty)
    _error(empty)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet at all")
    _error(corrupt)


def test_missing_columns_list_found_columns_and_key(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "cols.csv", "body,category\na,x\nb,y\n")
    message = _error(path)
    assert "'text'" in message and "body, category" in message and "data.text_column" in message
    message = _error(path, text_column="body")
    assert "'label'" in message and "body, category" in message and "data.label_column" in message
    ok = read_records(path, text_column="body", label_column="category")
    assert [r.label for r in ok.records] == ["x", "y"]


def test_all_rows_empty_is_an_error(tmp_path: Path) -> None:
    _error(_write_csv(tmp_path / "blank.csv", "text,label\n,a\n  ,b\n"))


def test_nested_label_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "multi.jsonl"
    write_jsonl(path, [{"text": "a", "label": ["x", "y"]}])
    message = _error(path)
    assert "line 1" in message and "'label'" in message


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "ids.csv", "id,text,label\n1,a,x\n2,b,y\n1,c,x\n")
    message = _error(path, id_column="id")
    assert "'1'" in message and "line 4" in message and "line 2" in message


# --------------------------------------------------------------------------- validation


def test_validate_needs_two_labels() -> None:
    records = [Record(str(i), f"t{i}", "only") for i in range(3)]
    with pytest.raises(InputError, match=r"train\.csv has only one label 'only'"):
        validate_labelled(records, "train.csv")
    with pytest.raises(InputError, match=r"train\.csv"):
        validate_labelled([], "train.csv")


def test_validate_warns_for_thin_labels() -> None:
    records = [Record(str(i), f"t{i}", "big") for i in range(5)] + [Record("x", "t", "small")]
    assert validate_labelled(records, "d.jsonl") == []
    warnings = validate_labelled(records, "d.jsonl", min_per_label=3)
    assert len(warnings) == 1
    assert "'small'" in warnings[0] and "1 example" in warnings[0]


# --------------------------------------------------------------------------- writing


OUT_ROWS = [
    {"id": "0", "text": 'héllo, "world"\nline two', "label": "a"},
    {"id": "1", "text": "second", "label": "b"},
]


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet", "outfolder"])
def test_write_records_round_trips(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_records(path, OUT_ROWS)
    records = read_records(path, id_column="id").records
    assert [r.to_dict() for r in records] == OUT_ROWS
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_write_records_explicit_format_and_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "hfout"
    write_records(folder, OUT_ROWS, fmt="hf")
    write_records(folder, [OUT_ROWS[0], {"id": "9", "text": "new", "label": "c"}], fmt="hf")
    assert [r.id for r in read_records(folder, id_column="id").records] == ["0", "9"]
    assert [p.name for p in tmp_path.iterdir()] == ["hfout"]
    with pytest.raises(ConfigError):
        write_records(tmp_path / "x.jsonl", OUT_ROWS, fmt="xml")
    with pytest.raises(ConfigError):
        write_records(tmp_path / "x.txt", OUT_ROWS)


def test_write_csv_json_encodes_nested_values(tmp_path: Path) -> None:
    path = tmp_path / "nested.csv"
    write_records(path, [{"text": "t", "label": "a", "attrs": {"tone": "dry"}, "tags": [1, 2]}])
    record = read_records(path).records[0]
    assert json.loads(record.meta["attrs"]) == {"tone": "dry"}
    assert json.loads(record.meta["tags"]) == [1, 2]


def test_write_parquet_with_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "ragged.parquet"
    write_records(path, [{"text": "a", "label": "x"}, {"text": "b", "label": "y", "extra": 3}])
    assert pq.read_table(path).column("extra").to_pylist() == [None, 3]


def test_write_parquet_with_a_column_of_empty_mappings(tmp_path: Path) -> None:
    """A run without the attribute step gives every sample `attributes: {}`."""
    path = tmp_path / "plain.parquet"
    write_records(path, [{"text": "a", "attributes": {}}, {"text": "b", "attributes": {}}])
    table = pq.read_table(path)
    assert table.column("text").to_pylist() == ["a", "b"]
    assert table.column("attributes").to_pylist() == [None, None]


def test_jsonl_writer_and_reader(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rows.jsonl"
    rows = [{"a": "ü\u2028x", "n": [1, {"b": None}]}, {"a": "second"}]
    write_jsonl(path, iter(rows))
    assert "ü" in path.read_text(encoding="utf-8")
    assert read_jsonl(path) == rows
    write_jsonl(path, [])
    assert read_jsonl(path) == []


def test_atomic_writes_replace_and_leave_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    text_path = tmp_path / "t.txt"
    atomic_write_text(text_path, "ünï\n")
    assert text_path.read_text(encoding="utf-8") == "ünï\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "t.txt"]
    assert os.stat(path).st_mode & 0o044


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}])

    def rows() -> Iterator[dict[str, int]]:
        yield {"a": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert read_jsonl(path) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.parquet", "emptyfolder"])
def test_empty_output_is_written_and_reads_as_no_rows(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_records(path, [])
    assert path.exists()
    assert "no rows" in _error(path) or "is empty" in _error(path)


def test_hf_writes_and_reads_quietly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "quiet"
    write_records(folder, OUT_ROWS)
    read_records(folder)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_numpy_and_missing_id_column(tmp_path: Path) -> None:
    path = tmp_path / "np.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": pa.array([True, False])}), path)
    assert [r.label for r in read_records(path).records] == ["true", "false"]
    assert "columns found: text, label" in _error(path, id_column="uid")
