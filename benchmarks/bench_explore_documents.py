"""Corpus-scale document exploration (`DocumentExplorer`): speed, memory and coverage.

Data: a seeded synthetic corpus of 384-d unit vectors shaped like sentence embeddings
(see `Corpus`): many subtopic clusters of Zipf-distributed sizes and different spreads,
each spread over a few directions. Uniform noise would make every choice of picks cover
the corpus equally badly; here coverage depends on where the picks land.

- 100,000 and 1,000,000 documents, 5,000 picks, each size in a fresh process on 2 BLAS
  threads: wall time and peak resident memory (targets at 1,000,000: under 5 minutes,
  within 6 GiB).
- Coverage, the mean Euclidean distance from a document to its nearest pick (lower is
  better): the explorer's must be within 2% of exact greedy exploration's at 100,000
  (greedy max-variance picks, one at a time, of `GPUncertaintyTracker` over the whole
  corpus with the same bandwidth, via `DemonstrationSelector(cluster_size=1)`, whose
  picks equal refitting the GP every round); uniformly random picks are reported too.
- Criterion check at 5,000 documents, 250 picks: the explorer against the same greedy
  variance-reduction criterion run over the whole corpus instead of cells.

    python benchmarks/bench_explore_documents.py           # the full targets (~15 minutes)
    python benchmarks/bench_explore_documents.py --quick   # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, peak_rss_gib, run_child, write

from synalign.esm import DemonstrationSelector, DocumentExplorer
from synalign.esm.documents import coverage
from synalign.sda.kernels import rbf_kernel

THREADS = 2
NOISE = 1e-4
MAX_SECONDS = 300.0
MAX_GIB = 6.0
MAX_COVERAGE_RATIO = 1.02


class Corpus:
    """Unit vectors shaped like sentence embeddings of a topical corpus.

    A direction shared by all documents, 40 topics, and 2,000 subtopic clusters whose
    centres lean towards their topic (same-topic clusters have cosine ~0.5, others
    ~0.15). Cluster sizes follow Zipf's law with exponent 1.1 (the largest holds ~17% of
    the corpus, the smallest a few documents per 100,000); each cluster spreads over its
    own 16 directions with decaying variances (1/j) and its own log-normal scale, plus a
    little isotropic noise, so documents lie near low-dimensional patches as embeddings do.
    """

    def __init__(
        self, d: int = 384, n_topics: int = 40, n_clusters: int = 2000, rank: int = 16
    ) -> None:
        rng = np.random.default_rng(0)
        self.d, self.rank = d, rank
        base = _unit(rng.normal(size=(1, d)))
        topics = _unit(rng.normal(size=(n_topics, d)))
        own = _unit(rng.normal(size=(n_clusters, d)))
        topic_of = rng.integers(n_topics, size=n_clusters)
        self.centres = np.sqrt(0.15) * base + np.sqrt(0.35) * topics[topic_of] + np.sqrt(0.5) * own
        sizes = 1.0 / np.arange(1, n_clusters + 1) ** 1.1
        self.weights = rng.permutation(sizes / sizes.sum())
        self.spread = np.exp(rng.normal(np.log(0.45), 0.5, size=n_clusters))
        self.scales = 1.0 / np.sqrt(np.arange(1, rank + 1))
        self.scales /= np.linalg.norm(self.scales)
        self.directions = rng.normal(size=(n_clusters, rank, d)) / np.sqrt(d)
        self.noise = 0.1 / np.sqrt(d)

    def sample(self, n: int, seed: int = 1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        label = rng.choice(self.weights.size, size=n, p=self.weights)
        order = np.argsort(label, kind="stable")
        bounds = np.searchsorted(label[order], np.arange(self.weights.size + 1))
        out = np.empty((n, self.d), dtype=np.float32)
        for c in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[c] : bounds[c + 1]]
            for lo in range(0, rows.size, 1 << 15):
                part = rows[lo : lo + (1 << 15)]
                z = rng.standard_normal((part.size, self.rank)) * self.scales
                v = self.centres[c] + self.spread[c] * (z @ self.directions[c])
                v += self.noise * rng.standard_normal((part.size, self.d), dtype=np.float32)
                out[part] = _unit(v)
        return out


def _unit(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def explore_child(n: int, n_picks: int) -> dict[str, Any]:
    """Fresh process: build the corpus, explore, report time, peak memory and coverage."""
    X = Corpus().sample(n)
    rss_data = peak_rss_gib()
    load_start = load()
    start = time.perf_counter()
    explorer = DocumentExplorer(noise=NOISE, seed=0)
    picks = explorer.select(X, n_picks)
    seconds = time.perf_counter() - start
    peak = peak_rss_gib()
    random_picks = np.random.default_rng(0).choice(n, size=n_picks, replace=False)
    start = time.perf_counter()
    ours = coverage(X, picks)
    coverage_seconds = time.perf_counter() - start
    return {
        "documents": n,
        "picks": int(picks.size),
        "distinct": int(np.unique(picks).size),
        "load_at_start": load_start,
        "seconds": seconds,
        "peak_rss_gib": peak,
        "peak_rss_gib_after_data": rss_data,
        "bandwidth": explorer.bandwidth_,
        "cells": explorer.cells_,
        "coverage": ours,
        "coverage_random": coverage(X, random_picks),
        "coverage_seconds": coverage_seconds,
    }


def exact_child(n: int, n_picks: int, bandwidth: float) -> dict[str, Any]:
    """Fresh process: greedy max-variance picks over the whole corpus, one at a time."""
    X = Corpus().sample(n)
    rss_data = peak_rss_gib()
    load_start = load()
    start = time.perf_counter()
    selector = DemonstrationSelector(cluster_size=1, bandwidth=bandwidth, noise=NOISE, seed=0)
    picks = np.array([c[0] for c in selector.select(X, n_picks)], dtype=np.int64)
    seconds = time.perf_counter() - start
    return {
        "documents": n,
        "picks": int(picks.size),
        "load_at_start": load_start,
        "seconds": seconds,
        "peak_rss_gib": peak_rss_gib(),
        "peak_rss_gib_after_data": rss_data,
        "factor_dtype": str(selector._tracker.factor_dtype_),
        "full_updates": selector.n_full_updates_,
        "coverage": coverage(X, picks),
    }


def variance_reduction(X: np.ndarray, n_picks: int, bandwidth: float) -> np.ndarray:
    """Greedy picks over the whole corpus maximising sum_x cov(x, c)^2 / (var(c) + noise),
    with the full kernel matrix (quadratic memory: small corpora only)."""
    K = rbf_kernel(X, X, bandwidth)
    F = np.zeros((X.shape[0], n_picks))
    total = np.einsum("ij,ij->i", K, K)
    var = np.ones(X.shape[0])
    picks = np.zeros(n_picks, dtype=np.int64)
    for j in range(n_picks):
        score = total / (var + NOISE)
        score[picks[:j]] = -np.inf
        c = picks[j] = int(np.argmax(score))
        u = (K[:, c] - F[:, :j] @ F[c, :j]) / np.sqrt(var[c] + NOISE)
        w = K @ u - F[:, :j] @ (F[:, :j].T @ u)
        total = np.clip(total + u * (u * float(u @ u) - 2.0 * w), 0.0, None)
        var = np.clip(var - u * u, 0.0, None)
        F[:, j] = u
    return picks


def criterion_check(n: int, n_picks: int) -> dict[str, Any]:
    """Coverage of the explorer, its criterion over the whole corpus, the exact greedy
    max-variance picks and random picks, on a corpus small enough for all four."""
    X = Corpus().sample(n).astype(np.float64)
    explorer = DocumentExplorer(noise=NOISE, seed=0)
    ours = explorer.select(X, n_picks)
    bw = explorer.bandwidth_
    selector = DemonstrationSelector(cluster_size=1, bandwidth=bw, noise=NOISE, seed=0)
    exact = [c[0] for c in selector.select(X, n_picks)]
    random_picks = np.random.default_rng(0).choice(n, size=n_picks, replace=False)
    return {
        "documents": n,
        "picks": n_picks,
        "explorer": coverage(X, ours),
        "whole_corpus_variance_reduction": coverage(X, variance_reduction(X, n_picks, bw)),
        "exact_max_variance": coverage(X, exact),
        "random": coverage(X, random_picks),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        with threadpool_limits(THREADS):
            if argv[1] == "explore":
                out = explore_child(int(argv[2]), int(argv[3]))
            else:
                out = exact_child(int(argv[2]), int(argv[3]), float(argv[4]))
        print(json.dumps(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    sizes, n_picks = ((5_000, 20_000), 200) if args.quick else ((100_000, 1_000_000), 5_000)
    check = (1_000, 50) if args.quick else (5_000, 250)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    script = Path(__file__).resolve()
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_explore_documents.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "threads": THREADS,
        "picks": n_picks,
        "corpus": " ".join((Corpus.__doc__ or "").split()),
        "targets": {
            "seconds_at_largest": MAX_SECONDS,
            "peak_rss_gib_at_largest": MAX_GIB,
            "coverage_over_exact_at_smallest": MAX_COVERAGE_RATIO,
        },
        "explorer": {},
    }
    for n in sizes:
        r = run_child(script, ["explore", str(n), str(n_picks)])
        report["explorer"][str(n)] = r
        print(
            f"explorer, {n:,} documents, {n_picks:,} picks: {r['seconds']:.1f} s, peak RSS "
            f"{r['peak_rss_gib']:.2f} GiB (after the corpus {r['peak_rss_gib_after_data']:.2f}), "
            f"{r['cells']} cells; coverage {r['coverage']:.4f} (random picks "
            f"{r['coverage_random']:.4f})"
        )
    small = report["explorer"][str(sizes[0])]
    bw = repr(small["bandwidth"])
    report["exact"] = ex = run_child(script, ["exact", str(sizes[0]), str(n_picks), bw])
    print(
        f"exact greedy, {sizes[0]:,} documents: {ex['seconds']:.1f} s, peak RSS "
        f"{ex['peak_rss_gib']:.2f} GiB; coverage {ex['coverage']:.4f}"
    )
    report["criterion_check"] = cc = criterion_check(*check)
    print(
        f"criterion check, {cc['documents']:,} documents, {cc['picks']} picks: coverage "
        f"explorer {cc['explorer']:.4f}, same criterion over the whole corpus "
        f"{cc['whole_corpus_variance_reduction']:.4f}, exact max-variance "
        f"{cc['exact_max_variance']:.4f}, random {cc['random']:.4f}"
    )
    report["load_after"] = load()
    report["verdicts"] = verdicts(report, sizes)
    for name, (value, target, ok) in report["verdicts"].items():
        print(f"{name}: {value:.4g} (target {target:g}) -> {'pass' if ok else 'MISS'}")
    name = "explore-documents-quick" if args.quick else "explore-documents"
    path = write(name, report, markdown(report, sizes))
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def verdicts(report: dict[str, Any], sizes: tuple[int, int]) -> dict[str, Any]:
    big = report["explorer"][str(sizes[1])]
    ratio = report["explorer"][str(sizes[0])]["coverage"] / report["exact"]["coverage"]
    return {
        f"seconds at {sizes[1]:,}": (big["seconds"], MAX_SECONDS, big["seconds"] <= MAX_SECONDS),
        f"peak RSS GiB at {sizes[1]:,}": (
            big["peak_rss_gib"],
            MAX_GIB,
            big["peak_rss_gib"] <= MAX_GIB,
        ),
        f"coverage explorer / exact at {sizes[0]:,}": (
            ratio,
            MAX_COVERAGE_RATIO,
            ratio <= MAX_COVERAGE_RATIO,
        ),
    }


def markdown(report: dict[str, Any], sizes: tuple[int, int]) -> list[str]:
    lines = header("Document exploration benchmark (DocumentExplorer)", report)
    ex, picks, cc = report["exact"], report["picks"], report["criterion_check"]
    lines += [
        f"{picks:,} picks from 384-d corpus vectors, {report['threads']} BLAS threads, each "
        "run once in a fresh process (peak RSS includes the interpreter and the float32 "
        "corpus). Coverage: mean Euclidean distance from a document to its nearest pick "
        "(lower is better).",
        "",
        "| method | documents | time | peak RSS (peak once the corpus was built) | coverage "
        "| random picks |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        r = report["explorer"][str(n)]
        lines.append(
            f"| DocumentExplorer ({r['cells']} cells) | {n:,} | {r['seconds']:.1f} s | "
            f"{r['peak_rss_gib']:.2f} GiB ({r['peak_rss_gib_after_data']:.2f}) | "
            f"{r['coverage']:.4f} | {r['coverage_random']:.4f} |"
        )
    lines += [
        f"| exact greedy GP ({ex['factor_dtype']} factor) | {ex['documents']:,} | "
        f"{ex['seconds']:.1f} s | {ex['peak_rss_gib']:.2f} GiB "
        f"({ex['peak_rss_gib_after_data']:.2f}) | {ex['coverage']:.4f} | - |",
        "",
        "| target | measured | limit | verdict |",
        "|---|---|---|---|",
    ]
    for name, (value, target, ok) in report["verdicts"].items():
        lines.append(f"| {name} | {value:.4g} | {target:g} | {'pass' if ok else 'MISS'} |")
    lines += [
        "",
        f"Corpus (synthetic, seeded; not real text): {report['corpus']}",
        "",
        "Explorer: k-means cells (ceil(sqrt(picks)) at the top, a cell with more than 64 "
        "picks split again), picks shared in proportion to cell size, then in each cell a "
        "GP (`GPUncertaintyTracker`, median-heuristic bandwidth shared by all cells) over "
        "up to 32 rows per pick greedily picks the row that most reduces the sum of "
        "posterior variances. Exact: greedy max-variance picks of `GPUncertaintyTracker` "
        "over the whole corpus, one at a time, with the explorer's bandwidth "
        "(`DemonstrationSelector` with cluster_size=1; its picks equal refitting the GP "
        f"every round). Random: {picks:,} uniformly random distinct documents (seed 0).",
        "",
        f"Criterion check ({cc['documents']:,} documents, {cc['picks']} picks, coverage): "
        f"explorer {cc['explorer']:.4f}; its variance-reduction criterion run over the whole "
        f"corpus (full kernel matrix) {cc['whole_corpus_variance_reduction']:.4f}; exact "
        f"max-variance {cc['exact_max_variance']:.4f}; random {cc['random']:.4f}. "
        "Greedy max-variance picks the documents farthest from every earlier pick, which on "
        "embedding-like data are outliers that cover few others; hence its mean distance "
        "is worse than random picks', and the explorer's cells use variance reduction.",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
