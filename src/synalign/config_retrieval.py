"""The retrieval task's settings: the corpus, its pairs' columns, the queries written and
how they are checked."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synalign.config_base import Section


class RetrievalConfig(Section):
    """Synthetic queries for corpus documents (used when `task = "retrieval"`).

    The real pairs (query, document id) come from `data.path` or a bundled retrieval
    corpus (`data.dataset`); `data.shots` draws that many pairs.
    """

    corpus: str | None = Field(
        None, description="Corpus file (JSONL, CSV, TSV, Parquet or datasets folder)."
    )
    id_column: str = Field("id", description="Corpus column holding the document id.")
    document_column: str = Field("text", description="Corpus column holding the document.")
    query_column: str = Field("query", description="Pairs column holding the query.")
    doc_id_column: str = Field(
        "doc_id", description="Pairs column holding the id of the query's document."
    )
    query_name: str | None = Field(
        None, description="Noun for a query in prompts, e.g. 'headline' ('query' if unset)."
    )
    document_name: str | None = Field(
        None, description="Noun for a document in prompts, e.g. 'article' ('document' if unset)."
    )
    queries: int = Field(
        160, gt=0, description="Corpus documents that get one synthetic query each."
    )
    document_words: int = Field(
        80, gt=0, description="Words of a document shown in a prompt (the rest is cut)."
    )
    min_words: int = Field(2, ge=1, description="Reject queries shorter than this.")
    check: Literal["roundtrip", "likelihood", "both", "none"] = Field(
        "roundtrip",
        description="Reject queries that do not single out their document: 'roundtrip' "
        "(the document must rank near the top of the corpus for its query, with the "
        "embedder), 'likelihood' (the generator's own log-likelihood of the query given the "
        "document), 'both', or 'none'.",
    )
    roundtrip_k: int | None = Field(
        None,
        gt=0,
        description="Keep a query whose document ranks in the top k; unset: k is the "
        "check_quantile-from-the-top rank of the real pairs' own documents, per run.",
    )
    likelihood_keep: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Keep this share of the queries with the highest likelihood (InPars); "
        "unset: keep those at least as likely as all but check_quantile of the real pairs.",
    )
    check_quantile: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="With roundtrip_k / likelihood_keep unset, a query is rejected only "
        "when it singles out its document less well than all but this share of the real "
        "pairs do (0.5: at least as well as the median real pair; chosen over 0.1 and 0.25 "
        "on bbc-headlines' validation pairs, benchmarks/results/retrieval-sweep.md).",
    )
