"""SynAlign: few-shot LLM synthetic data that follows the real data's distribution.

    from synalign import SynAlign
    result = SynAlign(samples_per_label=50, shots=16).generate(df)

The stages are importable on their own: `DemonstrationSelector` (exploration),
`LatentAttributeGenerator` (attribute reasoning), `check_and_weight` / `MMDAligner`
(label check and alignment), and `Pipeline` runs them over a run directory.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from synalign.errors import ConfigError, InputError, SynAlignError
from synalign.records import Record

# Heavier names load on first use, so `import synalign` (and the CLI's start) stays quick.
_LAZY = {
    "SynAlign": "synalign.api",
    "SynAlignResult": "synalign.api",
    "Pipeline": "synalign.pipeline",
    "RunDirectory": "synalign.pipeline",
    "Labelled": "synalign.pipeline",
    "CheckSettings": "synalign.pipeline",
    "check_and_weight": "synalign.pipeline",
    "DemonstrationSelector": "synalign.esm",
    "RandomSelector": "synalign.esm",
    "LatentAttributeGenerator": "synalign.lar.generator",
    "PromptFamily": "synalign.lar.prompts",
    "MMDAligner": "synalign.sda",
    "build_config": "synalign.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synalign' has no attribute {name!r}")


__all__ = ["ConfigError", "InputError", "Record", "SynAlignError", "__version__", *_LAZY]
