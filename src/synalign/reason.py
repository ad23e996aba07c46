"""LAR: the LLM names a demonstration cluster's latent attributes, then writes new samples
of the same label that carry them. Outputs are filtered and keep their provenance."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from synalign.filters import SampleFilter
from synalign.llm.base import LLM, SamplingParams
from synalign.prompts import PromptFamily, TaskSpec, length_attribute

Progress = Callable[[int], None]


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
        rows: list[dict[str, Any]] = []
        for cluster in clusters:
            attrs: dict[str, str] = {}
            raw = ""
            if self.use_attributes:
                prompt = self.family.attributes(self.task, list(cluster.texts), cluster.index)
                params = replace(
                    self.attribute_sampling,
                    stop=self.family.stop,
                    seed=stable_seed(self.seed, cluster.label, cluster.index, "attributes"),
                )
                raw = self.llm.generate(prompt, params, [0])[0].text
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
            if progress:
                progress(1)
        return rows

    def generate(
        self,
        clusters: list[Cluster],
        attributes: list[dict],
        progress: Progress | None = None,
    ) -> tuple[list[dict], list[dict]]:
        """Accepted and rejected samples, each with the cluster it came from."""
        attrs_of = {row["cluster"]: row["attributes"] for row in attributes}
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        self.counts_: Counter[str] = Counter()
        k = self.samples_per_cluster
        for cluster in clusters:
            attrs = attrs_of.get(cluster.index) or None
            prompt = self.family.samples(self.task, cluster.label, list(cluster.texts), attrs, k)
            params = replace(
                self.sampling,
                stop=self.family.stop,
                seed=stable_seed(self.seed, cluster.label, cluster.index, "samples"),
            )
            per_call = self.family.samples_per_call or k
            indices = list(range(-(-k // per_call)))
            texts: list[str] = []
            for completion in self.llm.generate(prompt, params, indices):
                texts.extend(self.family.parse_samples(completion.text))
            for j, text in enumerate(texts[:k]):
                row = {
                    "id": f"syn-{cluster.index}-{j}",
                    "text": text,
                    "label": cluster.label,
                    "cluster": cluster.index,
                    "demo_ids": list(cluster.ids),
                    "attributes": attrs or {},
                    "backend": self.llm.backend,
                    "model": self.llm.model,
                    "prompt_family": self.family.name,
                    "sampling": params.as_dict(),
                }
                why = self.sample_filter.reason(text, cluster.texts)
                if why is None:
                    accepted.append(row)
                    self.counts_["accepted"] += 1
                else:
                    rejected.append({**row, "reason": why})
                    self.counts_[why] += 1
            if progress:
                progress(1)
        return accepted, rejected
