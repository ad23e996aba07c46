"""Retrieval metrics, the BM25 baseline, the weighted in-batch-negatives loss and a small
real fine-tune of the bundled MiniLM."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from synalign.evaluation.retrieval_models import (
    BM25Ranker,
    FineTuneSettings,
    encode,
    fine_tune_biencoder,
    load_base,
    metrics_from_ranks,
    no_duplicate_batches,
    ranks_from_scores,
    retrieval_metrics,
    weighted_mnrl,
)
from synalign.io.corpora import load_corpus


@pytest.fixture(scope="module")
def bbc_pairs() -> tuple[list[str], list[str]]:
    """(headline, body) pairs from the bundled BBC corpus, bodies cut to 40 words."""
    queries, docs = [], []
    for record in load_corpus("bbc-news")[:200:12]:
        headline, _, body = record.text.partition(". ")
        queries.append(headline)
        docs.append(" ".join(body.split()[:40]))
    return queries, docs


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One thread: two threads stall for seconds per step when other processes hold a core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_model() -> Any:
    return load_base(max_seq_length=64)


def _scores_with_gold_at(rank: int, n_docs: int = 12) -> np.ndarray:
    """A row whose gold document (index 0, score 0.5) has `rank - 1` documents above it."""
    row = np.full(n_docs, 0.1)
    row[0] = 0.5
    row[1:rank] = 0.9
    return row


def test_metrics_for_gold_ranked_first_third_and_eleventh() -> None:
    S = np.stack([_scores_with_gold_at(r) for r in (1, 3, 11)])
    ranks = ranks_from_scores(S, [0, 0, 0])
    assert ranks.tolist() == [1, 3, 11]
    m = metrics_from_ranks(ranks)
    assert set(m) == {"recall@1", "recall@10", "mrr@10", "ndcg@10"}
    np.testing.assert_allclose(m["recall@1"], [1, 0, 0])
    np.testing.assert_allclose(m["recall@10"], [1, 1, 0])
    np.testing.assert_allclose(m["mrr@10"], [1, 1 / 3, 0])
    np.testing.assert_allclose(m["ndcg@10"], [1, 1 / math.log2(4), 0])


def test_ties_and_nan_count_against_the_gold_document() -> None:
    S = np.array([[0.5, 0.5, 0.1], [0.0, 0.0, 0.0], [np.nan, 0.2, 0.1]])
    assert ranks_from_scores(S, [0, 2, 0]).tolist() == [2, 3, 3]


def test_dense_metrics_match_ranks_and_do_not_depend_on_the_chunk() -> None:
    rng = np.random.default_rng(0)
    D = rng.normal(size=(50, 8)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Q = D[[3, 7, 20]] + 0.05 * rng.normal(size=(3, 8)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    gold = [3, 7, 21]
    whole = retrieval_metrics(Q, D, gold)
    expected = metrics_from_ranks(ranks_from_scores(Q @ D.T, gold))
    for key, values in retrieval_metrics(Q, D, gold, chunk=1).items():
        np.testing.assert_array_equal(values, whole[key])
        np.testing.assert_array_equal(values, expected[key])
    assert whole["recall@1"][:2].tolist() == [1.0, 1.0]


def test_bm25_ranks_the_document_with_the_query_keyword_first(
    bbc_pairs: tuple[list[str], list[str]],
) -> None:
    _, docs = bbc_pairs
    ranker = BM25Ranker().fit([*docs, ""])
    others = " ".join(docs[:5] + docs[6:]).lower()
    keyword = next(
        w for w in docs[5].lower().split() if w.isalpha() and len(w) > 4 and w not in others
    )
    S = ranker.scores([f"what about {keyword}", "the and of"])
    assert S.shape == (2, len(docs) + 1) and S.dtype == np.float32
    assert int(S[0].argmax()) == 5
    ranks = ranker.ranks([f"what about {keyword}", "the and of"], [5, 5])
    assert ranks.tolist() == [1, len(docs) + 1]  # stopwords only: all tie, gold ranks last
    assert ranker.metrics([keyword], [5])["mrr@10"].tolist() == [1.0]


def test_batches_hold_no_repeated_text_and_follow_the_seed() -> None:
    anchors = [f"query {i}" for i in range(40)]
    positives = [f"doc {i % 10}" for i in range(40)]  # four queries per document
    batches = no_duplicate_batches(anchors, positives, 8, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(40))
    for batch in batches:
        assert len({positives[i] for i in batch}) == len(batch) <= 8
    assert batches == no_duplicate_batches(anchors, positives, 8, seed=3)
    assert batches != no_duplicate_batches(anchors, positives, 8, seed=4)


def test_weighted_loss_equals_the_library_loss_with_equal_weights(
    base_model: Any, bbc_pairs: tuple[list[str], list[str]]
) -> None:
    import torch

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    queries, docs = bbc_pairs
    library = MultipleNegativesRankingLoss(base_model, scale=20.0)
    prepare = getattr(base_model, "preprocess", None) or base_model.tokenize
    base_model.eval()
    with torch.no_grad():
        expected = library([prepare(queries[:8]), prepare(docs[:8])], None)
        q = base_model(prepare(queries[:8]))["sentence_embedding"]
        d = base_model(prepare(docs[:8]))["sentence_embedding"]
    assert torch.equal(weighted_mnrl(q, d), expected)
    assert torch.equal(weighted_mnrl(q, d, torch.ones(8)), expected)
    # One anchor's term alone, doubled: twice its cross-entropy over the batch size.
    w = torch.zeros(8)
    w[2] = 2.0
    term = torch.nn.functional.cross_entropy(
        20.0 * torch.nn.functional.normalize(q[2:3]) @ torch.nn.functional.normalize(d).T,
        torch.tensor([2]),
    )
    torch.testing.assert_close(weighted_mnrl(q, d, w), 2.0 * term / 8)


def test_settings_state_the_hyperparameters() -> None:
    s = FineTuneSettings(lr=1e-4)
    assert s.as_dict()["lr"] == 1e-4 and s.as_dict()["loss"] == "MultipleNegativesRankingLoss"
    with pytest.raises(ValueError, match="either settings"):
        fine_tune_biencoder(["a"], ["b"], settings=s, lr=3e-5)
    with pytest.raises(ValueError, match="weights"):
        fine_tune_biencoder(["a", "b"], ["c", "d"], np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="two pairs"):  # one document: no negatives
        fine_tune_biencoder(["a", "b"], ["c", "c"])
    with pytest.raises(ValueError, match="warmup_share"):
        FineTuneSettings(warmup_share=1.0)


def test_fine_tune_is_deterministic_and_changes_the_model(
    base_model: Any, bbc_pairs: tuple[list[str], list[str]]
) -> None:
    queries, docs = bbc_pairs
    assert len(queries) >= 16
    settings = FineTuneSettings(batch_size=8, lr=1e-4, max_seq_length=64)
    weights = np.linspace(0.5, 1.5, 16)
    steps: list[tuple[int, int]] = []
    first = fine_tune_biencoder(
        queries[:16],
        docs[:16],
        weights,
        seed=1,
        settings=settings,
        progress=lambda s, t: steps.append((s, t)),
    )
    second = fine_tune_biencoder(queries[:16], docs[:16], weights, seed=1, settings=settings)
    assert steps == [(1, 2), (2, 2)]
    probe = queries[:4] + docs[:4]
    a, b = encode(first, probe), encode(second, probe)
    assert a.dtype == np.float32 and a.shape == (8, 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    before = encode(base_model, probe)
    assert np.abs(a - before).max() > 1e-4
    np.testing.assert_array_equal(before, encode(load_base(max_seq_length=64), probe))
    assert encode(first, []).shape == (0, 384)


def test_a_kept_row_is_reused_only_with_the_settings_it_was_made_with() -> None:
    """An interrupted evaluation resumes from its finished rows; a row made with other
    fine-tuning settings, another check threshold or budget is computed again."""
    from synalign.evaluation.retrieval_runner import RetrievalEvaluation
    from synalign.evaluation.retrieval_settings import RetrievalEvalConfig

    def keys(**kw: Any) -> dict[str, str]:
        config = RetrievalEvalConfig(dataset="bbc-headlines", **kw)
        evaluation = RetrievalEvaluation(config)
        evaluation.settings = FineTuneSettings(**config.fine_tune)
        return {n: evaluation._row_key(n, 0) for n in ("zero-shot", "real", "naive", "synalign")}

    base = keys()
    assert base == keys() and len(set(base.values())) == 4
    stricter = keys(overrides=["retrieval.check_quantile=0.3"])
    assert stricter["synalign"] != base["synalign"]
    assert stricter["zero-shot"] == base["zero-shot"] and stricter["real"] == base["real"]
    assert stricter["naive"] == base["naive"]  # no check, equal weights
    longer = keys(fine_tune={"steps": 48})
    assert longer["real"] != base["real"] and longer["synalign"] != base["synalign"]
    assert longer["zero-shot"] == base["zero-shot"]
    assert keys(queries=64)["synalign"] != base["synalign"]
