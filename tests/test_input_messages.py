"""Inputs that are wrong in ways a careful user finds, each met as the user meets it:
the installed `synalign` script in a subprocess, one `error:` line and exit code 2, or
the reader's counted warnings.

The runs point at an endpoint nobody listens on, so a run that gets past its input
stops at the first LLM call instead of generating.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synalign.config import load_config
from synalign.errors import InputError
from synalign.io import read_records, validate_labelled
from synalign.io.corpora import draw_shots
from synalign.records import Record, clip, listed

SYNALIGN = str(Path(sys.executable).parent / "synalign")
DOWN = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connection refused
OFFLINE = ("--llm", "openai", "--model", "m", "--base-url", DOWN, "--set", "llm.max_retries=0")
GOOD = [{"text": f"review number {i}", "label": "pos" if i % 2 else "neg"} for i in range(8)]


def synalign(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed script; a wide terminal, so a warning is one line as in a log."""
    env = {**os.environ, "COLUMNS": "10000"}
    return subprocess.run(
        [SYNALIGN, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def generate(path: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`synalign generate` on `path` as a user types it, with a small budget."""
    return synalign(
        "generate", "--input", str(path), "--text-column", "text", "--label-column", "label",
        "--shots", "2", "--samples-per-label", "5", "--runs-dir", str(runs), "--name", "r",
        *OFFLINE, *extra,
    )  # fmt: skip


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints, checked to be exactly that."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# --------------------------------------------------------------------------- files


def test_gzip_input_is_named_as_compressed_with_the_command_to_unpack_it(tmp_path: Path) -> None:
    packed = tmp_path / "train.jsonl.gz"
    packed.write_bytes(gzip.compress(jsonl_bytes(GOOD)))
    line = error_line(generate(packed, tmp_path / "runs"))
    assert line == (
        f"error: {packed} is a gzip-compressed file; decompress it first (gunzip {packed})"
        f" and pass {tmp_path / 'train.jsonl'}"
    )
    assert "iconv" not in line and "UTF-8" not in line
    # a compressed file whose name does not say so gets a command that keeps its name
    hidden = tmp_path / "train.jsonl"
    hidden.write_bytes(gzip.compress(jsonl_bytes(GOOD)))
    out = tmp_path / "train-decompressed.jsonl"
    assert error_line(generate(hidden, tmp_path / "runs")) == (
        f"error: {hidden} is a gzip-compressed file; decompress it first"
        f" (gunzip -c {hidden} > {out}) and pass {out}"
    )
    assert not (tmp_path / "runs" / "r" / "real.jsonl").exists()


def _zip(data: bytes) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("train.csv", data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "pack", "expected"),
    [
        ("d.csv.bz2", bz2.compress, "is a bzip2-compressed file; decompress it first (bunzip2"),
        ("d.csv.xz", lzma.compress, "is an xz-compressed file; decompress it first (unxz"),
        (
            "d.csv",
            lambda b: b"\x28\xb5\x2f\xfd" + b"\x00" * 12,
            "is a zstd-compressed file; decompress it first (unzstd -c",
        ),
        ("d.zip", _zip, "is a zip archive; extract the data file from it first (unzip"),
    ],
)
def test_every_compression_is_recognised_by_its_first_bytes(
    name: str, pack: Any, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(pack(b"text,label\na,x\nb,y\n"))
    with pytest.raises(InputError) as info:
        read_records(path)
    assert str(info.value).startswith(f"{path} {expected}"), info.value
    # plain text that merely starts with 'BZh' is read as the CSV it is
    plain = tmp_path / "bzh.csv"
    plain.write_text("BZh,label\na,x\nb,y\n", encoding="utf-8")
    assert len(read_records(plain, text_column="BZh").records) == 2


def test_symlink_loop_is_named_as_a_loop(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    os.symlink(second, first)
    os.symlink(first, second)
    line = error_line(generate(first, tmp_path / "runs"))
    assert line.startswith(f"error: {first} is a symbolic-link loop"), line
    assert "no such file" not in line
    # a link to nothing names where it points
    dangling = tmp_path / "c.jsonl"
    os.symlink(tmp_path / "gone.jsonl", dangling)
    assert error_line(generate(dangling, tmp_path / "runs")) == (
        f"error: {dangling} is a symbolic link to {tmp_path / 'gone.jsonl'}, which does not"
        " exist; point the link at the data itself"
    )


def test_named_pipe_is_refused_instead_of_waiting_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)
    assert error_line(generate(fifo, tmp_path / "runs")) == (
        f"error: {fifo} is not a regular file (a named pipe); save the data to a file first"
    )


def test_duplicate_json_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "dupe.jsonl"
    path.write_text(
        '{"text": "good", "label": "x"}\n{"text": "a", "label": "x", "label": "y"}\n',
        encoding="utf-8",
    )
    assert error_line(generate(path, tmp_path / "runs")) == (
        f'error: {path} line 2: the key "label" appears twice in one JSON object (only its'
        " last value would be read); remove or rename one of them"
    )
    # in a JSON array the line is where the object with the repeated key starts
    array = tmp_path / "dupe.json"
    array.write_text(
        '[\n  {"text": "a", "label": "x"},\n  {"text": "b",\n   "meta": {"k": 1, "k": 2},'
        ' "label": "y"}\n]\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r'dupe\.json line 4: the key "k" appears twice'):
        read_records(array)


# --------------------------------------------------------------------------- config


def test_relative_paths_in_a_config_are_read_from_its_folder(tmp_path: Path) -> None:
    """`path = "one.jsonl"` is the file beside the config, wherever synalign runs from;
    runs_dir stays where the command runs, like --runs-dir."""
    folder = tmp_path / "project"
    folder.mkdir()
    data = write_jsonl(folder / "one.jsonl", [{"text": f"t{i}", "label": "a"} for i in range(4)])
    config = folder / "c.toml"
    config.write_text(
        f'name = "r"\nruns_dir = "runs"\n[data]\npath = "one.jsonl"\n[llm]\nbackend = "openai"\n'
        f'model = "m"\nbase_url = "{DOWN}"\nmax_retries = 0\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the file is found (and read: it has one label), not "no such file"
    line = error_line(synalign("run", str(config), cwd=elsewhere))
    assert line.startswith(f"error: {data} has only one label 'a'"), line
    assert (elsewhere / "runs" / "r").is_dir() and not (folder / "runs").exists()


def test_which_config_keys_are_paths(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    config = folder / "c.toml"
    config.write_text(
        'runs_dir = "runs"\n[data]\npath = "pairs.jsonl"\n[retrieval]\ncorpus = "corpus.csv"\n'
        '[llm]\nmodel_path = "../models/m.gguf"\n[embed]\nmodel = "mini"\n',
        encoding="utf-8",
    )
    c = load_config(config)
    assert c.data.path == str(folder / "pairs.jsonl")
    assert c.retrieval.corpus == str(folder / "corpus.csv")
    assert c.llm.model_path == str(folder / "../models/m.gguf")
    assert c.embed.model == str(folder / "mini")
    assert c.runs_dir == "runs"
    # absolute paths and the bundled embedder's name are kept; --set values are from here
    config.write_text(f'[data]\npath = "{tmp_path / "x.csv"}"\n', encoding="utf-8")
    c = load_config(config, ["llm.model_path='m.gguf'"])
    assert c.data.path == str(tmp_path / "x.csv") and c.embed.model == "all-MiniLM-L6-v2"
    assert c.llm.model_path == "m.gguf"
    # a run folder's own config.toml holds the paths its run used, and is read as written
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('[data]\npath = "train.csv"\n', encoding="utf-8")
    (run / "state.json").write_text("{}", encoding="utf-8")
    assert load_config(run / "config.toml").data.path == "train.csv"


def test_label_descriptions_for_unknown_labels_are_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", GOOD)
    proc = generate(
        path, tmp_path / "runs", "--set", 'data.label_descriptions={postive = "good", z = "zz"}'
    )
    assert error_line(proc) == (
        "error: data.label_descriptions names the labels 'postive', 'z' (did you mean 'pos'?),"
        f" not found in {path}, whose labels are 'neg', 'pos'; fix the spelling or remove the"
        " entry"
    )


def test_column_options_with_a_bundled_dataset_are_refused(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    one = synalign("generate", "--dataset", "bbc-news", "--text-column", "body", "--runs-dir", runs)
    assert error_line(one) == (
        "error: --text-column applies to --input files; the bundled dataset bbc-news has the"
        " columns text and label, so leave it out"
    )
    both = synalign(
        "generate", "--dataset", "rotten-tomatoes", "--text-column", "body",
        "--label-column", "stars", "--runs-dir", runs,
    )  # fmt: skip
    assert error_line(both).startswith(
        "error: --text-column and --label-column apply to --input files; the bundled dataset"
        " rotten-tomatoes has the columns text and label, so leave them out"
    )
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- values


def test_nan_and_infinite_labels_are_no_label_in_every_format(tmp_path: Path) -> None:
    """JSON NaN / Infinity, a CSV 'nan' / 'inf' cell and a Parquet NaN are all a missing
    label: the same records come out of each, and the drops are counted alike."""
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '{"text": "a", "label": "x"}\n{"text": "b", "label": NaN}\n'
        '{"text": "c", "label": Infinity}\n{"text": "d", "label": -Infinity}\n'
        '{"text": "e", "label": "y"}\n{"text": "f", "label": null}\n',
        encoding="utf-8",
    )
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\na,x\nb,nan\nc,inf\nd,-inf\ne,y\nf,\n", encoding="utf-8")
    parquet = tmp_path / "d.parquet"
    labels = ["x", math.nan, math.inf, -math.inf, "y", None]
    pq.write_table(
        pa.table({"text": list("abcdef"), "label": [str(v) if v else v for v in labels]}),
        parquet,
    )
    floats = tmp_path / "floats.parquet"
    pq.write_table(
        pa.table({"text": list("abcd"), "label": [1.0, math.nan, math.inf, 2.0]}), floats
    )
    assert [r.label for r in read_records(floats).records] == ["1", "2"]
    results = [read_records(p) for p in (jsonl, csv, parquet)]
    for result in results:
        assert [(r.text, r.label) for r in result.records] == [("a", "x"), ("e", "y")]
    assert results[0].warnings == [
        f"dropped 4 rows with no label in {jsonl} (3 of them NaN or infinity, e.g. line 2,"
        " which count as missing)"
    ]
    assert results[1].warnings == [
        f"dropped 4 rows with no label in {csv} (3 of them NaN or infinity, e.g. line 3,"
        " which count as missing)"
    ]
    # a whole file of NaN labels but one is one label, not the two labels 'x' and 'nan'
    one = tmp_path / "one.csv"
    one.write_text("text,label\na,x\nb,nan\nc,nan\n", encoding="utf-8")
    assert error_line(generate(one, tmp_path / "runs")).startswith(
        f"error: {one} has only one label 'x'"
    )


def test_many_thin_labels_give_one_warning_line_per_kind(tmp_path: Path) -> None:
    rows = [{"text": f"text number {i}", "label": f"label{i}"} for i in range(200)]
    path = write_jsonl(tmp_path / "thin.jsonl", rows)
    proc = generate(path, tmp_path / "runs")
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: ")]
    assert warnings[:2] == [
        "warning: 200 labels have fewer examples than the 2 shots asked for: 'label0' (1),"
        " 'label1' (1), 'label2' (1), 'label3' (1), 'label4' (1), ... and 195 more; using all"
        " of their examples",
        f"warning: 200 labels in {path} have fewer examples than explore.cluster_size (3):"
        " 'label0' (1), 'label1' (1), 'label2' (1), 'label3' (1), 'label4' (1), ... and 195"
        " more; their demonstration clusters hold fewer texts and their synthetic texts may be"
        " poorly matched; add examples or lower explore.cluster_size",
    ]
    assert len(warnings) < 6, warnings
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # one label short keeps naming it alone
    _, one = draw_shots([Record("0", "a", "x"), Record("1", "b", "y"), Record("2", "c", "y")], 2, 0)
    assert one == [
        "label 'x' has only 1 example, fewer than the 2 shots asked for; using all of them"
    ]


def test_a_huge_label_is_quoted_cut_short(tmp_path: Path) -> None:
    huge = "L" * 100_000
    path = write_jsonl(
        tmp_path / "huge.jsonl", [{"text": f"t{i}", "label": huge} for i in range(3)]
    )
    line = error_line(generate(path, tmp_path / "runs"))
    assert line == (
        f"error: {path} has only one label '{'L' * 60}…'; SynAlign needs at least two labels"
        " (check data.label_column (--label-column), or add examples of another label)"
    )
    # in warnings too: a thin label, a text under two labels, a label spelled two ways
    records = [Record(str(i), f"t{i}", huge if i == 0 else "b") for i in range(4)]
    (warning,) = validate_labelled(records, "s", 3)
    assert f"label '{'L' * 60}…' in s has only 1 example" in warning and len(warning) < 400
    mixed = write_jsonl(
        tmp_path / "mixed.jsonl",
        [{"text": "a", "label": huge}, {"text": "a", "label": "b"}, {"text": "c", "label": 1},
         {"text": "d", "label": "1"}],
    )  # fmt: skip
    warnings = read_records(mixed, dedupe=True).warnings
    assert len(warnings) == 2 and all(len(w) < 400 for w in warnings), warnings
    assert listed([huge, "b"]) == f"'{clip(huge)}', 'b'" and len(clip(huge)) == 61
