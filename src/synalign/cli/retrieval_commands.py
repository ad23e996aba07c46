"""`synalign evaluate --task retrieval`: the retrieval evaluation from the command line."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from synalign.cli.console import err, out


def evaluate_retrieval(
    *,
    name: str,
    runs_dir: str,
    dataset: str | None,
    corpus: Path | None,
    train: Path | None,
    test: Path | None,
    id_column: str,
    document_column: str,
    query_column: str,
    doc_id_column: str,
    shots: int,
    seeds: str,
    queries: int,
    methods: str,
    validation: bool,
    overrides: list[str],
) -> None:
    """Run a retrieval evaluation and print its table and report path."""
    from synalign.evaluation import parse_seeds
    from synalign.evaluation.retrieval_runner import RetrievalEvaluation
    from synalign.evaluation.retrieval_settings import RetrievalEvalConfig, parse_retrieval_methods
    from synalign.progress import RichReporter

    config = RetrievalEvalConfig(
        name=name,
        runs_dir=runs_dir,
        dataset=dataset,
        corpus=None if corpus is None else str(corpus),
        train=None if train is None else str(train),
        test=None if test is None else str(test),
        id_column=id_column,
        document_column=document_column,
        query_column=query_column,
        doc_id_column=doc_id_column,
        shots=shots,
        seeds=parse_seeds(seeds),
        queries=queries,
        methods=parse_retrieval_methods(methods),
        validation=validation,
        overrides=overrides,
    )
    start = time.perf_counter()
    evaluation = RetrievalEvaluation(config, reporter=RichReporter(err))
    metrics = evaluation.run()
    out.print(retrieval_table(metrics))
    out.print(
        f"LLM calls made: {evaluation.llm_calls_} · wall time {time.perf_counter() - start:.1f} s"
    )
    out.print(f"report: {config.folder.report_dir / 'report.html'}", soft_wrap=True)


def retrieval_table(metrics: dict) -> Table:
    """Mean ± sd per row, and the paired MRR@10 difference to `real` with its interval."""
    from synalign.evaluation.retrieval_settings import METRICS

    table = Table(title="retrieval (×100, mean ± sd over seeds)", header_style="bold")
    for col in ("row", *METRICS, "Δ mrr@10 vs real [95% CI]"):
        table.add_column(col)
    paired = metrics.get("paired", {}).get("real", {})
    for name, m in metrics["methods"].items():
        cells = [
            "–" if m[k]["mean"] is None else f"{100 * m[k]['mean']:.1f} ± {100 * m[k]['sd']:.1f}"
            for k in METRICS
        ]
        p = paired.get(name, {}).get("mrr@10")
        delta = "" if p is None else f"{100 * p['mean']:+.1f}"
        if p is not None and p.get("ci_low") is not None:
            delta += f" [{100 * p['ci_low']:+.1f}, {100 * p['ci_high']:+.1f}]"
        table.add_row(name, *cells, delta)
    return table
