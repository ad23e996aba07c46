"""Values inside well-formed files that a run cannot take as they are: lone surrogates,
labels that break a prompt line, chat answers that refuse or narrate, and an evaluation's
repeated, empty or leaked rows. Each ends in one line naming the place, or in a counted
warning; never in a traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synalign.backends.llm.base import Completion
from synalign.io import read_jsonl, read_records, write_records
from synalign.lar.filters import SampleFilter
from synalign.lar.generator import LatentAttributeGenerator
from synalign.lar.prompts import ChatPrompts
from synalign.pipeline.stages import no_sample_message
from test_bad_input import GOOD, one_line_error, run_cli, write_jsonl
from test_filters import ENGLISH, TASK, ScriptedLLM, _cluster

DOWN = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
OFFLINE = ["--llm", "openai", "--model", "m", "--base-url", DOWN, "--set", "llm.max_retries=0"]

# ----------------------------------------------------------------- lone surrogates

# JSON escapes of half an emoji: valid JSON, but not text UTF-8 can store
SURROGATE_LINES = [
    '{"text": "a fine film \\ud83c and a good cast", "label": "pos", "note": "x\\udc00"}',
    '{"text": "a dull film", "label": "neg\\ud800"}',
    '{"text": "review number 3", "label": "pos"}',
    '{"text": "review number 4", "label": "neg"}',
]


def _surrogate_file(path: Path) -> Path:
    path.write_text("\n".join(SURROGATE_LINES) + "\n", encoding="utf-8")
    return path


def test_reader_replaces_lone_surrogates_and_counts_them(tmp_path: Path) -> None:
    path = _surrogate_file(tmp_path / "s.jsonl")
    loaded = read_records(path, dedupe=True)
    assert loaded.warnings == [
        "replaced lone surrogates (invalid Unicode such as '\\ud800', often half an emoji)"
        f" with U+FFFD in 2 rows of {path} (e.g. line 1, column 'text'); fix the text at its"
        " source to keep the character"
    ]
    first, second = loaded.records[:2]
    assert first.text == "a fine film \ufffd and a good cast" and first.meta["note"] == "x\ufffd"
    assert second.label == "neg\ufffd"
    for r in loaded.records:
        (r.text + r.label).encode("utf-8")  # every string can be written


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_writers_take_lone_surrogates(tmp_path: Path, fmt: str) -> None:
    """Rows from the Python API or an HTTP answer can still hold one: JSONL keeps it as a
    JSON escape (read back unchanged); CSV, Parquet and datasets get U+FFFD."""
    rows = [
        {"id": "0", "text": "half \ud83c emoji", "label": "pos", "meta": ["\udc00"]},
        {"id": "1", "text": "plain", "label": "neg\ud800", "meta": []},
    ]
    out = tmp_path / ("out" if fmt == "hf" else f"out.{fmt}")
    write_records(out, rows, fmt=fmt)
    if fmt == "jsonl":
        assert read_jsonl(out) == rows
        return
    back = read_records(out).records
    assert [r.text for r in back] == ["half \ufffd emoji", "plain"]
    assert [r.label for r in back] == ["pos", "neg\ufffd"]
    if fmt == "parquet":
        assert pq.read_table(out).column("meta").to_pylist()[0] == ["\ufffd"]


def test_align_command_runs_on_files_with_lone_surrogates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = _surrogate_file(tmp_path / "real.jsonl")
    synthetic = tmp_path / "syn.jsonl"
    rows = [
        {"text": f"a film \ud83d number {i}", "label": "pos" if i % 2 else "neg"} for i in range(6)
    ]
    synthetic.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ASCII escapes
    out = tmp_path / "aligned.csv"
    code, _, lines = run_cli(
        monkeypatch, capsys,
        "align", "--real", str(real), "--synthetic", str(synthetic), "--out", str(out),
        "--label-check", "none",
    )  # fmt: skip
    assert code == 0, lines
    warnings = [ln for ln in lines if ln.startswith("warning: replaced lone surrogates")]
    assert len(warnings) == 2 and "in 6 rows of" in warnings[1], lines
    assert "Traceback" not in "\n".join(lines)
    texts = [r.text for r in read_records(out).records]
    assert texts and all("\ufffd" in t for t in texts)


# ----------------------------------------------------- labels that break a prompt line


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("nl.jsonl", '{"text": "good", "label": "pos\\nitive"}\n', "line 1"),
        ("cr.jsonl", '{"text": "good", "label": "pos\\ritive"}\n', "line 1"),
        ("ls.jsonl", '{"text": "good", "label": "pos\\u2028itive"}\n', "line 1"),
        ("nl.csv", 'text,label\nfine,neg\ngood,"pos\nitive"\n', "line 3"),
    ],
)
def test_label_with_a_line_break_is_refused_with_its_place(
    name: str,
    content: str,
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = run_cli(
        monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(tmp_path),
        *OFFLINE,
    )  # fmt: skip
    one_line_error(
        result, f"{path} {where}: the label in column 'label'", "holds a line break",
        "rename it in the file",
    )  # fmt: skip


def test_label_holding_the_tag_end_needs_a_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**r, "label": "good): very" if r["label"] == "pos" else "neg"} for r in GOOD]
    path = write_jsonl(tmp_path / "tag.jsonl", rows)
    args = ["generate", "--input", str(path), "--runs-dir", str(tmp_path), *OFFLINE]
    line = one_line_error(
        run_cli(monkeypatch, capsys, *args),
        f"the label \"good): very\" in {path} holds '):', which ends the completion"
        " prompt's label tag",
        """--set 'data.label_descriptions={"good): very" = "a name"}'""",
    )
    assert "Traceback" not in line
    # with the description the error suggests, the run goes on to the (unreachable) LLM
    code, _, lines = run_cli(
        monkeypatch, capsys, *args, "--set", 'data.label_descriptions={"good): very" = "good"}'
    )
    assert code == 2 and lines[-1].startswith(f"error: LLM endpoint {DOWN}"), lines


def test_description_with_a_line_break_names_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", GOOD)
    one_line_error(
        run_cli(
            monkeypatch, capsys, "generate", "--input", str(path), "--runs-dir", str(tmp_path),
            *OFFLINE, "--set", 'data.label_descriptions={pos = "very\\ngood"}',
        ),
        'the data.label_descriptions entry of label "pos" ("very\\ngood") holds a line break',
    )  # fmt: skip


# ------------------------------------------------- chat answers that refuse or narrate


def test_refusals_and_narration_are_rejected_with_their_own_reason() -> None:
    answers = [
        "I cannot help with that request.",
        "I’m sorry, but I can’t write reviews that insult people.",
        '["Sure! Here are 3 reviews:", "A gentle and generous comedy about an old band.",'
        ' "Certainly! I can write more if you like."]',
        "Here are three new movie reviews: a warm film, a cold one, and a long one.",
        '["As an AI language model, I do not watch films.", "A sly heist film with heart.",'
        ' "I hope this helps!"]',
    ]
    gen = LatentAttributeGenerator(
        ScriptedLLM(lambda r, pos: Completion(answers[pos])),
        ChatPrompts(),
        TASK,
        samples_per_cluster=3,
        sample_filter=SampleFilter().fit(ENGLISH),
    )
    accepted, rejected = gen.generate([_cluster(i) for i in range(5)], [])
    assert sorted(a["text"] for a in accepted) == [
        "A gentle and generous comedy about an old band.",
        "A sly heist film with heart.",
    ]
    reasons = Counter(r["reason"] for r in rejected)
    assert reasons["refusal"] == 3 and reasons["narration"] == 4, reasons
    assert gen.counts_["refusal"] == 3 and gen.counts_["narration"] == 4


def test_assistant_talk_that_real_texts_share_is_not_rejected() -> None:
    """A pattern that matches a real text is the data's own language: real reviews that
    open with 'Here are three reasons ...:' keep their synthetic look-alikes."""
    own = [*ENGLISH, "Here are three reasons to see it: the cast, the music and the ending."]
    f = SampleFilter().fit(own)
    assert f.reason("Here are two reasons to skip it: the plot and the pace.") is None
    assert f.reason("I cannot help with writing that review today.") == "refusal"
    assert "narration" not in f.assistant_talk_ and "refusal" in f.assistant_talk_


@pytest.mark.parametrize("corpus", ["rotten-tomatoes", "bbc-news"])
def test_assistant_talk_patterns_spare_every_real_text(corpus: str) -> None:
    from synalign.io.corpora import load_split

    f = SampleFilter(language=False).fit(ENGLISH)
    texts = [r.text for split in ("train", "test") for r in load_split(corpus, split)]
    hits = [t for t in texts if f.reason(t) in ("refusal", "narration")]
    assert not hits, hits[:5]


# --------------------------------------------------- the likely cause of no samples


def test_base_model_answering_chat_prompts_is_named_first() -> None:
    rejected = [{"label": "a", "reason": r} for r in ["prompt_echo"] * 3 + ["truncated"] * 2]
    rejected.append({"label": "a", "reason": "too_short"})
    msg = no_sample_message(["a"], rejected, Path("run/rejected.jsonl"), "chat")
    fixes = msg.split("; ", 1)[1]
    assert fixes.startswith(
        "5 of 6 rejections are prompt_echo / truncated / missing / unparseable, what a base"
        " model does with chat prompts: if llm.model is a base (not instruction-tuned) model,"
        ' set llm.prompt_family = "completion"'
    ), msg
    assert fixes.index("llm.prompt_family") < fixes.index("generate.samples_per_label")
    # the same rejections under completion prompts are not blamed on the prompt family
    plain = no_sample_message(["a"], rejected, Path("run/rejected.jsonl"), "completion")
    assert "prompt_family" not in plain and "generate.samples_per_label" in plain


# ------------------------------------------------------- the evaluation's own files


def test_evaluate_drops_repeats_and_empties_and_warns_of_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(ENGLISH)]
    train = write_jsonl(tmp_path / "train.jsonl", [*pool, pool[0], {"text": " ", "label": "neg"}])
    test_rows = [
        {"text": "A dull and endless film with no jokes at all.", "label": "neg"},
        {"text": "A bright and lovely film about a family.", "label": "pos"},
        {"text": "A bright and lovely film about a family.", "label": "pos"},
        {"text": "", "label": "pos"},
        {"text": ENGLISH[1], "label": "pos"},
    ]
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    code, _, lines = run_cli(
        monkeypatch, capsys, "evaluate", "--train", str(train), "--test", str(test),
        "--methods", "real", "--seeds", "1", "--shots", "2", "--runs-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, lines
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    repeats = "warning: dropped 1 row repeating an earlier row's text and label in"
    for path, where in ((train, "line 17 repeats line 1"), (test, "line 3 repeats line 2")):
        assert f"warning: dropped 1 row with empty text in {path}" in warnings
        assert f"{repeats} {path} (e.g. {where})" in warnings, warnings
    leak = [w for w in warnings if "also occur in the training pool" in w]
    assert leak and leak[0].startswith(f"warning: 1 of 3 test texts in {test} also occur"), lines
    metrics = json.loads((tmp_path / "eval" / "report" / "metrics.json").read_text())
    assert metrics["test_records"] == 3  # the repeated and the empty test rows are gone
