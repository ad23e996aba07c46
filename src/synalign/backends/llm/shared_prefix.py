"""Several samples of one prompt in a single llama.cpp batch.

The prompt is decoded once into sequence 0; the other sequences share its KV cells
(`llama_memory_seq_cp` on a unified cache), and every decode step advances all unfinished
sequences together. Each sequence has its own seeded sampler chain, the chain
llama-cpp-python's `create_completion` builds. The model is loaded without llama.cpp's
repacked weight layouts, whose batched kernels round differently from the single-row
ones: a sample then depends only on its prompt, sampling parameters and seed, never on
how many other samples were decoded beside it, so a resumed run writes what an
uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synalign.backends.llm.base import Completion, SamplingParams
from synalign.errors import ConfigError

# The sampler chain of llama-cpp-python's create_completion with its defaults
# (repeat penalty 1.0 and typical-p 1.0 are no-ops; top-k 40 is not).
_TOP_K = 40


@dataclass
class _Sequence:
    sampler: Any
    tokens: list[int]
    logits_at: int = 0  # batch index of the logits this sequence samples from next
    text: bytes = b""
    finish: str | None = None


def load_model(path: str) -> Any:
    """The GGUF weights in the plain layout (see the module docstring)."""
    import llama_cpp
    from llama_cpp import _internals, _logger

    _logger.set_verbose(False)
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)


class SharedPrefixDecoder:
    """Decodes up to `n_seq` samples of one prompt together in one llama.cpp context."""

    def __init__(
        self, model: Any, n_ctx: int = 2048, n_threads: int = 1, n_seq: int = 8, n_batch: int = 512
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._utils import suppress_stdout_stderr

        self._llama_cpp = llama_cpp
        self._internals = _internals
        self.model = model
        self.n_seq = n_seq
        self.n_batch = n_batch
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.kv_unified = True
        # Flash attention skips masked cells, so a sequence's attention sums only its own
        # cells, in order, wherever they lie in the shared cache.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs cache sizes to stderr
            self.context = _internals.LlamaContext(model=model, params=params, verbose=False)
        self.n_ctx = self.context.n_ctx()
        self._memory = llama_cpp.llama_get_memory(self.context.ctx)
        self._batch = llama_cpp.llama_batch_init(max(n_batch, n_seq), 0, n_seq)
        self._cached: list[int] = []  # tokens held in sequence 0's cells

    def close(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self.context.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def tokenize(self, text: str) -> list[int]:
        """BOS plus the prompt with special tokens parsed, as create_completion does."""
        tokens = self.model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self.model.token_bos()
        if self.model.add_bos_token() and bos != -1:
            tokens = [bos, *tokens]
        return tokens

    def complete(
        self, prompt: str, params: SamplingParams, seeds: Sequence[int]
    ) -> list[Completion]:
        """One completion per seed, all from the same prompt."""
        tokens = self.tokenize(prompt)
        if len(tokens) + params.max_tokens > self.n_ctx:
            raise ConfigError(
                f"a prompt of {len(tokens)} tokens plus max_tokens {params.max_tokens} does not "
                f"fit the model context of {self.n_ctx} tokens; raise llm.n_ctx or shorten "
                "the demonstrations (explore.cluster_size)"
            )
        room = max(1, (self.n_ctx - len(tokens)) // max(params.max_tokens, 1))
        group = max(1, min(self.n_seq, room))
        out: list[Completion] = []
        for start in range(0, len(seeds), group):
            out.extend(self._complete_group(tokens, params, list(seeds[start : start + group])))
        return out

    # ----- internals ------------------------------------------------------------------

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
            self._cached = []
            self._llama_cpp.llama_memory_clear(self._memory, True)
            raise RuntimeError(f"llama_decode failed with code {rc}")

    def _prefill(self, tokens: list[int]) -> None:
        """Put the prompt into sequence 0, its last token's logits at batch index 0.

        The KV cells are reused only for the very same prompt, and the last token is always
        decoded alone: the logits a sample starts from are then computed the same way
        whatever was decoded before.
        """
        llama_cpp = self._llama_cpp
        for seq in range(1, self.n_seq):
            llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        body = tokens[:-1]
        if self._cached != body:
            llama_cpp.llama_memory_clear(self._memory, True)
            self._cached = []
            for start in range(0, len(body), self.n_batch):
                chunk = body[start : start + self.n_batch]
                self._decode([(tok, start + i, 0, False) for i, tok in enumerate(chunk)])
            self._cached = list(body)
        else:
            llama_cpp.llama_memory_seq_rm(self._memory, 0, len(body), -1)
        self._decode([(tokens[-1], len(body), 0, True)])

    def _complete_group(
        self, tokens: list[int], params: SamplingParams, seeds: list[int]
    ) -> list[Completion]:
        llama_cpp = self._llama_cpp
        vocab = self.model.vocab
        self._prefill(tokens)
        n_prompt = len(tokens)
        for seq in range(1, len(seeds)):
            llama_cpp.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
        seqs = [_Sequence(self._sampler(params, seed), []) for seed in seeds]
        stops = [s.encode("utf-8") for s in params.stop if s]
        piece = (ctypes.c_char * 64)()
        try:
            while True:
                entries: list[tuple[int, int, int, bool]] = []
                for index, seq in enumerate(seqs):
                    if seq.finish is not None:
                        continue
                    tok = seq.sampler.sample(self.context, seq.logits_at)
                    if llama_cpp.llama_vocab_is_eog(vocab, tok):
                        seq.finish = "stop"
                        continue
                    seq.tokens.append(tok)
                    n = llama_cpp.llama_token_to_piece(vocab, tok, piece, len(piece), 0, False)
                    if n < 0:  # the piece is longer than the buffer: -n bytes are needed
                        piece = (ctypes.c_char * -n)()
                        n = llama_cpp.llama_token_to_piece(vocab, tok, piece, -n, 0, False)
                    seq.text += bytes(piece[:n])
                    hits = [seq.text.index(s) for s in stops if s in seq.text]
                    if hits:
                        seq.text = seq.text[: min(hits)]
                        seq.finish = "stop"
                        continue
                    if len(seq.tokens) >= params.max_tokens:
                        seq.finish = "length"
                        continue
                    entries.append((tok, n_prompt + len(seq.tokens) - 1, index, True))
                if not entries:
                    break
                self._decode(entries)
                for i, (_, _, index, _) in enumerate(entries):
                    seqs[index].logits_at = i
        finally:
            for seq in range(0, len(seeds)):
                llama_cpp.llama_memory_seq_rm(self._memory, seq, n_prompt, -1)
            for seq in seqs:
                seq.sampler.close()
        return [
            Completion(
                text=seq.text.decode("utf-8", errors="ignore"),
                prompt_tokens=n_prompt,
                completion_tokens=len(seq.tokens),
                finish_reason=seq.finish or "length",
                batch_end=False,
            )
            for seq in seqs
        ]
