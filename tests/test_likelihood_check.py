"""The LLM's own label check, with the real bundled model and a real corpus."""

from __future__ import annotations

import random

import numpy as np
import pytest

from synalign.backends.llm.base import can_score
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.backends.llm.openai_compat import OpenAICompatibleLLM
from synalign.errors import ConfigError
from synalign.io.corpora import load_split
from synalign.lar.label_check.likelihood import (
    DEFAULT_THRESHOLDS,
    LikelihoodLabelFilter,
    resolve_label_check,
)

PREFIX = "Text: a gorgeous, moving film\nLabel: fresh\n\nText: dull and lifeless\nLabel: rotten\n\n"


def test_continuation_logprobs_are_log_probabilities(gemma: LlamaCppLLM) -> None:
    query = "Text: a triumph of acting\nLabel:"
    one, two, longer = gemma.continuation_logprobs(
        PREFIX, query, [" fresh", " rotten", " fresh and"]
    )
    assert one < 0.0 and two < 0.0
    # log p(a b) = log p(a) + log p(b | a) <= log p(a)
    assert longer < one
    # A query under another prefix, then the first again: the same numbers (the shared
    # prefix in the context is replaced, not mixed).
    gemma.continuation_logprobs("Label: x\n\n", query, [" fresh"])
    assert gemma.continuation_logprobs(PREFIX, query, [" fresh", " rotten"]) == [one, two]
    with pytest.raises(ValueError, match="at least one token"):
        gemma.continuation_logprobs(PREFIX, query, [""])


def test_scores_are_cached(tmp_path, gemma: LlamaCppLLM) -> None:
    cached = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))
    query = "Text: boring, a waste of time\nLabel:"
    first = cached.continuation_logprobs(PREFIX, query, [" fresh", " rotten"])
    again = cached.continuation_logprobs(PREFIX, query, [" fresh", " rotten"])
    assert first == again == gemma.continuation_logprobs(PREFIX, query, [" fresh", " rotten"])
    assert cached.usage.scorings == 1 and cached.usage.scoring_cache_hits == 1
    assert cached.usage.calls == 0  # no sample was generated


def test_http_backend_cannot_score_so_auto_is_the_classifier() -> None:
    http = OpenAICompatibleLLM(model="m", base_url="http://127.0.0.1:9/v1")
    assert not can_score(http)
    assert resolve_label_check("auto", None, http) == (
        "classifier",
        DEFAULT_THRESHOLDS["classifier"],
    )
    assert resolve_label_check("auto", 0.5, LlamaCppLLM()) == ("combined", 0.5)
    assert resolve_label_check("auto", None, LlamaCppLLM()) == ("combined", 0.7)
    assert resolve_label_check("knn", None, LlamaCppLLM()) == ("knn", 0.9)
    with pytest.raises(ValueError, match="token"):
        LikelihoodLabelFilter(http).fit(["a", "b"], ["x", "y"])
    with pytest.raises(ConfigError, match="label_check = 'combined' needs token"):
        resolve_label_check("combined", None, http)


def test_real_labels_pass_and_flipped_labels_fail(tmp_path, gemma: LlamaCppLLM) -> None:
    train, test = load_split("rotten-tomatoes", "train"), load_split("rotten-tomatoes", "test")
    rng = random.Random(0)
    shots = [
        r
        for lab in ("fresh", "rotten")
        for r in rng.sample([t for t in train if t.label == lab], 6)
    ]
    judged = rng.sample(test, 30)
    llm = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))  # each text scored once
    judge = LikelihoodLabelFilter(llm, threshold=0.5, shots_per_label=6)
    judge.fit([r.text for r in shots], [r.label for r in shots])
    assert judge.shots_per_label_ == 6 and judge.prompt_.count("\nLabel: ") == 12
    texts = [r.text for r in judged]
    P = judge.label_probabilities(texts)
    assert P.shape == (30, 2) and np.allclose(P.sum(axis=1), 1.0)
    truth = np.array([list(judge.classes_).index(r.label) for r in judged])
    assert (P.argmax(axis=1) == truth).mean() >= 0.7
    flipped = ["rotten" if r.label == "fresh" else "fresh" for r in judged]
    true_keep = judge.check(texts, [r.label for r in judged]).keep.mean()
    flipped_check = judge.check(texts, flipped)
    assert true_keep >= flipped_check.keep.mean() + 0.4
    assert ((flipped_check.scores >= 0.5) == flipped_check.keep).all()
    assert llm.usage.scorings == 31  # the content-free text and 30 samples


def test_long_texts_are_cut_and_shots_fit_the_prompt(gemma: LlamaCppLLM) -> None:
    long_text = " ".join(["word"] * 500)
    judge = LikelihoodLabelFilter(gemma, max_words=20, max_prompt_words=200, shots_per_label=16)
    judge.fit([long_text] * 10 + ["short one"] * 10, ["a"] * 10 + ["b"] * 10)
    # 200 words over 2 labels of at most 24 words each: 4 examples per label
    assert judge.shots_per_label_ == 4
    assert max(len(line.split()) for line in judge.prompt_.splitlines()) <= 22
    check = judge.check([long_text, "short one"], ["a", "a"])
    assert check.keep.shape == (2,) and check.scores.max() == pytest.approx(1.0)


def test_combined_check_averages_the_two_judges(tmp_path, gemma: LlamaCppLLM) -> None:
    from synalign.lar.label_check.embedding import LabelConsistencyFilter, label_score
    from synalign.lar.label_check.likelihood import run_label_check

    train = load_split("rotten-tomatoes", "train")
    rng = np.random.default_rng(0)
    real = [r for lab in ("fresh", "rotten") for r in [t for t in train if t.label == lab][:5]]
    syn = [r for lab in ("fresh", "rotten") for r in [t for t in train if t.label == lab][5:9]]
    X_r, X_s = rng.normal(size=(len(real), 8)), rng.normal(size=(len(syn), 8))
    labels_s = [
        r.label if i % 3 else ("rotten" if r.label == "fresh" else "fresh")
        for i, r in enumerate(syn)
    ]
    demos = [[real[i % len(real)].id] for i in range(len(syn))]
    llm = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))
    real_in = ([r.text for r in real], [r.label for r in real], [r.id for r in real], X_r)
    syn_in = ([r.text for r in syn], labels_s, demos, X_s)
    out = run_label_check("combined", 0.7, llm=llm, real=real_in, synthetic=syn_in, seed=3)
    P_llm = (
        LikelihoodLabelFilter(llm, seed=3)
        .fit(real_in[0], real_in[1])
        .label_probabilities(syn_in[0])
    )
    clf = LabelConsistencyFilter().fit(X_r, real_in[1], real_in[2])
    P_clf = clf.label_probabilities(X_s, demos)
    expected = label_score((P_llm + P_clf) / 2, clf.classes_, labels_s)
    assert np.allclose(out.scores, expected)
    keep = expected >= 0.7 - 1e-12
    for label in out.kept_whole_labels:  # a label the check would empty keeps its samples
        keep[np.array(labels_s) == label] = True
    assert (out.keep == keep).all()
    alone = run_label_check("llm", 0.7, llm=llm, real=real_in, synthetic=syn_in, seed=3)
    assert np.allclose(alone.scores, label_score(P_llm, clf.classes_, labels_s))
    assert llm.usage.scorings == 1 + len(syn)  # every later judgement came from the cache


def test_calibrated_threshold_follows_how_well_the_judge_knows_the_real_texts() -> None:
    """Real texts the judge can learn give a strict threshold; the same texts under
    shuffled labels (nothing to learn) give a lenient one, so a judge that does not know
    the labels rejects only confident mismatches."""
    from synalign.backends.embed.embedders import SentenceTransformerEmbedder
    from synalign.io.corpora import draw_shots
    from synalign.lar.label_check.likelihood import calibrated_threshold, run_label_check

    embedder = SentenceTransformerEmbedder()
    for seed in range(3):
        shots = draw_shots(load_split("bbc-news", "pool"), 16, seed=seed)[0]
        X = np.asarray(embedder.encode([r.text for r in shots]))
        texts, ids = [r.text for r in shots], [r.id for r in shots]
        labels = [r.label for r in shots]
        shuffled = labels[:]
        random.Random(seed).shuffle(shuffled)
        known = calibrated_threshold("classifier", None, (texts, labels, ids, X), 0.1, seed)
        noise = calibrated_threshold("classifier", None, (texts, shuffled, ids, X), 0.1, seed)
        assert known is not None and noise is not None
        assert known > noise + 0.2, (seed, known, noise)
        # run_label_check uses the calibrated threshold in place of the fixed one
        real = (texts, labels, ids, X)
        syn = (texts[:6], labels[:6], [[i] for i in ids[:6]], X[:6])
        outcome = run_label_check(
            "classifier", 0.5, llm=None, real=real, synthetic=syn, seed=seed, quantile=0.1
        )
        assert outcome.threshold == known
    # too few real texts of a label to leave any out: no calibration
    one = (["a", "b", "c"], ["x", "y", "y"], ["0", "1", "2"], np.eye(3))
    assert calibrated_threshold("classifier", None, one, quantile=0.1) is None


def test_combined_calibration_scores_each_real_text_once_and_caches(
    tmp_path, gemma: LlamaCppLLM
) -> None:
    from synalign.lar.label_check.likelihood import calibrated_threshold

    train = load_split("rotten-tomatoes", "pool")
    real = [r for lab in ("fresh", "rotten") for r in [t for t in train if t.label == lab][:6]]
    X = np.random.default_rng(0).normal(size=(len(real), 8))
    real_in = ([r.text for r in real], [r.label for r in real], [r.id for r in real], X)
    llm = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))
    first = calibrated_threshold("combined", llm, real_in, quantile=0.2, seed=1)
    assert first is not None and 0.0 < first <= 1.0
    # 4 folds: each fold's judge scores the content-free text, then its held-out texts
    assert llm.usage.scorings == 4 + len(real)
    again = CachedLLM(gemma, ResponseCache(tmp_path / "llm.sqlite"))
    assert calibrated_threshold("combined", again, real_in, quantile=0.2, seed=1) == first
    assert again.usage.scorings == 0  # a resumed run asks the LLM nothing
