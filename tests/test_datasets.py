"""Bundled corpora, fixed splits and few-shot draws in synalign.datasets."""

from __future__ import annotations

from collections import Counter

import pytest

from synalign.errors import ConfigError
from synalign.io.corpora import (
    bbc_text,
    dataset_info,
    draw_shots,
    list_datasets,
    load_corpus,
    load_split,
)
from synalign.records import Record


def test_list_and_info() -> None:
    infos = {info.name: info for info in list_datasets()}
    assert set(infos) == {
        "rotten-tomatoes", "bbc-news", "convention-speeches", "cfpb-complaints",
        "disaster-messages",
    }  # fmt: skip
    rt = dataset_info("rotten-tomatoes")
    assert rt.labels == ("fresh", "rotten")
    assert rt.label_descriptions == {"fresh": "positive", "rotten": "negative"}
    assert rt.item_name == "movie review"
    bbc = dataset_info("bbc-news")
    assert bbc.label_descriptions["tech"] == "technology"
    assert set(bbc.label_descriptions) == set(bbc.labels)
    assert bbc.item_name == "news article"
    with pytest.raises(ConfigError, match="bbc-news, cfpb-complaints, convention-speeches"):
        dataset_info("imdb")
    with pytest.raises(ConfigError):
        load_corpus("imdb")


def test_rotten_tomatoes_corpus() -> None:
    records = load_corpus("rotten-tomatoes")
    counts = Counter(r.label for r in records)
    assert set(counts) == {"fresh", "rotten"}
    assert counts["fresh"] > 7_000 and counts["rotten"] > 5_000
    assert len(records) == dataset_info("rotten-tomatoes").rows
    assert 12_000 < len(records) < 13_905 - 1_097
    texts = [r.text for r in records]
    assert len(set(texts)) == len(texts)
    assert all(t == " ".join(t.split()) and t for t in texts)
    assert all(r.id.startswith("rt-") for r in records)
    assert len({r.id for r in records}) == len(records)


def test_bbc_news_corpus() -> None:
    records = load_corpus("bbc-news")
    assert len(records) == 2_225 == dataset_info("bbc-news").rows
    counts = Counter(r.label for r in records)
    assert counts == {
        "business": 510,
        "entertainment": 386,
        "politics": 417,
        "sport": 511,
        "tech": 401,
    }
    assert tuple(sorted(counts)) == dataset_info("bbc-news").labels
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert all(len(r.text.split()) <= 65 for r in records)
    first = next(r for r in records if r.id == "bbc-business-001")
    assert first.text.startswith("Ad sales boost Time Warner profit. Quarterly profits")
    assert "£" in next(r for r in records if r.id == "bbc-sport-199").text


def test_convention_speeches_corpus_and_speaker_split() -> None:
    records = load_corpus("convention-speeches")
    info = dataset_info("convention-speeches")
    assert len(records) == info.rows
    assert Counter(r.label for r in records) == {"democrat": 1644, "republican": 1148}
    assert tuple(sorted({r.label for r in records})) == info.labels
    texts = [r.text for r in records]
    assert len(set(texts)) == len(texts)
    assert all(12 <= len(t.split()) <= 60 for t in texts)
    obama = [r for r in records if r.meta["speaker"] == "Barack Obama"]
    assert obama and all(r.label == "democrat" for r in obama)
    train, test = (
        load_split("convention-speeches", "train"),
        load_split("convention-speeches", "test"),
    )
    assert len(train) + len(test) == len(records)
    assert 0.15 < len(test) / len(records) < 0.25
    speakers = [{r.meta["speaker"] for r in part} for part in (train, test)]
    assert not speakers[0] & speakers[1]  # no speaker's style leaks across the split
    shares = [Counter(r.label for r in part)["republican"] / len(part) for part in (train, test)]
    assert abs(shares[0] - shares[1]) < 0.05
    assert load_split("convention-speeches", "test") == test  # fixed


@pytest.mark.parametrize("name", ["cfpb-complaints", "disaster-messages"])
def test_message_corpora(name: str) -> None:
    """Every text once, under one label, cut near 60 words; every label big enough that
    its test split holds at least 20 texts and its pool at least 64."""
    records = load_corpus(name)
    info = dataset_info(name)
    assert len(records) == info.rows and len({r.id for r in records}) == len(records)
    texts = [r.text for r in records]
    assert len(set(texts)) == len(texts)
    assert all(t == " ".join(t.split()) and 0 < len(t.split()) <= 60 for t in texts)
    assert set(info.label_descriptions) == set(info.labels)
    assert sorted(Counter(r.label for r in records)) == list(info.labels)
    for split, floor in (("test", 20), ("pool", 64)):
        assert min(Counter(r.label for r in load_split(name, split)).values()) >= floor
    if name == "cfpb-complaints":
        assert info.label_descriptions["credit_reporting"] == "credit reporting"
        assert sum("XXXX" in t for t in texts) > len(texts) / 2  # redactions as published
    else:
        assert len(info.labels) == 14 and info.item_name == "disaster message"


def test_bbc_text_cut_prefers_sentence_end() -> None:
    body = " ".join(["word"] * 45) + ". " + " ".join(["more"] * 60)
    text = bbc_text("Headline here\n\n" + body + "\n")
    assert text.startswith("Headline here. word")
    assert text.endswith("word.")
    assert len(text.split()) == 2 + 45
    no_stop = bbc_text("Title?\n\n" + " ".join(["w"] * 100))
    assert no_stop.startswith("Title? w")
    assert len(no_stop.split()) == 60
    early = bbc_text("Head\n\n" + " ".join(["x"] * 30) + ". " + " ".join(["y"] * 60))
    assert len(early.split()) == 60
    assert bbc_text("Short one\n\nJust this.") == "Short one. Just this."


def test_corpus_is_cached_but_returns_fresh_lists() -> None:
    a = load_corpus("bbc-news")
    a.clear()
    assert len(load_corpus("bbc-news")) == 2_225


@pytest.mark.parametrize(
    "name", ["rotten-tomatoes", "bbc-news", "cfpb-complaints", "disaster-messages"]
)
def test_splits_disjoint_stratified_and_stable(name: str) -> None:
    train = load_split(name, "train")
    test = load_split(name, "test")
    everything = load_split(name, "all")
    train_ids = {r.id for r in train}
    test_ids = {r.id for r in test}
    assert not train_ids & test_ids
    assert train_ids | test_ids == {r.id for r in everything}
    assert len(test) == pytest.approx(0.2 * len(everything), abs=1)
    whole = Counter(r.label for r in everything)
    held = Counter(r.label for r in test)
    for label, n in whole.items():
        assert held[label] == pytest.approx(0.2 * n, abs=1)
    assert [r.id for r in load_split(name, "test")] == [r.id for r in test]
    other = load_split(name, "test", seed=1)
    assert {r.id for r in other} != test_ids


def test_split_errors() -> None:
    with pytest.raises(ConfigError, match="validation"):
        load_split("bbc-news", "valid")
    with pytest.raises(ConfigError):
        load_split("bbc-news", "train", test_size=1.5)


def _toy() -> list[Record]:
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 2
    return [Record(f"r{i}", f"text {i}", lab) for i, lab in enumerate(labels)]


def test_draw_shots_k_per_label_deterministic_and_warns() -> None:
    records = _toy()
    shots, warnings = draw_shots(records, 4, seed=3)
    assert Counter(r.label for r in shots) == {"a": 4, "b": 4, "c": 2}
    assert [r.label for r in shots] == ["a"] * 4 + ["b"] * 4 + ["c"] * 2
    assert len({r.id for r in shots}) == len(shots)
    assert len(warnings) == 1 and "'c'" in warnings[0] and "2" in warnings[0]
    again, _ = draw_shots(records, 4, seed=3)
    assert again == shots
    draws = {tuple(r.id for r in draw_shots(records, 4, seed=s)[0]) for s in range(5)}
    assert len(draws) > 1
    exact, none = draw_shots(records, 2, seed=0)
    assert Counter(r.label for r in exact) == {"a": 2, "b": 2, "c": 2}
    assert none == []


def test_draw_shots_rejects_non_positive_k() -> None:
    with pytest.raises(ConfigError):
        draw_shots(_toy(), 0, seed=0)


def test_draw_shots_on_a_real_split() -> None:
    shots, warnings = draw_shots(load_split("bbc-news", "train"), 8, seed=0)
    assert warnings == []
    assert Counter(r.label for r in shots) == dict.fromkeys(dataset_info("bbc-news").labels, 8)


@pytest.mark.parametrize(
    "name",
    ["rotten-tomatoes", "bbc-news", "convention-speeches", "cfpb-complaints", "disaster-messages"],
)
def test_pool_and_validation_divide_train(name: str) -> None:
    train = load_split(name, "train")
    pool, validation = load_split(name, "pool"), load_split(name, "validation")
    test_ids = {r.id for r in load_split(name, "test")}
    assert {r.id for r in pool} | {r.id for r in validation} == {r.id for r in train}
    assert not {r.id for r in pool} & {r.id for r in validation}
    assert not {r.id for r in validation} & test_ids
    assert 0.15 < len(validation) / len(train) < 0.25
    assert set(Counter(r.label for r in validation)) == set(Counter(r.label for r in train))
    if name == "convention-speeches":
        assert not {r.meta["speaker"] for r in pool} & {r.meta["speaker"] for r in validation}
