"""End to end: all three stages with the real bundled model and embedder, tiny budget."""

import hashlib
import json
import re

import numpy as np
import pytest

from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.config import build_config
from synalign.errors import SynAlignError
from synalign.io import read_jsonl
from synalign.pipeline.runner import Pipeline


def _config(tmp_path, **generate):
    return build_config(
        {
            "name": "tiny",
            "runs_dir": str(tmp_path),
            "seed": 1,
            "data": {"dataset": "rotten-tomatoes", "shots": 6},
            "explore": {"cluster_size": 2},
            "generate": {"samples_per_label": 6, "samples_per_cluster": 3, **generate},
        }
    )


def test_end_to_end_then_skip_then_resume(tmp_path, gemma: LlamaCppLLM) -> None:
    config = _config(tmp_path)
    pipe = Pipeline(config, llm=gemma)
    summary = pipe.run()
    run = config.run_dir
    for name in (
        "config.toml",
        "real.jsonl",
        "demos.jsonl",
        "attributes.jsonl",
        "synthetic.jsonl",
        "rejected.jsonl",
        "aligned.jsonl",
        "weights.npy",
        "report/metrics.json",
    ):
        assert (run / name).exists(), name
    m = summary.metrics
    assert m["real_records"] == 12 and m["labels"] == 2 and m["clusters"] == 4
    assert m["generated"] == 12
    assert m["accepted"] + sum(m["rejected"].values()) == 12
    demos = read_jsonl(run / "demos.jsonl")
    assert all(len(d["demo_ids"]) == 2 for d in demos)
    synthetic = read_jsonl(run / "synthetic.jsonl")
    assert synthetic and all(s["model"] == "gemma-3-270m-q4_k_m.gguf" for s in synthetic)
    # the exact model file, by sha256, in every sample, the stage record and the metrics
    digest = hashlib.sha256(gemma.model_path.read_bytes()).hexdigest()
    assert all(s["model_sha256"] == digest for s in synthetic)
    assert m["model"] == "gemma-3-270m-q4_k_m.gguf" and m["model_sha256"] == digest
    assert all(s["demo_ids"] and "sampling" in s and s["seed"] == 1 for s in synthetic)
    real_ids = {r["id"] for r in read_jsonl(run / "real.jsonl")}
    assert all(set(s["demo_ids"]) <= real_ids for s in synthetic)
    weights = np.load(run / "weights.npy", allow_pickle=False)
    assert weights.shape == (len(synthetic),) and (weights >= 0).all()
    for label in ("fresh", "rotten"):
        w = sum(wt for wt, s in zip(weights, synthetic, strict=True) if s["label"] == label)
        assert w == pytest.approx(1.0)
        assert m["mmd2_after"][label] <= m["mmd2_before"][label] + 1e-12
    aligned = read_jsonl(run / "aligned.jsonl")
    assert len(aligned) == len(synthetic) and all("weight" in a for a in aligned)

    # exports in the formats the ecosystem reads
    from typer.testing import CliRunner

    from synalign.cli.app import app
    from synalign.io import read_records

    runner = CliRunner()
    for target in ("out.parquet", "out_hf"):
        res = runner.invoke(app, ["export", str(run), str(tmp_path / target)])
        assert res.exit_code == 0, res.output
        back = read_records(tmp_path / target).records
        assert [r.text for r in back] == [a["text"] for a in aligned]
    res = runner.invoke(app, ["export", str(run), str(tmp_path / "w.csv"), "--which", "synthetic"])
    assert res.exit_code == 0, res.output
    back = read_records(tmp_path / "w.csv").records
    assert [float(r.meta["weight"]) for r in back] == pytest.approx(weights.tolist())
    _check_data_cards(run, tmp_path, runner, app, m["mmd2_after"])

    # unchanged config and inputs: every stage is skipped and the model is not called
    again = Pipeline(config, llm=gemma)
    assert again.run().skipped == ["ingest", "explore", "describe", "generate", "align", "report"]
    assert again._llm is None

    # a lost stage output re-runs that stage from the response cache: no new LLM call
    before = (run / "synthetic.jsonl").read_text()
    (run / "synthetic.jsonl").unlink()
    resumed = Pipeline(config, llm=gemma)
    resumed.run()
    usage = json.loads((run / "state.json").read_text())["stages"]["generate"]["llm"]
    assert usage["calls"] == 0 and usage["cache_hits"] == 12
    assert (run / "synthetic.jsonl").read_text() == before

    # a changed generation setting invalidates the stages after exploration only
    changed = _config(tmp_path, attributes=False)
    skipped = Pipeline(changed, llm=gemma).run().skipped
    assert skipped == ["ingest", "explore"]
    assert all(not a["attributes"] for a in read_jsonl(run / "attributes.jsonl"))


def _check_data_cards(run, tmp_path, runner, app, labels) -> None:
    """Every export has a data card whose figures are the exported file's and the run's; a
    README.md synalign did not write is never replaced."""
    from collections import Counter

    import datasets
    import yaml

    from synalign.io import read_records

    rejected = Counter(r["reason"] for r in read_jsonl(run / "rejected.jsonl"))
    align = json.loads((run / "align.json").read_text())
    cards = {  # README.md beside out.parquet; w.csv's own, as README.md describes out.parquet
        "out.parquet": tmp_path / "README.md",
        "out_hf": tmp_path / "out_hf" / "README.md",
        "w.csv": tmp_path / "w.csv.README.md",
    }
    for target, path in cards.items():
        card = path.read_text()
        exported = read_records(tmp_path / target).records
        assert re.search(rf"\*\*Rows\*\*: {len(exported)}\b", card), target
        per_label = Counter(r.label for r in exported)
        assert set(per_label) == set(labels)
        for label, n in per_label.items():
            assert f"| {label} | {n} | 6 |" in card  # exported rows, real records
        total = f"{len(read_jsonl(run / 'synthetic.jsonl')) + rejected.total()} samples"
        assert f"{total} were generated: " in card
        for reason, n in rejected.items():
            assert f"| `{reason}` | {n} |" in card
        weights = card.split("## Weights")[1].split("\n## ")[0]
        for label, ess in align["ess"].items():
            row = next(ln for ln in weights.splitlines() if ln.startswith(f"| {label} |"))
            assert f"| {ess:.2f} |" in row
        assert "`gemma-3-270m-q4_k_m.gguf`" in card and "| seed | 1 |" in card
        assert re.search(r"sha256 `[0-9a-f]{64}`", card), target
        assert "`rotten-tomatoes`" in card and "12 real records" in card
    hf_card = cards["out_hf"].read_text()
    assert hf_card.startswith("---\n")
    meta = yaml.safe_load(hf_card.split("---\n")[1])
    assert meta["tags"] == ["synthetic", "synalign"] and meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-classification"] and meta["language"] == ["en"]
    assert datasets.load_from_disk(str(tmp_path / "out_hf")).info.description == hf_card
    # a folder with a README.md of its own keeps it; the card goes beside, named by the file
    own = tmp_path / "project"
    own.mkdir()
    (own / "README.md").write_text("# my project\n")
    res = runner.invoke(app, ["export", str(run), str(own / "a.jsonl")])
    assert res.exit_code == 0, res.output
    assert (own / "README.md").read_text() == "# my project\n"
    assert f"data card: {own / 'a.jsonl.README.md'}" in res.output
    assert (own / "a.jsonl.README.md").read_text().startswith("<!-- synalign data card: a.jsonl")


def test_same_seed_same_outputs(tmp_path, gemma: LlamaCppLLM) -> None:
    a = _config(tmp_path / "a")
    b = _config(tmp_path / "b")
    Pipeline(a, llm=gemma).run()
    Pipeline(b, llm=gemma).run()
    for name in ("demos.jsonl", "synthetic.jsonl", "aligned.jsonl"):
        assert (a.run_dir / name).read_text() == (b.run_dir / name).read_text()


def test_nothing_accepted_names_the_label(tmp_path, gemma: LlamaCppLLM) -> None:
    config = _config(tmp_path, min_words=500, max_words=1000)
    with pytest.raises(SynAlignError, match="no synthetic sample was accepted for label"):
        Pipeline(config, llm=gemma).run()
    rejected = read_jsonl(config.run_dir / "rejected.jsonl")
    assert rejected and {r["reason"] for r in rejected} == {"too_short"}


def test_user_file_with_custom_columns(tmp_path, gemma: LlamaCppLLM) -> None:
    from synalign.io.corpora import load_split

    rows = load_split("bbc-news", "train")
    picked = [r for label in ("sport", "tech") for r in [x for x in rows if x.label == label][:5]]
    src = tmp_path / "news.jsonl"
    src.write_text("".join(json.dumps({"body": r.text, "topic": r.label}) + "\n" for r in picked))
    config = build_config(
        {
            "name": "news",
            "runs_dir": str(tmp_path),
            "data": {
                "path": str(src),
                "text_column": "body",
                "label_column": "topic",
                "item_name": "news article",
            },
            "explore": {"cluster_size": 2},
            "generate": {"samples_per_label": 4, "samples_per_cluster": 4},
        }
    )
    summary = Pipeline(config, llm=gemma).run()
    assert summary.metrics["real_records"] == 10 and summary.metrics["generated"] == 8
    synthetic = read_jsonl(config.run_dir / "synthetic.jsonl")
    assert all(s["prompt_family"] == "completion" for s in synthetic)
    real = read_jsonl(config.run_dir / "real.jsonl")
    assert {r["label"] for r in real} == {"sport", "tech"}


def test_chat_family_with_instruction_model(smollm_path: str) -> None:
    from synalign.lar.filters import SampleFilter
    from synalign.lar.generator import Cluster, LatentAttributeGenerator
    from synalign.lar.prompts import ChatPrompts, TaskSpec

    llm = LlamaCppLLM(smollm_path, n_ctx=2048)
    assert llm.has_chat_template
    texts = (
        "Arsenal beat Chelsea 2-1 with a late goal at the Emirates on Sunday.",
        "Injured captain misses the final as United are held to a draw.",
    )
    cluster = Cluster(0, "sport", ("a", "b"), texts)
    gen = LatentAttributeGenerator(
        llm,
        ChatPrompts(),
        TaskSpec("news headline", {"sport": "sport"}),
        samples_per_cluster=3,
        sample_filter=SampleFilter(min_words=2).fit(texts),
    )
    gen.sampling = gen.sampling.__class__(max_tokens=120)
    attributes = gen.describe([cluster])
    assert attributes[0]["raw"] and attributes[0]["attributes"]["length"] == "about 12 words"
    accepted, rejected = gen.generate([cluster], attributes)
    rows = accepted + rejected
    assert rows and all(r["prompt_family"] == "chat" for r in rows)
    assert sum(gen.counts_.values()) == len(rows)


def test_second_run_on_same_directory_refuses(tmp_path) -> None:
    from synalign.pipeline.run_dir import run_lock

    config = _config(tmp_path)
    config.run_dir.mkdir(parents=True)
    with run_lock(config.run_dir), pytest.raises(SynAlignError, match="in use by another"):
        Pipeline(config).run()
    assert not (config.run_dir / "real.jsonl").exists()


def test_label_check_moves_contradicted_samples_to_rejected(tmp_path, gemma: LlamaCppLLM) -> None:
    checked = _config(tmp_path, label_check="classifier")
    Pipeline(checked, llm=gemma).run(until="generate")
    run = checked.run_dir
    kept = read_jsonl(run / "synthetic.jsonl")
    mismatched = [r for r in read_jsonl(run / "rejected.jsonl") if r["reason"] == "label_mismatch"]
    state = json.loads((run / "state.json").read_text())["stages"]["generate"]
    assert state["rejected"].get("label_mismatch", 0) == len(mismatched)
    assert state["label_check"]["method"] == "classifier"
    assert all(0.0 <= r["label_score"] < 1.0 for r in mismatched)
    # the threshold was chosen from the real texts' own out-of-fold scores
    threshold = state["label_check"]["threshold"]
    assert state["label_check"]["quantile"] == 0.1 and 0.0 < threshold <= 1.0
    assert all(r["label_score"] < threshold for r in mismatched)

    # The same answers (from the response cache) without the check: the check's rejections
    # are exactly the samples it adds back.
    plain = _config(tmp_path, label_check="none")
    Pipeline(plain, llm=gemma).run(until="generate")
    stages = json.loads((run / "state.json").read_text())["stages"]
    assert stages["generate"]["llm"]["calls"] == 0 and stages["describe"]["llm"]["calls"] == 0
    everything = read_jsonl(run / "synthetic.jsonl")
    assert not any(r["reason"] == "label_mismatch" for r in read_jsonl(run / "rejected.jsonl"))
    by_id = {r["id"]: r["text"] for r in everything}
    assert {r["id"] for r in kept} | {r["id"] for r in mismatched} == set(by_id)
    assert all(by_id[r["id"]] == r["text"] for r in kept + mismatched)
