"""The pipeline: ESM -> LAR -> SDA over a run directory, resumable stage by stage."""

from synalign.pipeline.run_dir import STAGES, RunDirectory, run_lock
from synalign.pipeline.runner import Pipeline, RunSummary
from synalign.pipeline.tail import CheckSettings, Labelled, check_and_weight

__all__ = [
    "STAGES",
    "CheckSettings",
    "Labelled",
    "Pipeline",
    "RunDirectory",
    "RunSummary",
    "check_and_weight",
    "run_lock",
]
