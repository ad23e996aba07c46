"""Stage 1, exploration (ESM): Gaussian-process uncertainty picks diverse demonstration clusters."""

from synalign.esm.documents import DocumentExplorer
from synalign.esm.selectors import DemonstrationSelector, RandomSelector
from synalign.esm.tracker import GPUncertaintyTracker

__all__ = ["DemonstrationSelector", "DocumentExplorer", "GPUncertaintyTracker", "RandomSelector"]
