"""Every request of a stage decoded together: continuous batching in one llama.cpp context.

Each distinct prompt is read once into a root sequence; every sample of it starts as a copy
of that root and decodes the prompt's last token itself. Up to `n_seq` samples, of any
prompts, advance together one token per decode step, and a finished sample's place is
taken at once by the next request, so the batch stays full until the stage runs out of
work. A prompt is read when its first sample is about to start.

A sample depends only on its prompt, sampling parameters and seed, never on what was
decoded beside it, so a resumed run writes what an uninterrupted one would have. That
takes four rules, each closing one way llama.cpp's CPU kernels round differently with
the batch:

- every sequence has a KV stream of its own (`kv_unified` off): its cells lie in position
  order, as they would alone, and flash attention sums them in that order;
- a decode step never holds a single token of one stream: llama.cpp decodes each run of
  consecutive sequence ids as a batch of its own, and a lone query takes a split-KV
  attention path whose sums depend on the thread count, so a sample with no active
  neighbour gets a scratch token in the (idle) sequence after it;
- K-quant matrix products always take the tiled kernel (`GGML_CPU_TILED_MM_FORCE=1`),
  not the vector kernel llama.cpp uses below eight rows;
- the weights keep their plain layout (`load_model`): the repacked layouts' batched
  kernels round differently from their single-row ones.

A prompt is always read in the same chunks from position 0, so its cells are the same
bytes whichever sample, and whatever else, is decoded beside it; and the whole chunks a new
prompt shares with one kept in the context (the instructions and worked examples every
prompt of a stage opens with) are copied rather than read again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from synalign.backends.llm.base import Completion, SamplingParams
from synalign.errors import ConfigError

# Read by llama.cpp once, at its first matrix product: set before any model runs.
os.environ.setdefault("GGML_CPU_TILED_MM_FORCE", "1")

# The sampler chain of llama-cpp-python's create_completion with its defaults
# (repeat penalty 1.0 and typical-p 1.0 are no-ops; top-k 40 is not).
_TOP_K = 40
# Prompts are read in chunks of this many tokens, always from position 0, so whole chunks
# two prompts have in common are the same bytes and can be copied instead of read.
_CHUNK = 64
# Idle slots between active ones filled with a scratch token rather than split off.
_GAP = 12
# Prompts whose cells are kept: the one being sampled and the next one, and the last few
# read before them, from which a new prompt may copy the chunks it shares (a stage's
# prompts may rotate a few worked examples).
_ROOTS = 2
_DONORS = 4


@dataclass(frozen=True)
class Job:
    """One sample to decode: prompt tokens (BOS and template included), parameters, seed."""

    tokens: tuple[int, ...]
    params: SamplingParams
    seed: int


@dataclass
class _Root:
    """A prompt's cells, all but its last token, in sequence `seq`."""

    seq: int
    tokens: tuple[int, ...]
    read: int = 0

    @property
    def ready(self) -> bool:
        return self.read >= len(self.tokens) - 1


@dataclass
class _Sample:
    job: int
    sampler: Any
    n_prompt: int
    feed: int  # the token decoded at the next step
    pos: int
    stops: tuple[bytes, ...]
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str = ""


def load_model(path: str) -> Any:
    """The GGUF weights in the plain layout (see the module docstring)."""
    import llama_cpp
    from llama_cpp import _internals, _logger

    _logger.set_verbose(False)
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)


class StreamDecoder:
    """Decodes a list of jobs, `n_seq` samples at a time, each context `n_ctx` tokens."""

    def __init__(self, model: Any, n_ctx: int = 2048, n_threads: int = 1, n_seq: int = 16) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._utils import suppress_stdout_stderr

        self._llama_cpp = llama_cpp
        self._internals = _internals
        self.model = model
        self.n_seq = n_seq
        self._roots = n_seq + 1  # sequence n_seq is the scratch after the last slot
        n_streams = self._roots + _ROOTS + _DONORS + 1
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_streams
        params.n_batch = max(_CHUNK, n_seq + 1)
        params.n_ubatch = params.n_batch
        params.n_seq_max = n_streams
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs cache sizes to stderr
            self.context = _internals.LlamaContext(model=model, params=params, verbose=False)
        self.n_ctx = self.context.n_ctx() // n_streams
        self._memory = llama_cpp.llama_get_memory(self.context.ctx)
        # a sliding-window cache may reuse a long prompt's early cells: share only below it
        self._n_swa = int(llama_cpp.llama_model_n_swa(model.model))
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._piece = (ctypes.c_char * 64)()

    def close(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self.context.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def tokenize(self, text: str, add_bos: bool = True) -> tuple[int, ...]:
        """The prompt with special tokens parsed, BOS first if the model wants one, as
        create_completion does."""
        tokens = self.model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self.model.token_bos()
        if add_bos and self.model.add_bos_token() and bos != -1:
            tokens = [bos, *tokens]
        return tuple(tokens)

    def check_fits(self, job: Job) -> None:
        if len(job.tokens) + job.params.max_tokens > self.n_ctx:
            raise ConfigError(
                f"a prompt of {len(job.tokens)} tokens plus max_tokens {job.params.max_tokens} "
                f"does not fit the model context of {self.n_ctx} tokens; raise llm.n_ctx or "
                "shorten the demonstrations (explore.cluster_size)"
            )

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Completion]]:
        """Yields `(job index, completion)` as each sample finishes."""
        if not jobs:
            return
        for job in jobs:
            self.check_fits(job)
        runs = _runs(jobs)
        roots: dict[tuple[int, ...], _Root] = {}
        active: dict[int, _Sample] = {}
        free = list(range(self.n_seq))
        cursor = 0  # next job to start
        run_at = 0  # the run holding `cursor`
        try:
            while cursor < len(jobs) or active:
                while cursor < len(jobs) and free:
                    while runs[run_at][1] <= cursor:
                        run_at += 1
                    root = self._root(
                        roots, [jobs[start].tokens for start, _ in runs[run_at : run_at + _ROOTS]]
                    )
                    slot = free.pop(0)
                    active[slot] = self._start(cursor, jobs[cursor], root, slot)
                    cursor += 1
                for slot, sample in self._step(active, jobs):
                    del active[slot]
                    self._llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
                    free.append(slot)
                    free.sort()
                    yield sample.job, self._completion(sample)
        finally:
            for sample in active.values():
                if not sample.finish:
                    sample.sampler.close()
            self._llama_cpp.llama_memory_clear(self._memory, True)

    # ----- internals ------------------------------------------------------------------

    def _root(self, roots: dict[tuple[int, ...], _Root], upcoming: list[tuple[int, ...]]) -> _Root:
        """The read root of `upcoming[0]`. A new root copies the whole chunks it shares with
        a kept root; roots of the next `_ROOTS` prompts are kept (a prompt asked for again
        soon is not read twice), and the `_DONORS` used last of the others."""
        wanted: list[tuple[int, ...]] = []
        for tokens in upcoming:
            if tokens not in wanted:
                wanted.append(tokens)
            if len(wanted) == _ROOTS:
                break
        root = roots.get(upcoming[0])
        if root is None:
            used = {r.seq for r in roots.values()}
            streams = range(self._roots, self._roots + _ROOTS + _DONORS + 1)
            seq = next(s for s in streams if s not in used)
            root = _Root(seq, upcoming[0])
            self._share(root, list(roots.values()))
            roots[upcoming[0]] = root
        roots[upcoming[0]] = roots.pop(upcoming[0])  # most recently used last
        donors = [t for t in roots if t not in wanted]
        for tokens in donors[: max(0, len(donors) - _DONORS)]:
            self._llama_cpp.llama_memory_seq_rm(self._memory, roots.pop(tokens).seq, -1, -1)
        body = root.tokens[:-1]
        while not root.ready:
            chunk = body[root.read : root.read + _CHUNK]
            self._decode([(tok, root.read + i, root.seq, False) for i, tok in enumerate(chunk)])
            root.read += len(chunk)
        return root

    def _share(self, root: _Root, kept: list[_Root]) -> None:
        """Copies into `root` the longest run of whole chunks a kept root has read of the
        same tokens."""
        best, shared = None, 0
        for other in kept:
            if self._n_swa and other.read > self._n_swa:
                continue
            n = 0
            limit = min(other.read, len(root.tokens) - 1)
            while n < limit and other.tokens[n] == root.tokens[n]:
                n += 1
            n -= n % _CHUNK
            if n > shared:
                best, shared = other, n
        if best is None:
            return
        self._llama_cpp.llama_memory_seq_cp(self._memory, best.seq, root.seq, -1, -1)
        self._llama_cpp.llama_memory_seq_rm(self._memory, root.seq, shared, -1)
        root.read = shared

    def _start(self, index: int, job: Job, root: _Root, slot: int) -> _Sample:
        """A new sample in `slot`: a copy of the root's cells, the last prompt token next."""
        if len(job.tokens) > 1:
            self._llama_cpp.llama_memory_seq_cp(self._memory, root.seq, slot, -1, -1)
        return _Sample(
            job=index,
            sampler=self._sampler(job.params, job.seed),
            n_prompt=len(job.tokens),
            feed=job.tokens[-1],
            pos=len(job.tokens) - 1,
            stops=tuple(s.encode("utf-8") for s in job.params.stop if s),
        )

    def _step(self, active: dict[int, _Sample], jobs: Sequence[Job]) -> list[tuple[int, _Sample]]:
        """One decode step of every active sample; returns the ones that finished."""
        llama_cpp = self._llama_cpp
        slots = sorted(active)
        gaps, lone = _pads(slots)
        pads = gaps + lone
        for seq in pads:
            llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        feed = active[slots[0]].feed
        entries = sorted(
            [(active[s].feed, active[s].pos, s, True) for s in slots]
            + [(feed, 0, seq, False) for seq in gaps]
            + [(feed, 0, seq, True) for seq in lone],
            key=lambda entry: entry[2],
        )
        self._decode(entries)
        for seq in pads:
            llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        at = {entry[2]: i for i, entry in enumerate(entries)}
        vocab = self.model.vocab
        finished: list[tuple[int, _Sample]] = []
        for slot in slots:
            sample = active[slot]
            params = jobs[sample.job].params
            tok = sample.sampler.sample(self.context, at[slot])
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                finished.append((slot, self._finish(sample, "stop")))
                continue
            sample.tokens.append(tok)
            sample.text += self._token_bytes(vocab, tok)
            hits = [sample.text.index(s) for s in sample.stops if s in sample.text]
            if hits:
                sample.text = sample.text[: min(hits)]
                finished.append((slot, self._finish(sample, "stop")))
            elif len(sample.tokens) >= params.max_tokens:
                finished.append((slot, self._finish(sample, "length")))
            else:
                sample.feed, sample.pos = tok, sample.pos + 1
        return finished

    @staticmethod
    def _finish(sample: _Sample, reason: str) -> _Sample:
        sample.sampler.close()
        sample.finish = reason
        return sample

    @staticmethod
    def _completion(sample: _Sample) -> Completion:
        return Completion(
            text=sample.text.decode("utf-8", errors="ignore"),
            prompt_tokens=sample.n_prompt,
            completion_tokens=len(sample.tokens),
            finish_reason=sample.finish,
        )

    def _token_bytes(self, vocab: Any, tok: int) -> bytes:
        llama_cpp = self._llama_cpp
        n = llama_cpp.llama_token_to_piece(vocab, tok, self._piece, len(self._piece), 0, False)
        if n < 0:  # the piece is longer than the buffer: -n bytes are needed
            self._piece = (ctypes.c_char * -n)()
            n = llama_cpp.llama_token_to_piece(vocab, tok, self._piece, -n, 0, False)
        return bytes(self._piece[:n])

    def _sampler(self, params: SamplingParams, seed: int) -> Any:
        sampler = self._internals.LlamaSampler()
        if params.temperature <= 0:
            sampler.add_greedy()
            return sampler
        min_p = 0.05 if params.min_p is None else params.min_p
        sampler.add_top_k(_TOP_K)
        sampler.add_typical(1.0, 1)
        sampler.add_top_p(params.top_p, 1)
        sampler.add_min_p(min_p, 1)
        sampler.add_temp(params.temperature)
        sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """entries: (token, position, sequence, wants logits)."""
        b = self._batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        rc = self._llama_cpp.llama_decode(self.context.ctx, b)
        if rc != 0:
            self._llama_cpp.llama_memory_clear(self._memory, True)
            raise RuntimeError(f"llama_decode failed with code {rc}")


def _pads(slots: list[int]) -> tuple[list[int], list[int]]:
    """Idle sequences that get a scratch token in this step: (gaps, lone).

    llama.cpp decodes each run of consecutive sequence ids of separate streams as a batch of
    its own, each a full pass over the weights: a gap of fewer than `_GAP` idle slots
    between active ones is filled (a token without logits costs less than a pass). A slot
    still alone in its run gets a scratch token with logits after it (a free slot, or the
    scratch sequence after the last slot), so that no query and no logits row is ever
    alone (see the module docstring).
    """
    active = set(slots)
    gaps = [seq for a, b in pairwise(slots) if 1 < b - a <= _GAP for seq in range(a + 1, b)]
    filled = active | set(gaps)
    lone = [s + 1 for s in slots if s - 1 not in filled and s + 1 not in filled]
    return gaps, lone


def _runs(jobs: Sequence[Job]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive jobs with the same prompt tokens."""
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(jobs) + 1):
        if i == len(jobs) or jobs[i].tokens != jobs[start].tokens:
            out.append((start, i))
            start = i
    return out
