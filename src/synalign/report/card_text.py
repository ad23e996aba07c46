"""The fixed wording of a data card (what each column, set and rejection reason means) and
the formatting of its values, kept apart from the card's layout in `data_card`."""

from __future__ import annotations

import json
from typing import Any

PAPER = "Ren et al., Few-shot LLM Synthetic Data With Distribution Matching, WWW 2025"

SET_MEANING = {
    "aligned": (
        "the accepted samples resampled by their MMD weights{mix}; a sample can occur "
        "more than once, and each row carries its weight"
    ),
    "synthetic": (
        "every accepted sample once, with its MMD weight in `weight`, for weighted training"
    ),
}

COLUMNS = {
    "id": "the sample's id (`syn-CLUSTER-INDEX`)",
    "text": "the synthetic text",
    "label": "the label it was written for",
    "anchor": "the synthetic query",
    "positive": "the document it was written for",
    "doc_id": "the corpus id of that document",
    "document": "that document's text",
    "cluster": "the demonstration cluster it was written from",
    "demo_ids": "ids of the real records shown to the LLM as its demonstrations",
    "attributes": "what the LLM named in common for its cluster, and the measured length",
    "backend": "the LLM backend",
    "model": "the LLM that wrote it",
    "model_sha256": "sha256 of the local model file that wrote it (local models only)",
    "prompt_family": "completion (base model) or chat (instruction model) prompts",
    "sampling": "the sampling settings of its request",
    "seed": "the run's seed",
    "weight": "its MMD weight (the weights of a label sum to 1)",
    "roundtrip_rank": "rank of its document for this query in the whole corpus",
    "likelihood": "the LLM's per-word log-likelihood of the query given its document",
}

QUERY_COLUMNS = {**COLUMNS, "weight": "its MMD weight (the weights of all queries sum to 1)"}

REASONS = {
    "empty": "nothing but whitespace or punctuation",
    "unparseable": "a chat answer that holds no sample text",
    "missing": "a chat answer with fewer samples than asked",
    "wrong_label": "a chat item whose own label is not the one asked for",
    "refusal": "the model declines",
    "narration": "the model talks about its answer",
    "too_short": "fewer words than `generate.min_words`",
    "too_long": "more words than `generate.max_words`",
    "prompt_echo": "prompt scaffolding copied into the answer",
    "copy_of_real": "a copy of a real text",
    "repetitive": "looping output",
    "truncated": "cut off at the token limit",
    "wrong_language": "not in the language of the real texts",
    "near_copy": "nearly a copy of one of its demonstrations",
    "duplicate": "a repeat of an earlier sample",
    "copy_of_document": "a verbatim span of its own document",
    "not_specific": "does not single out its document (query check)",
    "label_mismatch": "the label check read it as another label",
}

LIMITATIONS = (
    "texts can be wrong, off-topic, off-label, repetitive or factually false, and carry the biases "
    "of the model and of the real examples; the checks above remove some of these, not "
    "all. Check samples before use.",
    "It follows a few real examples: it is only as representative as they are, and may "
    "reuse their wording (a full export's `demo_ids` names each sample's demonstrations).",
    "The weights match the embedder's view of the real data; they are for weighted "
    "training, not a measure of a sample's quality.",
    "Not for evaluation: measure models on real held-out data.",
    "The terms of the real data and of the LLM apply to this set.",
)

_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(n: int) -> str:
    """The Hugging Face Hub's size bucket for `n` rows."""
    return next((name for bound, name in _SIZES if n < bound), "1B<n<10B")


def cell(value: Any) -> str:
    """A value as one Markdown table cell: no line break, no column separator."""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def number(value: Any, decimals: int | None = None) -> str:
    """A figure to 4 significant digits, or to `decimals` places; blank if absent."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return cell(value)
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"
