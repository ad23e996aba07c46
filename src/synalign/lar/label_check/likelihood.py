"""Label fidelity judged by the generator itself: few-shot label likelihood.

The embedding judges of `consistency` learn a label from 16 texts per label; a language
model has read far more text, and shown the real examples as "Text: ... / Label: ..."
pairs it ranks a sample's possible labels by log p(label | examples, sample). On
rotten-tomatoes at K = 16 the bundled 270M model catches more wrong labels, and more
precisely, than the cross-fitted classifier (see the README's measured defaults).

Raw label likelihoods favour labels the model finds likely a priori (one RT label word
is rare), so every score is calibrated by the scores of a content-free text
("N/A"): the "calibrate before use" correction of Zhao et al. (ICML 2021). A sample is
kept when the calibrated probability of its label is at least `threshold` times that of
the most probable label, as in `LabelConsistencyFilter`.

`run_label_check` with "combined" averages this judge's probabilities with the embedding
classifier's: the two make different mistakes (the LLM misses topic flips in long news
texts, the classifier rejects many good reviews), and the mean beat both alone on the
benchmark.

Long texts are cut to `max_words` words in the prompt and in the query, and fewer
examples per label are shown when the prompt would grow past `max_prompt_words`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.special import softmax

from synalign.backends.llm.base import can_score
from synalign.errors import ConfigError
from synalign.lar.label_check.embedding import (
    LabelCheck,
    LabelConsistencyFilter,
    check_probabilities,
    label_score,
)

CONTENT_FREE = "N/A"


def _clip(text: str, max_words: int) -> str:
    words = " ".join(text.split()).split(" ")
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


class LikelihoodLabelFilter:
    """Keeps a synthetic sample whose label the LLM, shown the real examples, finds likely."""

    def __init__(
        self,
        llm: Any,
        threshold: float = 0.3,
        shots_per_label: int = 16,
        max_words: int = 48,
        max_prompt_words: int = 4000,
        seed: int = 0,
    ) -> None:
        self.llm = llm
        self.threshold = threshold
        self.shots_per_label = shots_per_label
        self.max_words = max_words
        self.max_prompt_words = max_prompt_words
        self.seed = seed

    def fit(
        self, texts_real: Sequence[str], labels_real: Sequence[Hashable]
    ) -> LikelihoodLabelFilter:
        """Build the few-shot prompt from the real examples and score the content-free text."""
        if not can_score(self.llm):
            raise ValueError(
                "the LLM likelihood label check needs a backend that exposes token "
                "probabilities (the local llama.cpp backend)"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")
        labels = [str(v) for v in labels_real]
        if len(labels) != len(texts_real):
            raise ValueError(f"{len(labels)} real labels for {len(texts_real)} texts")
        self.classes_ = np.array(sorted(set(labels)))
        if self.classes_.size < 2:
            raise ValueError("a label check needs real examples of at least two labels")
        per_label = max(
            1,
            min(
                self.shots_per_label,
                self.max_prompt_words // (self.classes_.size * (self.max_words + 4)),
            ),
        )
        rng = random.Random(self.seed)
        shots: list[tuple[str, str]] = []
        for label in self.classes_.tolist():
            rows = [t for t, lab in zip(texts_real, labels, strict=True) if lab == label]
            picked = rng.sample(rows, min(per_label, len(rows)))
            shots += [(t, label) for t in picked]
        rng.shuffle(shots)
        self.shots_per_label_ = per_label
        self.prompt_ = "Each text below is followed by its label.\n\n" + "".join(
            f"Text: {_clip(t, self.max_words)}\nLabel: {lab}\n\n" for t, lab in shots
        )
        self._continuations = [f" {label}" for label in self.classes_.tolist()]
        self.content_free_ = np.asarray(self._raw(CONTENT_FREE))
        return self

    def _raw(self, text: str) -> list[float]:
        query = f"Text: {_clip(text, self.max_words)}\nLabel:"
        return self.llm.continuation_logprobs(self.prompt_, query, self._continuations)

    def label_probabilities(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Calibrated probability of every class (columns in `classes_` order) per text."""
        if not hasattr(self, "classes_"):
            raise RuntimeError("call fit before judging samples")
        S = np.zeros((len(texts), self.classes_.size))
        for i, text in enumerate(texts):
            S[i] = self._raw(text)
            if progress:
                progress(1)
        return softmax(S - self.content_free_, axis=1)

    def check(
        self,
        texts: Sequence[str],
        labels: Sequence[Hashable],
        progress: Callable[[int], None] | None = None,
    ) -> LabelCheck:
        """Which samples to keep, with their scores (see `check_probabilities`)."""
        P = self.label_probabilities(texts, progress)
        return check_probabilities(P, self.classes_, labels, self.threshold)


DEFAULT_THRESHOLDS: dict[str, float] = {
    "combined": 0.7,
    "llm": 0.3,
    "classifier": 0.9,
    "knn": 0.9,
}


NEEDS_SCORER: tuple[str, ...] = ("llm", "combined")


def label_check_settings(method: str, threshold: float | None, scorer: bool) -> tuple[str, float]:
    """The label check a config asks for: `auto` is the LLM's judgement averaged with the
    embedding classifier's when the backend exposes token probabilities (`scorer`), else
    the classifier alone; an unset threshold is the method's measured default."""
    if method == "auto":
        method = "combined" if scorer else "classifier"
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(method, 1.0)
    return method, float(threshold)


def calibration_quantile(threshold: float | None, quantile: float | None) -> float | None:
    """The quantile that chooses the threshold per run: none when a threshold is fixed."""
    return quantile if threshold is None else None


def resolve_label_check(method: str, threshold: float | None, llm: Any) -> tuple[str, float]:
    """`label_check_settings` for this LLM; a check it cannot serve is a config error."""
    method, threshold = label_check_settings(method, threshold, can_score(llm))
    if method in NEEDS_SCORER and not can_score(llm):
        raise ConfigError(
            f"generate.label_check = '{method}' needs token probabilities, which only the "
            "local llama.cpp backend gives; set generate.label_check = 'auto' or "
            "'classifier' for this backend"
        )
    return method, threshold


RealData = tuple[Sequence[str], Sequence[Hashable], Sequence[str], np.ndarray]
CALIBRATION_FOLDS = 4


def _judge_probabilities(
    method: str,
    llm: Any,
    real: RealData,
    texts: Sequence[str],
    X: np.ndarray,
    held: Sequence[Sequence[str]],
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The judges' mean label probabilities for texts (embedded as X), with the classes;
    `held[i]` are the real ids the embedding judge leaves out for text i."""
    texts_r, labels_r, ids_r, X_r = real
    probabilities = []
    classes: np.ndarray | None = None
    if method in NEEDS_SCORER:
        judge = LikelihoodLabelFilter(llm, seed=seed).fit(texts_r, labels_r)
        probabilities.append(judge.label_probabilities(texts, progress))
        classes = judge.classes_
    if method in ("classifier", "knn", "combined"):
        embedding = "knn" if method == "knn" else "classifier"
        check = LabelConsistencyFilter(method=embedding).fit(X_r, labels_r, ids_r)  # type: ignore[arg-type]
        probabilities.append(check.label_probabilities(X, held))
        if classes is not None and classes.tolist() != check.classes_.tolist():
            raise AssertionError("the two judges order the labels differently")
        classes = check.classes_
    if classes is None:
        raise ValueError(f"unknown label check {method!r}")
    return np.mean(probabilities, axis=0), classes


def calibrated_threshold(
    method: str, llm: Any, real: RealData, quantile: float, seed: int = 0
) -> float | None:
    """The `quantile` of the real texts' own label scores, each real text judged out of
    fold (by judges fitted on the other folds only), or None when a label has too few
    real texts to leave any out."""
    from sklearn.model_selection import StratifiedKFold

    texts_r, labels_r, ids_r, X_r = real
    labels = [str(v) for v in labels_r]
    counts = [labels.count(lab) for lab in set(labels)]
    folds = min(CALIBRATION_FOLDS, *counts)
    if folds < 2:
        return None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.zeros(len(labels))
    for kept, held in splitter.split(np.zeros(len(labels)), labels):
        fold_real = (
            [texts_r[i] for i in kept],
            [labels[i] for i in kept],
            [str(ids_r[i]) for i in kept],
            np.asarray(X_r)[kept],
        )
        P, classes = _judge_probabilities(
            method, llm, fold_real, [texts_r[i] for i in held], np.asarray(X_r)[held],
            [() for _ in held], seed,
        )  # fmt: skip
        scores[held] = label_score(P, classes, [labels[i] for i in held])
    return float(np.clip(np.quantile(scores, quantile), 1e-6, 1.0))


def run_label_check(
    method: str,
    threshold: float,
    *,
    llm: Any,
    real: RealData,
    synthetic: tuple[Sequence[str], Sequence[Hashable], Sequence[Sequence[str]], np.ndarray],
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    quantile: float | None = None,
) -> LabelCheck:
    """Judge synthetic samples by `method` ("llm", "classifier", "knn" or "combined": the
    mean of the LLM's and the classifier's label probabilities).

    `real` is (texts, labels, ids, embeddings), `synthetic` (texts, labels, demonstration
    ids, embeddings); `progress` advances once per sample the LLM scores. With `quantile`
    the threshold is `calibrated_threshold` (`threshold` where it cannot be calibrated).
    """
    texts_s, labels_s, demos_s, X_s = synthetic
    chosen = None if quantile is None else calibrated_threshold(method, llm, real, quantile, seed)
    P, classes = _judge_probabilities(method, llm, real, texts_s, X_s, demos_s, seed, progress)
    outcome = check_probabilities(P, classes, labels_s, threshold if chosen is None else chosen)
    return replace(outcome, calibrated=chosen is not None)
