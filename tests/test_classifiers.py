"""The downstream classifiers and weightings the evaluation compares: SetFit and IMP-Loss."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synalign.evaluation import SetFitClassifier, method
from synalign.evaluation.models import pair_copies
from synalign.io.corpora import load_split
from synalign.sda.importance import ImportanceWeighter

SYNALIGN = str(Path(sys.executable).with_name("synalign"))


def _bbc(labels: tuple[str, ...], per_label: int, skip: int = 0) -> tuple[list[str], list[str]]:
    rows = load_split("bbc-news", "pool")
    picked = [r for lab in labels for r in [x for x in rows if x.label == lab][skip:][:per_label]]
    return [r.text for r in picked], [r.label for r in picked]


def test_pair_copies_follow_the_weights_per_label() -> None:
    labels = ["a"] * 5 + ["b"] * 3
    w = np.array([1.0, 1.0, 2.5, 0.5, 0.0, 1.0, 3.0, 1.0])
    copies = pair_copies(w, labels, seed=0)
    # Each label keeps its total weight as copies; each text gets floor or ceil of its weight.
    assert copies[:5].sum() == 5 and copies[5:].sum() == 5
    assert copies[4] == 0  # a weight of zero never enters a pair
    assert (copies >= np.floor(w)).all() and (copies <= np.ceil(w)).all()
    assert pair_copies(np.ones(6), ["x", "y"] * 3, seed=3).tolist() == [1] * 6


def test_setfit_learns_real_topics_deterministically() -> None:
    labels = ("sport", "tech")
    texts, y = _bbc(labels, 4)
    test_texts, test_y = _bbc(labels, 15, skip=4)
    clf = SetFitClassifier(num_iterations=5, seed=0).fit(texts, y)
    pred = clf.predict(test_texts)
    assert set(pred.tolist()) <= set(labels)
    assert np.mean(pred == np.array(test_y)) >= 0.8
    again = SetFitClassifier(num_iterations=5, seed=0).fit(texts, y).predict(test_texts)
    assert again.tolist() == pred.tolist()


def test_setfit_weights_reach_the_head() -> None:
    """A text of weight 0 is left out: the head then never sees a whole label's texts."""
    texts, y = _bbc(("sport", "tech", "politics"), 2)
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    clf = SetFitClassifier(num_iterations=1, seed=0).fit(texts, y, sample_weight=w)
    assert sorted(clf.classes_.tolist()) == ["sport", "tech"]


def test_importance_weights_favour_rows_the_real_data_agrees_with() -> None:
    rng = np.random.default_rng(0)
    centres = {"a": np.array([3.0, 0.0]), "b": np.array([-3.0, 0.0])}
    real = np.vstack([centres[c] + rng.normal(size=(20, 2)) for c in "ab"])
    y_real = ["a"] * 20 + ["b"] * 20
    good = np.vstack([centres[c] + rng.normal(size=(30, 2)) for c in "ab"])
    wrong = np.vstack([centres[c] + rng.normal(size=(5, 2)) for c in "ba"])  # label flipped
    syn = np.vstack([good, wrong])
    y_syn = ["a"] * 30 + ["b"] * 30 + ["a"] * 5 + ["b"] * 5
    imp = ImportanceWeighter().fit(syn, real, y_syn, y_real)
    y = np.array(y_syn)
    for label in "ab":
        assert imp.weights_[y == label].sum() == pytest.approx(1.0)
        assert 1.0 <= imp.ess_[label] <= (y == label).sum()
    assert imp.weights_[60:].max() < imp.weights_[:60].mean()
    assert (imp.weights_ >= 0).all()
    assert imp.quality_.shape == imp.diversity_.shape == (70,)


def test_imp_loss_is_a_row_on_the_synalign_generation() -> None:
    from synalign.config import RunConfig

    m, base = method("imp-loss"), method("synalign")
    assert m.variant == base.variant and m.weighting == "imp"
    assert m.settings(RunConfig())["label_check"] == "none"
    assert "IMP-Loss" in m.describe(RunConfig())


def test_evaluate_with_setfit_as_a_user_types_it(tmp_path: Path) -> None:
    """`--classifier setfit` on the real shots alone, through the installed command; a
    misspelt classifier is one line naming the option."""
    args = [SYNALIGN, "evaluate", "--dataset", "bbc-news", "--shots", "2", "--seeds", "1,"]
    args += ["--methods", "real", "--test-per-label", "6", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [*args, "--classifier", "setfit"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "eval" / "report" / "metrics.json").read_text())
    assert metrics["settings"]["classifier"] == "setfit"
    assert 0.0 <= metrics["methods"]["real"]["macro_f1"]["mean"] <= 1.0
    assert "SetFit" in (tmp_path / "eval" / "report" / "report.md").read_text()
    assert sorted(os.listdir(tmp_path)) == ["eval"]  # no checkpoints beside it
    # A re-run trains nothing again: the prediction is the cached one.
    cache = tmp_path / "eval" / "cache" / "predictions.sqlite"
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE predictions SET labels = ?", (json.dumps(["sport"] * 30),))
    again = subprocess.run(
        [*args, "--classifier", "setfit"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    rerun = json.loads((tmp_path / "eval" / "report" / "metrics.json").read_text())
    assert rerun["methods"]["real"]["accuracy"]["mean"] == pytest.approx(0.2)  # 6 of 30
    bad = subprocess.run(
        [*args, "--classifier", "setfti", "--name", "bad"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "--classifier" in lines[0], bad.stderr
