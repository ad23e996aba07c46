"""Tables, plots and the offline HTML report of an evaluation, rebuilt from its saved results.

Nothing here trains or generates: the report reads `evaluation.json` and the per-seed
files under `results/`, so it can be rebuilt (or restyled) at any time for free.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synalign.errors import SynAlignError

SCORED = (
    "accuracy",
    "macro_f1",
    "mmd2_test",
    "length_w1",
    "kept_rows",
    "check_rejected",
    "judge_agreement_generated",
    "judge_agreement",
    "flips_caught",
    "rejection_precision",
    "mmd2_shots",
    "ess",
    "zero_weight_share",
    "distinct_1",
    "distinct_2",
    "cosine_diversity",
    "synthetic_rows",
    "label_check_threshold",
)


# ----- loading and summarising ---------------------------------------------------------


@dataclass
class EvaluationResults:
    """What an evaluation folder holds: its settings and one result dict per seed."""

    eval_dir: Path
    info: dict[str, Any]
    seeds: list[dict[str, Any]]
    missing_seeds: list[int] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.info["settings"]


def load_results(eval_dir: str | Path) -> EvaluationResults:
    """Read an evaluation folder; a folder that is not one says what to run."""
    root = Path(eval_dir)
    info_path = root / "evaluation.json"
    if not info_path.is_file():
        raise SynAlignError(
            f"{root}: not an evaluation folder (no evaluation.json); "
            "run `synalign evaluate` first, or pass the folder it printed"
        )
    try:
        info = json.loads(info_path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynAlignError(f"{info_path}: unreadable ({e}); re-run `synalign evaluate`") from e
    seeds, missing = [], []
    for seed in info["settings"]["seeds"]:
        path = root / "results" / f"seed-{seed}.json"
        if path.is_file():
            seeds.append(json.loads(path.read_text("utf-8")))
        else:
            missing.append(seed)
    if not seeds:
        raise SynAlignError(
            f"{root / 'results'}: no per-seed results yet; finish the evaluation first "
            "(re-running `synalign evaluate` with the same options resumes it)"
        )
    return EvaluationResults(root, info, seeds, missing)


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "sd": None, "per_seed": values}
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "sd": sd, "per_seed": values}


def paired_stats(deltas: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean paired difference with its two-sided t confidence interval over seeds.

    A method "beats" another only when the whole interval is above zero; with one seed
    there is no interval (None).
    """
    from scipy import stats

    out = {**_stats(deltas), "wins": int(sum(x > 0 for x in deltas)), "seeds": len(deltas)}
    n = len(deltas)
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * out["sd"] / np.sqrt(n)
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    else:
        out["ci_low"] = out["ci_high"] = None
    out["level"] = level
    return out


def summarise(res: EvaluationResults) -> dict[str, Any]:
    """Means and standard deviations over seeds, paired differences, generation and coverage."""
    order = [m for m in res.info["methods"] if all(m in s["methods"] for s in res.seeds)]
    methods: dict[str, Any] = {}
    for name in order:
        per_seed = [s["methods"][name] for s in res.seeds]
        entry = {key: _stats([p.get(key) for p in per_seed]) for key in SCORED}
        ratios = []
        for p in per_seed:
            per_label = [e["ess"] / e["n"] for e in p["per_label"].values() if "ess" in e]
            ratios.append(float(np.mean(per_label)) if per_label else None)
        entry["ess_ratio"] = _stats(ratios)
        methods[name] = entry
    paired: dict[str, Any] = {}
    for baseline in ("real", "naive"):
        if baseline not in methods:
            continue
        paired[baseline] = {}
        for name in order:
            if name == baseline:
                continue
            deltas = {
                metric: [
                    s["methods"][name][metric] - s["methods"][baseline][metric] for s in res.seeds
                ]
                for metric in ("accuracy", "macro_f1")
            }
            paired[baseline][name] = {metric: paired_stats(d) for metric, d in deltas.items()}
    generation: dict[str, Any] = {}
    for variant in res.info.get("variants", {}):
        rows = [s["generation"][variant] for s in res.seeds if variant in s["generation"]]
        if not rows:
            continue
        requests = sum(r.get("llm_requests") or 0 for r in rows)
        new_calls = sum(r.get("llm_calls_when_generated") or 0 for r in rows)
        seconds = sum(r.get("stage_seconds") or 0.0 for r in rows)
        rejected: dict[str, int] = {}
        for r in rows:
            for reason, n in (r.get("rejected") or {}).items():
                rejected[reason] = rejected.get(reason, 0) + n
        attributes: dict[str, dict[str, float]] = {}
        for key in ("tone", "style", "topic"):
            per_seed = [r["attributes"][key] for r in rows if key in (r.get("attributes") or {})]
            if per_seed:
                attributes[key] = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
        generation[variant] = {
            "attributes": attributes,
            "seeds": len(rows),
            "clusters": sum(r.get("clusters") or 0 for r in rows),
            "generated": sum(r.get("generated") or 0 for r in rows),
            "accepted": sum(r.get("accepted") or 0 for r in rows),
            "rejected": rejected,
            "llm_requests": requests,
            "stage_seconds": round(seconds, 1),
            "llm_calls_when_generated": new_calls,
            # Cached answers cost next to nothing, so time is per call actually made.
            "seconds_per_call": round(seconds / new_calls, 3) if new_calls else None,
        }
    coverage: dict[str, Any] = {}
    for kind in ("gp", "random"):
        curves = [s["coverage"][kind] for s in res.seeds if s.get("coverage", {}).get(kind)]
        if not curves:
            continue
        length = max(len(c) for c in curves)
        padded = np.asarray([c + [c[-1]] * (length - len(c)) for c in curves])
        coverage[kind] = {
            "mean": padded.mean(axis=0).tolist(),
            "sd": padded.std(axis=0).tolist(),
            "final": _stats([c[-1] for c in curves]),
        }
    ceiling = [s["coverage_all_shots"] for s in res.seeds if "coverage_all_shots" in s]
    if coverage and ceiling:
        coverage["all_shots"] = _stats(ceiling)
    reference = [s.get("test_reference") or {} for s in res.seeds]
    test_reference = {
        key: _stats([r.get(key) for r in reference if key in r])
        for key in ("n", "distinct_1", "distinct_2", "cosine_diversity")
        if any(key in r for r in reference)
    }
    from synalign.evaluation.budget_curve import summarise_curve

    return {
        "curve": summarise_curve(res.seeds),
        "judge_test_accuracy": res.seeds[0].get("judge_test_accuracy"),
        "methods": methods,
        "paired": paired,
        "generation": generation,
        "coverage": coverage,
        "test_reference": test_reference,
    }


# ----- plots ---------------------------------------------------------------------------


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), squeeze=False)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def plot_scores(res: EvaluationResults, summary: dict[str, Any]) -> bytes:
    """Accuracy and macro-F1 per method: mean with a one-sd error bar, each seed a dot."""
    names = list(summary["methods"])
    fig, axes = _figure(max(6.0, 1.1 * len(names) + 2), 3.6, ncols=2)
    for ax, metric, title in zip(
        axes[0], ("accuracy", "macro_f1"), ("accuracy", "macro-F1"), strict=True
    ):
        means = [summary["methods"][n][metric]["mean"] for n in names]
        sds = [summary["methods"][n][metric]["sd"] for n in names]
        x = np.arange(len(names))
        colors = ["#999999" if n == "real" else "#4c72b0" for n in names]
        ax.bar(x, means, yerr=sds, color=colors, capsize=4, alpha=0.85)
        for i, n in enumerate(names):
            seeds = summary["methods"][n][metric]["per_seed"]
            ax.scatter(
                np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)),
                seeds,
                s=12,
                color="black",
                zorder=3,
            )
        if "real" in summary["methods"]:
            ax.axhline(summary["methods"]["real"][metric]["mean"], color="#555555", ls="--", lw=1)
        lo = min(min(s["methods"][n][metric] for s in res.seeds) for n in names)
        hi = max(max(s["methods"][n][metric] for s in res.seeds) for n in names)
        pad = max(0.02, (hi - lo) * 0.3)
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
        ax.set_xticks(x, names, rotation=30, ha="right")
        held_out = "validation texts" if res.settings.get("validation") else "test split"
        ax.set_title(f"{title} on the real {held_out} ({len(res.seeds)} seeds)")
    return _png(fig)


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def plot_projection(res: EvaluationResults) -> bytes | None:
    """PCA of real test, real shots and synthetic embeddings, before and after MMD weights."""
    from sklearn.decomposition import PCA

    seed = res.seeds[0]["seed"]
    arrays = _load_npz(res.eval_dir / "results" / f"seed-{seed}.npz")
    test = _load_npz(res.eval_dir / "results" / "test-sample.npz")
    method = next(
        (m for m in ("synalign", "no-lar", "no-esm", "kmm") if arrays and f"w__{m}" in arrays), None
    )
    if arrays is None or test is None or method is None:
        return None
    variant = res.info["methods"][method]["variant"]
    Xs, ys, w = arrays[f"X_syn__{variant}"], arrays[f"y_syn__{variant}"], arrays[f"w__{method}"]
    Xr, yr = arrays["X_shots"], arrays["y_shots"]
    Xt, yt = test["X"], test["y"]
    pca = PCA(n_components=2, random_state=0).fit(np.vstack([Xt, Xr, Xs]))
    Pt, Pr, Ps = pca.transform(Xt), pca.transform(Xr), pca.transform(Xs)
    labels = list(dict.fromkeys(yt.tolist() + yr.tolist()))
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    fig, axes = _figure(11.0, 4.8, ncols=2)
    scaled = np.zeros_like(w)
    for lab in labels:
        mask = ys == lab
        if mask.any() and w[mask].sum() > 0:
            scaled[mask] = w[mask] / w[mask].sum() * mask.sum()
    for ax, after in zip(axes[0], (False, True), strict=True):
        for j, lab in enumerate(labels):
            color = cmap(j % 10)
            ax.scatter(*Pt[yt == lab].T, s=8, color=color, alpha=0.25, lw=0)
            m = ys == lab
            if after:
                size = 28.0 * scaled[m]
                ax.scatter(*Ps[m].T, s=size, color=color, alpha=0.8, marker="^", lw=0)
                zero = m & (scaled <= 1e-9)
                ax.scatter(*Ps[zero].T, s=10, color=color, alpha=0.5, marker="x", lw=0.8)
            else:
                ax.scatter(*Ps[m].T, s=28, color=color, alpha=0.7, marker="^", lw=0)
            ax.scatter(*Pr[yr == lab].T, s=30, color=color, edgecolor="black", lw=0.8, label=lab)
        ax.set_title(
            f"after {method} weights (area ∝ weight, x = weight 0)"
            if after
            else "synthetic before weighting (equal weights)"
        )
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0][0].legend(title="real shots (dots: real test)", fontsize=8, loc="best")
    fig.suptitle(f"seed {seed}: {variant} synthetic set (triangles) vs real data", fontsize=10)
    return _png(fig)


def plot_weights(res: EvaluationResults) -> bytes | None:
    """Distribution of n·w (1 = an equal share) for the learned weightings, all seeds."""
    series: dict[str, list[float]] = {}
    for s in res.seeds:
        arrays = _load_npz(res.eval_dir / "results" / f"seed-{s['seed']}.npz")
        if arrays is None:
            continue
        for method in ("synalign", "kmm"):
            key = f"w__{method}"
            if key not in arrays:
                continue
            variant = res.info["methods"][method]["variant"]
            y = arrays[f"y_syn__{variant}"]
            w = arrays[key]
            for lab in dict.fromkeys(y.tolist()):
                m = y == lab
                if w[m].sum() > 0:
                    series.setdefault(method, []).extend((w[m] / w[m].sum() * m.sum()).tolist())
    if not series:
        return None
    fig, axes = _figure(7.5, 3.6)
    ax = axes[0][0]
    top = max(max(v) for v in series.values())
    bins = np.linspace(0.0, max(top, 2.0), 40)
    for method, values in series.items():
        arr = np.asarray(values)
        zero = float(np.mean(arr <= 1e-9))
        ax.hist(
            arr,
            bins=bins,
            histtype="step",
            lw=1.6,
            label=f"{method} ({zero:.0%} at zero, n={arr.size})",
        )
    ax.axvline(1.0, color="#555555", ls="--", lw=1)
    ax.set_xlabel("weight × label's synthetic count (1 = equal share)")
    ax.set_ylabel("synthetic samples")
    ax.set_title("weight distribution over all seeds")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_coverage(summary: dict[str, Any], k: int) -> bytes | None:
    """Share of real test clusters covered by the demonstrations, round by round."""
    cov = summary["coverage"]
    if not cov:
        return None
    fig, axes = _figure(6.0, 3.6)
    ax = axes[0][0]
    names = {"gp": "ESM (GP)", "random": "random"}
    for kind in ("gp", "random"):
        if kind not in cov:
            continue
        mean, sd = np.asarray(cov[kind]["mean"]), np.asarray(cov[kind]["sd"])
        x = np.arange(1, mean.size + 1)
        ax.plot(x, mean, marker="o", ms=3, label=names[kind])
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    if "all_shots" in cov:
        ax.axhline(
            cov["all_shots"]["mean"], color="#555555", ls="--", lw=1, label="every real shot shown"
        )
    rounds = max(len(cov[k]["mean"]) for k in ("gp", "random") if k in cov)
    ax.set_xticks(np.unique(np.linspace(1, rounds, min(rounds, 12)).round().astype(int)))
    ax.set_xlim(0.5, rounds + 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("round (demonstration clusters per label)")
    ax.set_ylabel(f"test clusters covered (k={k})")
    ax.set_title("demonstration coverage of the real test distribution")
    ax.legend()
    return _png(fig)


# ----- documents -----------------------------------------------------------------------


class _Doc:
    """Blocks rendered both as Markdown and as self-contained HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (headers, rows)))

    def image(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append(("img", (name, png, caption)))

    def markdown(self) -> str:
        out: list[str] = []
        for kind, body in self.blocks:
            if kind == "h":
                out.append("#" * body[0] + " " + body[1])
            elif kind == "p":
                out.append(body)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in body))
            elif kind == "table":
                headers, rows = body
                lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                lines += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("\n".join(lines))
            else:
                name, _, caption = body
                out.append(f"![{caption}]({name})\n\n*{caption}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
            "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
            "font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
            "img{max-width:100%}figcaption{color:#555;font-size:13px}"
            "code{background:#f3f3f3;padding:1px 3px}</style></head><body>",
        ]
        for kind, body in self.blocks:
            if kind == "h":
                parts.append(f"<h{body[0]}>{e(body[1])}</h{body[0]}>")
            elif kind == "p":
                parts.append(f"<p>{_inline(body)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in body) + "</ul>")
            elif kind == "table":
                headers, rows = body
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                cells = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            else:
                _, png, caption = body
                data = base64.b64encode(png).decode("ascii")
                parts.append(
                    f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans (the only inline Markdown used)."""
    import re

    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _pct(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['sd']:.1f}"


def _num(stats: dict[str, Any] | None, fmt: str = "{:.4f}") -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    return fmt.format(stats["mean"])


def _thresholds(stats: dict[str, Any] | None) -> str:
    """A label check's threshold: one value when fixed, each seed's when chosen per run."""
    values = [v for v in (stats or {}).get("per_seed", []) if v is not None]
    if not values:
        return "-"
    if max(values) - min(values) < 1e-9:
        return f"{values[0]:.2f}"
    return ", ".join(f"{v:.2f}" for v in values)


def format_delta(entry: dict[str, Any] | None) -> str:
    """`+1.2 [+0.3, +2.1] (5/5)`: mean paired difference in points, 95% interval, wins."""
    if not entry or entry.get("mean") is None:
        return "-"
    interval = ""
    if entry.get("ci_low") is not None:
        interval = f" [{100 * entry['ci_low']:+.1f}, {100 * entry['ci_high']:+.1f}]"
    return f"{100 * entry['mean']:+.1f}{interval} ({entry['wins']}/{entry['seeds']})"


def _model_text(settings: dict[str, Any]) -> str:
    if settings["model"] == "finetune":
        return (
            "the bundled all-MiniLM-L6-v2 fine-tuned end to end with a linear head (cosine "
            f"logits × 20), AdamW (encoder lr 3e-5, head lr 3e-3), batch 16, "
            f"{settings['finetune_epochs']} epoch(s), at most 128 tokens; fixed in advance"
        )
    return (
        "logistic regression (scikit-learn, lbfgs) on L2-normalised embeddings of the "
        f"pipeline's embedder, with **C = {settings['C']:g} for every method, fixed in "
        "advance and never tuned on the test split**"
    )


def _document(res: EvaluationResults, summary: dict[str, Any], images: dict[str, bytes]) -> _Doc:
    from synalign.evaluation.budget_curve import write_curve_section

    s = res.settings
    info = res.info
    cfg = info.get("pipeline_config", {})
    doc = _Doc()
    source = s["dataset"] or f"{s['train_path']} (train) / {s['test_path']} (test)"
    if s.get("validation"):
        source = f"{s['dataset'] or s['train_path']} (validation split of the training pool)"
    doc.h(1, f"SynAlign evaluation: {source}")
    gen = cfg.get("generate", {})
    llm = cfg.get("llm", {})
    doc.p(
        f"**Data.** {s['shots']} real examples per label drawn from the train split for each "
        f"seed ({', '.join(map(str, s['seeds']))}); tested on {info.get('test_records')} real "
        + (
            "texts held out from the training pool (the validation split; the test split is"
            " not read)"
            if s.get("validation")
            else "test texts"
        )
        + (f" (at most {s['test_per_label']} per label)" if s.get("test_per_label") else "")
        + ". Every method sees the same shots and the same test texts within a seed."
    )
    doc.p(
        f"**Synthetic budget.** {gen.get('samples_per_label')} candidate samples per label, "
        f"{gen.get('samples_per_cluster')} per demonstration cluster of "
        f"{cfg.get('explore', {}).get('cluster_size')} real texts; generator "
        f"`{llm.get('model_path') or llm.get('model') or 'bundled Gemma 3 270M'}` "
        f"({llm.get('backend')}, temperature {llm.get('temperature')}); embedder "
        f"`{cfg.get('embed', {}).get('model')}`. Each (seed, generation variant) was generated "
        "once and shared by every method that uses it."
    )
    doc.p(f"**Downstream model.** {_model_text(s)}.")
    doc.p(
        "**How synthetic data enters training.** As sample weights, not by resampling: a "
        "synthetic sample's weight is its per-label weight times that label's synthetic "
        "count (mean 1 within a label), every real sample has weight 1; zero-weight samples "
        "are left out. MMD weights are fitted to the real shots only (never to test data); KMM "
        "uses the same kernel bandwidth."
    )
    doc.p(
        "**MMD² to test** is the biased (V-statistic) squared MMD between the (weighted) "
        "synthetic set of a label and that label's real test texts, averaged over labels, with "
        "one RBF bandwidth for every method (median heuristic on the test embeddings, "
        f"{res.seeds[0]['test_bandwidth']:.3f}); for `real` it is the shots themselves. "
        "**ESS/n** is Kish's effective sample size over the label's synthetic count. "
        "Diversity (distinct-1/2 n-gram ratios and mean pairwise cosine distance) is measured "
        "on what a method adds: for weighted methods on a systematic resample of the same size "
        "(cosine distance weighted), for `real` on its shots."
    )

    doc.h(2, "Results")
    paired_real = summary["paired"].get("real", {})
    paired_naive = summary["paired"].get("naive", {})
    descriptions = {name: m["description"] for name, m in info["methods"].items()}
    rows = []
    for name, m in summary["methods"].items():
        rows.append(
            [
                f"`{name}`",
                descriptions.get(name, ""),
                _pct(m["accuracy"]),
                _pct(m["macro_f1"]),
                format_delta(paired_real.get(name, {}).get("macro_f1")),
                format_delta(paired_naive.get(name, {}).get("macro_f1")),
                _num(m["mmd2_test"]),
                _num(m["ess_ratio"], "{:.2f}"),
                _num(m["synthetic_rows"], "{:.0f}"),
            ]
        )
    doc.table(
        [
            "method",
            "what it trains on (besides the real shots)",
            "accuracy %",
            "macro-F1 %",
            "Δ macro-F1 vs real [95% CI] (wins)",
            "Δ macro-F1 vs naive [95% CI] (wins)",
            "MMD² to test",
            "ESS/n",
            "synthetic rows per seed",
        ],
        rows,
    )
    n_seeds = len(res.seeds)
    doc.p(
        "Mean ± standard deviation over seeds; Δ columns are paired per-seed differences in "
        "points with their 95% t-interval over seeds and the number of seeds on which the "
        "method was better. A method beats another only where the whole interval is above 0."
        + (
            f" With {n_seeds} seed{'s' if n_seeds != 1 else ''}, differences of a point or two "
            "are within seed-to-seed noise; use 5+ seeds for claims."
            if n_seeds < 5
            else ""
        )
        + (f" Seeds without results yet: {res.missing_seeds}." if res.missing_seeds else "")
    )
    if "scores" in images:
        doc.image("scores.png", images["scores"], "Accuracy and macro-F1 per method.")
    write_curve_section(doc, summary.get("curve", {}), images)

    doc.h(2, "Label fidelity")
    judged = any(m["judge_agreement"]["mean"] is not None for m in summary["methods"].values())
    rows = []
    for name, m in summary["methods"].items():
        if name == "real":
            continue
        rows.append(
            [
                f"`{name}`",
                _num(m["synthetic_rows"], "{:.0f}"),
                _num(m["check_rejected"], "{:.1%}"),
                _num(m["judge_agreement_generated"], "{:.1%}"),
                _num(m["judge_agreement"], "{:.1%}"),
                _num(m["flips_caught"], "{:.1%}"),
                _num(m["rejection_precision"], "{:.1%}"),
                _thresholds(m["label_check_threshold"]),
            ]
        )
    if rows:
        doc.table(
            [
                "method",
                "synthetic rows per seed",
                "rejected by the label check",
                "judge agrees: generated",
                "judge agrees: trained on (by weight)",
                "wrong labels caught",
                "rejections that were wrong labels",
                "threshold used (per seed)",
            ],
            rows,
        )
    doc.p(
        "The judge is logistic regression on the whole training pool, fitted for "
        "measurement only (`--judge`); no method sees it. A generated sample whose judged "
        "label differs from its own counts as a wrong label. For scale: the judge's own "
        "accuracy on the real test texts is "
        + (
            f"{100 * summary['judge_test_accuracy']:.1f}%."
            if summary.get("judge_test_accuracy") is not None
            else "not measured."
        )
        if judged
        else "Label fidelity against a judge was not measured (run with `--judge`); the "
        "table shows how many samples each method's label check rejected."
    )

    doc.h(2, "Distribution and diversity")
    rows = []
    for name, m in summary["methods"].items():
        rows.append(
            [
                f"`{name}`",
                _num(m["mmd2_test"]),
                _num(m["mmd2_shots"]),
                _num(m["length_w1"], "{:.1f}"),
                _num(m["ess"], "{:.1f}"),
                _num(m["zero_weight_share"], "{:.2f}"),
                _num(m["distinct_1"], "{:.3f}"),
                _num(m["distinct_2"], "{:.3f}"),
                _num(m["cosine_diversity"], "{:.3f}"),
            ]
        )
    ref = summary.get("test_reference") or {}
    if ref:
        rows.append(
            [
                f"real test texts ({_num(ref.get('n'), '{:.0f}')} per label, reference)",
                "-",
                "-",
                "-",
                "-",
                "-",
                _num(ref.get("distinct_1"), "{:.3f}"),
                _num(ref.get("distinct_2"), "{:.3f}"),
                _num(ref.get("cosine_diversity"), "{:.3f}"),
            ]
        )
    doc.table(
        [
            "method",
            "MMD² to test",
            "MMD² to shots",
            "length W1 to test (words)",
            "ESS per label",
            "share at weight 0",
            "distinct-1",
            "distinct-2",
            "cosine diversity",
        ],
        rows,
    )
    doc.p(
        "Distinct-n falls as a set grows, so compare it between sets of the same size: the "
        "reference row draws as many real test texts per label as a synthetic set has."
    )
    if "projection" in images:
        doc.image(
            "projection.png",
            images["projection"],
            "PCA of real test texts (faint dots), real shots (black-edged dots) and synthetic "
            "samples (triangles) before and after weighting.",
        )
    if "weights" in images:
        doc.image("weights.png", images["weights"], "Distribution of the learned weights.")

    doc.h(2, "Demonstration coverage (ESM vs random)")
    cov = summary["coverage"]
    if cov:
        k = s["coverage_clusters"]
        doc.p(
            f"Each label's test embeddings are split into k = {k} k-means clusters (k-means++, "
            "10 restarts, seed 0); a cluster is covered once a demonstration's nearest centroid "
            "is it. Rounds are demonstration clusters per label, in the order they were chosen."
        )
        rows = [
            [
                {"gp": "ESM (GP)", "random": "random"}[kind],
                str(len(cov[kind]["mean"])),
                _pct(cov[kind]["final"]),
            ]
            for kind in ("gp", "random")
            if kind in cov
        ]
        if "all_shots" in cov:
            rows.append(["every real shot (the ceiling)", "-", _pct(cov["all_shots"])])
        doc.table(["demonstrations", "rounds", "covered after the last round (%)"], rows)
        if "coverage" in images:
            doc.image("coverage.png", images["coverage"], "Test clusters covered per round.")
    else:
        doc.p("No generation variant ran, so there is no demonstration coverage to show.")

    doc.h(2, "Generation")
    rows = []
    for variant, g in summary["generation"].items():
        explore_method, attributes = info["variants"][variant]
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(g["rejected"].items())) or "-"
        rows.append(
            [
                f"`{variant}`",
                f"{explore_method}, attributes {'on' if attributes else 'off'}",
                str(g["clusters"]),
                str(g["generated"]),
                str(g["accepted"]),
                rejected,
                str(g["llm_requests"]),
                f"{g['stage_seconds']:.0f}",
                "-" if g["seconds_per_call"] is None else f"{g['seconds_per_call']:.2f}",
            ]
        )
    if rows:
        doc.table(
            [
                "variant",
                "demonstrations",
                "clusters",
                "generated",
                "accepted",
                "rejected (reason: count)",
                "LLM requests",
                "seconds",
                "s / LLM call made",
            ],
            rows,
        )
        doc.p(
            "Totals over seeds. Seconds are those of the describe and generate stages when they "
            "last ran, per LLM call they made then (answers served from the response cache "
            "cost next to nothing)."
        )
    rows = [
        [f"`{variant}`", key, f"{a['parsed']:.0%}", f"{a['distinct']:.0%}", f"{a['copied']:.0%}"]
        for variant, g in summary["generation"].items()
        if info["variants"][variant][1]  # variants with the attribute step
        for key, a in g.get("attributes", {}).items()
    ]
    if rows:
        doc.table(
            [
                "variant",
                "attribute",
                "clusters with a value",
                "distinct values",
                "copies of a worked example",
            ],
            rows,
        )
        doc.p(
            "What the attribute step produced, averaged over seeds: a base model that copies "
            "the prompt's worked examples describes the scaffolding, not the demonstrations. "
            "Length is measured from the demonstrations, never asked; how well the samples' "
            "lengths follow the real texts is the length W1 column above."
        )
    doc.h(2, "Versions")
    doc.p(", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v))
    return doc


def build_report(eval_dir: str | Path) -> Path:
    """Write metrics.json, report.md, report.html and the PNG plots into `<eval_dir>/report/`."""
    from synalign.evaluation.budget_curve import plot_curve
    from synalign.io.tables import atomic_write_bytes, atomic_write_text

    res = load_results(eval_dir)
    summary = summarise(res)
    images: dict[str, bytes] = {}
    makers = {
        "scores": lambda: plot_scores(res, summary),
        "projection": lambda: plot_projection(res),
        "weights": lambda: plot_weights(res),
        "coverage": lambda: plot_coverage(summary, res.settings["coverage_clusters"]),
        "curve": lambda: plot_curve(
            summary["curve"], summary["methods"]["real"]["macro_f1"], res.settings["shots"]
        ),
    }
    for name, make in makers.items():
        png = make()
        if png is not None:
            images[name] = png
    out = res.eval_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        atomic_write_bytes(out / f"{name}.png", png)
    doc = _document(res, summary, images)
    metrics = {
        "eval_dir": str(res.eval_dir),
        "settings": res.settings,
        "pipeline_config": res.info.get("pipeline_config"),
        "versions": res.info.get("versions"),
        "method_definitions": res.info.get("methods"),
        "model_selection": _model_text(res.settings).replace("**", ""),
        "test_records": res.info.get("test_records"),
        "seeds_missing": res.missing_seeds,
        **summary,
        "per_seed": res.seeds,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "report.md", doc.markdown())
    title = f"SynAlign evaluation: {res.settings['dataset'] or res.settings['train_path']}"
    atomic_write_text(out / "report.html", doc.html(title))
    return out
