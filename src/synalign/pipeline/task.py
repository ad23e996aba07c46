"""What the pipeline makes data for: what a real example is, what a synthetic sample is
conditioned on, how it is checked, and what its weight matches.

The stages ask the task, so a second task (synthetic queries for a retriever's
documents) plugs into the same stages instead of a second copy of them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from synalign.config import RunConfig
from synalign.errors import ConfigError
from synalign.lar.prompts import TaskSpec, label_problem
from synalign.pipeline.tail import CheckSettings
from synalign.records import Record, labels_of, quoted


@dataclass
class RealData:
    """The real examples a run starts from, where they came from, and what was odd."""

    records: list[Record]
    source: str
    warnings: list[str] = field(default_factory=list)


class Task(Protocol):
    """The questions the stages ask about the data they work on."""

    name: str

    def read(self, config: RunConfig, records: Sequence[Record] | None = None) -> RealData:
        """The real examples: given in memory, or read as the config says."""
        ...

    def groups(self, records: Sequence[Record]) -> dict[Hashable, list[int]]:
        """Rows that are explored, conditioned on and matched together."""
        ...

    def spec(self, config: RunConfig) -> TaskSpec:
        """How prompts name the items and the groups."""
        ...

    def check(self, config: RunConfig) -> Any:
        """How a synthetic sample is checked against the real examples."""
        ...

    def runner(self, stage: str) -> Any:
        """The task's own version of a stage, or None for the shared one."""
        ...


class ClassificationTask:
    """Labelled texts: a sample is conditioned on a label, checked for reading like that
    label, and weighted to match the real texts of its label."""

    name = "classification"

    def read(self, config: RunConfig, records: Sequence[Record] | None = None) -> RealData:
        from synalign.io import read_records, validate_labelled
        from synalign.io.corpora import draw_shots, load_split
        from synalign.io.readers import check_label_descriptions

        d = config.data
        warnings: list[str] = []
        if records is not None:
            real, source = list(records), "the records given"
        elif d.dataset:
            real = load_split(d.dataset, d.split)
            source = f"dataset {d.dataset} ({d.split})"
        elif d.path:
            loaded = read_records(d.path, d.text_column, d.label_column, dedupe=True)
            real, warnings, source = loaded.records, list(loaded.warnings), d.path
        else:
            raise ConfigError(
                "no real data: set data.dataset (see `synalign datasets list`) or data.path"
            )
        if d.shots:
            real, shot_warnings = draw_shots(real, d.shots, config.seed)
            warnings += shot_warnings
        warnings += validate_labelled(real, source, min_per_label=config.explore.cluster_size)
        check_label_descriptions(d.label_descriptions, labels_of(real), source)
        self._check_label_names(config, labels_of(real), source)
        return RealData(real, source, warnings)

    def groups(self, records: Sequence[Record]) -> dict[Hashable, list[int]]:
        from synalign.sda.weights import label_rows

        return {lab: idx.tolist() for lab, idx in label_rows([r.label for r in records]).items()}

    def spec(self, config: RunConfig) -> TaskSpec:
        d = config.data
        item, descriptions = d.item_name, dict(d.label_descriptions)
        if d.dataset:
            from synalign.io.corpora import dataset_info

            info = dataset_info(d.dataset)
            item = item or info.item_name
            descriptions = {**info.label_descriptions, **descriptions}
        return TaskSpec(item_name=item or "text", label_descriptions=descriptions)

    def check(self, config: RunConfig) -> CheckSettings:
        g = config.generate
        return CheckSettings(g.label_check, g.label_check_threshold, g.label_check_quantile)

    def runner(self, stage: str) -> None:
        return None

    def _check_label_names(self, config: RunConfig, labels: list[str], source: str) -> None:
        """Every label, as the prompts name it, must fit on a prompt's tag line."""
        task = self.spec(config)
        for label in labels:
            shown = task.describe(label)
            problem = label_problem(shown)
            if problem is None:
                continue
            named = quoted(label)
            what = (
                f"label {named} in {source}"
                if shown == label
                else f"data.label_descriptions entry of label {named} ({quoted(shown)})"
            )
            raise ConfigError(
                f"the {what} {problem}; give the label a one-line description without it,"
                f" e.g. --set 'data.label_descriptions={{{named} = \"a name\"}}'"
            )


def task_of(config: RunConfig) -> Any:
    """The task a config describes: labelled texts, or queries for a corpus."""
    if config.task == "retrieval":
        from synalign.pipeline.retrieval import RetrievalTask

        return RetrievalTask()
    return ClassificationTask()
