"""The retrieval task end to end with the real bundled model and embedder, tiny budgets,
on a slice of the bundled bbc-headlines corpus; and the pieces it is made of."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from browser import render
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.config import build_config
from synalign.io import read_jsonl
from synalign.lar.prompts.queries import (
    QueryChatPrompts,
    QueryCompletionPrompts,
    QuerySpec,
    measured_query_attributes,
    parse_query_attributes,
)
from synalign.lar.query_check import LikelihoodCheck, RoundTripCheck, gold_ranks
from synalign.lar.query_generator import copies
from synalign.pipeline.runner import Pipeline

SYNALIGN = str(Path(sys.executable).parent / "synalign")


@pytest.fixture(scope="module")
def slice_files(tmp_path_factory) -> dict[str, Path]:
    """60 real BBC documents as a corpus file, 24 of their headlines as training pairs
    and 8 as test pairs."""
    from synalign.io.retrieval import load_retrieval_dataset

    ds = load_retrieval_dataset("bbc-headlines")
    pairs = list(ds.train)[:32]
    ids = {p.label for p in pairs}
    index = ds.corpus.index()
    others = [i for i in ds.corpus.ids if i not in ids][:28]
    root = tmp_path_factory.mktemp("slice")
    files = {
        "corpus": root / "corpus.jsonl",
        "train": root / "train.jsonl",
        "test": root / "test.jsonl",
    }
    with files["corpus"].open("w") as f:
        for doc_id in [p.label for p in pairs] + others:
            f.write(json.dumps({"doc": doc_id, "body": ds.corpus.texts[index[doc_id]]}) + "\n")
    with files["train"].open("w") as f:
        for p in pairs[:24]:
            f.write(json.dumps({"headline": p.text, "article": p.label}) + "\n")
    with files["test"].open("w") as f:
        for p in pairs[24:]:
            f.write(json.dumps({"headline": p.text, "article": p.label}) + "\n")
    return files


def _config(tmp_path: Path, files: dict[str, Path], **retrieval: object):
    return build_config(
        {
            "name": "rt",
            "runs_dir": str(tmp_path),
            "seed": 3,
            "task": "retrieval",
            "data": {"path": str(files["train"]), "shots": 8},
            "explore": {"cluster_size": 2},
            "generate": {"samples_per_cluster": 3},
            "retrieval": {
                "corpus": str(files["corpus"]),
                "id_column": "doc",
                "document_column": "body",
                "query_column": "headline",
                "doc_id_column": "article",
                "query_name": "headline",
                "document_name": "article",
                "queries": 6,
                **retrieval,
            },
        }
    )


def test_pipeline_end_to_end_then_skip(tmp_path, slice_files, gemma: LlamaCppLLM) -> None:
    config = _config(tmp_path, slice_files, check="both")
    pipe = Pipeline(config, llm=gemma)
    embedded: list[str] = []
    embed = pipe.embed
    pipe.embed = lambda texts, what: (embedded.append(what), embed(texts, what))[1]  # type: ignore[method-assign]
    summary = pipe.run()
    assert embedded.count("corpus documents") == 1  # explore and the check share one pass
    run = config.run_dir
    demos = read_jsonl(run / "demos.jsonl")
    targets = [t for d in demos for t in d["targets"]]
    real = read_jsonl(run / "real.jsonl")
    assert len(real) == 8 and all(r["document"] for r in real)
    assert len(targets) == 6 and len(set(targets)) == 6
    assert not set(targets) & {r["label"] for r in real}  # real pairs' documents get none
    synthetic = read_jsonl(run / "synthetic.jsonl")
    rejected = read_jsonl(run / "rejected.jsonl")
    assert len(synthetic) + len(rejected) == 6
    for row in synthetic:
        assert row["doc_id"] in targets and row["document"] and row["text"]
        assert {"roundtrip_rank", "likelihood", "demo_ids", "attributes", "model", "seed"} <= set(
            row
        )
    state = json.loads((run / "state.json").read_text())
    check = state["stages"]["generate"]["query_check"]
    assert check["method"] == "both" and check["roundtrip_k"] >= 1
    for row in rejected:
        if row["reason"] == "not_specific":
            assert row["roundtrip_rank"] > check["roundtrip_k"] or (
                row["likelihood"] < check["likelihood_threshold"]
            )
    weights = np.load(run / "weights.npy")
    assert len(weights) == len(synthetic) and np.isclose(weights.sum(), 1.0)
    assert summary.metrics["aligned"] == len(synthetic)
    # the run's report shows each query beside its document and any rejected one's scores
    assert summary.report == run / "report" / "report.html"
    page = summary.report.read_text()
    assert "<h2>Counts</h2>" in page and "<th>document</th>" in page
    assert all(html.escape(r["text"]) in page for r in synthetic + rejected if r["text"])
    assert all(html.escape(r["document"][:200]) in page for r in synthetic)
    again = Pipeline(config, llm=gemma).run()
    assert again.skipped == ["ingest", "explore", "describe", "generate", "align", "report"]

    out = tmp_path / "pairs.jsonl"
    done = subprocess.run(
        [SYNALIGN, "export", str(run), str(out), "--which", "synthetic", "--pairs"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(out)
    assert [list(r) for r in rows] == [["anchor", "positive", "weight"]] * len(synthetic)
    assert rows[0]["anchor"] == synthetic[0]["text"]
    assert rows[0]["positive"] == synthetic[0]["document"]
    # its data card counts queries and distinct documents, and each rejection reason
    card = (tmp_path / "README.md").read_text()
    assert f"data card: {tmp_path / 'README.md'}" in done.stdout
    docs = len({r["positive"] for r in rows})
    assert f"**Queries**: {len(rows)}; **distinct documents**: {docs}" in card
    for reason, n in Counter(r["reason"] for r in rejected).items():
        assert f"| `{reason}` | {n} |" in card
    assert "| seed | 3 |" in card and "8 real (query, document) pairs" in card


def test_pair_with_unknown_document_is_one_line_error(tmp_path, slice_files) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"headline": "A headline here", "article": "nope/999"}) + "\n")
    config = tmp_path / "c.toml"
    config.write_text(
        f'task = "retrieval"\n[data]\npath = "{bad}"\n[retrieval]\ncorpus = '
        f'"{slice_files["corpus"]}"\nid_column = "doc"\ndocument_column = "body"\n'
        'query_column = "headline"\ndoc_id_column = "article"\n'
    )
    done = subprocess.run(
        [SYNALIGN, "run", str(config), "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nope/999" in lines[0] and "bad.jsonl" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_completion_prompt_shows_pairs_then_the_target() -> None:
    spec = QuerySpec("headline", "article", document_words=5)
    pairs = [("one two three four five six seven", "First headline")]
    prompt = QueryCompletionPrompts().query(spec, pairs, {"form": "short"}, "alpha beta gamma")
    text = prompt.text or ""
    assert text.endswith("Article: alpha beta gamma\nHeadline:")
    assert "Article: one two three four five ...\nHeadline: First headline" in text
    assert "form: short" in text.split("\n")[0]
    parsed = QueryCompletionPrompts().parse_query(' "Bank raises rates"\nArticle: x', "stop")
    assert parsed.text == "Bank raises rates" and not parsed.truncated
    assert QueryChatPrompts().parse_query("Headline: Bank raises rates").text == "Bank raises rates"


def test_attributes_parse_and_measure() -> None:
    attrs = parse_query_attributes(" short title; specificity: names one firm; wording: new; x: y")
    assert attrs == {"form": "short title", "specificity": "names one firm", "wording": "new"}
    measured = measured_query_attributes([("the bank raised rates today", "bank raises rates")])
    assert measured["length"] == "about 3 words"
    assert measured["reuse"].startswith("about 67%")
    assert copies("the bank raised rates today again", "so the bank raised rates today again.")
    assert not copies("bank raises rates", "the bank raised rates")


def test_gold_ranks_are_pessimistic_and_roundtrip_k_follows_real_ranks() -> None:
    D = np.eye(4, dtype=np.float32)
    Q = np.asarray([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.2, 0.9, 0]], dtype=np.float32)
    assert gold_ranks(Q, D, [0, 1, 1]).tolist() == [1, 2, 2]  # a tie ranks the gold second
    check = RoundTripCheck(quantile=0.5).fit(Q, [0, 1, 1], D)
    assert check.k_ == 2
    assert check.keep(np.asarray([1, 2, 3])).tolist() == [True, True, False]
    assert RoundTripCheck(k=1).fit(Q, [0, 1, 1], D).k_ == 1


class _Scorer:
    """Scores a query by its word overlap with the document (a stand-in is enough to test
    the threshold logic; the real model is used end to end above)."""

    scores_continuations = True

    def continuation_logprobs(
        self, prefix: str, query: str, continuations: list[str]
    ) -> list[float]:
        doc = set(query.lower().split())
        words = continuations[0].lower().split()
        return [float(sum(w in doc for w in words) - len(words))]


def test_likelihood_check_threshold_from_real_pairs_or_share() -> None:
    real = [("a b c d", "a b"), ("a b c d", "a x"), ("a b c d", "x y")]
    check = LikelihoodCheck(_Scorer(), quantile=0.5).fit(real)
    scores = check.score([("a b c", "a b"), ("a b c", "y z")])
    assert check.keep(scores).tolist() == [True, False]
    share = LikelihoodCheck(_Scorer(), keep_share=0.5)
    assert share.keep(np.asarray([0.1, -2.0, 0.5, -1.0])).tolist() == [True, False, True, False]


def test_evaluate_retrieval_end_to_end_then_resume(tmp_path, slice_files) -> None:
    """`synalign evaluate --task retrieval` on user files, as a user types it: every row is
    scored, metrics.json names rows and metrics, and a second run repeats no LLM call."""
    cmd = [
        SYNALIGN, "evaluate", "--task", "retrieval",
        "--corpus", str(slice_files["corpus"]), "--id-column", "doc", "--text-column", "body",
        "--train", str(slice_files["train"]), "--test", str(slice_files["test"]),
        "--query-column", "headline", "--doc-id-column", "article",
        "--shots", "8", "--seeds", "1", "--queries", "4",
        "--methods", "zero-shot,bm25,naive,synalign,likelihood-check",
        "--runs-dir", str(tmp_path), "--name", "ev",
    ]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    metrics = json.loads((tmp_path / "ev" / "report" / "metrics.json").read_text())
    rows = metrics["methods"]
    assert list(rows) == ["zero-shot", "bm25", "real", "naive", "synalign", "likelihood-check"]
    for row in rows.values():
        for metric in ("mrr@10", "ndcg@10", "recall@1", "recall@10"):
            stat = row[metric]
            assert set(stat) >= {"mean", "sd", "per_seed"} and 0.0 <= stat["mean"] <= 1.0
        assert row["recall@1"]["mean"] <= row["recall@10"]["mean"]
    assert rows["naive"]["kept"]["mean"] >= 1
    assert "mrr@10" in metrics["paired"]["real"]["synalign"]
    seed = json.loads((tmp_path / "ev" / "results" / "seed-0.json").read_text())
    assert seed["methods"]["likelihood-check"]["check"]["method"] == "likelihood"
    page = tmp_path / "ev" / "report" / "report.html"
    shown = render(page, tmp_path)  # as a person's browser shows it, offline
    assert shown.errors == ""
    assert len(shown.images) == page.read_text().count("<img ") >= 1  # the query lengths
    assert all(w > 300 and h > 200 for w, h in shown.images), shown.images
    body = shown.dom[shown.dom.index("<body") :]
    first = re.search(r"<p>(.*?)</p>", body, re.S)
    assert first, body[:2000]  # the answer opens the page; one seed gives no interval
    assert "<code>synalign</code> was not separated from <code>real</code> on MRR@10: " in (
        first.group(1)
    )
    assert "(on 1 seed, too few for an interval)" in first.group(1)
    assert "<code>likelihood-check</code> minus <code>naive</code> = " in first.group(1)
    assert body.count("<table") >= 3 and "Paired difference to" in body
    assert shown.screenshot.std() > 10  # drawn, not blank
    second = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "LLM calls made: 0" in second.stdout
    again = json.loads((tmp_path / "ev" / "report" / "metrics.json").read_text())
    assert again["methods"] == metrics["methods"]
    # A later invocation adds its rows and seeds to the report; other settings start over.
    more = [*cmd[: cmd.index("--seeds")], "--seeds", "2", "--queries", "4", "--methods", "bm25"]
    more += cmd[cmd.index("--runs-dir") :]
    assert subprocess.run(more, capture_output=True, text=True).returncode == 0
    merged = json.loads((tmp_path / "ev" / "report" / "metrics.json").read_text())["methods"]
    assert list(merged) == list(rows) and merged["synalign"] == rows["synalign"]
    assert merged["bm25"]["seeds"] == merged["real"]["seeds"] == [0, 1]
    other = [*more[: more.index("--seeds")], "--seeds", "1", "--queries", "3", *more[-6:]]
    assert subprocess.run(other, capture_output=True, text=True).returncode == 0
    alone = json.loads((tmp_path / "ev" / "report" / "metrics.json").read_text())["methods"]
    assert list(alone) == ["bm25", "real"] and alone["bm25"]["seeds"] == [0]
