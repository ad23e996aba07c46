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

from browser import render
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.cli.app import app
from synalign.config import RunConfig
from synalign.errors import ConfigError, SynAlignError
from synalign.evaluation import (
    METHOD_NAMES,
    VARIANTS,
    EvalConfig,
    Evaluation,
    FineTuneClassifier,
    cosine_diversity,
    coverage_curve,
    distinct_n,
    fidelity_metrics,
    method,
    parse_methods,
    parse_seeds,
)
from synalign.io import read_jsonl
from synalign.report import build_report, paired_stats
from synalign.sda.aligner import MMDAligner
from synalign.sda.kernels import mmd2
from synalign.sda.kmm import KMMWeighter
from synalign.sda.weights import training_weights, training_weights_of, uniform_weights

TINY = ["generate.samples_per_cluster=2", "explore.cluster_size=2"]
STAGES_TO_GENERATE = ["ingest", "explore", "describe", "generate"]


def _cli_args(runs_dir: Path) -> list[str]:
    args = ["evaluate", "--dataset", "rotten-tomatoes", "--shots", "4", "--seeds", "2"]
    args += ["--samples-per-label", "2", "--test-per-label", "30", "--coverage-clusters", "4"]
    args += ["--curve", "0.5,1", "--runs-dir", str(runs_dir), "--name", "ev"]
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
        curve=[0.5, 1],
        overrides=TINY,
    )
    evaluation = Evaluation(config, llm=gemma)
    metrics = evaluation.run()
    return {"runs": runs, "config": config, "evaluation": evaluation, "metrics": metrics}


def test_every_method_is_scored_in_range(evaluated: dict) -> None:
    metrics = evaluated["metrics"]
    ev_dir = evaluated["config"].eval_dir
    assert evaluated["evaluation"].llm_calls_ > 0
    assert list(metrics["methods"]) == parse_methods("all")
    assert "judge-check" not in metrics["methods"]  # it needs --judge
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
            assert m["kept_rows"] <= m["synthetic_rows"] == y.size
            assert m["length_w1"] >= 0.0
            if method_settings(name)["label_check"] == "none":
                assert m["kept_rows"] == y.size
            if name in ("naive", "no-sda"):
                # equal weights over the rows the label check kept, none elsewhere
                kept = w > 0
                assert kept.sum() == m["kept_rows"]
                assert np.allclose(w[kept], uniform_weights(y[kept].tolist()))
    # Paired differences are exactly the per-seed differences to `real`.
    for name in parse_methods("all")[1:]:
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


def method_settings(name: str) -> dict:
    return method(name).settings(RunConfig())


def test_methods_differ_from_synalign_in_one_setting_each() -> None:
    base = method("synalign")
    assert base.settings(RunConfig())["label_check"] != "none"
    checks = ("no-check", "llm-check", "classifier-check", "knn-check", "fixed-check")
    for name in (*checks, "no-floor", "joint", "resample"):
        m = method(name)
        assert m.variant == base.variant and m.weighting == base.weighting
        diff = {k for k, v in m.settings(RunConfig()).items() if v != base.settings(RunConfig())[k]}
        if "label_check" in diff:
            diff.discard("label_check_threshold")  # each check has its own default threshold
        assert len(diff) == 1, (name, diff)
    # Without token probabilities (an HTTP backend) the configured check is the classifier.
    assert base.settings(RunConfig(), scorer=False)["label_check"] == "classifier"
    assert base.settings(RunConfig(), scorer=False)["label_check_threshold"] == 0.9
    assert base.settings(RunConfig())["label_check"] == "combined"
    # The threshold is chosen per seed from the real shots unless one is fixed.
    assert base.settings(RunConfig())["label_check_quantile"] == 0.1
    assert "0.1 quantile of the real shots'" in base.describe(RunConfig())
    fixed = method("fixed-check").settings(RunConfig())
    assert fixed["label_check_quantile"] is None and fixed["label_check_threshold"] == 0.7
    assert "LLM + classifier label check (0.7)" in method("fixed-check").describe(RunConfig())
    own = RunConfig.model_validate({"generate": {"label_check_threshold": 0.5}})
    assert base.settings(own)["label_check_quantile"] is None
    assert base.settings(own)["label_check_threshold"] == 0.5
    # Only a method whose own change is the LLM's check is left out without token
    # probabilities; `synalign` then falls back to the classifier.
    from synalign.evaluation.methods import asks_scorer

    assert [m for m in METHOD_NAMES if asks_scorer(method(m))] == ["llm-check"]
    assert method("naive").settings(RunConfig())["label_check"] == "none"
    assert "no label check" in method("naive").describe(RunConfig())
    assert "ESS" in base.describe(RunConfig())


def test_fidelity_metrics_count_caught_wrong_labels() -> None:
    labels = np.array(["neg", "neg", "neg", "neg", "pos"])
    judged = np.array(["neg", "pos", "pos", "neg", "pos"])
    keep = np.array([True, False, True, False, True])
    out = fidelity_metrics(labels, judged, keep, np.array([1.0, 0.0, 3.0, 0.0, 1.0]))
    assert out["judge_agreement_generated"] == pytest.approx(3 / 5)
    assert out["judge_agreement"] == pytest.approx(2 / 5)  # weight 3 sits on a wrong label
    assert out["check_rejected"] == pytest.approx(2 / 5)
    assert out["flips_caught"] == pytest.approx(1 / 2)
    assert out["rejection_precision"] == pytest.approx(1 / 2)


def test_resampled_training_weights_are_counts_of_kept_rows() -> None:
    labels = np.array(["a"] * 4 + ["b"] * 3)
    keep = np.array([True, True, True, False, True, True, True])
    w = np.array([0.5, 0.25, 0.25, 0.0, 0.2, 0.2, 0.6])
    counts = training_weights_of(w, labels, keep, "resample", seed=0)
    assert counts[3] == 0 and np.all(counts == np.round(counts))
    assert counts[:4].sum() == 3 and counts[4:].sum() == 3
    shared = training_weights_of(w, labels, keep, "resample", 0, {"a": 0.25, "b": 0.75})
    assert shared[:4].sum() == 2 and shared[4:].sum() == 4  # 6 draws split 1.5 : 4.5
    direct = training_weights_of(w, labels, keep, "weights", seed=0)
    assert direct[:3] == pytest.approx([1.5, 0.75, 0.75]) and direct[3] == 0


def test_paired_interval_covers_the_mean_and_shrinks_with_agreement() -> None:
    wide = paired_stats([0.01, -0.02, 0.03, 0.00, 0.02])
    narrow = paired_stats([0.010, 0.011, 0.009, 0.010, 0.012])
    for s in (wide, narrow):
        assert s["ci_low"] < s["mean"] < s["ci_high"] and s["seeds"] == 5
    assert wide["ci_low"] < 0 < narrow["ci_low"]
    # t with 4 degrees of freedom: half width 2.776 sd / sqrt(5)
    half = 2.776445 * np.std([0.01, -0.02, 0.03, 0.00, 0.02], ddof=1) / np.sqrt(5)
    assert wide["ci_high"] - wide["mean"] == pytest.approx(half, rel=1e-5)
    assert paired_stats([0.5])["ci_low"] is None


def _answer_of(
    scores: dict[str, list[float]], task: str = "classification", real_name: str | None = None
) -> list[str]:
    """The report's opening sentences for hand-made per-seed macro-F1 (a shorter list is a
    row that did not finish the later seeds)."""
    from synalign.report.answer import ablation_contributions, answer_sentences
    from synalign.report.stats import paired_to_baselines

    n = max(len(v) for v in scores.values())
    seeds = [
        {"seed": i, "methods": {r: {"macro_f1": v[i]} for r, v in scores.items() if i < len(v)}}
        for i in range(n)
    ]
    rows = list(scores)
    summary = {
        "task": task,
        "methods": {r: {} for r in rows},
        "paired": paired_to_baselines(seeds, rows, ("macro_f1",)),
        "ablations": ablation_contributions(seeds, rows, ("macro_f1",)),
    }
    return answer_sentences(summary, "macro_f1", "macro-F1", real_name)


def test_report_answer_says_beat_fell_below_or_not_separated() -> None:
    real, naive, syn = [0.60, 0.62, 0.61], [0.70, 0.70, 0.71], [0.65, 0.66, 0.66]
    # no-check costs more on average, but only the no-sda cost is separated from 0
    ablations = {"no-esm": [0.66, 0.64, 0.67], "no-check": [0.50, 0.66, 0.66]}
    vs_real, vs_naive, helped = _answer_of(
        {"real": real, "naive": naive, "synalign": syn, **ablations, "no-sda": [0.61] * 3}
    )
    assert vs_real.startswith("`synalign` beat `real` on macro-F1 by 4.7 points (paired 95%")
    assert vs_real.endswith("over 3 seeds).")
    named = _answer_of({"real": real, "synalign": syn}, real_name="SetFit on the real shots")
    assert named[0].startswith(
        "`synalign` beat SetFit on the real shots (`real`) on macro-F1 by 4.7 points (paired"
    )
    assert vs_naive.startswith("`synalign` fell below `naive` on macro-F1 by 4.7 points")
    assert helped.startswith(
        "Of the ablations run, SDA's MMD weighting helped most: removing it (`no-sda`) cost "
        "`synalign` 4.7 points of macro-F1"
    )
    vs_real, vs_naive, helped = _answer_of(
        {"real": real, "naive": [0.64, 0.66, 0.61], "synalign": syn, **ablations}
    )
    assert vs_naive.startswith("`synalign` was not separated from `naive` on macro-F1: +2.0")
    assert helped.startswith(
        "No ablation was separated from `synalign` on macro-F1 (ablations run: `no-esm`, "
        "`no-check`); the largest difference was the label check: `synalign` minus `no-check`"
    )
    assert _answer_of({"real": real, "naive": naive, "synalign": syn})[2] == (
        "No ablation rows were run, so this evaluation does not say which stage or check "
        "helped most."
    )


def test_report_answer_without_an_interval_or_a_row() -> None:
    vs_real, vs_naive, helped = _answer_of(
        {"real": [0.6, 0.6], "synalign": [0.65], "no-lar": [0.62, 0.6]}
    )
    assert vs_real == (
        "`synalign` was not separated from `real` on macro-F1: +5.0 points (on 1 seed, too "
        "few for an interval)."
    )
    assert vs_naive == "`naive` was not run, so there is no `synalign` vs `naive` comparison."
    assert "`synalign` minus `no-lar` = +3.0 points (on 1 seed, too few" in helped
    assert _answer_of({"real": [0.6]})[:2] == [
        "`synalign` was not run, so there is no `synalign` vs `real` comparison.",
        "`synalign` and `naive` were not run, so there is no `synalign` vs `naive` comparison.",
    ]
    # A lone check is measured against `naive`; retrieval names its check differently.
    *_, helped = _answer_of(
        {
            "naive": [0.20, 0.21, 0.22],
            "synalign": [0.30, 0.30, 0.31],
            "no-check": [0.30, 0.31, 0.30],
            "roundtrip-check": [0.25, 0.27, 0.26],
        },
        task="retrieval",
    )
    assert helped.startswith(
        "Of the ablations run, the round-trip check helped most: adding it alone to `naive` "
        "(`roundtrip-check`) gained 5.0 points of macro-F1 (paired 95% interval"
    )


def test_budget_curve_cuts_one_generation(evaluated: dict) -> None:
    """naive and synalign at 2 and 4 candidates per label: both from one generation at 4
    per label, the 2-per-label point being exactly the method's own row (same rows, same
    weights), the cost growing with the clusters used."""
    metrics = evaluated["metrics"]
    ev_dir = evaluated["config"].eval_dir
    for seed_result in metrics["per_seed"]:
        seed = seed_result["seed"]
        assert set(seed_result["curve"]) == {"naive", "synalign"}
        for name, points in seed_result["curve"].items():
            assert list(points) == ["0.5", "1"]
            assert [p["candidates_per_label"] for p in points.values()] == [2, 4]
            assert points["0.5"]["macro_f1"] == seed_result["methods"][name]["macro_f1"]
            assert points["0.5"]["kept_rows"] == seed_result["methods"][name]["kept_rows"]
            assert points["1"]["kept_rows"] >= points["0.5"]["kept_rows"]
            variant = metrics["method_definitions"][name]["variant"]
            stats = seed_result["generation"][variant]
            assert points["1"]["llm_requests"] == stats["llm_requests"]
            assert points["0.5"]["llm_requests"] * 2 == stats["llm_requests"]
            run = ev_dir / f"seed-{seed}" / variant
            assert len(read_jsonl(run / "demos.jsonl")) == 2 * 2  # 2 clusters per label
        # variants outside the curve are generated at --samples-per-label only
        assert len(read_jsonl(ev_dir / f"seed-{seed}" / "gp-plain" / "demos.jsonl")) == 2
    curve = metrics["curve"]
    assert curve["synalign"]["1"]["macro_f1"]["per_seed"] == [
        s["curve"]["synalign"]["1"]["macro_f1"] for s in metrics["per_seed"]
    ]
    page = (ev_dir / "report" / "report.html").read_text()
    assert "How much synthetic data to make" in page
    assert (ev_dir / "report" / "curve.png").stat().st_size > 5_000


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
    # The answer opens the report, right after the title, as the summary words it.
    from synalign.report.answer import answer_sentences

    saved = json.loads((report / "metrics.json").read_text())
    real = "logistic regression on the real shots"
    answer = " ".join(answer_sentences(saved, "macro_f1", "macro-F1", real))
    assert md.split("\n\n")[1] == answer and f"{real} (`real`)" in answer
    assert "ablations run" in answer  # every row ran, the ablations too
    # each seed's calibrated threshold, the fixed one once
    assert "threshold used (per seed)" in md and "| `synalign` |" in md
    per_seed = [
        s["methods"]["synalign"]["label_check_threshold"] for s in evaluated["metrics"]["per_seed"]
    ]
    assert all(t is None or 0.0 < t <= 1.0 for t in per_seed)
    assert saved["versions"]["numpy"] == np.__version__
    assert saved["pipeline_config"]["llm"]["temperature"] == pytest.approx(0.9)

    shutil.rmtree(report)
    res = CliRunner().invoke(app, ["report", str(evaluated["config"].eval_dir)])
    assert res.exit_code == 0, res.output
    rebuilt = json.loads((report / "metrics.json").read_text())
    assert rebuilt["methods"] == saved["methods"]
    assert (report / "report.html").read_text() == page


def test_report_renders_in_a_real_browser(evaluated: dict, tmp_path: Path) -> None:
    """Headless Chromium loads report.html from disk: no script error, every plot decodes
    to an image of its own size, and the page has its title, tables and the budget-curve
    section."""
    page = evaluated["config"].eval_dir / "report" / "report.html"
    shown = render(page, tmp_path)
    assert shown.errors == ""
    assert len(shown.images) == page.read_text().count("<img ") >= 4
    assert all(w > 300 and h > 200 for w, h in shown.images), shown.images
    assert "<table" in shown.dom and "How much synthetic data to make" in shown.dom
    body = shown.dom[shown.dom.index("<body") :]
    first = re.search(r"<p>(.*?)</p>", body, re.S)
    assert first and first.group(1).startswith("<code>synalign</code> ")
    assert "(<code>real</code>) on macro-F1" in first.group(1) and "Data." not in first.group(1)
    assert shown.screenshot.shape == (2400, 1300) and shown.screenshot.std() > 10  # not blank


def test_rerun_generates_nothing(evaluated: dict) -> None:
    before = evaluated["metrics"]
    res = CliRunner().invoke(app, _cli_args(evaluated["runs"]))
    assert res.exit_code == 0, res.output
    assert "LLM calls made: 0" in res.output
    assert "budget curve, synalign (candidates per label: macro-F1 %): 2: " in res.output
    after = json.loads((evaluated["config"].eval_dir / "report" / "metrics.json").read_text())
    for seed_result in after["per_seed"]:
        for stats in seed_result["generation"].values():
            assert stats["skipped"] == STAGES_TO_GENERATE
            assert stats["llm_calls_this_invocation"] == 0
    for name in parse_methods("all"):
        assert after["methods"][name]["accuracy"] == before["methods"][name]["accuracy"]


def test_user_files_real_only(tmp_path: Path) -> None:
    from synalign.io.corpora import load_split

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


def test_validation_holds_out_part_of_the_pool_and_never_reads_a_test(tmp_path: Path) -> None:
    """--validation: shots (the pipeline's too) come from four fifths of --train, the
    methods are scored on the other fifth, and no test data is given or read."""
    from synalign.io.corpora import load_split

    rows = load_split("rotten-tomatoes", "train")
    train = [r for lab in ("fresh", "rotten") for r in [x for x in rows if x.label == lab][:20]]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"t": r.text, "y": r.label}) + "\n" for r in train))
    res = CliRunner().invoke(
        app,
        [
            "evaluate", "--train", str(path), "--validation", "--text-column", "t",
            "--label-column", "y", "--shots", "3", "--seeds", "0,", "--methods", "naive",
            "--samples-per-label", "2", "--curve", "none", "--runs-dir", str(tmp_path),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "report" / "metrics.json").read_text())
    assert metrics["test_records"] == 8 and metrics["settings"]["validation"] is True
    pool = {r["text"] for r in read_jsonl(tmp_path / "eval" / "validation-pool.jsonl")}
    assert len(pool) == 32
    shots = read_jsonl(tmp_path / "eval" / "seed-0" / "random-plain" / "real.jsonl")
    assert len(shots) == 6 and {r["text"] for r in shots} <= pool
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "validation split of the training pool" in report
    refused = CliRunner().invoke(
        app, ["evaluate", "--train", str(path), "--test", str(path), "--validation"]
    )
    assert refused.exit_code != 0 and "leave out --test" in str(refused.exception)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "rotten-tomatoes", "--set", "explore.method=gp"], "--set explore.method"),
        (["--methods", "real", "--seeds", "0"], "--seeds"),
        (["--methods", "nope", "--dataset", "rotten-tomatoes"], "unknown method 'nope'"),
        (["--dataset", "rotten-tomatoes", "--classifier", "bert"], "--classifier"),
        # --model is the LLM, as in generate and run
        (["--dataset", "rotten-tomatoes", "--methods", "naive", "--model", "nope"], "(--model)"),
        (["--dataset", "rotten-tomatoes", "--methods", "naive", "--llm", "openai"], "(--model)"),
        (["--train", "missing.csv", "--test", "missing.csv"], "--train"),
        (["--dataset", "rotten-tomatoes", "--curve", "1,lots"], "--curve '1,lots'"),
        (["--dataset", "rotten-tomatoes", "--curve", "-1"], "multiples must be positive"),
        (
            ["--dataset", "rotten-tomatoes", "--set", "generate.samples_per_label=9"],
            "use --samples-per-label",
        ),
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
    # through the installed console script: a folder that is neither kind, in one line
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "synalign"), "report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "neither a run directory (no state.json)" in lines[0]


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
    # With the real label mix (even), the 5 rows' mass is split 2.5 / 2.5 between labels.
    even = training_weights(uniform_weights(labels), labels, {"a": 0.5, "b": 0.5})
    assert even.tolist() == pytest.approx([2.5 / 3] * 3 + [1.25] * 2)


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
    assert parse_methods("all", judge=True) == list(METHOD_NAMES)
    assert parse_methods("all") == [n for n in METHOD_NAMES if n != "judge-check"]
    with pytest.raises(ConfigError, match="needs --judge"):
        EvalConfig(dataset="rotten-tomatoes", methods=["real", "judge-check"]).check()


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
