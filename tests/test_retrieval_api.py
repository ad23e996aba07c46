"""The retrieval task from Python: pairs and a corpus in memory, the real bundled model,
a tiny budget; and the run summary a retrieval run prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synalign import SynAlign
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.cli.tables import summary_table
from synalign.errors import ConfigError, SynAlignError
from synalign.pipeline import STAGES


@pytest.fixture(scope="module")
def bbc_slice() -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """20 real BBC headline pairs and a 40-document corpus holding their articles."""
    from synalign.io.retrieval import load_retrieval_dataset

    ds = load_retrieval_dataset("bbc-headlines")
    pairs = list(ds.train)[:20]
    index = ds.corpus.index()
    ids = [p.label for p in pairs]
    ids += [i for i in ds.corpus.ids if i not in set(ids)][:20]
    corpus = [{"doc": i, "body": ds.corpus.texts[index[i]]} for i in ids]
    frame = pd.DataFrame({"headline": [p.text for p in pairs], "article": ids[:20]})
    return frame, corpus


def _estimator(gemma: LlamaCppLLM, **kw: object) -> SynAlign:
    return SynAlign(
        llm=gemma,
        task="retrieval",
        shots=6,
        queries=8,
        seed=1,
        settings={
            "explore": {"cluster_size": 2},
            "retrieval": {
                "id_column": "doc",
                "document_column": "body",
                "query_column": "headline",
                "doc_id_column": "article",
                "check": "none",
            },
        },
        **kw,
    )


def test_queries_for_a_corpus_in_memory(gemma: LlamaCppLLM, bbc_slice, tmp_path) -> None:
    frame, corpus = bbc_slice
    result = _estimator(gemma, run_dir=tmp_path / "run").generate(frame, corpus=corpus)
    texts = {r["doc"]: r["body"] for r in corpus}
    assert 0 < len(result.samples) <= 8
    assert len(result.samples) + len(result.rejected) == 8
    for row in result.samples:
        assert row["document"] == texts[row["doc_id"]]
        assert row["text"] and row["demo_ids"]
    assert np.isclose(result.weights.sum(), 1.0)
    pairs = result.to_pairs()
    assert [list(p) for p in pairs] == [["anchor", "positive", "weight"]] * len(pairs)
    assert [p["anchor"] for p in pairs] == [r["text"] for r in result.samples]
    assert [p["positive"] for p in pairs] == [r["document"] for r in result.samples]
    assert all("weight" not in p for p in result.to_pairs("aligned"))
    # the corpus was kept with the run: a second call skips every stage
    again = _estimator(gemma, run_dir=tmp_path / "run").generate(frame, corpus=corpus)
    assert again.skipped == list(STAGES)
    assert again.to_pairs() == pairs


def test_retrieval_mistakes_are_one_clear_error(gemma: LlamaCppLLM, bbc_slice) -> None:
    frame, corpus = bbc_slice
    with pytest.raises(ConfigError, match="needs the documents"):
        _estimator(gemma).generate(frame)
    bad = frame.copy()
    bad.loc[3, "article"] = "no-such-document"
    with pytest.raises(SynAlignError, match="real pairs row 3: doc_id 'no-such-document'"):
        _estimator(gemma).generate(bad, corpus=corpus)
    with pytest.raises(ConfigError, match="corpus= is for task='retrieval'"):
        SynAlign(llm=gemma).generate(frame, corpus=corpus)
    with pytest.raises(ConfigError, match="choose 'classification' or 'retrieval'"):
        SynAlign(llm=gemma, task="ranking").generate(frame)


def test_run_summary_names_pairs_and_queries() -> None:
    metrics = {"config": {"task": "retrieval"}, "real_records": 32, "labels": 32}
    names = [c for c in summary_table(metrics, 1.0).columns[0].cells]
    assert names[:2] == ["real pairs", "documents of the real pairs"]
    assert "queries accepted" in names and "accepted per label" not in names
    names = [c for c in summary_table({"config": {"task": "classification"}}, 1.0).columns[0].cells]
    assert names[:2] == ["real examples", "labels"] and "accepted per label" in names
