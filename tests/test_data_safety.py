"""A user's data is never lost: exports, run names, damaged run folders.

Every case runs as a user types it, through the installed `synalign` script: a mistake ends
in one line with exit code 2, files the command must not touch are byte-identical after,
and a damaged run folder is repaired from its caches (0 LLM calls) or refused in one line
that says how to repair it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synalign.errors import SynAlignError

SCRIPT = Path(sys.executable).parent / "synalign"

CONFIG = """
runs_dir = "{runs_dir}"
name = "{name}"
seed = 3

[data]
dataset = "rotten-tomatoes"
shots = 6

[generate]
samples_per_label = 8
samples_per_cluster = 4
"""
OUTPUTS = (
    "real.jsonl",
    "demos.jsonl",
    "attributes.jsonl",
    "synthetic.jsonl",
    "rejected.jsonl",
    "aligned.jsonl",
    "weights.npy",
    "align.json",
)


def typed(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.is_file(), f"{SCRIPT}: the set-up installs the console script"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def one_line(
    proc: subprocess.CompletedProcess[str], *needles: str, after_work: bool = False
) -> str:
    """A mistake: exit code 2 and one line on stderr, naming what it must name. A mistake
    found `after_work` began ends the progress notes before it with one error line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert after_work or len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones and the caches too) with its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def user_folder(root: Path) -> Path:
    """A folder of the user's own: a config, data, a hidden temporary-looking file."""
    root.mkdir(parents=True)
    (root / "config.toml").write_text("mine = 1\n", encoding="utf-8")
    (root / "real.jsonl").write_text('{"text": "mine", "label": "a"}\n', encoding="utf-8")
    (root / ".notes.tmp").write_text("keep me\n", encoding="utf-8")
    (root / "sub").mkdir()
    (root / "sub" / ".draft.tmp").write_text("keep me too\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run with the real bundled model, copied by every test that damages it."""
    base = tmp_path_factory.mktemp("safety")
    config = base / "run.toml"
    config.write_text(CONFIG.format(runs_dir=base / "runs", name="done"), encoding="utf-8")
    proc = typed("run", str(config))
    assert proc.returncode == 0, proc.stderr
    return base / "runs" / "done"


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(finished, copy)
    return copy


def cached_answers(run_dir: Path) -> int:
    """LLM answers and scores in the run's response cache: a call made adds one."""
    db = run_dir / "cache" / "llm.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def same_outputs(run_dir: Path, finished: Path) -> None:
    for name in OUTPUTS:
        assert (run_dir / name).read_bytes() == (finished / name).read_bytes(), name


# ----- exports ---------------------------------------------------------------------------


def test_export_never_replaces_a_users_folder(run: Path, tmp_path: Path) -> None:
    mine = user_folder(tmp_path / "mine")
    before = tree(mine)
    one_line(typed("export", str(run), str(mine)), str(mine), "did not write")
    one_line(typed("export", str(run), str(mine), "--format", "hf"), "did not write")
    assert tree(mine) == before
    # `.` is the folder the user stands in
    one_line(typed("export", str(run), ".", cwd=mine), "did not write")
    assert tree(mine) == before


def test_export_never_writes_inside_a_run(run: Path) -> None:
    before = tree(run)
    for target in (run, run / "synthetic.jsonl", run / "report" / "x.csv", run / "new"):
        one_line(typed("export", str(run), str(target)), "inside the synalign folder")
    assert tree(run) == before
    assert not (run / "new").exists()


def test_export_to_a_place_it_cannot_write(run: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n", encoding="utf-8")
    one_line(typed("export", str(run), str(a_file / "out.jsonl")), "is a file, not a folder")
    one_line(typed("export", str(run), str(tmp_path)), "did not write")
    one_line(typed("export", str(run), "/proc/out.jsonl"), "/proc/out.jsonl", "cannot write")
    assert a_file.read_text("utf-8") == "mine\n"


def test_a_datasets_export_replaces_only_its_own_folder(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert typed("export", str(run), str(empty)).returncode == 0  # an empty folder is taken
    assert (empty / "dataset_info.json").is_file()
    again = typed("export", str(run), str(empty), "--which", "synthetic")
    assert again.returncode == 0, again.stderr  # its own export is replaced
    (empty / "mine.txt").write_text("added by the user\n", encoding="utf-8")
    before = tree(empty)
    one_line(typed("export", str(run), str(empty)), "did not write")
    assert tree(empty) == before


# ----- run names and folders -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../escape", "path separator"),
        ("/abs/dir", "path separator"),
        ("", "is empty"),
        ("..", "not a folder of its own"),
    ],
)
def test_a_run_name_cannot_leave_runs_dir(name: str, needle: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = typed(
        "generate", "--dataset", "rotten-tomatoes", "--name", name, "--runs-dir", str(runs)
    )
    one_line(proc, needle, "--name")
    assert list(tmp_path.rglob("*")) == [runs]


@pytest.mark.parametrize("name", ["../../x", "a\\u0000b", "a\\nb"])
def test_a_run_name_from_toml_cannot_leave_runs_dir(name: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(runs_dir=tmp_path / "runs", name=name), encoding="utf-8")
    one_line(typed("run", str(config)), str(config), "'name'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_a_run_never_writes_into_a_users_folder(tmp_path: Path) -> None:
    mine = user_folder(tmp_path / "mine")
    before = tree(mine)
    proc = typed(
        "generate", "--dataset", "rotten-tomatoes", "--name", "mine", "--runs-dir", str(tmp_path)
    )
    one_line(proc, str(mine), "not a synalign run folder")
    assert tree(mine) == before


# ----- damaged run folders ---------------------------------------------------------------


def cut_lines(path: Path, keep: int) -> None:
    lines = path.read_text("utf-8").splitlines(keepends=True)
    assert len(lines) > keep
    path.write_text("".join(lines[:keep]), encoding="utf-8")


DAMAGE = {
    "synthetic cut at a line": lambda r: cut_lines(r / "synthetic.jsonl", 2),
    "aligned cut at a line": lambda r: cut_lines(r / "aligned.jsonl", 1),
    "short weights": lambda r: (r / "weights.npy").write_bytes(
        (r / "weights.npy").read_bytes()[:-16]
    ),
    "garbage weights": lambda r: (r / "weights.npy").write_bytes(b"\x93NUMPY garbage"),
    "garbage align.json": lambda r: (r / "align.json").write_text("{", encoding="utf-8"),
    "align.json of another shape": lambda r: (r / "align.json").write_text(
        "[1, 2]", encoding="utf-8"
    ),
    "state.json a list": lambda r: (r / "state.json").write_text("[]", encoding="utf-8"),
    "state.json stages a number": lambda r: (r / "state.json").write_text(
        '{"stages": 5}', encoding="utf-8"
    ),
    "real.jsonl with a renamed key": lambda r: (r / "real.jsonl").write_text(
        (r / "real.jsonl").read_text("utf-8").replace('"text":', '"txt":'), encoding="utf-8"
    ),
    "report/metrics.json removed": lambda r: (r / "report" / "metrics.json").unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_is_repaired_from_the_cache(
    damage: str, run: Path, finished: Path, tmp_path: Path
) -> None:
    answers = cached_answers(run)
    DAMAGE[damage](run)
    if damage.startswith(("synthetic", "aligned", "short", "garbage weights")):
        # an export from the damaged run refuses and says how to repair it
        proc = typed("export", str(run), str(tmp_path / "out.jsonl"))
        one_line(proc, f"synalign run {run}", "no new LLM calls")
        assert not (tmp_path / "out.jsonl").exists()
    proc = typed("run", str(run))
    assert proc.returncode == 0, proc.stderr
    assert cached_answers(run) == answers  # no LLM call was made
    same_outputs(run, finished)
    assert typed("export", str(run), str(tmp_path / "out.jsonl")).returncode == 0


def test_a_repair_that_needs_new_llm_calls_is_refused(run: Path, finished: Path) -> None:
    cut_lines(run / "synthetic.jsonl", 2)
    shutil.rmtree(run / "cache")
    proc = typed("run", str(run))
    one_line(proc, "synthetic.jsonl", "--force", after_work=True)
    assert cached_answers(run) == 0  # refused before any call


@pytest.mark.parametrize(
    ("cache", "needle"), [("llm.sqlite", "LLM answers"), ("embeddings.sqlite", "no LLM calls")]
)
def test_a_damaged_cache_is_named(cache: str, needle: str, run: Path) -> None:
    (run / "cache" / cache).write_bytes(b"this is not a database" * 100)
    for wal in (run / "cache").glob(f"{cache}-*"):
        wal.unlink()
    (run / "align.json").write_text("{", encoding="utf-8")  # so align reads the caches again
    (run / "synthetic.jsonl").write_text("", encoding="utf-8")
    proc = typed("run", str(run))
    one_line(proc, str(run / "cache" / cache), needle, "delete it", after_work=True)


def test_a_file_where_the_report_folder_goes(run: Path) -> None:
    shutil.rmtree(run / "report")
    (run / "report").write_text("mine\n", encoding="utf-8")
    one_line(typed("run", str(run)), "report is a file", "move or rename", after_work=True)
    assert (run / "report").read_text("utf-8") == "mine\n"


def test_the_run_records_checksums_of_its_outputs(finished: Path) -> None:
    stages = json.loads((finished / "state.json").read_text("utf-8"))["stages"]
    sums = stages["generate"]["outputs"]["synthetic.jsonl"]
    data = (finished / "synthetic.jsonl").read_bytes()
    assert sums == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert np.load(finished / "weights.npy").shape[0] == len(data.splitlines())


# ----- values checked before any work ----------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_a_seed_out_of_range(seed: str, tmp_path: Path) -> None:
    proc = typed(
        "generate", "--dataset", "rotten-tomatoes", "--seed", seed, "--runs-dir", str(tmp_path)
    )
    one_line(proc, "seed", "4294967295")
    assert list(tmp_path.iterdir()) == []


def test_a_model_file_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model\n", encoding="utf-8")
    proc = typed(
        "generate",
        "--dataset",
        "rotten-tomatoes",
        "--llm",
        "llamacpp",
        "--model",
        str(fake),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    one_line(proc, str(fake), "not a GGUF model file")


def test_align_refuses_an_output_it_cannot_write_before_the_work(
    finished: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n", encoding="utf-8")
    args = [
        "align",
        "--real",
        str(finished / "real.jsonl"),
        "--synthetic",
        str(finished / "synthetic.jsonl"),
    ]
    one_line(typed(*args, "--out", str(a_file / "out.jsonl")), "is a file, not a folder")
    one_line(typed(*args, "--out", str(finished / "aligned.jsonl")), "inside the synalign")
    one_line(typed(*args, "--out", "/proc/aligned.jsonl"), "cannot write")
    one_line(typed(*args, "--out", str(tmp_path / "o.jsonl"), "--seed", "-3"), "--seed -3")


def test_settings_with_a_section_that_is_not_a_mapping() -> None:
    from synalign import SynAlign
    from synalign.errors import ConfigError

    with pytest.raises(ConfigError, match=r"settings\['generate'\] = '5': \[generate\] is a"):
        SynAlign(settings={"generate": 5}).config("runs/x")
    with pytest.raises(ConfigError, match="give a mapping"):
        SynAlign(settings=[("generate", 5)]).config("runs/x")  # type: ignore[arg-type]


def test_stale_temporary_files_of_other_names_are_kept(run: Path) -> None:
    mine = run / ".mine.txt.abc.tmp"
    mine.write_text("mine\n", encoding="utf-8")
    (run / "sub").mkdir()
    (run / "sub" / ".synthetic.jsonl.abcd1234.tmp").write_text("x\n", encoding="utf-8")
    ours = run / ".synthetic.jsonl.abcd1234.tmp"
    ours.write_text("half a file\n", encoding="utf-8")
    assert typed("run", str(run)).returncode == 0
    assert not ours.exists()
    assert mine.read_text("utf-8") == "mine\n"
    assert (run / "sub" / ".synthetic.jsonl.abcd1234.tmp").exists()
    assert os.listdir(run / "sub") == [".synthetic.jsonl.abcd1234.tmp"]


@pytest.mark.parametrize("task", ["classification", "retrieval"])
def test_an_evaluation_stays_in_its_own_folder(task: str, tmp_path: Path) -> None:
    mine = user_folder(tmp_path / "mine")
    before = tree(mine)
    dataset = "rotten-tomatoes" if task == "classification" else "bbc-headlines"
    common = ["evaluate", "--task", task, "--dataset", dataset, "--runs-dir", str(tmp_path)]
    one_line(typed(*common, "--name", "mine", "--seeds", "1"), "not a synalign evaluation")
    one_line(typed(*common, "--name", "../x"), "path separator", "--name")
    one_line(typed(*common, "--seeds", "0,-2"), "--seeds", "4294967295")
    assert tree(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    # A folder holding nothing but caches copied in from another evaluation is resumed.
    from synalign.evaluation.folder import EvaluationFolder

    copied = tmp_path / "copied" / "seed-0" / "gp-attr" / "cache" / "llm.sqlite"
    copied.parent.mkdir(parents=True)
    copied.write_bytes(b"")
    EvaluationFolder(tmp_path / "copied").check_owned()
    (tmp_path / "copied" / "notes.txt").write_text("mine\n")
    with pytest.raises(SynAlignError, match="not a synalign evaluation folder"):
        EvaluationFolder(tmp_path / "copied").check_owned()


def test_evaluate_refuses_columns_with_a_bundled_dataset(tmp_path: Path) -> None:
    proc = typed(
        "evaluate",
        "--dataset",
        "rotten-tomatoes",
        "--text-column",
        "review",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    one_line(proc, "--text-column", "leave them out")
    assert not (tmp_path / "runs").exists()
