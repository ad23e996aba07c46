"""Embedding throughput: raw `SentenceTransformer.encode` against the pipeline's embedding
step (length-sorted chunks through the on-disk vector cache), same texts, same model.

Texts: real rotten-tomatoes and bbc-news training texts, shuffled together (short reviews
and ~50-word news items, so that batching by length matters). The bundled
all-MiniLM-L6-v2, batch size 64, all cores. The stage is timed on an empty cache (every
text encoded and stored; cache hits excluded), then once more on the full cache for
reference. Target: the stage's texts per second at least 90% of raw encode's.

    python benchmarks/bench_embedding.py           # 6,000 texts (~2 minutes)
    python benchmarks/bench_embedding.py --quick   # 600 texts
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, timed, write

from synalign.backends.embed.embedders import SentenceTransformerEmbedder
from synalign.config import build_config
from synalign.io.corpora import load_split
from synalign.pipeline.runner import Pipeline

TARGET = 0.90
BATCH = 64


def corpus(n: int) -> list[str]:
    texts = [r.text for r in load_split("rotten-tomatoes", "train")][: n * 2 // 3]
    texts += [r.text for r in load_split("bbc-news", "train")][: n - len(texts)]
    random.Random(0).shuffle(texts)
    return texts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 texts")
    args = parser.parse_args(argv)
    n = 600 if args.quick else 6000
    texts = corpus(n)
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_embedding.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "texts": len(texts),
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "batch_size": BATCH,
        "target_ratio": TARGET,
    }
    raw = SentenceTransformerEmbedder(batch_size=BATCH)
    st = raw._load()
    st.encode(texts[:BATCH], batch_size=BATCH)  # warm-up, as the stage's model is warm too

    def encode_raw() -> Any:
        return st.encode(texts, batch_size=BATCH, normalize_embeddings=True)

    raw_s, raw_vecs = timed(encode_raw)
    with tempfile.TemporaryDirectory() as tmp:
        config = build_config(
            {"name": "bench", "runs_dir": tmp, "embed": {"batch_size": BATCH}}, []
        )
        pipeline = Pipeline(config, embedder=raw)
        cold_s, stage_vecs = timed(lambda: pipeline.embed(texts, "texts"))
        warm_s, _ = timed(lambda: pipeline.embed(texts, "texts"))
        misses, hits = pipeline.embedder.misses, pipeline.embedder.hits
    diff = float(abs(raw_vecs - stage_vecs).max())
    ratio = raw_s / cold_s
    verdict = "pass" if ratio >= TARGET else "MISS"
    report |= {
        "load_after": load(),
        "raw_seconds": round(raw_s, 3),
        "stage_seconds_empty_cache": round(cold_s, 3),
        "stage_seconds_full_cache": round(warm_s, 3),
        "raw_texts_per_second": round(len(texts) / raw_s, 1),
        "stage_texts_per_second": round(len(texts) / cold_s, 1),
        "stage_vs_raw": round(ratio, 4),
        "cache_misses_then_hits": [misses, hits],
        "max_abs_difference": diff,
    }
    lines = [
        f"raw encode   {raw_s:7.2f} s  {len(texts) / raw_s:8.1f} texts/s",
        f"stage (cold) {cold_s:7.2f} s  {len(texts) / cold_s:8.1f} texts/s  "
        f"= {100 * ratio:.1f}% of raw (target >= {100 * TARGET:.0f}%: {verdict})",
        f"stage (warm) {warm_s:7.2f} s  {len(texts) / warm_s:8.1f} texts/s (all from cache)",
        f"largest difference between the two sets of vectors: {diff:.2e}",
    ]
    print("\n".join(lines))
    md = header("Embedding throughput", report)
    md += [
        f"{len(texts)} real texts (rotten-tomatoes + bbc-news, mean {report['mean_words']} "
        f"words), bundled all-MiniLM-L6-v2, batch size {BATCH}.",
        "",
        "| run | seconds | texts/s |",
        "|---|---|---|",
        f"| raw `SentenceTransformer.encode` | {raw_s:.2f} | {len(texts) / raw_s:.1f} |",
        f"| embedding step, empty cache | {cold_s:.2f} | {len(texts) / cold_s:.1f} |",
        f"| embedding step, full cache | {warm_s:.2f} | {len(texts) / warm_s:.1f} |",
        "",
        f"- Stage / raw throughput: {100 * ratio:.1f}% (target >= {100 * TARGET:.0f}%: {verdict})",
        f"- Largest absolute difference between the vectors: {diff:.2e}",
    ]
    path = write("embedding-quick" if args.quick else "embedding", report, md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
