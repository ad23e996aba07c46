"""Runs the stages into a run directory; the only module that knows its layout.

Each stage records a fingerprint of its inputs and config in `state.json`; a stage whose
fingerprint is unchanged and whose outputs exist is skipped. An interrupted stage is
re-run, and its LLM calls and embeddings come back from the caches under `cache/`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from synalign.backends.embed.embedders import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from synalign.backends.llm.base import LLM, SamplingParams
from synalign.backends.llm.cache import CachedLLM, ResponseCache
from synalign.config import RunConfig, to_toml
from synalign.errors import ConfigError, SynAlignError
from synalign.io.tables import (
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
    read_records,
    validate_labelled,
    write_jsonl,
)
from synalign.lar.filters import SampleFilter
from synalign.lar.generator import Cluster, LatentAttributeGenerator, stable_seed
from synalign.lar.prompts.families import (
    PromptFamily,
    TaskSpec,
    label_problem,
    prompt_family,
    word_count,
)
from synalign.progress import Reporter, SilentReporter
from synalign.records import Record, labels_of, quoted

_WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM}

STAGES = ("ingest", "explore", "describe", "generate", "align", "report")

OUTPUTS: dict[str, tuple[str, ...]] = {
    "ingest": ("real.jsonl",),
    "explore": ("demos.jsonl",),
    "describe": ("attributes.jsonl",),
    "generate": ("synthetic.jsonl", "rejected.jsonl"),
    "align": ("aligned.jsonl", "weights.npy", "align.json"),
    "report": ("report/metrics.json",),
}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run directory: a second one refuses instead of interleaving writes."""
    path = run_dir / ".lock"
    try:
        handle = path.open("a+")
    except OSError as err:
        raise SynAlignError(
            f"{run_dir}: cannot write in the run directory ({err.strerror}); "
            "check its permissions or choose another runs_dir"
        ) from err
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SynAlignError(
                f"{run_dir} is in use by another synalign process (pid {holder}); wait for it "
                "to finish or choose another run name (--name)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What a base (not instruction-tuned) model does with a chat prompt: it continues the
# prompt's own text, runs to the token limit, or writes no JSON array at all.
BASE_MODEL_SIGNS = ("prompt_echo", "truncated", "missing", "unparseable")


def no_sample_message(
    labels: list[str],
    rejected: list[dict[str, Any]],
    path: Path,
    prompt_family: str | None = None,
) -> str:
    """Why a generate stage ended with nothing accepted for `labels`: each label's most
    frequent rejection reasons, with counts, and the most likely fix first."""
    parts = []
    for label in labels:
        counts = Counter(r["reason"] for r in rejected if r["label"] == label)
        top = ", ".join(f"{why} {n}" for why, n in counts.most_common(3))
        parts.append(f"{label!r} (rejected: {top or 'no sample was generated'})")
    fix = "raise generate.samples_per_label or relax generate.min_words / near_copy"
    signs = sum(r["reason"] in BASE_MODEL_SIGNS for r in rejected)
    if prompt_family == "chat" and rejected and signs >= 0.5 * len(rejected):
        fix = (
            f"{signs} of {len(rejected)} rejections are {' / '.join(BASE_MODEL_SIGNS)}, what a"
            " base model does with chat prompts: if llm.model is a base (not"
            ' instruction-tuned) model, set llm.prompt_family = "completion"'
            " (--set 'llm.prompt_family=\"completion\"'); otherwise " + fix
        )
    return (
        f"no synthetic sample was accepted for label(s) {'; '.join(parts)}; {fix}; see {path}"
        " for every rejected sample"
    )


@dataclass
class RunSummary:
    """What a run produced, for the summary table and metrics.json."""

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class Pipeline:
    """ESM -> LAR -> SDA over one run directory."""

    def __init__(
        self,
        config: RunConfig,
        reporter: Reporter | None = None,
        llm: LLM | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.run_dir = config.run_dir
        self._llm_override = llm
        self._embedder_override = embedder
        self._llm: CachedLLM | None = None
        self._embedder: CachedEmbedder | None = None
        self._task: TaskSpec | None = None

    # ----- run directory --------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def _state(self) -> dict[str, Any]:
        p = self.path("state.json")
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.path("state.json"), json.dumps(state, indent=2, sort_keys=True))

    def _fingerprint(self, stage: str) -> str:
        c = self.config
        inputs: dict[str, Any] = {"stage": stage, "seed": c.seed}
        if stage == "ingest":
            inputs["data"] = c.data.model_dump()
            if c.data.path:
                p = Path(c.data.path)
                inputs["file"] = _file_digest(p) if p.exists() else None
            return _digest(inputs)
        previous = STAGES[STAGES.index(stage) - 1]
        inputs["after"] = self._state().get("stages", {}).get(previous, {}).get("fingerprint")
        if stage in ("explore", "align", "report"):
            inputs["embed"] = c.embed.model_dump()
        if stage == "explore":
            inputs["explore"] = c.explore.model_dump()
            inputs["clusters_per_label"] = self._clusters_per_label()
        if stage in ("describe", "generate", "report"):
            inputs["generate"] = c.generate.model_dump()
        if stage in ("describe", "generate", "report"):
            inputs["llm"] = c.llm.model_dump()
        if stage in ("align", "report"):
            inputs["align"] = c.align.model_dump()
        return _digest(inputs)

    # ----- components (built on first use so skipped stages load nothing) --------------

    @property
    def embedder(self) -> CachedEmbedder:
        if self._embedder is None:
            base = self._embedder_override or SentenceTransformerEmbedder(
                self.config.embed.model, batch_size=self.config.embed.batch_size
            )
            if self._embedder_override is None and self.config.executor != "local":
                from synalign.backends.ray.executor import executor_embedder

                base = executor_embedder(self.config)
            self._embedder = CachedEmbedder(base, self.path("cache/embeddings.sqlite"))
        return self._embedder

    @property
    def llm(self) -> CachedLLM:
        if self._llm is None:
            from synalign.backends.ray.executor import executor_llm

            base = self._llm_override or executor_llm(self.config)
            self._llm = CachedLLM(base, ResponseCache(self.path("cache/llm.sqlite")))
        return self._llm

    def _family(self) -> PromptFamily:
        name = self.config.llm.prompt_family
        if name == "auto":
            name = "chat" if self.llm.has_chat_template else "completion"
        return prompt_family(name)

    def _llm_progress(self, advance: Any) -> Any:
        """Wraps a progress bar's advance with the live LLM figures of the stage."""
        start = time.perf_counter()

        def progress(n: int = 1, accepted: int | None = None, rejected: int | None = None) -> None:
            usage = self.llm.usage
            rate = usage.completion_tokens / max(time.perf_counter() - start, 1e-9)
            parts = [] if accepted is None else [f"accepted {accepted}", f"rejected {rejected}"]
            parts += [f"{rate:.0f} tok/s", f"{usage.retries} retried"]
            advance(n, status=" · ".join(parts))

        return progress

    def _usage(self) -> dict[str, Any]:
        """This stage's LLM usage (then reset), with its cost when prices are configured."""
        usage = self.llm.reset_usage()
        c = self.config.llm
        return {
            "llm": usage.as_dict(),
            "cost": usage.cost(c.price_input_per_million, c.price_output_per_million),
        }

    def task_spec(self) -> TaskSpec:
        if self._task is None:
            d = self.config.data
            item, descriptions = d.item_name, dict(d.label_descriptions)
            if d.dataset:
                from synalign.io.corpora import dataset_info

                info = dataset_info(d.dataset)
                item = item or info.item_name
                descriptions = {**info.label_descriptions, **descriptions}
            self._task = TaskSpec(item_name=item or "text", label_descriptions=descriptions)
        return self._task

    # ----- stages ----------------------------------------------------------------------

    def run(self, until: str = "report", force: bool = False) -> RunSummary:
        """Run every stage up to `until`, skipping the ones already done."""
        if until not in STAGES:
            raise ConfigError(f"unknown stage {until!r}; choose one of {', '.join(STAGES)}")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SynAlignError(
                f"{self.run_dir}: cannot create the run directory ({err.strerror}); "
                "choose a writable runs_dir"
            ) from err
        with run_lock(self.run_dir):
            return self._run_locked(until, force)

    def _run_locked(self, until: str, force: bool) -> RunSummary:
        for stale in self.run_dir.rglob(".*.tmp"):  # a killed run's unfinished writes
            stale.unlink(missing_ok=True)
        atomic_write_text(self.path("config.toml"), to_toml(self.config))
        summary = RunSummary(self.run_dir)
        for stage in STAGES[: STAGES.index(until) + 1]:
            state = self._state()
            fp = self._fingerprint(stage)
            done = state.get("stages", {}).get(stage, {})
            outputs_exist = all(self.path(o).exists() for o in OUTPUTS[stage])
            if not force and done.get("fingerprint") == fp and outputs_exist:
                summary.skipped.append(stage)
                self.reporter.message(f"[dim]{stage}: up to date, skipped[/dim]")
                continue
            start = time.perf_counter()
            try:
                info = getattr(self, f"_stage_{stage}")() or {}
            except (OSError, sqlite3.OperationalError) as err:
                if isinstance(err, OSError) and err.errno not in _WRITE_ERRNOS:
                    raise
                if isinstance(err, sqlite3.OperationalError) and not any(
                    word in str(err) for word in ("full", "readonly", "disk", "unable to open")
                ):
                    raise
                reason = err.strerror if isinstance(err, OSError) else str(err)
                raise SynAlignError(
                    f"{stage} stage could not write to {self.run_dir} ({reason}); free space "
                    "or fix permissions and re-run: finished work and cached LLM answers are kept"
                ) from err
            state = self._state()
            state.setdefault("stages", {})[stage] = {
                "fingerprint": fp,
                "seconds": round(time.perf_counter() - start, 3),
                **info,
            }
            self._save_state(state)
        if until == "report":
            summary.metrics = json.loads(self.path("report/metrics.json").read_text("utf-8"))
        return summary

    def _stage_ingest(self) -> dict[str, Any]:
        d = self.config.data
        warnings: list[str] = []
        if d.dataset:
            from synalign.io.corpora import draw_shots, load_split

            records = load_split(d.dataset, d.split)
            source = f"dataset {d.dataset} ({d.split})"
        elif d.path:
            loaded = read_records(d.path, d.text_column, d.label_column, dedupe=True)
            records, warnings = loaded.records, list(loaded.warnings)
            source = d.path
        else:
            raise ConfigError(
                "no real data: set data.dataset (see `synalign datasets list`) or data.path"
            )
        if d.shots:
            from synalign.io.corpora import draw_shots

            records, shot_warnings = draw_shots(records, d.shots, self.config.seed)
            warnings += shot_warnings
        warnings += validate_labelled(
            records, source, min_per_label=self.config.explore.cluster_size
        )
        self._check_label_names(labels_of(records), source)
        for w in warnings:
            self.reporter.message(f"[yellow]warning:[/yellow] {escape(w)}")
        write_jsonl(self.path("real.jsonl"), [r.to_dict() for r in records])
        return {"records": len(records), "labels": len(labels_of(records)), "warnings": warnings}

    def _check_label_names(self, labels: list[str], source: str) -> None:
        """Every label, as the prompts name it, must fit on a prompt's tag line."""
        task = self.task_spec()
        for label in labels:
            shown = task.describe(label)
            problem = label_problem(shown)
            if problem is None:
                continue
            named = quoted(label)
            what = (
                f"label {named} in {source}"
                if shown == label
                else f"data.label_descriptions entry of label {named} ({quoted(shown)})"
            )
            raise ConfigError(
                f"the {what} {problem}; give the label a one-line description without it,"
                f" e.g. --set 'data.label_descriptions={{{named} = \"a name\"}}'"
            )

    def _real(self) -> list[Record]:
        return [Record.from_dict(r) for r in read_jsonl(self.path("real.jsonl"))]

    def _embed(self, texts: list[str], what: str) -> np.ndarray:
        """Embeds in chunks (for the progress bar) taken in order of length, longest first,
        so that every batch holds texts of similar length, as one `encode` call would."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: np.ndarray | None = None
        with self.reporter.task(f"embedding {what}", total=len(texts)) as advance:
            step = max(self.config.embed.batch_size * 16, 1024)
            for start in range(0, len(order), step):
                rows = order[start : start + step]
                vecs = self.embedder.encode([texts[i] for i in rows])
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[rows] = vecs
                advance(len(rows))
        if out is None:
            return np.zeros((0, 384), dtype=np.float32)
        return out

    def _clusters_per_label(self) -> int:
        g = self.config.generate
        return math.ceil(g.samples_per_label / g.samples_per_cluster)

    def _stage_explore(self) -> dict[str, Any]:
        from synalign.esm.selectors import DemonstrationSelector, RandomSelector

        c = self.config
        real = self._real()
        texts = [r.text for r in real]
        report = self.embedder.token_report(texts)
        warnings = report.warnings("real texts") if report else []
        for w in warnings:
            self.reporter.message(f"[yellow]warning:[/yellow] {escape(w)}")
        X = self._embed(texts, "real texts")
        n_clusters = self._clusters_per_label()
        rows: list[dict[str, Any]] = []
        index = 0
        for label in labels_of(real):
            idx = [i for i, r in enumerate(real) if r.label == label]
            seed = stable_seed(c.seed, label, "explore")
            if c.explore.method == "gp":
                selector: Any = DemonstrationSelector(
                    cluster_size=c.explore.cluster_size,
                    bandwidth=c.explore.bandwidth,
                    noise=c.explore.noise,
                    seed=seed,
                )
            else:
                selector = RandomSelector(cluster_size=c.explore.cluster_size, seed=seed)
            clusters = selector.select(X[idx], n_clusters)
            for members in clusters:
                recs = [real[idx[m]] for m in members]
                rows.append(
                    {
                        "cluster": index,
                        "label": label,
                        "demo_ids": [r.id for r in recs],
                        "texts": [r.text for r in recs],
                    }
                )
                index += 1
        write_jsonl(self.path("demos.jsonl"), rows)
        return {"clusters": len(rows), "warnings": warnings}

    def _clusters(self) -> list[Cluster]:
        return [
            Cluster(r["cluster"], r["label"], tuple(r["demo_ids"]), tuple(r["texts"]))
            for r in read_jsonl(self.path("demos.jsonl"))
        ]

    def _generator(self) -> LatentAttributeGenerator:
        c = self.config
        real = self._real()
        words = sorted(word_count(r.text) for r in real)
        p95 = words[min(len(words) - 1, int(0.95 * len(words)))] if words else 40
        max_tokens = c.llm.max_tokens or max(32, min(512, int(p95 * 2) + 16))
        min_p = c.llm.min_p
        if min_p is None and c.llm.backend == "llamacpp":
            min_p = 0.05
        sampling = SamplingParams(
            temperature=c.llm.temperature, top_p=c.llm.top_p, min_p=min_p, max_tokens=max_tokens
        )
        attribute_sampling = SamplingParams(
            temperature=0.7, top_p=c.llm.top_p, min_p=min_p, max_tokens=48
        )
        sample_filter = SampleFilter(
            min_words=c.generate.min_words,
            max_words=c.generate.max_words,
            near_copy=c.generate.near_copy,
        ).fit(r.text for r in real)
        return LatentAttributeGenerator(
            llm=self.llm,
            family=self._family(),
            task=self.task_spec(),
            use_attributes=c.generate.attributes,
            samples_per_cluster=c.generate.samples_per_cluster,
            sampling=sampling,
            attribute_sampling=attribute_sampling,
            sample_filter=sample_filter,
            seed=c.seed,
        )

    def _stage_describe(self) -> dict[str, Any]:
        clusters = self._clusters()
        gen = self._generator()
        self.llm.reset_usage()
        with self.reporter.task("attributes", total=len(clusters)) as advance:
            rows = gen.describe(clusters, progress=self._llm_progress(advance))
        write_jsonl(self.path("attributes.jsonl"), rows)
        return {"parsed": sum(r["parsed"] for r in rows), "clusters": len(rows), **self._usage()}

    def _stage_generate(self) -> dict[str, Any]:
        clusters = self._clusters()
        attributes = read_jsonl(self.path("attributes.jsonl"))
        gen = self._generator()
        self.llm.reset_usage()
        with self.reporter.task("writing samples", total=gen.n_requests(clusters)) as advance:
            accepted, rejected = gen.generate(
                clusters, attributes, progress=self._llm_progress(advance)
            )
        checked: dict[str, Any] = {}
        if self.config.generate.label_check != "none" and accepted:
            accepted, mismatched, checked = self._check_labels(accepted)
            rejected = rejected + mismatched
        seed = self.config.seed
        for row in accepted + rejected:
            row["seed"] = seed
        write_jsonl(self.path("rejected.jsonl"), rejected)
        write_jsonl(self.path("synthetic.jsonl"), accepted)
        empty = [
            lab for lab in labels_of(self._real()) if not any(r["label"] == lab for r in accepted)
        ]
        if empty:
            raise SynAlignError(
                no_sample_message(empty, rejected, self.path("rejected.jsonl"), self._family().name)
            )
        return {
            "generated": len(accepted) + len(rejected),
            "accepted": len(accepted),
            "rejected": dict(Counter(r["reason"] for r in rejected)),
            **checked,
            **self._usage(),
        }

    def _check_labels(
        self, accepted: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """Moves samples whose label the real texts contradict to the rejected ones
        (reason `label_mismatch`, with the judge's score)."""
        from synalign.lar.label_check.likelihood import (
            NEEDS_SCORER,
            calibration_quantile,
            resolve_label_check,
            run_label_check,
        )

        g = self.config.generate
        quantile = calibration_quantile(g.label_check_threshold, g.label_check_quantile)
        real = self._real()
        method, threshold = resolve_label_check(g.label_check, g.label_check_threshold, self.llm)
        texts = [s["text"] for s in accepted]
        X_real = self._embed([r.text for r in real], "real texts")
        X_syn = self._embed(texts, "synthetic texts")
        real_in = ([r.text for r in real], [r.label for r in real], [r.id for r in real], X_real)
        labels = [s["label"] for s in accepted]
        syn_in = (texts, labels, [s["demo_ids"] for s in accepted], X_syn)
        asks_llm = method in NEEDS_SCORER
        bar = self.reporter.task(f"label check ({method})", total=len(texts))
        with bar if asks_llm else contextlib.nullcontext(None) as step:
            outcome = run_label_check(
                method, threshold, llm=self.llm, real=real_in, synthetic=syn_in,
                seed=self.config.seed, progress=step, quantile=quantile,
            )  # fmt: skip
        threshold = outcome.threshold if outcome.threshold is not None else threshold
        kept = [row for row, k in zip(accepted, outcome.keep, strict=True) if k]
        mismatched = [
            {**row, "reason": "label_mismatch", "label_score": round(float(score), 4)}
            for row, score, k in zip(accepted, outcome.scores, outcome.keep, strict=True)
            if not k
        ]
        emptied = outcome.kept_whole_labels
        info = {
            "label_check": {
                "method": method,
                "threshold": threshold,
                "quantile": quantile if outcome.calibrated else None,
                "kept_whole_labels": emptied,
            }
        }
        chosen = (
            f", the {quantile:g} quantile of the real texts' out-of-fold scores"
            if outcome.calibrated
            else ""
        )
        self.reporter.message(
            f"label check ({method}, threshold {threshold:.2f}{chosen}): rejected "
            f"{len(mismatched)} of {len(accepted)} samples as reading like another label"
        )
        for lab in emptied:
            self.reporter.message(
                f"[yellow]warning:[/yellow] the label check would reject every sample of "
                f"{escape(repr(lab))}; kept them all (see generate.label_check)"
            )
        return kept, mismatched, info

    def _stage_align(self) -> dict[str, Any]:
        from synalign.sda.aligner import MMDAligner, counts_by_share, label_shares
        from synalign.sda.kernels import effective_sample_size

        c = self.config
        real = self._real()
        synthetic = read_jsonl(self.path("synthetic.jsonl"))
        X_real = self._embed([r.text for r in real], "real texts")
        X_syn = self._embed([s["text"] for s in synthetic], "synthetic texts")
        labels_syn = [s["label"] for s in synthetic]
        aligner = MMDAligner(
            bandwidth=c.align.bandwidth,
            seed=c.seed,
            ess_floor=c.align.ess_floor,
            scope=c.align.scope,
        )
        aligner.fit(X_syn, X_real, labels_syn, [r.label for r in real])
        if not c.align.enabled:
            weights = np.zeros(len(synthetic))
            for lab in set(labels_syn):
                mask = np.array([x == lab for x in labels_syn])
                weights[mask] = 1.0 / mask.sum()
            aligner.weights_ = weights
            aligner.ess_ = {
                lab: effective_sample_size(weights[np.array([x == lab for x in labels_syn])])
                for lab in aligner.labels_
            }
            aligner.mmd2_after_ = dict(aligner.mmd2_before_)
        sizes: int | dict[str, int] | None = c.align.size_per_label
        if sizes is None:
            # As many as were accepted, split between labels like the real texts: a label
            # the label check thinned out keeps its share of the set.
            shares = label_shares([r.label for r in real])
            sizes = counts_by_share(len(synthetic), {lab: shares[lab] for lab in aligner.labels_})
        picks = aligner.resample(sizes, seed=c.seed)
        aligned = [{**synthetic[i], "weight": float(aligner.weights_[i])} for i in picks]
        buf = io.BytesIO()
        np.save(buf, np.asarray(aligner.weights_, dtype=np.float64), allow_pickle=False)
        atomic_write_bytes(self.path("weights.npy"), buf.getvalue())
        info = {
            "bandwidth": float(aligner.bandwidth_),
            "mmd2_before": aligner.mmd2_before_,
            "mmd2_after": aligner.mmd2_after_,
            "ess": aligner.ess_,
            "synthetic_per_label": dict(Counter(labels_syn)),
            "aligned_per_label": dict(Counter(a["label"] for a in aligned)),
        }
        atomic_write_text(self.path("align.json"), json.dumps(info, indent=2))
        write_jsonl(self.path("aligned.jsonl"), aligned)
        return {"aligned": len(aligned)}

    def _stage_report(self) -> dict[str, Any]:
        state = self._state().get("stages", {})
        align = json.loads(self.path("align.json").read_text("utf-8"))
        gen = state.get("generate", {})
        metrics = {
            "run_dir": str(self.run_dir),
            "labels": state.get("ingest", {}).get("labels"),
            "real_records": state.get("ingest", {}).get("records"),
            "clusters": state.get("explore", {}).get("clusters"),
            "attributes_parsed": state.get("describe", {}).get("parsed"),
            "generated": gen.get("generated"),
            "accepted": gen.get("accepted"),
            "rejected": gen.get("rejected"),
            "aligned": state.get("align", {}).get("aligned"),
            "llm_usage": {s: state.get(s, {}).get("llm") for s in ("describe", "generate")},
            "llm_cost": {s: state.get(s, {}).get("cost") for s in ("describe", "generate")},
            **{k: align[k] for k in ("bandwidth", "mmd2_before", "mmd2_after", "ess")},
            "synthetic_per_label": align["synthetic_per_label"],
            "seconds": {s: state.get(s, {}).get("seconds") for s in STAGES[:-1]},
            "config": self.config.model_dump(),
        }
        self.path("report").mkdir(exist_ok=True)
        atomic_write_text(self.path("report/metrics.json"), json.dumps(metrics, indent=2))
        return {}
