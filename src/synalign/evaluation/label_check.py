"""The evaluation's own label check: which generated rows a method keeps.

The pipeline runs are generated without a label check, so one generated set serves the
methods with and without one, and changing a check's settings regenerates nothing; the
check each method asks for runs here instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synalign.backends.llm.base import LLM
from synalign.errors import ConfigError
from synalign.evaluation.folder import EvaluationFolder
from synalign.lar.label_check.embedding import LabelCheck
from synalign.pipeline.tail import Labelled, check_labels, needs_llm
from synalign.progress import Reporter
from synalign.records import Record


class LabelChecker:
    """Runs label checks for every seed with one LLM, whose scores are cached beside the
    evaluation; `scorings` counts the samples the LLM scored in this invocation."""

    def __init__(
        self, llm: LLM | None, scorer: bool, folder: EvaluationFolder, reporter: Reporter
    ) -> None:
        self._llm = llm
        self._scorer = scorer
        self.folder = folder
        self.reporter = reporter
        self._scoring_llm: Any = None
        self.scorings = 0

    def label_check(
        self,
        s: dict[str, Any],
        shots: list[Record],
        X_shots: np.ndarray,
        settings: dict[str, Any],
        seed: int,
    ) -> LabelCheck:
        """Which synthetic rows the method's label check keeps (all without a check). The
        LLM's scores are cached beside the evaluation, so a re-run or another method on the
        same generated set asks the LLM nothing."""
        from synalign.backends.llm.cache import CachedLLM, ResponseCache

        n = len(s["texts"])
        method = settings["label_check"]
        threshold = float(settings["label_check_threshold"])
        quantile = settings["label_check_quantile"]
        real = Labelled(
            [r.text for r in shots], [r.label for r in shots], X_shots, [r.id for r in shots]
        )
        synthetic = Labelled(s["texts"], s["labels"], s["X"], s["demo_ids"])
        if method in ("none", "judge") or n == 0:
            return check_labels(real, synthetic, method, threshold, judged=s.get("judged"))
        asks_llm = needs_llm(method)
        if asks_llm and not self._scorer:
            raise ConfigError(
                f"`generate.label_check` = '{method}' needs the local llama.cpp backend (token "
                "probabilities); use 'classifier' with this backend"
            )
        if asks_llm and self._scoring_llm is None:
            cache = ResponseCache(self.folder.cache("label-scores.sqlite"))
            self._scoring_llm = CachedLLM(self._llm, cache)  # type: ignore[arg-type]
        title = f"seed {seed} · {method} label check"
        with self.reporter.task(title, total=n if asks_llm else 0) as advance:
            outcome = check_labels(
                real, synthetic, method, threshold, quantile,
                llm=self._scoring_llm, seed=seed, progress=advance,
            )  # fmt: skip
        if asks_llm:
            self.scorings = self._scoring_llm.usage.scorings
        return outcome
