"""LAR: the LLM names a demonstration cluster's latent attributes, then writes new samples
of the same label that carry them. Outputs are filtered and keep their provenance."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from synalign.filters import SampleFilter
from synalign.llm.base import LLM, Request, SamplingParams
from synalign.prompts import PromptFamily, TaskSpec, length_attribute

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

    def generate(
        self,
        clusters: list[Cluster],
        attributes: list[dict],
        progress: Progress | None = None,
    ) -> tuple[list[dict], list[dict]]:
        """Accepted and rejected samples, each with the cluster it came from.

        Requests may finish in any order; clusters are filtered strictly in order so that
        de-duplication, and so the output, does not depend on timing.
        """
        attrs_of = {row["cluster"]: row["attributes"] for row in attributes}
        k = self.samples_per_cluster
        per_call = self.family.samples_per_call or k
        n_calls = -(-k // per_call)
        requests: list[Request] = []
        for cluster in clusters:
            attrs = attrs_of.get(cluster.index) or None
            prompt = self.family.samples(self.task, cluster.label, list(cluster.texts), attrs, k)
            params = replace(
                self.sampling,
                stop=self.family.stop,
                seed=stable_seed(self.seed, cluster.label, cluster.index, "samples"),
            )
            requests.extend(Request(prompt, params, i) for i in range(n_calls))
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        self.counts_: Counter[str] = Counter()
        texts: list[list[str | None]] = [[None] * n_calls for _ in clusters]
        pending = [n_calls] * len(clusters)
        done = 0
        for pos, completion in self.llm.stream(requests):
            ci, call = divmod(pos, n_calls)
            texts[ci][call] = completion.text
            pending[ci] -= 1
            while done < len(clusters) and pending[done] == 0:
                cluster = clusters[done]
                samples = [t for raw in texts[done] for t in self.family.parse_samples(raw or "")]
                self._judge(
                    cluster,
                    attrs_of.get(cluster.index) or {},
                    requests[done * n_calls],
                    samples[:k],
                    accepted,
                    rejected,
                )
                texts[done] = []
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
        samples: list[str],
        accepted: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
    ) -> None:
        for j, text in enumerate(samples):
            row = {
                "id": f"syn-{cluster.index}-{j}",
                "text": text,
                "label": cluster.label,
                "cluster": cluster.index,
                "demo_ids": list(cluster.ids),
                "attributes": attrs,
                "backend": self.llm.backend,
                "model": self.llm.model,
                "prompt_family": self.family.name,
                "sampling": request.params.as_dict(),
            }
            why = self.sample_filter.reason(text, cluster.texts)
            if why is None:
                accepted.append(row)
                self.counts_["accepted"] += 1
            else:
                rejected.append({**row, "reason": why})
                self.counts_[why] += 1
