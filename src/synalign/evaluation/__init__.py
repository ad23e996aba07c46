"""Evaluation: methods, downstream classifiers, metrics and the multi-seed runner."""

from synalign.evaluation.folder import EvaluationFolder
from synalign.evaluation.methods import (
    METHOD_NAMES,
    METHODS,
    VARIANTS,
    Method,
    method,
    parse_methods,
    parse_seeds,
)
from synalign.evaluation.metrics import (
    cosine_diversity,
    coverage_curve,
    distinct_n,
    fidelity_metrics,
)
from synalign.evaluation.models import FineTuneClassifier, LogRegClassifier, SetFitClassifier
from synalign.evaluation.runner import Evaluation, evaluate
from synalign.evaluation.settings import EvalConfig, load_eval_config

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "VARIANTS",
    "EvalConfig",
    "Evaluation",
    "EvaluationFolder",
    "FineTuneClassifier",
    "LogRegClassifier",
    "Method",
    "SetFitClassifier",
    "cosine_diversity",
    "coverage_curve",
    "distinct_n",
    "evaluate",
    "fidelity_metrics",
    "load_eval_config",
    "method",
    "parse_methods",
    "parse_seeds",
]
