"""The evaluation on a tiny budget with the real bundled model, its report, and its parts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synalign.align import MMDAligner
from synalign.cli import app
from synalign.data import read_jsonl
from synalign.errors import ConfigError, SynAlignError
from synalign.evaluate import (
    METHOD_NAMES,
    VARIANTS,
    EvalConfig,
    Evaluation,
    FineTuneClassifier,
    KMMWeighter,
    cosine_diversity,
    coverage_curve,
    distinct_n,
    parse_methods,
    parse_seeds,
    training_weights,
    uniform_weights,
)
from synalign.kernels import mmd2
from synalign.llm.llamacpp import LlamaCppLLM
from synalign.report import build_report

TINY = ["generate.samples_per_cluster=2", "explore.cluster_size=2"]
STAGES_TO_GENERATE = ["ingest", "explore", "describe", "generate"]


def _cli_args(runs_dir: Path) -> list[str]:
    args = ["evaluate", "--dataset", "rotten-tomatoes", "--shots", "4", "--seeds", "2"]
    args += ["--samples-per-label", "2", "--test-per-label", "30", "--coverage-clusters", "4"]
    args += ["--runs-dir", str(runs_dir), "--name", "ev"]
    for item in TINY:
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, gemma: LlamaCppLLM) -> dict:
    """One tiny evaluation: every method, two seeds, the shared bundled model."""
    runs = tmp_path_factory.mktemp("eval")
    config = EvalConfig(
        name="ev",
        runs_dir=str(runs),
        dataset="rotten-tomatoes",
        shots=4,
        seeds=[0, 1],
        samples_per_label=2,
        test_per_label=30,
        coverage_clusters=4,
        overrides=TINY,
    )
    evaluation = Evaluation(config, llm=gemma)
    metrics = evaluation.run()
    return {"runs": runs, "config": config, "evaluation": evaluation, "metrics": metrics}


def test_every_method_is_scored_in_range(evaluated: dict) -> None:
    metrics = evaluated["metrics"]
    ev_dir = evaluated["config"].eval_dir
    assert evaluated["evaluation"].llm_calls_ > 0
    assert list(metrics["methods"]) == list(METHOD_NAMES)
    assert len(metrics["per_seed"]) == 2 and metrics["test_records"] == 60
    for seed_result in metrics["per_seed"]:
        arrays = np.load(ev_dir / "results" / f"seed-{seed_result['seed']}.npz")
        for name, m in seed_result["methods"].items():
            assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0, name
            assert m["mmd2_test"] >= 0.0
            for label, entry in m["per_label"].items():
                assert entry["mmd2_test"] >= 0.0 and 0.0 <= entry["distinct_1"] <= 1.0
                if name == "real":
                    assert "ess" not in entry and entry["n"] == 4
                    continue
                assert 1.0 - 1e-9 <= entry["ess"] <= entry["n"] + 1e-9, (name, label)
            if name == "real":
                assert m["synthetic_rows"] == 0 and m["train_rows"] == 8
                continue
            w = arrays[f"w__{name}"]
            variant = evaluated["metrics"]["method_definitions"][name]["variant"]
            y = arrays[f"y_syn__{variant}"]
            assert (w >= 0).all() and w.shape == y.shape
            for label in set(y.tolist()):
                assert w[y == label].sum() == pytest.approx(1.0)
            if name in ("naive", "no-sda"):
                assert np.allclose(w, uniform_weights(y.tolist()))
    # Paired differences are exactly the per-seed differences to `real`.
    for name in METHOD_NAMES[1:]:
        deltas = [
            s["methods"][name]["accuracy"] - s["methods"]["real"]["accuracy"]
            for s in metrics["per_seed"]
        ]
        assert metrics["paired"]["real"][name]["accuracy"]["mean"] == pytest.approx(
            float(np.mean(deltas))
        )
        assert metrics["methods"][name]["accuracy"]["per_seed"] == [
            s["methods"][name]["accuracy"] for s in metrics["per_seed"]
        ]


def test_generation_runs_once_per_seed_and_variant(evaluated: dict) -> None:
    ev_dir = evaluated["config"].eval_dir
    for seed in (0, 1):
        shots = None
        for variant, (explore_method, attributes) in VARIANTS.items():
            run = ev_dir / f"seed-{seed}" / variant
            config = (run / "config.toml").read_text()
            assert f'method = "{explore_method}"' in config
            assert f"attributes = {'true' if attributes else 'false'}" in config
            assert read_jsonl(run / "synthetic.jsonl")
            rows = read_jsonl(run / "attributes.jsonl")
            assert all(bool(r["attributes"]) == attributes for r in rows)
            ids = [r["id"] for r in read_jsonl(run / "real.jsonl")]
            assert shots is None or ids == shots  # every variant sees the same shots
            shots = ids
            assert not (run / "aligned.jsonl").exists()  # weighting happens in the evaluation
    coverage = evaluated["metrics"]["per_seed"][0]["coverage"]
    assert set(coverage) == {"gp", "random"}
    for curve in coverage.values():
        assert all(0.0 < x <= 1.0 for x in curve) and curve == sorted(curve)


def test_report_is_self_contained_and_rebuilds(evaluated: dict) -> None:
    report = evaluated["config"].eval_dir / "report"
    page = (report / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) >= 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page and "https://" not in page
    md = (report / "report.md").read_text()
    assert "C = 1 for every method" in md and "scores.png" in md
    saved = json.loads((report / "metrics.json").read_text())
    assert saved["versions"]["numpy"] == np.__version__
    assert saved["pipeline_config"]["llm"]["temperature"] == pytest.approx(0.9)

    shutil.rmtree(report)
    res = CliRunner().invoke(app, ["report", str(evaluated["config"].eval_dir)])
    assert res.exit_code == 0, res.output
    rebuilt = json.loads((report / "metrics.json").read_text())
    assert rebuilt["methods"] == saved["methods"]
    assert (report / "report.html").read_text() == page


def test_rerun_generates_nothing(evaluated: dict) -> None:
    before = evaluated["metrics"]
    res = CliRunner().invoke(app, _cli_args(evaluated["runs"]))
    assert res.exit_code == 0, res.output
    assert "LLM calls made: 0" in res.output
    after = json.loads((evaluated["config"].eval_dir / "report" / "metrics.json").read_text())
    for seed_result in after["per_seed"]:
        for stats in seed_result["generation"].values():
            assert stats["skipped"] == STAGES_TO_GENERATE
            assert stats["llm_calls_this_invocation"] == 0
    for name in METHOD_NAMES:
        assert after["methods"][name]["accuracy"] == before["methods"][name]["accuracy"]


def test_user_files_real_only(tmp_path: Path) -> None:
    from synalign.datasets import load_split

    rows = load_split("bbc-news", "train")
    train = [r for lab in ("sport", "tech") for r in [x for x in rows if x.label == lab][:12]]
    test = [r for lab in ("sport", "tech") for r in [x for x in rows if x.label == lab][12:22]]
    for name, part in (("train.jsonl", train), ("test.jsonl", test)):
        (tmp_path / name).write_text(
            "".join(json.dumps({"body": r.text, "topic": r.label}) + "\n" for r in part)
        )
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--train",
            str(tmp_path / "train.jsonl"),
            "--test",
            str(tmp_path / "test.jsonl"),
            "--text-column",
            "body",
            "--label-column",
            "topic",
            "--shots",
            "5",
            "--seeds",
            "3,",
            "--methods",
            "real",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "report" / "metrics.json").read_text())
    assert list(metrics["methods"]) == ["real"] and metrics["test_records"] == 20
    assert metrics["per_seed"][0]["seed"] == 3 and metrics["per_seed"][0]["generation"] == {}
    assert 0.0 <= metrics["methods"]["real"]["accuracy"]["mean"] <= 1.0
    assert not (tmp_path / "eval" / "seed-3").exists()  # nothing to generate


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "rotten-tomatoes", "--set", "explore.method=gp"], "--set explore.method"),
        (["--methods", "real", "--seeds", "0"], "--seeds"),
        (["--methods", "nope", "--dataset", "rotten-tomatoes"], "unknown method 'nope'"),
        (["--dataset", "rotten-tomatoes", "--model", "bert"], "--model"),
        (["--train", "missing.csv", "--test", "missing.csv"], "--train"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "synalign", "evaluate", "--runs-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_report_of_a_folder_that_is_no_evaluation(tmp_path: Path) -> None:
    with pytest.raises(SynAlignError, match="not an evaluation folder"):
        build_report(tmp_path)


# ----- parts ---------------------------------------------------------------------------


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_kmm_weights_match_per_label_like_mmd() -> None:
    rng = np.random.default_rng(0)
    real = _unit(rng.normal(size=(30, 8)))
    y_real = ["a"] * 15 + ["b"] * 15
    # Half of each label's synthetic rows sit far from the real rows.
    near = real + 0.05 * rng.normal(size=real.shape)
    syn = _unit(np.vstack([near, rng.normal(size=(30, 8)) + 3]))
    y_syn = y_real + y_real
    aligner = MMDAligner().fit(syn, real, y_syn, y_real)
    kmm = KMMWeighter(bandwidth=aligner.bandwidth_).fit(syn, real, y_syn, y_real)
    y = np.array(y_syn)
    for label in ("a", "b"):
        m = y == label
        assert kmm.weights_[m].sum() == pytest.approx(1.0) and (kmm.weights_ >= 0).all()
        R = real[np.array(y_real) == label]
        uniform = mmd2(syn[m], R, aligner.bandwidth_)
        assert mmd2(syn[m], R, aligner.bandwidth_, weights_x=kmm.weights_[m]) < 0.5 * uniform
        assert 1.0 <= kmm.ess_[label] <= m.sum()
    assert kmm.weights_[30:].sum() < 0.2 * kmm.weights_[:30].sum()


def test_training_weights_have_mean_one_per_label() -> None:
    labels = ["a", "a", "a", "b", "b"]
    w = training_weights(np.array([0.5, 0.5, 0.0, 0.9, 0.1]), labels)
    assert w.tolist() == pytest.approx([1.5, 1.5, 0.0, 1.8, 0.2])
    assert training_weights(uniform_weights(labels), labels).tolist() == pytest.approx([1.0] * 5)


def test_diversity_measures() -> None:
    assert distinct_n(["the cat sat", "the cat ran"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["the cat sat", "the cat ran"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0
    X = _unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    assert cosine_diversity(X[[0, 2]]) == pytest.approx(0.0)
    assert cosine_diversity(X) == pytest.approx(2 / 3)
    # All weight on two orthogonal rows: every pair drawn is at distance 1.
    assert cosine_diversity(X, np.array([0.5, 0.5, 0.0])) == pytest.approx(1.0)


def test_coverage_curve_counts_nearest_centroids() -> None:
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    rounds = [np.array([[1.0, 1.0]]), np.array([[0.5, 0.0], [9.0, 1.0]]), np.zeros((0, 2))]
    assert coverage_curve(centroids, rounds) == [0.25, 0.5, 0.5]


def test_seed_and_method_parsing() -> None:
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("4,9") == [4, 9]
    assert parse_seeds("7,") == [7]
    for bad in ("0", "a,b", "1,1"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)
    assert parse_methods("kmm") == ["real", "kmm"]
    assert parse_methods("all") == list(METHOD_NAMES)


def test_finetune_classifier_learns_a_separable_toy_task() -> None:
    sport = [
        "The striker scored twice as United won the cup final.",
        "The goalkeeper saved a penalty in the last minute of the match.",
        "The champion won the tennis final in straight sets.",
        "The team lost the derby after a late goal.",
        "The runner broke the world record in the marathon.",
        "The coach praised the defence after the league win.",
    ]
    food = [
        "Simmer the tomato sauce with garlic and basil for an hour.",
        "Whisk the eggs with sugar before folding in the flour.",
        "Roast the chicken with lemon, thyme and potatoes.",
        "Knead the bread dough and let it rise overnight.",
        "Fry the onions slowly until they turn golden and sweet.",
        "Serve the soup with a swirl of cream and fresh herbs.",
    ]
    texts, y = sport + food, ["sport"] * 6 + ["food"] * 6
    clf = FineTuneClassifier(epochs=3, batch_size=4, seed=0).fit(texts, y, np.ones(12))
    pred = clf.predict(texts)
    assert set(pred.tolist()) <= {"sport", "food"}
    assert np.mean(pred == np.array(y)) >= 0.9
