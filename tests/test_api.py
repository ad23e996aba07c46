"""The Python API: the whole method from data in memory, with the real bundled model."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from synalign import SynAlign, SynAlignResult
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.errors import ConfigError
from synalign.io.corpora import load_split
from synalign.lar.prompts import CompletionPrompts
from synalign.pipeline import STAGES

TINY = {"explore": {"cluster_size": 2}, "generate": {"samples_per_cluster": 3}}


def _real_frame(per_label: int = 6) -> pd.DataFrame:
    """Real rotten-tomatoes reviews, a few per label, as a user's DataFrame."""
    rows = []
    for label in ("rotten", "fresh"):
        rows += [r for r in load_split("rotten-tomatoes", "train") if r.label == label][:per_label]
    return pd.DataFrame(
        {"review": [r.text for r in rows], "sentiment": [r.label for r in rows]},
        index=[f"r{i}" for i in range(len(rows))],
    )


def _estimator(gemma: LlamaCppLLM, **params: object) -> SynAlign:
    defaults: dict[str, object] = {
        "llm": gemma,
        "samples_per_label": 6,
        "seed": 2,
        "text_column": "review",
        "label_column": "sentiment",
        "settings": TINY,
    }
    return SynAlign(**{**defaults, **params})


def test_whole_method_from_a_dataframe(gemma: LlamaCppLLM) -> None:
    result = _estimator(gemma).generate(_real_frame())
    assert isinstance(result, SynAlignResult)
    assert result.run_dir is None  # no run_dir: the files were temporary
    assert result.report is None
    n = len(result.samples)
    assert n > 0 and result.weights.shape == (n,)
    assert {s["label"] for s in result.samples} <= {"rotten", "fresh"}
    # weights sum to 1 within each label, and every sample keeps its provenance
    for label in {s["label"] for s in result.samples}:
        rows = [i for i, s in enumerate(result.samples) if s["label"] == label]
        assert result.weights[rows].sum() == pytest.approx(1.0)
    assert all(s["demo_ids"] and s["seed"] == 2 for s in result.samples)
    assert result.summary["accepted"] == n
    frame = result.to_pandas()
    assert list(frame["text"]) == [s["text"] for s in result.samples]
    assert np.allclose(frame["weight"].to_numpy(), result.weights)
    records = result.to_records("aligned")
    assert len(records) == len(result.aligned) and all("weight" in r for r in records)
    dataset = result.to_hf()
    assert dataset.num_rows == n and "weight" in dataset.column_names
    assert dataset["text"] == list(frame["text"])
    # the data card travels with the dataset, as it does beside an exported file
    card = dataset.info.description
    assert card == result.data_card() and f"**Rows**: {n}\n" in card
    assert "| seed | 2 |" in card and f"`{gemma.model}`" in card
    rejected = sum(result.summary["rejected"].values())
    assert f"{n + rejected} samples were generated: {n} accepted" in card
    assert "(aligned set)" in result.to_hf("aligned").info.description


def test_run_dir_makes_it_resumable_and_inputs_of_every_kind_agree(
    gemma: LlamaCppLLM, tmp_path
) -> None:
    frame = _real_frame()
    first = _estimator(gemma, run_dir=tmp_path / "run").generate(frame)
    assert first.run_dir == tmp_path / "run"
    assert first.report == tmp_path / "run" / "report" / "report.html"
    assert first.report.is_file() and "<h2>Accepted samples</h2>" in first.report.read_text()
    # a list of dicts and a Hugging Face Dataset of the same rows: same run, nothing redone
    from datasets import Dataset

    assert first.skipped == []
    for data in (frame.to_dict(orient="records"), Dataset.from_pandas(frame, preserve_index=False)):
        again = _estimator(gemma, run_dir=tmp_path / "run").generate(data)
        assert again.skipped == list(STAGES)  # every stage up to date: no LLM call repeated
        assert again.samples == first.samples
        assert np.array_equal(again.weights, first.weights)


def test_clone_and_params_follow_scikit_learn(gemma: LlamaCppLLM) -> None:
    est = _estimator(gemma, shots=4)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    copy.set_params(samples_per_label=3)
    assert copy.samples_per_label == 3 and est.samples_per_label == 6
    assert copy.config("/tmp/x/run").generate.samples_per_label == 3
    # the LLM is given as a GGUF path or an endpoint, too
    assert SynAlign(llm="/m/x.gguf").config("r/a").llm.model_path == "/m/x.gguf"
    served = SynAlign(llm="http://127.0.0.1:9/v1", model="m").config("r/a").llm
    assert (served.backend, served.base_url, served.model) == (
        "openai",
        "http://127.0.0.1:9/v1",
        "m",
    )


class CountingPrompts(CompletionPrompts):
    """A user's own prompt family: the completion prompts, counting what they write."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def samples(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        self.written += 1
        return super().samples(*args, **kwargs)


def test_own_prompt_family(gemma: LlamaCppLLM) -> None:
    prompts = CountingPrompts()
    result = _estimator(gemma, prompts=prompts, seed=5).generate(_real_frame())
    assert prompts.written > 0
    assert result.samples


def test_bad_data_is_one_clear_error(gemma: LlamaCppLLM) -> None:
    with pytest.raises(ConfigError, match="list of dicts, a pandas DataFrame"):
        _estimator(gemma).generate("reviews.csv")
    with pytest.raises(Exception, match="review"):
        _estimator(gemma).generate(pd.DataFrame({"text": ["a"], "label": ["b"]}))


def test_import_leaves_the_environment_alone() -> None:
    code = (
        "import os, synalign\n"
        "from synalign import SynAlign, Pipeline, MMDAligner\n"
        "from synalign.backends.embed.embedders import SentenceTransformerEmbedder\n"
        "SentenceTransformerEmbedder().encode(['a text'])\n"
        "print([os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE',"
        " 'HF_DATASETS_OFFLINE')])\n"
        "import huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)\n"
    )
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[None, None, None]"
    assert out[1] == "False"
    # a user's own setting holds
    env["HF_HUB_OFFLINE"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "['0', None, None]"


def test_settings_and_llm_mistakes_are_config_errors() -> None:
    assert SynAlign(settings={"executor": "local", "seed": 5}).config("r/a").executor == "local"
    with pytest.raises(ConfigError, match="lacks backend, model, has_chat_template, stream"):
        SynAlign(llm=object()).config("r/a")
    with pytest.raises(ConfigError):
        SynAlign(settings={"generate": {"samples_per_lable": 3}}).config("r/a")
