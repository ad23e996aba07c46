"""The data card written with every export: what made the data, what the file holds, what
the checks removed and how the weights were learnt, so that the file can be used, and
judged, without its run directory. Its fields follow the dataset cards of Hugging Face
and DataDreamer; `data_card` is a pure function of `RunFacts` and the exported rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synalign.report.card_text import (
    COLUMNS,
    LIMITATIONS,
    PAPER,
    QUERY_COLUMNS,
    REASONS,
    SET_MEANING,
    cell,
    number,
    size_category,
)

MARKER = "<!-- synalign data card"
"""The first line of every card SynAlign writes (after a dataset card's YAML block), so a
README.md it did not write is never replaced."""


@dataclass(frozen=True)
class RunFacts:
    """What a card says about the run that made the data, read once from its directory:
    a result from the Python API keeps it after its temporary directory is gone."""

    name: str
    version: str
    config: dict[str, Any]
    real_records: int
    real_groups: dict[str, int]
    """Real records per label; for a retrieval run, real pairs per document."""
    generators: list[dict[str, str]]
    """Each distinct (backend, model, prompt_family) that wrote samples."""
    sampling: dict[str, list[Any]]
    """Each sampling setting's distinct values over the requests (seeds left out)."""
    accepted: int
    rejected: dict[str, int]
    checks: dict[str, Any]
    """The generate stage's `label_check` or `query_check` figures."""
    alignment: dict[str, Any]
    source_note: str = ""

    @property
    def task(self) -> str:
        """'classification' or 'retrieval': the card counts labels or documents."""
        return str(self.config.get("task", "classification"))

    def section(self, name: str) -> dict[str, Any]:
        """A config section, empty when the config could not be read."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}


def data_card(
    facts: RunFacts,
    rows: list[dict[str, Any]],
    which: str,
    file_name: str | None = None,
    fmt: str | None = None,
) -> str:
    """The card's Markdown for `rows` exported as `which` ('aligned' or 'synthetic');
    with `fmt` 'hf' it opens with the YAML block a Hugging Face dataset card carries."""
    lines: list[str] = []
    if fmt == "hf":
        lines += front_matter(facts, len(rows), which)
    lines.append(f"{MARKER}: {(file_name or 'dataset').replace('--', '- -')} -->")
    lines.append(f"# Synthetic data: {facts.name} ({which} set)")
    lines += ["", _summary(facts, rows), ""]
    for part in (_contents, _making, _source, _checks, _weights, _use):
        lines += part(facts, rows, which, file_name, fmt)
    return "\n".join(lines).rstrip() + "\n"


def front_matter(facts: RunFacts, n_rows: int, which: str) -> list[str]:
    """The YAML metadata the Hugging Face Hub reads from a dataset card."""
    import yaml

    meta: dict[str, Any] = {}
    if facts.section("data").get("dataset"):
        meta["language"] = ["en"]  # every bundled corpus is English
    meta["pretty_name"] = f"{facts.name} ({which}, SynAlign synthetic data)"
    retrieval = facts.task == "retrieval"
    meta["task_categories"] = ["text-retrieval" if retrieval else "text-classification"]
    meta["size_categories"] = [size_category(n_rows)]
    meta["annotations_creators"] = ["machine-generated"]
    meta["language_creators"] = ["machine-generated"]
    meta["tags"] = ["synthetic", "synalign"]
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return ["---", *text.rstrip("\n").splitlines(), "---"]


def card_file_of(first_lines: list[str]) -> str | None:
    """The exported file a card describes, from its first lines; None if SynAlign did not
    write it."""
    lines = list(first_lines)
    if lines and lines[0].strip() == "---":
        ends = [i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"]
        lines = lines[ends[0] + 1 :] if ends else []
    if not lines or not lines[0].startswith(MARKER):
        return None
    return lines[0][len(MARKER) :].strip().removeprefix(":").removesuffix("-->").strip()


# ----- sections ------------------------------------------------------------------------


def _digest(generator: dict[str, str]) -> str:
    """ ", sha256 `...`" for a model file whose digest the samples recorded."""
    digest = generator.get("model_sha256", "?")
    return "" if digest in ("?", "") else f"; sha256 `{cell(digest)}`"


def _model_names(facts: RunFacts) -> str:
    names = sorted({g.get("model", "") for g in facts.generators} - {""})
    return ", ".join(f"`{n}`" for n in names) or "an LLM"


def _summary(facts: RunFacts, rows: list[dict[str, Any]]) -> str:
    data = facts.section("data")
    named = data.get("dataset") or Path(str(data.get("path") or "")).name
    source = f"`{named}`" if named else "rows given in memory"
    if facts.task == "retrieval":
        what = f"{len(rows)} synthetic queries, each written for one corpus document,"
        real = f"{facts.real_records} real (query, document) pairs of {source}"
    else:
        what = f"{len(rows)} synthetic labelled texts"
        real = f"{facts.real_records} real labelled records of {source}"
    weighted = (
        "given equal weights"
        if facts.section("align").get("enabled", True) is False
        else "weighted so that their distribution matches the real data's"
    )
    by = _model_names(facts)
    return f"{what} written by {by} with SynAlign from {real}, filtered, and {weighted}."


def _contents(
    facts: RunFacts, rows: list[dict[str, Any]], which: str, file_name: str | None, fmt: Any
) -> list[str]:
    formats = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "Parquet"}
    kind = formats.get(fmt or "", "Hugging Face `datasets` folder (`load_from_disk`)")
    out, retrieval = ["## Contents", ""], facts.task == "retrieval"
    if file_name:
        out.append(f"- **File**: `{file_name}` ({kind})")
    mix = ", with the real data's label mix" if not retrieval else ""
    out.append(f"- **Set**: `{which}`: {SET_MEANING.get(which, which).format(mix=mix)}")
    ids = {str(r["id"]) for r in rows if "id" in r}
    distinct = f" ({len(ids)} distinct samples)" if ids and len(ids) != len(rows) else ""
    out.append(f"- **Rows**: {len(rows)}{distinct}")
    if retrieval:
        docs = {str(r.get("doc_id", r.get("positive"))) for r in rows}
        out.append(f"- **Queries**: {len(rows)}; **distinct documents**: {len(docs)}")
        out.append("")
    else:
        counts = Counter(str(r.get("label")) for r in rows)
        out += ["", "| label | rows | real records |", "|---|---:|---:|"]
        for label in sorted(set(counts) | set(facts.real_groups)):
            out.append(f"| {cell(label)} | {counts.get(label, 0)} | "
                       f"{facts.real_groups.get(label, 0)} |")  # fmt: skip
        out.append("")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    out += ["### Columns", "", "| column | meaning |", "|---|---|"]
    meaning = QUERY_COLUMNS if facts.task == "retrieval" else COLUMNS
    out += [f"| `{cell(c)}` | {meaning.get(c, '')} |" for c in columns]
    return [*out, ""]


def _making(facts: RunFacts, rows: Any, which: str, file_name: Any, fmt: Any) -> list[str]:
    explore, generate = facts.section("explore"), facts.section("generate")
    embed = facts.section("embed")
    size = explore.get("cluster_size", "?")
    embedder = f"`{embed.get('model', 'all-MiniLM-L6-v2')}`"
    if explore.get("method", "gp") == "gp":
        first = (
            f"a Gaussian-process uncertainty tracker over the real texts' {embedder} "
            "embeddings picked the least-explored real example each round; it and its "
            f"nearest neighbours formed a demonstration cluster of {size}"
        )
    else:
        first = f"demonstration clusters of {size} real examples were drawn at random"
    if facts.task == "retrieval":
        first += (
            "; the documents that got a query were picked by the same exploration over "
            "k-means cells of the corpus embeddings"
        )
    if generate.get("attributes", True):
        named = (
            "form, specificity, wording; length and word reuse are measured"
            if facts.task == "retrieval"
            else "tone, style, topic; length is measured"
        )
        second = (
            f"the LLM named what each cluster has in common ({named}), then wrote new "
            "samples carrying those attributes"
        )
    else:
        second = "the LLM wrote new samples after each cluster, without an attribute step"
    out = [
        "## How it was made",
        "",
        f"Method: SynAlign ({PAPER}).",
        "",
        f"1. **Exploration** ({explore.get('method', 'gp')}): {first}.",
        f"2. **Latent attribute reasoning**: {second}; the samples were filtered (below).",
        "3. **Alignment**: each accepted sample got an MMD weight (below).",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for g in facts.generators or [{}]:
        out.append(
            f"| LLM | `{cell(g.get('model', '?'))}` ({cell(g.get('backend', '?'))} backend, "
            f"{cell(g.get('prompt_family', '?'))} prompts{_digest(g)}) |"
        )
    sampling = ", ".join(
        f"{k} {' / '.join(cell(v) for v in vs)}" for k, vs in facts.sampling.items()
    )
    out.append(f"| sampling | {sampling or 'not recorded'} |")
    if facts.task == "retrieval":
        budget = f"{facts.section('retrieval').get('queries', '?')} documents, one query each"
    else:
        budget = f"{generate.get('samples_per_label', '?')} candidates per label"
    per = generate.get("samples_per_cluster", "?")
    out.append(f"| budget | {budget}, {per} samples per cluster |")
    out.append(f"| seed | {facts.config.get('seed', '?')} |")
    out.append(f"| SynAlign version | {facts.version} |")
    return [*out, ""]


def _source(facts: RunFacts, rows: Any, which: str, file_name: Any, fmt: Any) -> list[str]:
    data, retrieval = facts.section("data"), facts.section("retrieval")
    if data.get("dataset"):
        where = f"bundled corpus `{data['dataset']}` (split `{data.get('split', 'train')}`)"
    elif data.get("path"):
        where = f"`{data['path']}`"
    else:
        where = "rows given in memory (Python API)"
    out = ["## Source data", "", f"- **Real data**: {where}"]
    if facts.source_note:
        out.append(f"- **About it**: {facts.source_note}")
    shots = data.get("shots")
    drawn = f", {shots} drawn per label" if shots and facts.task != "retrieval" else ""
    if facts.task == "retrieval":
        out.append(
            f"- **Size**: {facts.real_records} real (query, document) pairs over "
            f"{len(facts.real_groups)} documents"
        )
        if retrieval.get("corpus"):
            out.append(f"- **Corpus**: `{retrieval['corpus']}`")
    else:
        out.append(f"- **Size**: {facts.real_records} real records{drawn}, "
                   f"{len(facts.real_groups)} labels")  # fmt: skip
    return [*out, ""]


def _checks(facts: RunFacts, rows: Any, which: str, file_name: Any, fmt: Any) -> list[str]:
    removed = sum(facts.rejected.values())
    out = [
        "## Filters and checks",
        "",
        f"{facts.accepted + removed} samples were generated: {facts.accepted} accepted, "
        f"{removed} rejected.",
        "",
    ]
    if removed:
        order = [r for r in REASONS if r in facts.rejected]
        order += sorted(set(facts.rejected) - set(order))
        out += ["| reason | removed | what it catches |", "|---|---:|---|"]
        out += [f"| `{cell(r)}` | {facts.rejected[r]} | {REASONS.get(r, '')} |" for r in order]
        out.append("")
    label = facts.checks.get("label_check")
    if isinstance(label, dict):
        chosen = (
            f", chosen as the {label['quantile']:g} quantile of the real texts' own "
            "out-of-fold scores"
            if label.get("quantile") is not None
            else ""
        )
        out.append(
            f"Label check `{label.get('method')}`: a sample was kept when the judge gave its "
            f"label at least {number(label.get('threshold'))} of the top label's "
            f"probability{chosen}."
        )
    query = facts.checks.get("query_check")
    if isinstance(query, dict):
        tests = []
        if "roundtrip_k" in query:
            tests.append(f"its document is in the embedder's top {query['roundtrip_k']}")
        if query.get("likelihood_threshold") is not None:
            threshold = number(query["likelihood_threshold"])
            tests.append(f"its per-word log-likelihood is at least {threshold}")
        how = f" ({' and '.join(tests)})" if tests else ""
        out.append(
            f"Query check `{query.get('method')}`: a query was kept when it singles out its "
            f"document{how}."
        )
    if label or query:
        out.append("")
    return out


def _weights(facts: RunFacts, rows: Any, which: str, file_name: Any, fmt: Any) -> list[str]:
    align, info = facts.section("align"), facts.alignment
    out = ["## Weights", ""]
    if align.get("enabled", True) is False:
        out.append("Equal weights: the alignment step was switched off (`align.enabled`).")
    else:
        scope = (
            "all labels at once, then renormalised per label"
            if align.get("scope") == "joint"
            else "per label"
            if facts.task != "retrieval"
            else "over all queries"
        )
        out.append(
            "Each sample's weight minimises the Maximum Mean Discrepancy (MMD, RBF kernel, "
            f"bandwidth {number(info.get('bandwidth'))}) between the weighted synthetic "
            f"embeddings and the real ones, {scope}, on the probability simplex, with each "
            "group's effective sample size (ESS) kept at least "
            f"{align.get('ess_floor', '?')} x its samples. Weights sum to 1 within a group."
        )
    before, after = info.get("mmd2_before") or {}, info.get("mmd2_after") or {}
    ess, sizes = info.get("ess") or {}, info.get("synthetic_per_label") or {}
    if before:
        out += ["", "| group | samples | MMD² before | MMD² after | ESS | ESS / samples |"]
        out.append("|---|---:|---:|---:|---:|---:|")
        for group in before:
            n = sizes.get(group)
            share = number(ess[group] / n, 2) if n and group in ess else ""
            out.append(
                f"| {cell(group)} | {n if n is not None else ''} | {number(before[group])} | "
                f"{number(after.get(group))} | {number(ess.get(group), 2)} | {share} |"
            )
    return [*out, ""]


def _use(facts: RunFacts, rows: Any, which: str, file_name: Any, fmt: Any) -> list[str]:
    if facts.task == "retrieval":
        model = "a small dense retriever (the (query, document) pairs as training pairs)"
    else:
        model = "a small classifier of these labels"
    group = "" if facts.task == "retrieval" else " of its label"
    how = (
        f"use `weight` as a sample weight (scaled, e.g. times the number of rows{group}, "
        "so that weights average 1)"
        if which == "synthetic"
        else "the rows can be used as they are: the resampling already applied the weights"
    )
    return [
        "## Intended use",
        "",
        f"Training {model} together with the real data it was made from, when only a few "
        f"real examples exist; {how}.",
        "",
        "## Limitations",
        "",
        f"- Written by an LLM ({_model_names(facts)}): {LIMITATIONS[0]}",
        *(f"- {line}" for line in LIMITATIONS[1:]),
        "",
    ]
