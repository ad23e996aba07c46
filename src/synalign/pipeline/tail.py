"""The method's tail: drop samples whose label the real texts contradict, then learn the
weights that match what is left to the real data.

One path for the pipeline (the check ends `generate`, the weights are `align`), the
evaluation (one check per generated set, weights per budget) and `synalign align`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from synalign.errors import ConfigError
from synalign.lar.label_check.embedding import LabelCheck

WEIGHTINGS = ("mmd", "uniform", "kmm", "imp")


def _as_list(values: Sequence[Any]) -> list[Any]:
    """Plain Python values (a numpy array's strings become `str`)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


@dataclass(frozen=True)
class Labelled:
    """Texts with their labels, embeddings and ids (for a synthetic sample: the ids of
    the real demonstrations it was written from, which its judge must not have seen)."""

    texts: Sequence[str]
    labels: Sequence[Hashable]
    X: np.ndarray
    ids: Sequence[Any]


@dataclass(frozen=True)
class CheckSettings:
    """A label check as configured: method, fixed threshold, or the quantile of the real
    texts' out-of-fold scores that chooses the threshold per run."""

    method: str = "auto"
    threshold: float | None = None
    quantile: float | None = 0.1

    def resolve(self, llm: Any = None) -> tuple[str, float, float | None]:
        """(method, fallback threshold, calibration quantile) for `llm` (None: no LLM);
        a check the LLM cannot serve is a config error."""
        from synalign.lar.label_check.likelihood import calibration_quantile, resolve_label_check

        method, threshold = resolve_label_check(self.method, self.threshold, llm)
        return method, threshold, calibration_quantile(self.threshold, self.quantile)


def needs_llm(method: str) -> bool:
    from synalign.lar.label_check.likelihood import NEEDS_SCORER

    return method in NEEDS_SCORER


def check_labels(
    real: Labelled,
    synthetic: Labelled,
    method: str,
    threshold: float,
    quantile: float | None = None,
    *,
    llm: Any = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    judged: np.ndarray | None = None,
) -> LabelCheck:
    """Which synthetic samples keep their label (a resolved `method`: see
    `CheckSettings.resolve`). `none` keeps all; `judge` keeps the samples an outside
    judge's predictions (`judged`) agree with, an upper bound for evaluations only."""
    from synalign.lar.label_check.likelihood import run_label_check

    n = len(synthetic.texts)
    if method == "none" or n == 0:
        return LabelCheck(keep=np.ones(n, dtype=bool), scores=np.ones(n))
    if method == "judge":
        if judged is None:
            raise ValueError("the judge check needs the judge's predictions (`judged`)")
        keep = np.asarray(judged == np.asarray(synthetic.labels))
        return LabelCheck(keep=keep, scores=keep.astype(float))
    if needs_llm(method) and llm is None:
        raise ConfigError(
            f"`generate.label_check` = '{method}' needs the LLM's token probabilities; "
            "set it to 'classifier' or 'knn' where no local llama.cpp model is at hand"
        )
    outcome = run_label_check(
        method,
        float(threshold),
        llm=llm,
        real=(_as_list(real.texts), _as_list(real.labels), _as_list(real.ids), real.X),
        synthetic=(
            _as_list(synthetic.texts),
            _as_list(synthetic.labels),
            _as_list(synthetic.ids),
            synthetic.X,
        ),
        seed=seed,
        progress=progress,
        quantile=quantile,
    )
    if outcome.threshold is None:
        outcome = replace(outcome, threshold=float(threshold))
    return outcome


@dataclass
class Weighting:
    """One weight per synthetic row (0 where the check dropped it; the kept rows of a
    label sum to 1), with the kernel bandwidth used and, for MMD, the fitted aligner."""

    weights: np.ndarray
    bandwidth: float | None
    aligner: Any = None


def learn_weights(
    real: Labelled,
    synthetic: Labelled,
    keep: np.ndarray | None = None,
    *,
    weighting: str = "mmd",
    bandwidth: float | None = None,
    ess_floor: float = 0.0,
    scope: str = "label",
    seed: int = 0,
    measure: bool = False,
) -> Weighting:
    """Weights that match each label's kept synthetic rows to its real rows.

    `mmd` is the method's aligner, `uniform` equal weights per label (no alignment), `kmm`
    kernel mean matching, `imp` IMP-Loss's importance weights. With `measure`, uniform
    weights still fit the aligner, so its bandwidth, MMD² and effective sample sizes
    describe the unweighted set.
    """
    from synalign.sda.aligner import MMDAligner
    from synalign.sda.kernels import effective_sample_size, median_bandwidth
    from synalign.sda.kmm import KMMWeighter
    from synalign.sda.weights import label_rows, uniform_weights

    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    n = len(synthetic.texts)
    idx = np.arange(n) if keep is None else np.flatnonzero(keep)
    all_labels = _as_list(synthetic.labels)
    labels = [all_labels[i] for i in idx]
    X_syn = synthetic.X if keep is None else synthetic.X[idx]
    real_labels = _as_list(real.labels)
    w = np.zeros(n, dtype=np.float64)
    if weighting == "kmm":
        bw = bandwidth or median_bandwidth(real.X, X_syn, seed=seed)
        w[idx] = KMMWeighter(bandwidth=bw).fit(X_syn, real.X, labels, real_labels).weights_
        return Weighting(w, bw)
    if weighting == "imp":
        from synalign.sda.importance import ImportanceWeighter

        w[idx] = ImportanceWeighter().fit(X_syn, real.X, labels, real_labels).weights_
        return Weighting(w, None)
    if weighting == "uniform" and not measure:
        w[idx] = uniform_weights(labels)
        return Weighting(w, None)
    aligner = MMDAligner(bandwidth=bandwidth, seed=seed, ess_floor=ess_floor, scope=scope)
    aligner.fit(X_syn, real.X, labels, real_labels)
    if weighting == "uniform":
        uniform = uniform_weights(labels)
        groups = label_rows(labels)
        aligner.weights_ = uniform
        aligner.ess_ = {lab: effective_sample_size(uniform[groups[lab]]) for lab in aligner.labels_}
        aligner.mmd2_after_ = dict(aligner.mmd2_before_)
    w[idx] = aligner.weights_
    return Weighting(w, float(aligner.bandwidth_), aligner)


def check_and_weight(
    real: Labelled,
    synthetic: Labelled,
    check: CheckSettings,
    *,
    llm: Any = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    **weighting: Any,
) -> tuple[LabelCheck, Weighting]:
    """The whole tail at once, for a synthetic set made elsewhere."""
    method, threshold, quantile = check.resolve(llm)
    outcome = check_labels(
        real, synthetic, method, threshold, quantile, llm=llm, seed=seed, progress=progress
    )
    return outcome, learn_weights(real, synthetic, outcome.keep, seed=seed, **weighting)
