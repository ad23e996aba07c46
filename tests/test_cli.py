"""The command line as a user meets it: help, listings, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synalign.io.corpora import load_split


def synalign(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synalign", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr


@pytest.mark.parametrize("command", ["demo", "run", "generate", "align", "datasets"])
def test_help_explains_each_command(command: str) -> None:
    proc = synalign(command, "--help")
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_generate_help_names_every_option() -> None:
    text = synalign("generate", "--help").stdout
    for option in ("--input", "--dataset", "--text-column", "--label-column", "--shots", "--set"):
        assert option in text


def test_version_and_datasets_list() -> None:
    assert synalign("--version").stdout.startswith("synalign ")
    proc = synalign("datasets", "list", "--json")
    assert proc.returncode == 0
    listed = {d["name"]: d["labels"] for d in json.loads(proc.stdout)}
    assert listed["rotten-tomatoes"] == ["fresh", "rotten"]
    assert len(listed["bbc-news"]) == 5
    tasks = {d["name"]: d["task"] for d in json.loads(proc.stdout)}
    assert tasks["bbc-headlines"] == "retrieval" and tasks["bbc-news"] == "classification"


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    proc = synalign("generate", "--input", str(missing), "--runs-dir", str(tmp_path))
    assert_one_line_error(proc, "nope.jsonl")


def test_missing_column_lists_found_columns(tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_text("review,stars\ngood film,5\nbad film,1\n")
    proc = synalign("generate", "--input", str(src), "--runs-dir", str(tmp_path))
    assert_one_line_error(proc, "data.csv", "review", "--text-column")


def test_single_label_refused(tmp_path: Path) -> None:
    src = tmp_path / "one.jsonl"
    src.write_text(
        "".join(json.dumps({"text": f"text {i}", "label": "a"}) + "\n" for i in range(5))
    )
    proc = synalign("generate", "--input", str(src), "--runs-dir", str(tmp_path))
    assert_one_line_error(proc, "one.jsonl", "two labels")


def test_bad_config_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[generate]\nsamples_per_labl = 3\n[data]\ndataset = "rotten-tomatoes"\n')
    assert_one_line_error(synalign("run", str(cfg)), "samples_per_label")
    assert_one_line_error(synalign("run", str(tmp_path / "none.toml")), "none.toml")
    proc = synalign("run", str(cfg), "--set", "generate.samples_per_label=-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_unknown_dataset(tmp_path: Path) -> None:
    proc = synalign("generate", "--dataset", "imdb", "--runs-dir", str(tmp_path))
    assert_one_line_error(proc, "imdb", "rotten-tomatoes")


def test_align_command_on_real_texts(tmp_path: Path) -> None:
    train = load_split("rotten-tomatoes", "train")
    real = [r for lab in ("fresh", "rotten") for r in [x for x in train if x.label == lab][:20]]
    # "synthetic" side: other real reviews of each label plus off-topic BBC text
    # labelled as reviews, which alignment should weight down.
    syn = [r for lab in ("fresh", "rotten") for r in [x for x in train if x.label == lab][20:50]]
    bbc = load_split("bbc-news", "train")[:20]
    rows = [{"text": r.text, "label": r.label} for r in syn]
    rows += [{"text": b.text, "label": "fresh" if i % 2 else "rotten"} for i, b in enumerate(bbc)]
    real_path, syn_path = tmp_path / "real.jsonl", tmp_path / "syn.csv"
    real_path.write_text(
        "".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in real)
    )
    import csv

    with syn_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "aligned.parquet"
    args = ["align", "--real", str(real_path), "--synthetic", str(syn_path)]
    proc = synalign(*args, "--out", str(out), "--label-check", "none", "--ess-floor", "0")
    assert proc.returncode == 0, proc.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert len(table) == len(rows)
    assert all(t["weight"] >= 0 for t in table)
    bbc_texts = {b.text for b in bbc}
    drawn_bbc = sum(1 for t in table if t["text"] in bbc_texts)
    # off-topic rows are drawn well below their uniform share (20 of 80) ...
    assert drawn_bbc < 0.75 * len(bbc)
    # ... because each carries less weight than an on-topic review
    bbc_w = [t["weight"] for t in table if t["text"] in bbc_texts]
    review_w = [t["weight"] for t in table if t["text"] not in bbc_texts]
    assert sum(bbc_w) / max(len(bbc_w), 1) < 0.6 * sum(review_w) / len(review_w)
    assert "MMD" in proc.stdout
    page = tmp_path / "aligned.parquet.report.html"  # the run report, beside the output
    assert proc.stdout.strip().splitlines()[-1] == f"report: {page}"
    shown = page.read_text()
    assert "<h2>Accepted samples</h2>" in shown and shown.count("<img ") == 3
    assert f"{len(rows)} synthetic samples accepted" in shown

    # With the label check the rows first pass a judge fitted on the real reviews, and
    # equal weights (--ess-floor 1) leave only the check to drop rows.
    checked = tmp_path / "checked.jsonl"
    proc = synalign(*args, "--out", str(checked), "--ess-floor", "1", "--label-check", "knn")
    assert proc.returncode == 0, proc.stderr
    # the threshold is chosen from the real texts' out-of-fold scores, as a run chooses it
    match = re.search(
        r"label check \(knn, threshold [0-9.]+ \(chosen[^)]*\)\): (\d+) of (\d+)", proc.stderr
    )
    assert match and int(match.group(2)) == len(rows)
    kept = [json.loads(line) for line in checked.read_text().splitlines()]
    assert len(kept) == len(rows) - int(match.group(1)) < len(rows)
    assert len({t["weight"] for t in kept if t["label"] == "fresh"}) == 1
    bad = synalign(*args, "--out", str(checked), "--scope", "global")
    assert_one_line_error(bad, "--scope")


def test_run_from_config_file_with_overrides(tmp_path: Path) -> None:
    config = Path(__file__).parents[1] / "examples" / "bbc-news.toml"
    proc = synalign(
        "run",
        str(config),
        "--set",
        f"runs_dir='{tmp_path}'",
        "--set",
        "data.shots=3",
        "--set",
        "generate.samples_per_label=2",
        "--set",
        "generate.samples_per_cluster=2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "SynAlign run summary" in proc.stdout
    metrics = json.loads((tmp_path / "bbc-news" / "report" / "metrics.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", metrics["model_sha256"])
    flat = re.sub(r"[\s│┃]", "", proc.stdout)  # the summary table folds long values
    assert f"(sha256{metrics['model_sha256'][:12]}...)" in flat
    assert metrics["labels"] == 5 and metrics["clusters"] == 5 and metrics["generated"] == 10
    again = synalign(
        "run",
        str(config),
        "--set",
        f"runs_dir='{tmp_path}'",
        "--set",
        "data.shots=3",
        "--set",
        "generate.samples_per_label=2",
        "--set",
        "generate.samples_per_cluster=2",
    )
    assert again.returncode == 0 and "up to date, skipped" in again.stderr


def _command(name: str) -> Any:
    import typer.main

    from synalign.cli.app import app

    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def test_keyed_options_name_real_config_keys() -> None:
    """Every "(config key `KEY`)" in an option's help names a key a config can set."""
    from pydantic import BaseModel

    from synalign.cli.flags import config_flags
    from synalign.config import RunConfig

    keys = set()
    for name, field in RunConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            keys |= {f"{name}.{k}" for k in section.model_fields}
        else:
            keys.add(name)
    flags = config_flags(_command("generate"))
    assert flags["name"] == "--name" and flags["data.path"] == "--input"
    assert flags["llm.base_url"] == "--base-url" and flags["data.shots"] == "--shots"
    for command in ("demo", "run", "generate", "align", "export", "evaluate", "report"):
        assert set(config_flags(_command(command))) <= keys, command


@pytest.mark.parametrize(
    ("command", "message", "hinted"),
    [
        (
            "generate",
            "runs/x is in use by another synalign process (pid 12); wait for it to finish or"
            " choose another run name (`name`)",
            "runs/x is in use by another synalign process (pid 12); wait for it to finish or"
            " choose another run name (`name`; --name)",
        ),
        ("run", "choose another run name (name)", "choose another run name (name; --name)"),
        (
            "demo",
            "check that the server is up and llm.base_url is right, then re-run",
            "check that the server is up and llm.base_url (--base-url) is right, then re-run",
        ),
        (
            "generate",
            "command-line options: config key 'data.shots': Input should be greater than 0",
            "command-line options: config key 'data.shots' (--shots): Input should be greater"
            " than 0",
        ),
        (
            "generate",
            "set `seed` or `runs_dir` in the config",
            "set `seed` (--seed) or `runs_dir` (--runs-dir) in the config",
        ),
        ("evaluate", "`seed` 3 failed", "`seed` (--seeds) 3 failed"),
        (
            "evaluate",
            "llm.base_url is not an http(s) URL",
            "llm.base_url (--base-url) is not an http(s) URL",
        ),
        # already naming the flag, or not naming a key this command has a flag for
        ("generate", "the openai backend needs llm.model (--model NAME)", None),
        ("run", "config key 'data.shots': Input should be greater than 0", None),
        ("export", "llm.base_url is not an http(s) URL", None),
        ("align", "choose another run name (`name`)", None),
        # a key inside a longer name, a path, a --set or plain prose is not a mention
        ("generate", "llm.model_path /m.gguf: model file not found", None),
        ("generate", "e.g. --set generate.samples_per_label=20", None),
        ("generate", "cannot write /tmp/runs_dir/x or my_runs_dir", None),
        ("generate", "give the run a name; the seed was 3", None),
    ],
)
def test_flag_hint(command: str, message: str, hinted: str | None) -> None:
    from synalign.cli.flags import flag_hint

    assert flag_hint(message, _command(command)) == (hinted or message)


def test_align_reads_demo_ids_as_a_run_exports_them(tmp_path: Path) -> None:
    """A synthetic file from `export --which synthetic` names its demonstrations by the ids
    of the run's real.jsonl: JSON lists in JSONL, JSON text in CSV; ids that name no real
    row are dropped with a warning rather than holding out the wrong texts."""
    from synalign.cli.data_commands import _demo_ids
    from synalign.records import Record

    rows = [
        Record("s0", "a", "x", {"demo_ids": ["4", "7"]}),
        Record("s1", "b", "x", {"demo_ids": '["7", "10"]'}),
        Record("s2", "c", "x", {}),
    ]
    assert _demo_ids(rows, {"4", "7", "10"}, tmp_path / "real.jsonl") == [
        ["4", "7"],
        ["7", "10"],
        [],
    ]
    assert _demo_ids(rows, {"0", "1", "2"}, tmp_path / "real.jsonl") == [[], [], []]


def test_export_card_never_replaces_a_readme_it_did_not_write(tmp_path: Path) -> None:
    """A card goes in README.md beside the export unless that file is the user's own or
    describes another export still there; then beside it as `<file>.README.md`."""
    from synalign.report.card_files import card_path

    out = tmp_path / "a.jsonl"
    assert card_path(out, "jsonl") == tmp_path / "README.md"
    assert card_path(tmp_path / "hf", "hf") == tmp_path / "hf" / "README.md"
    (tmp_path / "README.md").write_text("<!-- synalign data card: b.csv -->\n# b\n")
    assert card_path(out, "jsonl") == tmp_path / "README.md"  # b.csv is gone
    (tmp_path / "b.csv").write_text("text,label\n")
    assert card_path(out, "jsonl") == tmp_path / "a.jsonl.README.md"
    assert card_path(tmp_path / "b.csv", "csv") == tmp_path / "README.md"
    (tmp_path / "README.md").write_text("# my project\n<!-- synalign data card: a.jsonl -->\n")
    assert card_path(out, "jsonl") == tmp_path / "a.jsonl.README.md"
    (tmp_path / "a.jsonl.README.md").write_text("notes\n")
    assert card_path(out, "jsonl") is None
