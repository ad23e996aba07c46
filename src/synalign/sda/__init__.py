"""Stage 3, distribution alignment (SDA): MMD weights that match synthetic to real."""

from synalign.sda.aligner import ALL_LABEL, SCOPES, SOLVERS, MMDAligner
from synalign.sda.importance import ImportanceWeighter
from synalign.sda.kernels import effective_sample_size, median_bandwidth, mmd2, rbf_kernel
from synalign.sda.kmm import KMMWeighter
from synalign.sda.simplex import project_to_simplex
from synalign.sda.weights import (
    counts_by_share,
    label_rows,
    label_shares,
    systematic_resample,
    training_weights,
    training_weights_of,
    uniform_weights,
)

__all__ = [
    "ALL_LABEL",
    "SCOPES",
    "SOLVERS",
    "ImportanceWeighter",
    "KMMWeighter",
    "MMDAligner",
    "counts_by_share",
    "effective_sample_size",
    "label_rows",
    "label_shares",
    "median_bandwidth",
    "mmd2",
    "project_to_simplex",
    "rbf_kernel",
    "systematic_resample",
    "training_weights",
    "training_weights_of",
    "uniform_weights",
]
