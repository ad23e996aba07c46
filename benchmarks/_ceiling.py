"""What llama.cpp itself can decode on this machine: B independent sequences at once.

The measurement `llama-batched-bench` makes, through llama-cpp-python's low-level API on
the same vendored llama.cpp build: a prompt of `n_prompt` tokens is read into every
sequence (not timed), then every sequence decodes `n_gen` tokens, one decode step for all
B sequences at a time, with llama.cpp's defaults (repacked weights where the CPU has
kernels for them, a unified KV cache, flash attention). No sampling and no Python work
beyond feeding the batch: the best any caller of llama.cpp can do. The widths are tried
in order and the best generated tokens per second is the ceiling.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any


def decode_ceiling(
    model_path: str,
    n_prompt: int,
    n_gen: int,
    widths: list[int],
    threads: int,
    plain: bool = False,
    streams: bool = False,
) -> dict[str, Any]:
    """Generated tokens per second at each width, and the best of them. `plain` loads the
    weights without repacking and `streams` gives every sequence a KV stream of its own
    (what `StreamDecoder` does), to see what each costs."""
    import llama_cpp
    from llama_cpp import _internals, _logger
    from llama_cpp._utils import suppress_stdout_stderr

    _logger.set_verbose(False)
    model_params = llama_cpp.llama_model_default_params()
    model_params.use_extra_bufts = not plain
    model = _internals.LlamaModel(path_model=model_path, params=model_params, verbose=False)
    prompt = [model.token_bos()] + [(17 + 31 * i) % 1000 + 100 for i in range(n_prompt - 1)]
    rates: dict[int, float] = {}
    for width in widths:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = (n_prompt + n_gen + 8 + 256) * width
        params.n_batch = max(512, width)
        params.n_ubatch = params.n_batch
        params.n_seq_max = width
        params.kv_unified = not streams
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.n_threads = params.n_threads_batch = threads
        with suppress_stdout_stderr(disable=False):
            ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
        batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        memory = llama_cpp.llama_get_memory(ctx.ctx)

        def decode(entries: list[tuple[int, int, int]], batch: Any = batch, ctx: Any = ctx) -> None:
            batch.n_tokens = len(entries)
            for i, (tok, pos, seq) in enumerate(entries):
                batch.token[i], batch.pos[i] = tok, pos
                batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
                batch.logits[i] = True
            if llama_cpp.llama_decode(ctx.ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")

        try:
            for start in range(0, n_prompt, 512):
                chunk = prompt[start : start + 512]
                decode([(t, start + i, 0) for i, t in enumerate(chunk)])
            for seq in range(1, width):
                llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            begin = time.perf_counter()
            for step in range(n_gen):
                decode([(100 + step, n_prompt + step, seq) for seq in range(width)])
            rates[width] = width * n_gen / (time.perf_counter() - begin)
        finally:
            llama_cpp.llama_batch_free(batch)
            with contextlib.suppress(Exception):
                ctx.close()
    best = max(rates, key=lambda w: rates[w])
    return {
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "tokens_per_second": {str(w): round(r, 1) for w, r in rates.items()},
        "best_width": best,
        "ceiling_tokens_per_second": round(rates[best], 1),
    }
