"""Local generation against what the machine can do, for each named generator.

Prompts: the prompts the generation stage writes for demonstration clusters of 3 real
rotten-tomatoes reviews (fixed seed) with an attribute line, in the model's prompt family
(completion prompts for Gemma 3 270M, chat prompts for Qwen2.5-Coder-1.5B, as `auto`
picks); every prompt is asked for `--samples` samples (temperature 0.9, top-p 0.95, min-p
0.05, at most 64 tokens per sample), all cores. 32 prompts: a chat prompt asks for all its
samples in one call, so the stage has as many sequences to decode at once as prompts.

Measured for each model, on the same prompts and seeds, in one run:
- the ceiling: llama.cpp decoding B independent sequences at once through its low-level
  API (see `_ceiling.py`), generated tokens per second at the best width B;
- llama-cpp-python one call at a time (`create_completion`, or `create_chat_completion`
  for chat prompts, keeping the common prompt prefix between calls);
- the generation stage: `LatentAttributeGenerator.generate` through an empty response
  cache, with the default `llm.parallel_samples`; prompt reading, sampling, caching and
  filtering included.
Reported: the stage's generated tokens per second as a fraction of the ceiling (target at
least 0.70) and its samples per second over llama-cpp-python's.

    python benchmarks/bench_generation.py            # 32 prompts x 4 samples, both models
    python benchmarks/bench_generation.py --quick    # 3 prompts x 4 samples
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ceiling import decode_ceiling
from _common import command, git_state, header, load, machine, now, write

from synalign.backends.llm.base import Prompt, SamplingParams, sample_seed
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.backends.llm.generators import generator_names, generator_path
from synalign.backends.llm.llamacpp import LlamaCppLLM
from synalign.io.corpora import draw_shots, load_split
from synalign.lar.filters import SampleFilter
from synalign.lar.generator import Cluster, LatentAttributeGenerator
from synalign.lar.prompts import TaskSpec, prompt_family

CEILING_TARGET = 0.70
WIDTHS = [1, 8, 16, 32, 64]
SEED = 0
TASK = TaskSpec("movie review", {"fresh": "positive", "rotten": "negative"})
ATTRIBUTES = {"tone": "warm, enthusiastic", "style": "short critic's verdict"}
SAMPLING = SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_tokens=64)


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


def figures(seconds: float, tokens: int, samples: int) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "generated_tokens": tokens,
        "samples": samples,
        "tokens_per_second": round(tokens / seconds, 2),
        "samples_per_second": round(samples / seconds, 3),
    }


def generator(llm: Any, family: Any, k: int, cs: list[Cluster]) -> LatentAttributeGenerator:
    return LatentAttributeGenerator(
        llm=llm,
        family=family,
        task=TASK,
        samples_per_cluster=k,
        sampling=SAMPLING,
        sample_filter=SampleFilter().fit([t for c in cs for t in c.texts]),
        seed=SEED,
    )


def stage(path: str, family: Any, cs: list[Cluster], k: int, threads: int) -> dict[str, Any]:
    llm = LlamaCppLLM(path, n_ctx=2048, n_threads=threads)
    llm._stream_decoder()  # load outside the timed part, as the other runs do
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLLM(llm, ResponseCache(Path(tmp) / "llm.sqlite"))
        gen = generator(cached, family, k, cs)
        attributes = [{"cluster": c.index, "attributes": ATTRIBUTES} for c in cs]
        start = time.perf_counter()
        accepted, rejected = gen.generate(cs, attributes)
        seconds = time.perf_counter() - start
        usage = cached.usage
        result = figures(seconds, usage.completion_tokens, len(accepted) + len(rejected))
        result["prompt_tokens"] = usage.prompt_tokens
        result["accepted"], result["rejected"] = len(accepted), len(rejected)
        cached.cache.close()
    result["parallel_samples"] = llm.parallel_samples
    return result


def requests_of(family: Any, cs: list[Cluster], k: int) -> list[tuple[Prompt, SamplingParams]]:
    """The (prompt, parameters) of every call the stage makes, in order."""
    attributes = [{"cluster": c.index, "attributes": ATTRIBUTES} for c in cs]
    requests = generator(None, family, k, cs).sample_requests(cs, attributes)
    return [(r.prompt, r.params) for r in requests]


def one_call_at_a_time(
    path: str, family: Any, cs: list[Cluster], k: int, threads: int
) -> dict[str, Any]:
    from llama_cpp import Llama

    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        llama = Llama(model_path=path, n_ctx=2048, n_threads=threads, verbose=False)
    tokens = samples = 0
    seen: dict[Prompt, int] = {}
    start = time.perf_counter()
    for prompt, p in requests_of(family, cs, k):
        index = seen[prompt] = seen.get(prompt, -1) + 1
        kwargs: dict[str, Any] = {
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "min_p": p.min_p,
            "stop": list(p.stop) or None,
            "seed": sample_seed(p.seed, index),
        }
        if prompt.messages is not None:
            msgs = [{"role": r, "content": c} for r, c in prompt.messages]
            out = llama.create_chat_completion(messages=msgs, **kwargs)
        else:
            out = llama.create_completion(prompt=prompt.text, **kwargs)
        tokens += out["usage"]["completion_tokens"]
        samples += family.samples_per_call or k
    return figures(time.perf_counter() - start, tokens, samples)


def measure(name: str, cs: list[Cluster], k: int, threads: int) -> dict[str, Any]:
    path = str(generator_path(name))
    probe = LlamaCppLLM(path)
    family_name = "chat" if probe.has_chat_template else "completion"
    family = prompt_family(family_name)
    reqs = requests_of(family, cs, k)
    lengths = []
    for prompt, _ in reqs[:: max(1, len(reqs) // len(cs))]:
        decoder = probe._stream_decoder()
        lengths.append(len(probe._prompt_tokens(decoder, prompt)))
    del probe
    n_prompt = int(statistics.median(lengths))
    out: dict[str, Any] = {"model": name, "prompt_family": family_name}
    out["ceiling"] = decode_ceiling(path, n_prompt, 48, WIDTHS, threads)
    print(f"{name}: ceiling {out['ceiling']}", flush=True)
    out["llama_cpp_python"] = one_call_at_a_time(path, family, cs, k, threads)
    print(f"{name}: llama-cpp-python {out['llama_cpp_python']}", flush=True)
    out["stage"] = stage(path, family, cs, k, threads)
    print(f"{name}: stage {out['stage']}", flush=True)
    ceiling = out["ceiling"]["ceiling_tokens_per_second"]
    out["stage_fraction_of_ceiling"] = round(out["stage"]["tokens_per_second"] / ceiling, 3)
    out["stage_over_llama_cpp_python_samples_per_second"] = round(
        out["stage"]["samples_per_second"] / out["llama_cpp_python"]["samples_per_second"], 2
    )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 prompts x 4 samples")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--models", default=",".join(generator_names()))
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
        "target_fraction_of_ceiling": CEILING_TARGET,
        "models": {},
    }
    for name in args.models.split(","):
        try:
            generator_path(name)
        except Exception as exc:  # a generator that is not installed is reported, not run
            report["models"][name] = {"skipped": str(exc)}
            print(f"{name}: skipped ({exc})")
            continue
        report["models"][name] = measure(name, cs, k, threads)
    report["load_after"] = load()
    md = header("Local generation against the machine's ceiling", report)
    md += [
        f"{n_prompts} prompts x {k} samples, {threads} threads, rotten-tomatoes "
        "demonstrations, at most 64 tokens per sample. Ceiling: llama.cpp decoding B "
        "sequences at once, no sampling (`benchmarks/_ceiling.py`).",
        "",
        "| model | ceiling tok/s (best B) | llama-cpp-python tok/s | stage tok/s | "
        "stage / ceiling | stage / llama-cpp-python (samples/s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        if "skipped" in m:
            md.append(f"| {name} | skipped: {m['skipped']} | | | | |")
            continue
        c, one, st = m["ceiling"], m["llama_cpp_python"], m["stage"]
        verdict = "pass" if m["stage_fraction_of_ceiling"] >= CEILING_TARGET else "MISS"
        md.append(
            f"| {name} | {c['ceiling_tokens_per_second']} (B={c['best_width']}) | "
            f"{one['tokens_per_second']} | {st['tokens_per_second']} | "
            f"{m['stage_fraction_of_ceiling']:.2f} ({verdict}) | "
            f"{m['stage_over_llama_cpp_python_samples_per_second']:.2f}x |"
        )
    md += ["", "Ceiling by width (generated tokens/s):", ""]
    for name, m in report["models"].items():
        if "ceiling" in m:
            md.append(f"- {name}: {m['ceiling']['tokens_per_second']}")
    path = write("generation-quick" if args.quick else "generation", report, md)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
