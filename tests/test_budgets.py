"""Budgets no run can finish are refused up front, and the advice after a generate stage
that accepted nothing follows the rejection reasons that actually occurred."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synalign.config import build_config
from synalign.errors import ConfigError, SynAlignError
from synalign.esm import DemonstrationSelector, RandomSelector
from synalign.esm.selectors import MAX_CLUSTERS
from synalign.pipeline.runner import Pipeline
from synalign.pipeline.stages import ADVICE, MAX_SAMPLES_PER_LABEL, check_budget, no_sample_message

SCRIPT = Path(sys.executable).parent / "synalign"
PATH = Path("run/rejected.jsonl")

# ----- absurd budgets -----------------------------------------------------------------


def test_absurd_budget_is_one_line_through_the_console_script(tmp_path: Path) -> None:
    assert SCRIPT.is_file(), f"{SCRIPT}: the set-up installs the console script"
    args = ["generate", "--dataset", "rotten-tomatoes", "--shots", "4"]
    args += ["--samples-per-label", "1000000000", "--runs-dir", str(tmp_path / "runs")]
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(
        "error: generate.samples_per_label (--samples-per-label) = 1000000000 means"
        " 200,000,000 demonstration clusters and at least 400,000,000 LLM calls per label"
    ), line
    assert line.endswith("set it to at most 500,000"), line
    assert seconds < 60, seconds
    assert not list((tmp_path / "runs").rglob("demos.jsonl"))


def test_budget_limits() -> None:
    assert check_budget(160, 5, True) == 32
    assert check_budget(MAX_CLUSTERS * 5, 5, True) == MAX_CLUSTERS
    assert check_budget(MAX_SAMPLES_PER_LABEL, MAX_SAMPLES_PER_LABEL, False) == 1
    with pytest.raises(ConfigError, match=r"= 500001 means 100,001 demonstration clusters"):
        check_budget(MAX_CLUSTERS * 5 + 1, 5, True)
    with pytest.raises(ConfigError, match=r"at least 100,001 LLM calls") as err:
        check_budget(MAX_CLUSTERS * 5 + 1, 5, False)
    assert "\n" not in str(err.value)
    # few clusters that each write far too many samples name samples_per_cluster
    with pytest.raises(ConfigError) as err:
        check_budget(160, 10**9, True)
    msg = str(err.value)
    assert msg.startswith("generate.samples_per_cluster = 1000000000 means 1 demonstration")
    assert "--samples-per-label" not in msg and msg.endswith("at most 1,000,000")


def test_python_api_gets_the_same_error_before_exploring(tmp_path: Path) -> None:
    config = build_config(
        {
            "runs_dir": str(tmp_path),
            "data": {"dataset": "rotten-tomatoes", "shots": 4},
            "generate": {"samples_per_label": 10**9},
        }
    )
    with pytest.raises(ConfigError, match=r"generate\.samples_per_label \(--samples"):
        Pipeline(config).run(until="explore")
    assert not (config.run_dir / "demos.jsonl").exists()


@pytest.mark.parametrize("kind", [DemonstrationSelector, RandomSelector])
def test_selector_refuses_more_clusters_than_a_run_takes(kind: Any) -> None:
    X = np.random.default_rng(0).normal(size=(4, 8))
    start = time.perf_counter()
    with pytest.raises(SynAlignError, match="100,001 demonstration clusters"):
        kind(cluster_size=3).select(X, MAX_CLUSTERS + 1)
    assert time.perf_counter() - start < 1


# ----- advice that follows the rejection reasons -----------------------------------------


def rows(label: str, **counts: int) -> list[dict[str, str]]:
    return [{"label": label, "reason": why} for why, n in counts.items() for _ in range(n)]


def advice_of(msg: str) -> str:
    """The part of a one-label message after the label's counts."""
    return msg.split("); ", 1)[1]


@pytest.mark.parametrize(
    ("counts", "wanted", "absent"),
    [
        ({"too_long": 9}, ["generate.max_words"], ["generate.min_words", "generate.near_copy"]),
        ({"too_short": 4}, ["generate.min_words"], ["generate.max_words", "near_copy"]),
        ({"truncated": 5}, ["llm.max_tokens"], ["generate.min_words", "near_copy"]),
        ({"near_copy": 3}, ["generate.near_copy"], ["generate.min_words", "llm.max_tokens"]),
        (
            {"label_mismatch": 7},
            ["generate.label_check_quantile", "generate.label_check"],
            ["generate.min_words", "near_copy"],
        ),
        ({"wrong_language": 6}, ["llm.model_path"], ["generate.min_words", "near_copy"]),
        ({"empty": 2, "refusal": 1}, ["llm.model_path"], ["generate.min_words", "near_copy"]),
        (
            {"too_long": 2, "truncated": 6, "near_copy": 1},
            ["llm.max_tokens", "generate.max_words", "generate.near_copy"],
            ["generate.min_words", "label_check"],
        ),
    ],
)
def test_advice_names_the_keys_of_the_reasons_that_occurred(
    counts: dict[str, int], wanted: list[str], absent: list[str]
) -> None:
    msg = no_sample_message(["a"], rows("a", **counts), PATH, "completion")
    assert "\n" not in msg
    advice = advice_of(msg)
    for key in wanted:
        assert key in advice, msg
    for key in absent:
        assert key not in advice, msg
    assert "generate.samples_per_label" in advice
    assert "prompt_family" not in msg  # completion prompts: the family is not to blame


def test_advice_is_ordered_by_frequency_and_only_for_the_empty_labels() -> None:
    rejected = rows("a", truncated=2, too_long=5) + rows("b", near_copy=40)
    msg = no_sample_message(["a"], rejected, PATH)
    advice = advice_of(msg)
    assert advice.index("too_long: raise generate.max_words") < advice.index(
        "truncated: raise llm.max_tokens"
    ), msg
    assert "near_copy" not in advice  # label 'b' had samples accepted
    assert advice.index("llm.max_tokens") < advice.index("generate.samples_per_label")


def test_unknown_reasons_and_no_rejections_fall_back_to_the_budget() -> None:
    msg = no_sample_message(["a"], rows("a", something_new=3), PATH)
    assert "; raise generate.samples_per_label; see run/rejected.jsonl" in msg
    msg = no_sample_message(["b"], [], PATH)
    assert "'b' (rejected: no sample was generated); raise generate.samples_per_label" in msg


def test_every_reason_has_advice() -> None:
    from synalign.lar.filters import REASONS

    assert set(REASONS) == set(ADVICE)


def test_chat_base_model_advice_comes_first_without_repeating_itself() -> None:
    rejected = rows("a", prompt_echo=3, missing=2, truncated=1)
    msg = no_sample_message(["a"], rejected, PATH, "chat")
    assert msg.count('llm.prompt_family = "completion"') == 1, msg
    assert "prompt_echo: " not in msg and "missing: " not in msg
    assert "truncated: raise llm.max_tokens" in msg
    assert msg.index("llm.prompt_family") < msg.index("llm.max_tokens")
