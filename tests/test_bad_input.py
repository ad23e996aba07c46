"""Every way a user's input can be wrong, as the user meets it.

A mistake that stops the run ends in exactly one line on stderr (exit code 2, no
traceback) naming the file, line and column or the config key, and what to do; a problem
the run can live with is a counted warning. Most cases go through the real entry point
(`synalign.cli.main`) in-process, which is what `python -m synalign` runs, so that the
many cases stay fast; `test_cli.py` checks the same contract through a subprocess.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer.main

from synalign.backends.embed.embedders import SentenceTransformerEmbedder
from synalign.backends.llm.base import Prompt, Request, SamplingParams
from synalign.backends.llm.factory import check_llm_config
from synalign.backends.llm.openai_compat import LLMRequestError, OpenAICompatibleLLM
from synalign.cli import app as cli
from synalign.cli.flags import flag_hint
from synalign.config import build_config
from synalign.errors import ConfigError, InputError
from synalign.io import read_records, validate_labelled
from synalign.io.corpora import draw_shots
from synalign.pipeline.runner import Pipeline
from synalign.records import Record

DOWN = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connection refused
KEY = "sk-bad-input-3b1f0c9e"


class Recorder:
    """A reporter that keeps the messages the pipeline shows."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def task(self, description: str, total: int) -> Any:
        from contextlib import nullcontext

        return nullcontext(lambda n=1, status=None: None)

    def message(self, text: str) -> None:
        self.messages.append(text)

    def warning(self, text: str) -> None:
        """Kept as the terminal shows it, so the expected lines read like the output."""
        from rich.markup import escape

        self.messages.append(f"[yellow]warning:[/yellow] {escape(text)}")

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.messages.append(f"[dim]{escape(text)}[/dim]")


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, list[str]]:
    """`synalign ARGS` in-process: exit code, stdout, non-empty stderr lines."""
    monkeypatch.setattr(sys, "argv", ["synalign", *args])
    monkeypatch.setattr(cli.err, "_width", 10_000)  # a warning is one line, as in a log
    with pytest.raises(SystemExit) as info:
        cli.main()
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    return int(info.value.code or 0), captured.out, lines


def one_line_error(result: tuple[int, str, list[str]], *needles: str) -> str:
    code, _, lines = result
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


GOOD = [{"text": f"review number {i}", "label": "pos" if i % 2 else "neg"} for i in range(8)]


# --------------------------------------------------------------------------- files


def _parquet_without_rows(p: Path) -> Path:
    pq.write_table(
        pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}), p
    )
    return p


def _parquet_other_columns(p: Path) -> Path:
    pq.write_table(pa.table({"body": ["a", "b"], "category": ["x", "y"]}), p)
    return p


def _dataset_without_label(p: Path) -> Path:
    import datasets

    datasets.Dataset.from_list([{"text": "a", "stars": 1}, {"text": "b", "stars": 2}]).save_to_disk(
        str(p)
    )
    return p


def _bytes(content: bytes):
    def make(p: Path) -> Path:
        p.write_bytes(content)
        return p

    return make


def _folder(p: Path) -> Path:
    p.mkdir()
    (p / "notes.txt").write_text("hi")
    return p


FILE_CASES = {
    # name: (file name, maker, expected pieces of the one error line)
    "missing": ("nope.jsonl", None, ["nope.jsonl: no such file or folder; check the path"]),
    "directory": (
        "plainfolder",
        _folder,
        ["plainfolder is a folder but not a Hugging Face datasets folder", "save_to_disk"],
    ),
    "unknown-extension": (
        "data.xlsx",
        _bytes(b"PK\x03\x04"),
        ["data.xlsx: unsupported file type '.xlsx'; use one of .jsonl", ".csv", ".parquet"],
    ),
    "empty-jsonl": ("empty.jsonl", _bytes(b""), ["empty.jsonl is empty"]),
    "empty-csv": ("empty.csv", _bytes(b""), ["empty.csv is empty; it needs a header row"]),
    "csv-header-only": (
        "header.csv",
        _bytes(b"text,label\n"),
        ["header.csv has a header (text, label) but no rows; add labelled rows"],
    ),
    "parquet-zero-rows": (
        "zero.parquet",
        _parquet_without_rows,
        ["zero.parquet has no rows (columns: text, label); add labelled rows"],
    ),
    "jsonl-truncated": (
        "cut.jsonl",
        _bytes(b'{"text": "a", "label": "x"}\n{"text": "b", "lab'),
        [
            "cut.jsonl line 2 column 15: invalid JSON (unterminated string)",
            "the file looks cut off",
        ],
    ),
    "jsonl-invalid-line": (
        "bad.jsonl",
        _bytes(b'{"text": "a", "label": "x"}\n {"text": "b" "label": "y"}\n{"text": "c"}\n'),
        ["bad.jsonl line 2 column 15: invalid JSON (expecting ',' delimiter)", "one complete"],
    ),
    "csv-unbalanced-quote": (
        "quote.csv",
        _bytes(b'text,label\ngood,a\n"open quote,b\nmore,c\n'),
        ["quote.csv line 3 column 1: this double quote opens a quoted field that is never"],
    ),
    "csv-text-after-quote": (
        "stray.csv",
        _bytes(b'text,label\ngood,a\n"closed" extra,b\n'),
        ["stray.csv line 3 column 9: text follows the closing double quote", '("")'],
    ),
    "undecodable-bytes": (
        "latin.jsonl",
        _bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n'),
        ["latin.jsonl line 2 column 14 (byte 42) is not valid UTF-8", "re-save it as UTF-8"],
    ),
    "utf16": (
        "excel.csv",
        _bytes("text,label\nok,a\n".encode("utf-16")),
        ["excel.csv is UTF-16 encoded", "re-save it as UTF-8"],
    ),
    "parquet-without-columns": (
        "cols.parquet",
        _parquet_other_columns,
        ["cols.parquet has no column 'text' (columns found: body, category)", "--text-column"],
    ),
    "datasets-folder-without-label": (
        "hfds",
        _dataset_without_label,
        ["hfds has no column 'label' (columns found: text, stars)", "--label-column"],
    ),
    "single-label": (
        "one.jsonl",
        lambda p: write_jsonl(p, [{"text": f"t{i}", "label": "a"} for i in range(4)]),
        ["one.jsonl has only one label 'a'; SynAlign needs at least two labels", "--label-column"],
    ),
    "only-empty-texts": (
        "blank.csv",
        _bytes(b"text,label\n,a\n   ,b\n"),
        ["blank.csv has no rows with both a text ('text') and a label ('label')"],
    ),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_file_ends_in_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name, make, needles = FILE_CASES[case]
    path = tmp_path / name
    if make is not None:
        make(path)
    capsys.readouterr()  # what making the file printed
    runs = tmp_path / "runs"
    result = run_cli(monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(runs))
    one_line_error(result, *needles)
    assert not (runs / "generate" / "real.jsonl").exists()


# --------------------------------------------------------------------------- values


def test_null_empty_and_whitespace_texts_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        *GOOD,
        {"text": None, "label": "pos"},
        {"text": "", "label": "neg"},
        {"text": " \t\n ", "label": "pos"},
        {"label": "neg"},
        {"text": "a text without a label", "label": "   "},
    ]
    path = write_jsonl(tmp_path / "gaps.jsonl", rows)
    recorder = Recorder()
    config = build_config({"runs_dir": str(tmp_path), "data": {"path": str(path)}})
    Pipeline(config, reporter=recorder).run(until="ingest")
    assert recorder.messages == [
        f"[yellow]warning:[/yellow] dropped 4 rows with empty text in {path}",
        f"[yellow]warning:[/yellow] dropped 1 row with no label in {path}",
    ]
    state = json.loads((config.run_dir / "state.json").read_text())
    assert state["stages"]["ingest"]["records"] == len(GOOD)
    assert len(state["stages"]["ingest"]["warnings"]) == 2


def test_numeric_and_string_labels_are_read_as_text(tmp_path: Path) -> None:
    """Labels are always strings; 1 and "1" become one label, with a warning that says so,
    while 0 and "neg" stay two labels without one."""
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"text": "a", "label": 1},
            {"text": "b", "label": "1"},
            {"text": "c", "label": 1},
            {"text": "d", "label": 0},
            {"text": "e", "label": "neg"},
            {"text": "f", "label": 2.0},
            {"text": "g", "label": True},
        ],
    )
    result = read_records(path)
    assert [r.label for r in result.records] == ["1", "1", "1", "0", "neg", "2", "true"]
    assert result.warnings == [
        f"label '1' in {path} is written both as a number (1, 2 rows) and as a string"
        """ ("1", 1 row); labels are read as text, so all of them are the label '1'"""
    ]
    # a typed column (Parquet ints) reads the same way, without a warning
    parquet = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": pa.array([0, 1], pa.int64())}), parquet)
    ints = read_records(parquet)
    assert [r.label for r in ints.records] == ["0", "1"] and ints.warnings == []
    # in a CSV every cell is text already; "1.0" is the label "1" (a numeric column with gaps)
    csv_path = tmp_path / "mixed.csv"
    csv_path.write_text("text,label\na,1\nb,1.0\nc,neg\n", encoding="utf-8")
    assert [r.label for r in read_records(csv_path).records] == ["1", "1", "neg"]


def test_single_label_is_an_error() -> None:
    records = [Record(str(i), f"t{i}", "only") for i in range(5)]
    with pytest.raises(InputError, match=r"data\.csv has only one label 'only'"):
        validate_labelled(records, "data.csv")


def test_label_with_one_example_warns_with_the_cluster_size(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "thin.jsonl", [*GOOD, {"text": "lonely", "label": "rare"}])
    recorder = Recorder()
    config = build_config(
        {"runs_dir": str(tmp_path), "data": {"path": str(path)}, "explore": {"cluster_size": 3}}
    )
    Pipeline(config, reporter=recorder).run(until="ingest")
    assert recorder.messages == [
        f"[yellow]warning:[/yellow] label 'rare' in {path} has only 1 example, fewer than"
        " explore.cluster_size (3): its demonstration clusters hold 1 text each and its"
        " synthetic texts may be poorly matched; add examples or lower explore.cluster_size"
    ]
    # exactly the cluster size is enough
    assert (
        validate_labelled([Record(str(i), "t", "a" if i < 3 else "b") for i in range(6)], "x", 3)
        == []
    )


def test_duplicates_are_dropped_and_conflicts_kept(tmp_path: Path) -> None:
    """A repeated (text, label) row only adds weight to one text: dropped, counted. A text
    under two labels is the user's call: kept under both, counted."""
    path = write_jsonl(
        tmp_path / "dupes.jsonl",
        [
            {"text": "great film", "label": "pos"},
            {"text": "awful film", "label": "neg"},
            {"text": "great film", "label": "pos"},
            {"text": "  great film ", "label": "pos"},
            {"text": "so-so film", "label": "pos"},
            {"text": "so-so film", "label": "neg"},
        ],
    )
    assert len(read_records(path).records) == 6  # the reader alone returns every row
    result = read_records(path, dedupe=True)  # as a run reads its real data
    assert [(r.id, r.text, r.label) for r in result.records] == [
        ("0", "great film", "pos"),
        ("1", "awful film", "neg"),
        ("4", "so-so film", "pos"),
        ("5", "so-so film", "neg"),
    ]
    assert result.warnings == [
        f"dropped 2 rows repeating an earlier row's text and label in {path}"
        " (e.g. line 3 repeats line 1)",
        f"1 row in {path} repeat a text already seen under another label"
        " (e.g. line 6 'neg' vs line 5 'pos'); kept under each label",
    ]


def test_shots_larger_than_the_pool_warn_with_label_and_count(tmp_path: Path) -> None:
    rows = [{"text": f"pos {i}", "label": "pos"} for i in range(6)]
    rows += [{"text": f"neg {i}", "label": "neg"} for i in range(2)]
    path = write_jsonl(tmp_path / "pool.jsonl", rows)
    recorder = Recorder()
    config = build_config(
        {
            "runs_dir": str(tmp_path),
            "data": {"path": str(path), "shots": 4},
            "explore": {"cluster_size": 2},
        }
    )
    Pipeline(config, reporter=recorder).run(until="ingest")
    assert recorder.messages == [
        "[yellow]warning:[/yellow] label 'neg' has only 2 examples, fewer than the 4 shots"
        " asked for; using all of them"
    ]
    real = [json.loads(ln) for ln in (config.run_dir / "real.jsonl").read_text().splitlines()]
    assert sum(r["label"] == "pos" for r in real) == 4
    assert sum(r["label"] == "neg" for r in real) == 2
    # draw_shots itself: every label short, all named with their counts in one line
    _, warnings = draw_shots([Record("0", "a", "x"), Record("1", "b", "y")], 3, seed=0)
    assert warnings == [
        "2 labels have fewer examples than the 3 shots asked for: 'x' (1), 'y' (1); using all"
        " of their examples",
    ]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_long_texts_are_truncated_by_the_embedder_and_counted(
    minilm: SentenceTransformerEmbedder,
) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    texts = [
        "short english",
        "a " * 254,  # 254 tokens + [CLS] + [SEP] = 256: fits exactly
        "a " * 255,  # 257 tokens: one over
        words,
        "电" * 300,  # long and unknown to the English vocabulary
    ]
    report = minilm.token_report(texts)
    assert (report.window, report.truncated, report.unknown) == (256, 3, 1)
    assert report.warnings("real texts")[0] == (
        "3 real texts longer than the embedder's 256-token window were truncated (only their"
        " first 256 tokens are embedded); shorten them or set embed.model to a model with a"
        " longer window"
    )
    # what the count claims: past the window, nothing changes the vector
    v = minilm.encode([words, words + " an entirely different ending", "a " * 254 + "zebra"])
    w = minilm.encode(["a " * 254])
    assert np.array_equal(v[0], v[1]) and np.array_equal(v[2], w[0])
    assert minilm.token_report(["short"]).warnings("real texts") == []
    # counting reads only the tokenizer: when every vector is cached no weights are loaded
    fresh = SentenceTransformerEmbedder()
    assert fresh.token_report(texts) == report and fresh._st is None


NON_LATIN = [
    {"text": "Μια υπέροχη ταινία, την προτείνω ανεπιφύλακτα.", "label": "θετικό"},
    {"text": "Βαρετή και πολύ μεγάλη ταινία.", "label": "αρνητικό"},
    {"text": "这部电影非常好看，我很喜欢。", "label": "θετικό"},
    {"text": "هذا الفيلم ممل جدا ولا أنصح به", "label": "αρνητικό"},
    {"text": "😀🎬🍿👍", "label": "θετικό"},
    {"text": "🙄 boring 💤 film", "label": "αρνητικό"},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_non_latin_scripts_and_emoji_end_to_end(
    suffix: str, tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    path = tmp_path / f"intl{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, NON_LATIN)
    elif suffix == ".csv":
        import csv

        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(NON_LATIN)
    else:
        pq.write_table(pa.Table.from_pylist(NON_LATIN), path)
    loaded = read_records(path)
    assert loaded.warnings == []
    assert [(r.text, r.label) for r in loaded.records] == [
        (r["text"], r["label"]) for r in NON_LATIN
    ]
    assert validate_labelled(loaded.records, str(path), min_per_label=3) == []
    X = minilm.encode([r.text for r in loaded.records])
    assert X.shape == (6, 384) and np.all(np.isfinite(X))
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in X}) == 6
    # the English MiniLM reads the Chinese and the emoji-only text as mostly [UNK]
    report = minilm.token_report([r.text for r in loaded.records])
    assert (report.truncated, report.unknown) == (0, 2)
    assert report.warnings("real texts") == [
        "2 real texts are mostly outside the embedder's vocabulary (over half their tokens"
        " unknown, e.g. Chinese or emoji with the English MiniLM), so their embeddings carry"
        " little of their meaning; set embed.model to a multilingual sentence-transformers"
        " folder"
    ]


def test_messy_file_runs_on_with_counted_warnings_until_the_llm_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line: every data warning shows, in one line each, exploration
    runs on the cleaned data (non-Latin texts, a one-example label written as markup),
    and the run stops in one line naming the endpoint that cannot be reached."""
    long_text = " ".join(f"word{i}" for i in range(400))
    rows = [
        *GOOD,
        {"text": long_text, "label": "pos"},
        {"text": long_text + " again", "label": "neg"},
        *NON_LATIN[:4],
        {"text": "review number 1", "label": "pos"},
        {"text": "  ", "label": "neg"},
        {"text": "one of a kind", "label": "[/b]"},
    ]
    path = write_jsonl(tmp_path / "messy.jsonl", rows)
    start = time.perf_counter()
    code, _, lines = run_cli(
        monkeypatch, capsys,
        "generate", "--input", str(path), "--runs-dir", str(tmp_path), "--shots", "3",
        "--samples-per-label", "2", "--llm", "openai", "--model", "m", "--base-url", DOWN,
        "--set", "llm.max_retries=0", "--set", "llm.concurrency=1",
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    assert warnings == [
        f"warning: dropped 1 row with empty text in {path}",
        f"warning: dropped 1 row repeating an earlier row's text and label in {path}"
        " (e.g. line 15 repeats line 2)",
        "warning: 3 labels have fewer examples than the 3 shots asked for: 'θετικό' (2),"
        " 'αρνητικό' (2), '[/b]' (1); using all of their examples",
        f"warning: 3 labels in {path} have fewer examples than explore.cluster_size (3):"
        " 'θετικό' (2), 'αρνητικό' (2), '[/b]' (1); their demonstration clusters hold fewer"
        " texts and their synthetic texts may be poorly matched; add examples or lower"
        " explore.cluster_size",
    ] + [w for w in warnings if "embedder" in w]
    # shots drew 3 of the 5 'pos' and 'neg' rows; which ones depends on the seed, so the
    # token warnings are checked against what was drawn
    real = [
        json.loads(ln)
        for ln in (tmp_path / "generate" / "real.jsonl").read_text().split("\n")
        if ln
    ]
    n_long = sum(r["text"].startswith("word0 ") for r in real)
    token_warnings = [w for w in warnings if "embedder" in w]
    if n_long:
        assert token_warnings[0].startswith(
            f"warning: {n_long} real text{'s' if n_long > 1 else ''} longer than the embedder's"
            " 256-token window"
        )
    assert token_warnings[-1] == (
        "warning: 1 real text is mostly outside the embedder's vocabulary (over half its"
        " tokens unknown, e.g. Chinese or emoji with the English MiniLM), so its embedding"
        " carries little of its meaning; set embed.model to a multilingual"
        " sentence-transformers folder"
    )
    assert (tmp_path / "generate" / "demos.jsonl").exists()  # exploration ran
    state = json.loads((tmp_path / "generate" / "state.json").read_text())["stages"]
    assert state["explore"]["warnings"] == [w.removeprefix("warning: ") for w in token_warnings]
    assert lines[-1] == (
        f"error: LLM endpoint {DOWN} still failing after 0 retries (cannot connect:"
        " Connection refused); check that the server is up and llm.base_url (--base-url)"
        " is right, then re-run: completed samples are kept"
    )
    assert code == 2
    others = [ln for ln in lines[:-1] if not ln.startswith("warning: ")]
    assert all(ln.startswith(("embedding", "attributes")) for ln in others), others
    assert elapsed < 120


# --------------------------------------------------------------------------- config


def test_unknown_key_suggests_the_closest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndataset = "bbc-news"\nsamples_per_label = 3\n')
    one_line_error(
        run_cli(monkeypatch, capsys, "run", str(cfg)),
        f"error: {cfg}: unknown config key 'data.samples_per_label'; did you mean"
        " 'generate.samples_per_label'?",
    )
    cfg.write_text("[genrate]\nsamples_per_label = 3\n")
    one_line_error(
        run_cli(monkeypatch, capsys, "run", str(cfg)), "'genrate'; did you mean 'generate'?"
    )
    # no close match: the section's keys are listed (brackets shown, not eaten as markup)
    one_line_error(
        run_cli(monkeypatch, capsys, "run", str(cfg), "--set", "align.zzz=1"),
        "unknown config key 'align.zzz'; keys in [align] are enabled, bandwidth, size_per_label",
    )
    with pytest.raises(
        ConfigError, match=r"unknown config key 'shots'; did you mean 'data\.shots'"
    ):
        build_config({"shots": 3})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "generate.samples_per_label='many'",
            "config key 'generate.samples_per_label': Input should be a valid integer, unable"
            " to parse string as an integer (got 'many')",
        ),
        (
            "generate.samples_per_label=2.5",
            "config key 'generate.samples_per_label': Input should be a valid integer, got a"
            " number with a fractional part (got 2.5)",
        ),
        (
            "generate.samples_per_label=true",
            "config key 'generate.samples_per_label': Input should be a number, not true or"
            " false (got True)",
        ),
        ("llm.temperature=false", "config key 'llm.temperature': Input should be a number"),
        ("generate=3", "config key 'generate': Input should be a valid dictionary"),
        ("llm.backend='gpt'", "config key 'llm.backend': Input should be 'llamacpp' or 'openai'"),
    ],
)
def test_wrong_type_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, [override])
    assert str(info.value).startswith(f"config: {message}")


BUDGETS = [
    "data.shots",
    "generate.samples_per_label",
    "generate.samples_per_cluster",
    "generate.max_words",
    "explore.cluster_size",
    "align.size_per_label",
    "embed.batch_size",
    "llm.max_tokens",
    "llm.n_ctx",
    "llm.concurrency",
    "llm.timeout",
    "llm.threads",
]


@pytest.mark.parametrize("key", BUDGETS)
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_budget_is_rejected_with_its_key(key: str, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, [f"{key}={value}"])
    assert str(info.value) == (
        f"config: config key '{key}': Input should be greater than 0 (got {value})"
    )


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("llm.max_retries", -1, "greater than or equal to 0"),
        ("generate.min_words", 0, "greater than or equal to 1"),
    ],
)
def test_other_lower_bounds(key: str, value: int, bound: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}': Input should be {bound}"):
        build_config({}, [f"{key}={value}"])


@pytest.mark.parametrize(
    ("args", "key", "got"),
    [
        (["--shots", "0"], "'data.shots' (--shots)", "0"),  # was read as "all examples"
        (["--shots", "-2"], "'data.shots' (--shots)", "-2"),
        (
            ["--samples-per-label", "0"],
            "'generate.samples_per_label' (--samples-per-label)",
            "0",
        ),
        (["--set", "explore.cluster_size=0"], "'explore.cluster_size'", "0"),
        (["--set", "generate.samples_per_cluster=-1"], "'generate.samples_per_cluster'", "-1"),
    ],
)
def test_cli_budgets_are_checked_before_any_work(
    args: list[str],
    key: str,
    got: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", GOOD)
    result = run_cli(
        monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(tmp_path), *args
    )
    one_line_error(
        result,
        f"error: command-line options: config key {key}: Input should be greater than 0"
        f" (got {got})",
    )
    assert not (tmp_path / "generate").exists()


def test_unreachable_endpoint_fails_fast_with_few_retries() -> None:
    """A refused connection before the endpoint has ever answered is most likely a wrong
    URL: it is retried twice, not with the whole llm.max_retries budget (8 by default,
    about 70 s of backoff); the message names the URL, the OS reason and the setting to
    check, which `synalign generate` follows with its flag."""
    llm = OpenAICompatibleLLM("m", base_url=DOWN, api_key=KEY, timeout=2)
    assert llm.max_retries == 8
    requests = [Request(Prompt(text="hi"), SamplingParams(), i) for i in range(4)]
    start = time.perf_counter()
    with pytest.raises(LLMRequestError) as info:
        list(llm.stream(requests))
    assert time.perf_counter() - start < 15
    assert flag_hint(str(info.value), typer.main.get_command(cli.app).commands["generate"]) == (
        f"LLM endpoint {DOWN} still failing after 2 retries (cannot connect: Connection"
        " refused); check that the server is up and llm.base_url (--base-url) is right, then"
        " re-run: completed samples are kept"
    )


def test_base_url_without_scheme_is_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", GOOD)
    result = run_cli(
        monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(tmp_path),
        "--llm", "openai", "--model", "m", "--base-url", "127.0.0.1:9/v1",
    )  # fmt: skip
    one_line_error(
        result,
        "error: llm.base_url (--base-url) '127.0.0.1:9/v1': not an http(s) URL; write it like"
        " http://127.0.0.1:8080/v1",
    )
    assert not (tmp_path / "generate").exists()


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_model_file_that_does_not_exist(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before the first stage, not after ingest and exploration have run."""
    model = tmp_path / ("nope.gguf" if kind == "missing" else "models")
    if kind == "folder":
        model.mkdir()
    path = write_jsonl(tmp_path / "ok.jsonl", GOOD)
    result = run_cli(
        monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(tmp_path),
        "--set", f"llm.model_path={json.dumps(str(model))}",
    )  # fmt: skip
    expected = (
        "model file not found; set it to a GGUF file, or leave it unset for the bundled model"
        if kind == "missing"
        else "is a folder, not a model file; set it to the .gguf file inside"
    )
    one_line_error(result, f"error: llm.model_path {model}: {expected}")
    assert not (tmp_path / "generate").exists()
    with pytest.raises(ConfigError, match=r"llm\.model_path"):
        check_llm_config(build_config({}, [f"llm.model_path={json.dumps(str(model))}"]).llm)


def test_markup_like_text_in_a_message_is_printed_as_written(tmp_path: Path) -> None:
    """Through `python -m synalign`: a label such as '[/x]' used to be read as console
    markup, and a closing tag with no opening one crashed the error printer itself."""
    from test_cli import assert_one_line_error, synalign

    src = write_jsonl(
        tmp_path / "one.jsonl", [{"text": f"t{i}", "label": "[/x]"} for i in range(3)]
    )
    proc = synalign("generate", "--input", str(src), "--runs-dir", str(tmp_path))
    assert_one_line_error(proc, "one.jsonl has only one label '[/x]'; SynAlign needs at least two")


def test_key_redaction_hides_the_key_and_spares_words() -> None:
    assert OpenAICompatibleLLM("m", base_url=DOWN, api_key="k")._redact("unknown k") == (
        "unknown ***"
    )
    llm = OpenAICompatibleLLM("m", base_url=DOWN, api_key=KEY)
    assert llm._redact(f"Authorization: Bearer {KEY}.") == "Authorization: Bearer ***."
