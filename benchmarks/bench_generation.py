"""Local generation throughput: the raw model against the generation stage, same prompts.

Prompts: the completion prompts the generation stage writes for demonstration clusters of
3 real rotten-tomatoes reviews (fixed seed), with an attribute line; every prompt is asked
for `--samples` samples (temperature 0.9, top-p 0.95, min-p 0.05, stop at newline, at
most 64 tokens), the bundled Gemma 3 270M model, all cores.

Measured, each on the same prompts and seeds:
- llama-cpp-python `Llama.create_completion`, one sample per call: with `reset()` before
  every call (the prompt is read in full each time) and without (llama-cpp-python keeps
  the common prefix of consecutive prompts);
- SynAlign's `SharedPrefixDecoder` alone: one sequence at a time, and 8 sequences of the
  same prompt decoded together;
- the generation stage (`LatentAttributeGenerator.generate` through the response cache,
  empty at the start) with `llm.parallel_samples` 1 and 8.
Target: the stage's generated tokens per second within 10% of the decoder alone with the
same number of sequences (the stage's own overhead: prompt building, caching, filtering).

    python benchmarks/bench_generation.py            # 12 prompts x 8 samples (~6 minutes)
    python benchmarks/bench_generation.py --quick    # 3 prompts x 4 samples
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, write

from synalign.backends.llm.base import SamplingParams, sample_seed
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.backends.llm.llamacpp import LlamaCppLLM, bundled_model_path
from synalign.backends.llm.shared_prefix import SharedPrefixDecoder, load_model
from synalign.io.corpora import draw_shots, load_split
from synalign.lar.filters import SampleFilter
from synalign.lar.generator import Cluster, LatentAttributeGenerator, stable_seed
from synalign.lar.prompts import CompletionPrompts, TaskSpec

OVERHEAD_TARGET = 0.10
SEED = 0
TASK = TaskSpec("movie review", {"fresh": "positive", "rotten": "negative"})
ATTRIBUTES = {"tone": "warm, enthusiastic", "style": "short critic's verdict"}


def clusters(n: int) -> list[Cluster]:
    shots, _ = draw_shots(load_split("rotten-tomatoes", "train"), 3 * n, seed=SEED)
    by_label: dict[str, list[Any]] = {}
    for r in shots:
        by_label.setdefault(r.label, []).append(r)
    out: list[Cluster] = []
    labels = sorted(by_label)
    for i in range(n):
        label = labels[i % len(labels)]
        recs = by_label[label][3 * (i // len(labels)) : 3 * (i // len(labels)) + 3]
        out.append(Cluster(i, label, tuple(r.id for r in recs), tuple(r.text for r in recs)))
    return out


def sampling(cluster: Cluster) -> SamplingParams:
    """What the stage uses for this cluster (see LatentAttributeGenerator.generate)."""
    return SamplingParams(
        temperature=0.9,
        top_p=0.95,
        min_p=0.05,
        max_tokens=64,
        stop=("\n",),
        seed=stable_seed(SEED, cluster.label, cluster.index, "samples"),
    )


def prompt_text(cluster: Cluster, k: int) -> str:
    prompt = CompletionPrompts().samples(TASK, cluster.label, list(cluster.texts), ATTRIBUTES, k)
    assert prompt.text is not None
    return prompt.text


def figures(seconds: float, tokens: int, samples: int, calls: int) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 3),
        "generated_tokens": tokens,
        "samples": samples,
        "calls": calls,
        "tokens_per_second": round(tokens / seconds, 2),
        "samples_per_second": round(samples / seconds, 3),
    }


def raw_llama(cs: list[Cluster], k: int, threads: int, reset: bool) -> dict[str, Any]:
    from llama_cpp import Llama

    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        llama = Llama(
            model_path=str(bundled_model_path()),
            n_ctx=2048,
            n_threads=threads,
            n_batch=512,
            verbose=False,
        )
    tokens = samples = 0
    start = time.perf_counter()
    for c in cs:
        p, text = sampling(c), prompt_text(c, k)
        for i in range(k):
            if reset:
                llama.reset()
            out = llama.create_completion(
                prompt=text,
                max_tokens=p.max_tokens,
                temperature=p.temperature,
                top_p=p.top_p,
                min_p=p.min_p,
                stop=list(p.stop),
                seed=sample_seed(p.seed, i),
            )
            tokens += out["usage"]["completion_tokens"]
            samples += 1
    return figures(time.perf_counter() - start, tokens, samples, samples)


def raw_decoder(cs: list[Cluster], k: int, threads: int, n_seq: int) -> dict[str, Any]:
    decoder = SharedPrefixDecoder(
        load_model(str(bundled_model_path())), n_ctx=2048, n_threads=threads, n_seq=n_seq
    )
    tokens = samples = calls = 0
    texts: list[str] = []
    start = time.perf_counter()
    for c in cs:
        p, text = sampling(c), prompt_text(c, k)
        seeds = [sample_seed(p.seed, i) for i in range(k)]
        for lo in range(0, k, n_seq):
            out = decoder.complete(text, p, seeds[lo : lo + n_seq])
            calls += 1
            tokens += sum(o.completion_tokens for o in out)
            samples += len(out)
            texts += [o.text for o in out]
    result = figures(time.perf_counter() - start, tokens, samples, calls)
    result["texts"] = texts
    return result


def stage(cs: list[Cluster], k: int, threads: int, n_seq: int) -> dict[str, Any]:
    llm = LlamaCppLLM(n_ctx=2048, n_threads=threads, parallel_samples=n_seq)
    llm._completion_decoder()  # load outside the timed part, as the raw runs do
    real = [t for c in cs for t in c.texts]
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLLM(llm, ResponseCache(Path(tmp) / "llm.sqlite"))
        gen = LatentAttributeGenerator(
            llm=cached,
            family=CompletionPrompts(),
            task=TASK,
            samples_per_cluster=k,
            sampling=SamplingParams(
                temperature=0.9, top_p=0.95, min_p=0.05, max_tokens=64, stop=("\n",)
            ),
            sample_filter=SampleFilter().fit(real),
            seed=SEED,
        )
        attributes = [{"cluster": c.index, "attributes": ATTRIBUTES} for c in cs]
        start = time.perf_counter()
        accepted, rejected = gen.generate(cs, attributes)
        seconds = time.perf_counter() - start
        usage = cached.usage
        result = figures(seconds, usage.completion_tokens, usage.calls, -(-usage.calls // n_seq))
        result["accepted"], result["rejected"] = len(accepted), len(rejected)
        cached.cache.close()
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 prompts x 4 samples")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args(argv)
    n_prompts, k = (3, 4) if args.quick else (args.prompts, args.samples)
    threads = os.cpu_count() or 1
    cs = clusters(n_prompts)
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_generation.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "setting": {"prompts": n_prompts, "samples_per_prompt": k, "threads": threads},
        "target_overhead": OVERHEAD_TARGET,
    }
    runs: dict[str, dict[str, Any]] = {}
    plan = [
        ("llama_cpp_python_reset", lambda: raw_llama(cs, k, threads, reset=True)),
        ("llama_cpp_python", lambda: raw_llama(cs, k, threads, reset=False)),
        ("decoder_1", lambda: raw_decoder(cs, k, threads, 1)),
        ("stage_1", lambda: stage(cs, k, threads, 1)),
        (f"decoder_{k}", lambda: raw_decoder(cs, k, threads, min(k, 8))),
        (f"stage_{k}", lambda: stage(cs, k, threads, min(k, 8))),
    ]
    for name, run in plan:
        runs[name] = run()
        r = runs[name]
        print(
            f"{name:24s} {r['seconds']:7.1f} s  {r['generated_tokens']:5d} tok  "
            f"{r['tokens_per_second']:6.1f} tok/s  {r['samples_per_second']:.2f} samples/s"
        )
    seq = min(k, 8)
    same_texts = runs["decoder_1"].pop("texts") == runs[f"decoder_{k}"].pop("texts")
    overhead = {
        n: 1 - runs[f"stage_{n}"]["tokens_per_second"] / runs[f"decoder_{n}"]["tokens_per_second"]
        for n in (1, seq)
    }
    report["load_after"] = load()
    report["runs"] = runs
    report["stage_overhead"] = {str(n): round(v, 4) for n, v in overhead.items()}
    report["decoder_1_and_batched_texts_identical"] = same_texts
    base = runs["llama_cpp_python"]
    speedup = runs[f"stage_{k}"]["samples_per_second"] / base["samples_per_second"]
    prefix = (
        runs["llama_cpp_python"]["samples_per_second"]
        / runs["llama_cpp_python_reset"]["samples_per_second"]
    )
    report["stage_batched_vs_llama_cpp_python_samples_per_second"] = round(speedup, 3)
    report["prefix_reuse_speedup"] = round(prefix, 3)
    for n, v in overhead.items():
        verdict = "pass" if v <= OVERHEAD_TARGET else "MISS"
        print(f"stage overhead, {n} sequence(s): {100 * v:+.1f}% (target <= 10%: {verdict})")
    print(f"prefix reuse (llama-cpp-python): {prefix:.2f}x samples/s")
    print(f"stage with {seq} sequences vs llama-cpp-python one by one: {speedup:.2f}x samples/s")

    md = header("Local generation throughput", report)
    md += [
        f"{n_prompts} prompts x {k} samples, {threads} threads, bundled Gemma 3 270M "
        "(Q4_K_M), rotten-tomatoes demonstrations, at most 64 tokens, stop at newline.",
        "",
        "| run | seconds | generated tokens | tokens/s | samples/s |",
        "|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        md.append(
            f"| {name} | {r['seconds']:.1f} | {r['generated_tokens']} | "
            f"{r['tokens_per_second']:.1f} | {r['samples_per_second']:.2f} |"
        )
    md += [
        "",
        *[
            f"- Stage overhead with {n} sequence(s) (1 - stage tok/s / decoder tok/s): "
            f"{100 * v:+.1f}% (target <= 10%: {'pass' if v <= OVERHEAD_TARGET else 'MISS'})"
            for n, v in overhead.items()
        ],
        f"- Prefix reuse in llama-cpp-python (no reset vs reset): {prefix:.2f}x samples/s",
        f"- Several samples per call: stage with {seq} sequences vs llama-cpp-python one "
        f"sample per call: {speedup:.2f}x samples/s",
        f"- Decoder texts identical with 1 and {seq} sequences: {same_texts}",
    ]
    path = write("generation-quick" if args.quick else "generation", report, md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
