"""Retrieval models and metrics: a fine-tuned bi-encoder, a BM25 baseline, and per-query
scores computed the same way for both.

The bi-encoder is the bundled MiniLM trained with in-batch negatives on (query, document)
pairs, real and synthetic, on the CPU. Every ranker is judged by one function of the gold
document's rank, so dense and lexical results differ only in their scores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import BUNDLED_MODEL, SentenceTransformerEmbedder
from synalign.ranks import dense_ranks, ranks_from_scores


@dataclass(frozen=True)
class FineTuneSettings:
    """The bi-encoder's training hyperparameters, kept together so a report can state them."""

    seed: int = 0
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    warmup_share: float = 0.1
    max_seq_length: int = 256
    base: str = BUNDLED_MODEL
    scale: float = 20.0
    """Cosine similarities are multiplied by this before the softmax (temperature 0.05)."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    steps: int | None = None
    """When set, epochs repeat until this many updates: every training set, small or large,
    gets the same compute, so rows differ by their data and not by their step count."""

    def __post_init__(self) -> None:
        bad_steps = self.steps is not None and self.steps < 1
        if (
            not 0.0 <= self.warmup_share < 1.0
            or self.batch_size < 2
            or self.epochs < 1
            or bad_steps
        ):
            raise ValueError(
                "need warmup_share in [0, 1), batch_size >= 2, epochs >= 1 and steps >= 1"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, with the loss named, for a report or a JSON file."""
        out = {"loss": "MultipleNegativesRankingLoss", **dataclasses.asdict(self)}
        if self.steps is not None:
            del out["epochs"]
        return out


def load_base(base: str = BUNDLED_MODEL, max_seq_length: int | None = None) -> Any:
    """A fresh SentenceTransformer on the CPU (the bundled model or a local folder): each
    call loads its own copy, so training one never changes another."""
    model = SentenceTransformerEmbedder(base)._load()
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def no_duplicate_batches(
    anchors: Sequence[str], positives: Sequence[str], batch_size: int, seed: int
) -> list[list[int]]:
    """Pair indices in shuffled batches where no anchor text and no positive text repeats.

    A repeated positive (say two synthetic queries for one document) would be scored as a
    negative of the other query in the batch. Pairs that clash wait for a later batch; the
    last batches can be smaller when many pairs share a text.
    """
    pending = [int(i) for i in np.random.default_rng(seed).permutation(len(anchors))]
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        rest: list[int] = []
        seen_a: set[str] = set()
        seen_p: set[str] = set()
        for i in pending:
            if len(batch) < batch_size and anchors[i] not in seen_a and positives[i] not in seen_p:
                batch.append(i)
                seen_a.add(anchors[i])
                seen_p.add(positives[i])
            else:
                rest.append(i)
        batches.append(batch)
        pending = rest
    return batches


def weighted_mnrl(q: Any, d: Any, weights: Any | None = None, scale: float = 20.0) -> Any:
    """MultipleNegativesRankingLoss of anchor rows `q` against positive rows `d` (row i's
    positive is d[i], the other rows its negatives), each anchor's cross-entropy times its
    weight, averaged over the batch; with no weights it is the library's loss."""
    import torch
    from sentence_transformers.util import cos_sim

    scores = cos_sim(q, d) * scale
    rows = torch.arange(scores.size(0), device=scores.device)
    per_anchor = torch.logsumexp(scores, dim=1) - scores[rows, rows]
    if weights is not None:
        per_anchor = per_anchor * weights
    return per_anchor.mean()


def _embed(model: Any, texts: Sequence[str]) -> Any:
    # `preprocess` replaced `tokenize` in sentence-transformers 6.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return model(prepare(list(texts)))["sentence_embedding"]


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor for update s (0-based): a ramp to 1 over `warmup` updates, then
    a straight line to 1/(total - warmup) at the last; no update has a zero rate."""

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        return max(0.0, (total - s) / max(1, total - warmup))

    return factor


def fine_tune_biencoder(
    anchors: Sequence[str],
    positives: Sequence[str],
    weights: np.ndarray | None = None,
    *,
    seed: int | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 2e-5,
    warmup_share: float = 0.1,
    max_seq_length: int = 256,
    base: str = BUNDLED_MODEL,
    settings: FineTuneSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """A fresh copy of `base` fine-tuned on (anchor, positive) pairs with in-batch negatives.

    `weights` scale each pair's term (normalised to mean 1 over the pairs), which is how
    synthetic pairs can count less than real ones. Give either `settings` or the keyword
    hyperparameters; `seed`, when given, replaces the settings' seed so one set of settings
    serves every evaluation seed. Runs on the CPU in the torch thread count already set; a
    fixed seed gives the same model. `progress(step, total)` is called after each update.
    """
    import torch

    keywords = FineTuneSettings(0, epochs, batch_size, lr, warmup_share, max_seq_length, base)
    if settings is not None and keywords != FineTuneSettings():
        raise ValueError("give either settings or hyperparameter keywords, not both")
    cfg = settings or keywords
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    if len(anchors) != len(positives):
        raise ValueError(f"{len(anchors)} anchors but {len(positives)} positives")
    w = np.ones(len(anchors)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(anchors),) or not np.all(np.isfinite(w)) or (w < 0).any() or not w.sum():
        raise ValueError("weights must be one finite, non-negative value per pair, not all 0")
    weight = torch.tensor(w / w.mean(), dtype=torch.float32)
    # A pair alone in its batch has no negative and a zero loss: no update is spent on it.
    batches: list[list[int]] = []
    epoch = 0
    while epoch < cfg.epochs if cfg.steps is None else len(batches) < cfg.steps:
        epoch_batches = no_duplicate_batches(anchors, positives, cfg.batch_size, cfg.seed + epoch)
        batches += [b for b in epoch_batches if len(b) > 1]
        epoch += 1
        if not batches:
            raise ValueError("need at least two pairs whose anchors and positives differ")
    batches = batches[: cfg.steps] if cfg.steps is not None else batches

    torch.manual_seed(cfg.seed)
    model = load_base(cfg.base, cfg.max_seq_length)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = math.ceil(cfg.warmup_share * len(batches))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _linear_schedule(warmup, len(batches)))
    model.train()
    for step, batch in enumerate(batches, start=1):
        q = _embed(model, [anchors[i] for i in batch])
        d = _embed(model, [positives[i] for i in batch])
        loss = weighted_mnrl(q, d, weight[batch], cfg.scale)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimiser.step()
        schedule.step()
        if progress is not None:
            progress(step, len(batches))
    model.eval()
    return model


def encode(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 rows, so a dot product is the cosine similarity."""
    if not texts:
        dimension = getattr(model, "get_embedding_dimension", None)
        dim = (dimension or model.get_sentence_embedding_dimension)()
        return np.zeros((0, dim), dtype=np.float32)
    vecs = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vecs, dtype=np.float32)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (1, 10)) -> dict[str, np.ndarray]:
    """Per-query recall@k for each k, and mrr and ndcg at the largest k, for one relevant
    document per query (its ideal DCG is 1)."""
    r = np.asarray(ranks, dtype=np.float64)
    cut = max(ks)
    inside = r <= cut
    out = {f"recall@{k}": (r <= k).astype(np.float64) for k in ks}
    out[f"mrr@{cut}"] = np.where(inside, 1.0 / r, 0.0)
    out[f"ndcg@{cut}"] = np.where(inside, 1.0 / np.log2(r + 1.0), 0.0)
    return out


def retrieval_metrics(
    Q: np.ndarray,
    D: np.ndarray,
    gold: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (1, 10),
    chunk: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-query metrics (see `metrics_from_ranks`) for normalised query and document
    embeddings and the index of each query's one relevant document."""
    return metrics_from_ranks(dense_ranks(Q, D, gold, chunk), ks)


class BM25Ranker:
    """Okapi BM25 (Lucene variant, bm25s) over lower-cased word tokens without English
    stopwords: the lexical baseline a trained retriever should beat."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._index: Any = None
        self._n_docs = 0

    def _tokens(self, texts: Sequence[str], fitted: bool = True) -> list[list[str]]:
        import bm25s

        if fitted and self._index is None:
            raise RuntimeError("call fit(doc_texts) first")
        return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)

    def fit(self, doc_texts: Sequence[str]) -> BM25Ranker:
        """Index the corpus; documents keep their positions as indices."""
        import bm25s

        if not doc_texts:
            raise ValueError("BM25 needs at least one document")
        self._index = bm25s.BM25(k1=self.k1, b=self.b)
        self._index.index(self._tokens(doc_texts, fitted=False), show_progress=False)
        self._n_docs = len(doc_texts)
        return self

    def _row(self, tokens: list[str]) -> np.ndarray:
        ids = self._index.get_tokens_ids(tokens)
        if not ids:  # only stopwords or unseen words: every document scores 0
            return np.zeros(self._n_docs, dtype=np.float32)
        return np.asarray(self._index.get_scores_from_ids(ids), dtype=np.float32)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """A (queries x documents) float32 score matrix."""
        rows = [self._row(t) for t in self._tokens(queries)]
        return np.stack(rows) if rows else np.zeros((0, self._n_docs), dtype=np.float32)

    def ranks(self, queries: Sequence[str], gold: Sequence[int] | np.ndarray) -> np.ndarray:
        """The gold document's rank for each query, one query's scores in memory at a time."""
        g = np.asarray(gold, dtype=np.int64)
        if len(g) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(g)} gold indices")
        tokens = self._tokens(queries)
        out = [ranks_from_scores(self._row(t)[None], g[i : i + 1]) for i, t in enumerate(tokens)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def metrics(
        self, queries: Sequence[str], gold: Sequence[int] | np.ndarray, ks: Sequence[int] = (1, 10)
    ) -> dict[str, np.ndarray]:
        """Per-query metrics, computed as `retrieval_metrics` computes them for embeddings."""
        return metrics_from_ranks(self.ranks(queries, gold), ks)
