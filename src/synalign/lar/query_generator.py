"""LAR for retrieval: the LLM names what a cluster of real queries has in common, then
writes one query for each target document the cluster serves, carrying those attributes.

Every query keeps its provenance: its document, the real pairs shown, the attributes,
model, sampling and seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from synalign.backends.llm.base import LLM, Request, SamplingParams, model_digest
from synalign.lar.filters import SampleFilter, normalise
from synalign.lar.generator import stable_seed
from synalign.lar.prompts.queries import QueryPromptFamily, QuerySpec, measured_query_attributes

Progress = Callable[..., None]
# A query this long that is a verbatim span of its document copies it instead of asking.
COPY_MIN_WORDS = 6


@dataclass(frozen=True)
class QueryCluster:
    """Real (document, query) pairs shown together, and the documents they serve."""

    index: int
    ids: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    targets: tuple[tuple[str, str], ...]  # (document id, document text)


class QueryGenerator:
    """Attribute reasoning (`describe`) and attribute-conditioned queries (`generate`)."""

    def __init__(
        self,
        llm: LLM,
        family: QueryPromptFamily,
        spec: QuerySpec | None = None,
        use_attributes: bool = True,
        sampling: SamplingParams | None = None,
        attribute_sampling: SamplingParams | None = None,
        sample_filter: SampleFilter | None = None,
        seed: int = 0,
    ) -> None:
        self.llm = llm
        self.family = family
        self.spec = spec or QuerySpec()
        self.use_attributes = use_attributes
        self.sampling = sampling or SamplingParams(max_tokens=32)
        self.attribute_sampling = attribute_sampling or SamplingParams(
            temperature=0.7, max_tokens=48
        )
        self.sample_filter = sample_filter or SampleFilter(min_words=2)
        self.seed = seed

    def describe(
        self, clusters: list[QueryCluster], progress: Progress | None = None
    ) -> list[dict]:
        """One attribute row per cluster; length and word reuse are measured."""
        raws: dict[int, str] = {}
        if self.use_attributes:
            requests = [
                Request(
                    self.family.attributes(self.spec, list(c.pairs), c.index),
                    replace(
                        self.attribute_sampling,
                        stop=self.family.stop,
                        seed=stable_seed(self.seed, "queries", c.index, "attributes"),
                    ),
                )
                for c in clusters
            ]
            for pos, completion in self.llm.stream(requests):
                raws[pos] = completion.text
                if progress:
                    progress(1)
        elif progress:
            progress(len(clusters))
        rows: list[dict[str, Any]] = []
        for pos, cluster in enumerate(clusters):
            attrs: dict[str, str] = {}
            raw = raws.get(pos, "")
            if self.use_attributes:
                copied = worked_values()
                attrs = {
                    k: v
                    for k, v in self.family.parse_attributes(raw).items()
                    if v.lower() not in copied
                }
                attrs.update(measured_query_attributes(list(cluster.pairs)))
            rows.append(
                {
                    "cluster": cluster.index,
                    "demo_ids": list(cluster.ids),
                    "attributes": attrs,
                    "raw": raw,
                    "parsed": bool(set(attrs) - {"length", "reuse"}),
                }
            )
        return rows

    def n_requests(self, clusters: list[QueryCluster]) -> int:
        return sum(len(c.targets) for c in clusters)

    def generate(
        self,
        clusters: list[QueryCluster],
        attributes: list[dict],
        progress: Progress | None = None,
    ) -> tuple[list[dict], list[dict]]:
        """Accepted and rejected queries, one per target document, filtered in cluster and
        target order so that de-duplication does not depend on timing."""
        attrs_of = {row["cluster"]: row["attributes"] for row in attributes}
        markers = self.family.echo_markers(self.spec)
        requests: list[Request] = []
        where: list[tuple[QueryCluster, int]] = []
        for cluster in clusters:
            attrs = attrs_of.get(cluster.index) or None
            for j, (doc_id, document) in enumerate(cluster.targets):
                prompt = self.family.query(self.spec, list(cluster.pairs), attrs, document)
                params = replace(
                    self.sampling,
                    stop=self.family.stop,
                    seed=stable_seed(self.seed, "queries", cluster.index, doc_id),
                )
                requests.append(Request(prompt, params))
                where.append((cluster, j))
        answers: dict[int, Any] = {}
        counts: Counter[str] = Counter()
        for pos, completion in self.llm.stream(requests):
            answers[pos] = completion
            if progress:
                progress(1)
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for pos, (cluster, j) in enumerate(where):
            answer = answers[pos]
            parsed = self.family.parse_query(answer.text, answer.finish_reason)
            doc_id, document = cluster.targets[j]
            row = {
                "id": f"syn-{cluster.index}-{j}",
                "text": parsed.text,
                "doc_id": doc_id,
                "document": document,
                "cluster": cluster.index,
                "demo_ids": list(cluster.ids),
                "attributes": attrs_of.get(cluster.index) or {},
                "backend": self.llm.backend,
                "model": self.llm.model,
                **model_digest(self.llm),
                "prompt_family": self.family.name,
                "sampling": requests[pos].params.as_dict(),
            }
            why = parsed.problem or self.sample_filter.reason(
                parsed.text,
                [q for _, q in cluster.pairs],
                truncated=parsed.truncated,
                markers=markers,
            )
            if why is None and copies(parsed.text, document):
                why = "copy_of_document"
            counts[why or "accepted"] += 1
            if why is None:
                accepted.append(row)
            else:
                rejected.append({**row, "reason": why, "raw": answer.text})
        self.counts_ = counts
        return accepted, rejected


def worked_values() -> set[str]:
    """Attribute values the worked examples show: a line that repeats one describes the
    scaffolding, not the real queries, so the value is dropped."""
    from synalign.lar.prompts.queries import QUERY_WORKED_EXAMPLES

    return {v.lower() for _, attrs in QUERY_WORKED_EXAMPLES for v in attrs.values()}


def copies(query: str, document: str) -> bool:
    """Whether a long query is a verbatim span of its document."""
    norm = normalise(query)
    return len(norm.split()) >= COPY_MIN_WORDS and norm in normalise(document)
