"""Retrieval corpora and pairs in synalign.io.retrieval: user files and bbc-headlines."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synalign.errors import ConfigError, InputError
from synalign.io.retrieval import (
    BBC_DOCUMENT_WORDS,
    BBC_TEST_DOCUMENTS,
    Corpus,
    _bbc_headlines,
    corpus_from_rows,
    load_retrieval_dataset,
    pairs_from_rows,
    read_corpus,
    read_pairs,
    retrieval_dataset_names,
)

DOCS = [
    {"doc": "d1", "body": "Rates held at 4.75%.", "topic": "business"},
    {"doc": 7, "body": "Federer wins in Dubai.", "topic": "sport"},
    {"doc": "d3", "body": "A new phone is out.", "topic": "tech"},
]
PAIRS = [
    {"q": "bank keeps rates", "target": "d1"},
    {"q": "tennis final", "target": 7},
    {"q": "bank keeps rates", "target": "d1"},  # a repeat, dropped with a warning
    {"q": "phone launch", "target": "d3"},
]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _as(suffix: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parquet holds one type per column, so ids are text there; a CSV written from a
    numeric column with gaps spells 7 as 7.0."""
    if suffix == ".jsonl":
        return rows
    spelled = "7.0" if suffix == ".csv" else "7"
    return [{k: spelled if v == 7 else v for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_reads_corpus_and_pairs_with_custom_columns(tmp_path: Path, suffix: str) -> None:
    corpus_path = _write(tmp_path / f"corpus{suffix}", _as(suffix, DOCS))
    corpus, warnings = read_corpus(corpus_path, id_column="doc", text_column="body")
    assert warnings == []
    assert corpus.ids == ("d1", "7", "d3")
    assert corpus.texts == ("Rates held at 4.75%.", "Federer wins in Dubai.", "A new phone is out.")
    assert corpus.index() == {"d1": 0, "7": 1, "d3": 2}
    assert corpus.source == str(corpus_path)
    pairs_path = _write(tmp_path / f"pairs{suffix}", _as(suffix, PAIRS))
    got, warnings = read_pairs(pairs_path, corpus, query_column="q", doc_id_column="target")
    assert [(p.text, p.label) for p in got] == [
        ("bank keeps rates", "d1"),
        ("tennis final", "7"),
        ("phone launch", "d3"),
    ]
    assert [p.id for p in got] == ["0", "1", "3"]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"dropped 1 row repeating an earlier row's query and doc_id in {pairs_path}"
    )


def test_parquet_float_ids_read_as_integers(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"doc": [1.0, 7.0], "body": ["one", "seven"]}), tmp_path / "corpus.parquet"
    )
    corpus, _ = read_corpus(tmp_path / "corpus.parquet", id_column="doc", text_column="body")
    assert corpus.ids == ("1", "7")
    pq.write_table(pa.table({"q": ["seventh", "first"], "target": [7, 1]}), tmp_path / "p.parquet")
    pairs, _ = read_pairs(tmp_path / "p.parquet", corpus, query_column="q", doc_id_column="target")
    assert [(p.text, p.label) for p in pairs] == [("seventh", "7"), ("first", "1")]


def test_in_memory_rows() -> None:
    corpus, _ = corpus_from_rows(DOCS, "docs", id_column="doc", text_column="body")
    assert corpus.ids == ("d1", "7", "d3")
    pairs, warnings = pairs_from_rows(
        PAIRS, "pairs", corpus, query_column="q", doc_id_column="target"
    )
    assert [p.label for p in pairs] == ["d1", "7", "d3"]
    assert len(warnings) == 1
    with pytest.raises(InputError) as e:
        corpus_from_rows([*DOCS, {"doc": "d1", "body": "again"}], "docs", "doc", "body")
    assert str(e.value) == (
        "docs row 3: document id 'd1' already used at row 0; document ids must be unique,"
        " so give one of them another id or remove the repeat"
    )
    with pytest.raises(InputError, match=r"^docs has no documents with both 'text' and 'id'"):
        corpus_from_rows([], "docs")
    with pytest.raises(InputError, match=r"^pairs row 1: doc_id 'd9' is not a document id in docs"):
        pairs_from_rows(
            [{"query": "a", "doc_id": "d1"}, {"query": "b", "doc_id": "d9"}], "pairs", corpus
        )


def _one_line_error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InputError) as e:
        call(*args, **kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_bad_input_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("corpus.jsonl").write_text(
        '{"id": "d1", "text": "one"}\n{"id": "d3", "text": "three"}\n\n'
        '{"id": "d4", "text": "four"}\n{"id": "d3", "text": "three again"}\n',
        encoding="utf-8",
    )
    assert _one_line_error(read_corpus, "corpus.jsonl") == (
        "corpus.jsonl line 5: document id 'd3' already used at line 2; document ids must be"
        " unique, so give one of them another id or remove the repeat"
    )
    Path("corpus.jsonl").write_text('{"id": "d1", "text": ""}\n{"text": "x"}\n', "utf-8")
    assert _one_line_error(read_corpus, "corpus.jsonl") == (
        "corpus.jsonl has no documents with both 'text' and 'id' filled in; check that"
        " retrieval.document_column and retrieval.id_column name its columns and that its"
        " rows are not empty"
    )
    assert _one_line_error(read_corpus, "corpus.jsonl", id_column="doc") == (
        "corpus.jsonl has no column 'doc' (columns found: id, text); set retrieval.id_column to"
        " the right column name"
    )
    Path("corpus.jsonl").write_text(
        '{"id": "d1", "text": "one"}\n{"id": "d2", "text": "two"}\n', "utf-8"
    )
    corpus, _ = read_corpus("corpus.jsonl")
    Path("pairs.jsonl").write_text(
        '{"query": "a", "doc_id": "d1"}\n\n{"query": "b", "doc_id": "d99"}\n'
        '{"query": "c", "doc_id": "d98"}\n',
        encoding="utf-8",
    )
    assert _one_line_error(read_pairs, "pairs.jsonl", corpus) == (
        "pairs.jsonl line 3: doc_id 'd99' is not a document id in corpus.jsonl (and 1 more"
        " pair); fix the id or add the document"
    )
    assert _one_line_error(read_pairs, "pairs.jsonl", corpus, query_column="question") == (
        "pairs.jsonl has no column 'question' (columns found: query, doc_id); set"
        " retrieval.query_column to the right column name"
    )
    assert _one_line_error(read_pairs, "pairs.jsonl", corpus, doc_id_column="doc") == (
        "pairs.jsonl has no column 'doc' (columns found: query, doc_id); set"
        " retrieval.doc_id_column to the right column name"
    )
    Path("pairs.csv").write_text("query,doc_id\na,d1\n,d2\nb,d7\n", encoding="utf-8")
    assert _one_line_error(read_pairs, "pairs.csv", corpus).startswith(
        "pairs.csv line 4: doc_id 'd7' is not a document id in corpus.jsonl; "
    )
    Path("pairs.csv").write_text("query,doc_id\n,d1\n", encoding="utf-8")
    assert _one_line_error(read_pairs, "pairs.csv", corpus).startswith(
        "pairs.csv has no pairs with both 'query' and 'doc_id' filled in; check that"
        " retrieval.query_column and retrieval.doc_id_column name its columns"
    )


def test_dropped_rows_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("id,text\nd1,one\n,no id\nd3,\n", encoding="utf-8")
    corpus, warnings = read_corpus(path)
    assert corpus.ids == ("d1",)
    assert warnings == [
        f"dropped 1 row with empty text in {path}",
        f"dropped 1 row with no document id in {path}",
    ]
    pairs, warnings = pairs_from_rows(
        [{"query": "x", "doc_id": "d1"}, {"query": "", "doc_id": "d1"}], "rows", corpus
    )
    assert len(pairs) == 1 and warnings == ["dropped 1 row with an empty query in rows"]
    corpus, _ = corpus_from_rows([{"id": 7, "text": "a"}, {"id": "d2", "text": "b"}], "docs")
    rows = [
        {"query": "q", "doc_id": 7},
        {"query": "q", "doc_id": "d2"},
        {"query": "r", "doc_id": "7"},
    ]
    pairs, warnings = pairs_from_rows(rows, "rows", corpus)
    assert [p.label for p in pairs] == ["7", "d2", "7"]
    assert warnings == [
        "1 row in rows repeat a query already paired with another document (e.g. row 1 'd2'"
        " vs row 0 '7'); kept every pair",
        "doc_id '7' in rows is written both as a number (7, 1 row) and as a string (\"7\","
        " 1 row); doc_ids are read as text, so all of them are the doc_id '7'",
    ]
    message = _one_line_error(corpus_from_rows, [{"id": "a\nb", "text": "x"}], "docs")
    assert message.startswith("docs row 0: the document id in column 'id' (\"a\\nb\") holds")


def test_corpus_checks_its_own_shape() -> None:
    with pytest.raises(ValueError):
        Corpus(("a", "a"), ("x", "y"))
    with pytest.raises(ValueError):
        Corpus(("a",), ())


def test_bbc_headlines() -> None:
    assert retrieval_dataset_names() == ["bbc-headlines"]
    with pytest.raises(ConfigError, match="choose one of: bbc-headlines"):
        load_retrieval_dataset("msmarco")
    data = load_retrieval_dataset("bbc-headlines")
    corpus = data.corpus
    # 2,225 articles less 166 repeated ones (same headline, body or document as an earlier one)
    assert len(corpus) == 2_059
    assert all(
        re.fullmatch(r"(business|entertainment|politics|sport|tech)/\d{3}", i) for i in corpus.ids
    )
    assert len(data.test) == BBC_TEST_DOCUMENTS and len(data.train) == len(corpus) - 500
    train_ids = {p.label for p in data.train}
    test_ids = {p.label for p in data.test}
    assert not train_ids & test_ids and train_ids | test_ids == set(corpus.ids)
    assert all(p.id == p.label and p.label in corpus.index() for p in data.train + data.test)
    topics = Counter(p.label.split("/")[0] for p in data.test)
    assert all(70 <= n <= 130 for n in topics.values()), topics
    headlines = [p.text for p in data.train + data.test]
    assert len(set(headlines)) == len(headlines) and len(set(corpus.texts)) == len(corpus)
    for pair in data.train + data.test:
        document = corpus.texts[corpus.index()[pair.label]]
        assert pair.text not in document
        assert 30 <= len(document.split()) <= BBC_DOCUMENT_WORDS
    assert (data.query_name, data.document_name) == ("headline", "article")

    _bbc_headlines.cache_clear()
    again = load_retrieval_dataset("bbc-headlines")
    assert again.corpus == corpus
    assert [p.id for p in again.test] == [p.id for p in data.test]
    assert [p.id for p in data.test[:3]] == ["business/010", "business/026", "business/029"]
    again.train.clear()
    assert load_retrieval_dataset("bbc-headlines").train == data.train
