"""A generated variant: one pipeline run up to `generate`, read back for the evaluation.

A variant is generated once per seed and serves every method that uses it; the methods
see its rows as plain dicts of texts, labels, demonstration ids and embeddings, cut to
their budget with `take_rows`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from synalign.backends.embed.embedders import Embedder
from synalign.backends.llm.base import LLM
from synalign.evaluation.metrics import attribute_stats
from synalign.evaluation.models import LogRegClassifier
from synalign.evaluation.settings import EvalConfig
from synalign.progress import Reporter


def generate_variant(
    config: EvalConfig,
    seed: int,
    variant: str,
    reporter: Reporter,
    llm: LLM | None,
    embedder: Embedder,
) -> dict[str, Any]:
    """One pipeline run up to `generate`; finished stages are skipped, not redone.

    The LLM calls it made now are `stats["llm_calls_this_invocation"]`.
    """
    from synalign.pipeline import Pipeline

    run_config = config.run_config(seed, variant)
    reporter.message(f"seed {seed} · {variant}: {run_config.run_dir}")
    pipe = Pipeline(run_config, reporter=reporter, llm=llm, embedder=embedder)
    start = time.perf_counter()
    summary = pipe.run(until="generate")
    seconds = time.perf_counter() - start
    run = pipe.run_dir
    state = run.stages()
    calls = 0
    for stage in ("describe", "generate"):
        if stage not in summary.skipped:
            info = state.get(stage, {})
            calls += int((info.get("llm") or {}).get("calls", info.get("llm_calls", 0)))
    gen_state = state.get("generate", {})
    usage = [state.get(s, {}).get("llm") or {} for s in ("describe", "generate")]
    requests = sum(int(u.get("calls", 0)) + int(u.get("cache_hits", 0)) for u in usage)
    new_calls = sum(int(u.get("calls", 0)) for u in usage)
    stage_seconds = sum(
        float(state.get(s, {}).get("seconds", 0.0)) for s in ("describe", "generate")
    )
    return {
        "run_dir": str(run_config.run_dir),
        "real": run.real(),
        "demos": run.demos(),
        "synthetic": run.synthetic(),
        "stats": {
            "attributes": attribute_stats(run.attributes()),
            "run_dir": str(run_config.run_dir),
            "clusters": state.get("explore", {}).get("clusters"),
            "attributes_parsed": state.get("describe", {}).get("parsed"),
            "generated": gen_state.get("generated"),
            "accepted": gen_state.get("accepted"),
            "rejected": gen_state.get("rejected"),
            "llm_requests": requests or None,
            "llm_calls_when_generated": new_calls,
            "llm_calls_this_invocation": calls,
            "skipped": list(summary.skipped),
            "stage_seconds": round(stage_seconds, 2),
            "seconds_this_invocation": round(seconds, 2),
        },
    }


def embed_rows(
    rows: list[dict[str, Any]],
    embed: Callable[[Sequence[str]], np.ndarray],
    dim: int,
    judge: LogRegClassifier | None,
) -> dict[str, Any]:
    """A variant's every generated row, embedded once (and labelled by the measurement
    judge, if there is one), for all methods and budgets to cut from."""
    texts = [r["text"] for r in rows]
    out: dict[str, Any] = {
        "texts": texts,
        "labels": np.asarray([r["label"] for r in rows]),
        "demo_ids": [r["demo_ids"] for r in rows],
        "X": embed(texts) if texts else np.zeros((0, dim)),
        "rows": rows,
    }
    if judge is not None and texts:
        out["judged"] = judge.predict(out["X"])
    return out


def take_rows(s: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """The rows of a generated set where `mask` is true."""
    out: dict[str, Any] = {
        "texts": [t for t, k in zip(s["texts"], mask, strict=True) if k],
        "labels": s["labels"][mask],
        "demo_ids": [d for d, k in zip(s["demo_ids"], mask, strict=True) if k],
        "X": s["X"][mask],
        "rows": [r for r, k in zip(s["rows"], mask, strict=True) if k],
    }
    if "judged" in s:
        out["judged"] = s["judged"][mask]
    return out
