"""LAR: the LLM names a demonstration cluster's latent attributes, then writes new samples
of the same label that carry them. Outputs are filtered and keep their provenance."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from synalign.backends.llm.base import LLM, Completion, Request, SamplingParams, model_digest
from synalign.lar.filters import SampleFilter
from synalign.lar.prompts import (
    ParsedSample,
    PromptFamily,
    TaskSpec,
    length_attribute,
    shortfall_reason,
)

Progress = Callable[..., None]


@dataclass(frozen=True)
class Cluster:
    """Real examples shown together to the LLM; `index` is unique within a run."""

    index: int
    label: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]


def stable_seed(*parts: object) -> int:
    """A seed that depends only on its parts, so a cluster's samples never shift."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class LatentAttributeGenerator:
    """Attribute reasoning (`describe`) and attribute-conditioned writing (`generate`)."""

    def __init__(
        self,
        llm: LLM,
        family: PromptFamily,
        task: TaskSpec | None = None,
        use_attributes: bool = True,
        samples_per_cluster: int = 5,
        sampling: SamplingParams | None = None,
        attribute_sampling: SamplingParams | None = None,
        sample_filter: SampleFilter | None = None,
        seed: int = 0,
    ) -> None:
        self.llm = llm
        self.family = family
        self.task = task or TaskSpec()
        self.use_attributes = use_attributes
        self.samples_per_cluster = samples_per_cluster
        self.sampling = sampling or SamplingParams()
        self.attribute_sampling = attribute_sampling or SamplingParams(
            temperature=0.7, max_tokens=48
        )
        self.sample_filter = sample_filter or SampleFilter()
        self.seed = seed

    def describe(self, clusters: list[Cluster], progress: Progress | None = None) -> list[dict]:
        """One attribute row per cluster; the length attribute is measured from the texts."""
        raws: dict[int, str] = {}
        if self.use_attributes:
            requests = [
                Request(
                    self.family.attributes(self.task, list(c.texts), c.index),
                    replace(
                        self.attribute_sampling,
                        stop=self.family.stop,
                        seed=stable_seed(self.seed, c.label, c.index, "attributes"),
                    ),
                )
                for c in clusters
            ]
            for pos, completion in self.llm.stream(requests):
                raws[pos] = completion.text
                if progress:
                    progress(1)
        rows: list[dict[str, Any]] = []
        for pos, cluster in enumerate(clusters):
            attrs: dict[str, str] = {}
            raw = raws.get(pos, "")
            if self.use_attributes:
                attrs = self.family.parse_attributes(raw)
                attrs["length"] = length_attribute(list(cluster.texts))
            rows.append(
                {
                    "cluster": cluster.index,
                    "label": cluster.label,
                    "demo_ids": list(cluster.ids),
                    "attributes": attrs,
                    "raw": raw,
                    "parsed": bool(set(attrs) - {"length"}),
                }
            )
        if progress and not self.use_attributes:
            progress(len(clusters))
        return rows

    def n_requests(self, clusters: list[Cluster]) -> int:
        """LLM calls `generate` makes for these clusters (for progress totals)."""
        per_call = self.family.samples_per_call or self.samples_per_cluster
        return len(clusters) * -(-self.samples_per_cluster // per_call)

    def sample_requests(self, clusters: list[Cluster], attributes: list[dict]) -> list[Request]:
        """The calls `generate` makes, in order: each cluster's prompt, with room for all
        the samples a call writes, `n_calls` times (the call's index picks its seed)."""
        attrs_of = {row["cluster"]: row["attributes"] for row in attributes}
        k = self.samples_per_cluster
        per_call = self.family.samples_per_call or k
        n_calls = -(-k // per_call)
        sampling = self.sampling
        if per_call > 1:
            # max_tokens is per sample; a call that writes several must have room for all
            sampling = replace(sampling, max_tokens=sampling.max_tokens * per_call + 16)
        requests: list[Request] = []
        for cluster in clusters:
            attrs = attrs_of.get(cluster.index) or None
            prompt = self.family.samples(self.task, cluster.label, list(cluster.texts), attrs, k)
            params = replace(
                sampling,
                stop=self.family.stop,
                seed=stable_seed(self.seed, cluster.label, cluster.index, "samples"),
            )
            requests.extend(Request(prompt, params, i) for i in range(n_calls))
        return requests

    def generate(
        self,
        clusters: list[Cluster],
        attributes: list[dict],
        progress: Progress | None = None,
    ) -> tuple[list[dict], list[dict]]:
        """Accepted and rejected samples, each with the cluster it came from.

        Every one of a cluster's `samples_per_cluster` samples is either accepted or
        rejected with a reason: a call that yields fewer samples than asked (empty,
        unparseable, cut off, or just short) has its shortfall rejected too, as rows with
        an empty text and the call's raw answer. Requests may finish in any order;
        clusters are filtered strictly in order so that de-duplication, and so the
        output, does not depend on timing.
        """
        attrs_of = {row["cluster"]: row["attributes"] for row in attributes}
        k = self.samples_per_cluster
        per_call = self.family.samples_per_call or k
        n_calls = -(-k // per_call)
        wanted = [min(per_call, k - i * per_call) for i in range(n_calls)]
        labels = {c.label for c in clusters} | set(self.task.label_descriptions)
        markers = self.family.echo_markers(self.task, labels)
        requests = self.sample_requests(clusters, attributes)
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        self.counts_: Counter[str] = Counter()
        answers: list[list[Completion | None]] = [[None] * n_calls for _ in clusters]
        pending = [n_calls] * len(clusters)
        done = 0
        for pos, completion in self.llm.stream(requests):
            ci, call = divmod(pos, n_calls)
            answers[ci][call] = completion
            pending[ci] -= 1
            while done < len(clusters) and pending[done] == 0:
                cluster = clusters[done]
                asked = {cluster.label, self.task.describe(cluster.label)}
                items: list[tuple[ParsedSample, str | None]] = []
                for answer, n_wanted in zip(answers[done], wanted, strict=True):
                    raw = answer.text if answer else ""
                    finish = answer.finish_reason if answer else "stop"
                    parsed = self.family.parse_output(raw, finish, asked)[:n_wanted]
                    items += [(p, None) for p in parsed]
                    if len(parsed) < n_wanted:
                        why = shortfall_reason(raw, finish, parsed)
                        items += [
                            (ParsedSample("", problem=why), raw)
                            for _ in range(n_wanted - len(parsed))
                        ]
                self._judge(
                    cluster,
                    attrs_of.get(cluster.index) or {},
                    requests[done * n_calls],
                    items,
                    markers,
                    accepted,
                    rejected,
                )
                answers[done] = []
                done += 1
            if progress:
                progress(
                    1,
                    accepted=self.counts_["accepted"],
                    rejected=sum(self.counts_.values()) - self.counts_["accepted"],
                )
        return accepted, rejected

    def _judge(
        self,
        cluster: Cluster,
        attrs: dict[str, str],
        request: Request,
        items: list[tuple[ParsedSample, str | None]],
        markers: tuple[str, ...],
        accepted: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
    ) -> None:
        for j, (item, raw) in enumerate(items):
            row = {
                "id": f"syn-{cluster.index}-{j}",
                "text": item.text,
                "label": cluster.label,
                "cluster": cluster.index,
                "demo_ids": list(cluster.ids),
                "attributes": attrs,
                "backend": self.llm.backend,
                "model": self.llm.model,
                **model_digest(self.llm),
                "prompt_family": self.family.name,
                "sampling": request.params.as_dict(),
            }
            why = item.problem or self.sample_filter.reason(
                item.text, cluster.texts, truncated=item.truncated, markers=markers
            )
            if why is None:
                accepted.append(row)
                self.counts_["accepted"] += 1
            else:
                extra = {"raw": raw} if raw is not None else {}
                rejected.append({**row, "reason": why, **extra})
                self.counts_[why] += 1
