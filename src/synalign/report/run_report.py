"""A pipeline run's report: what the model wrote, from which demonstrations, what the
attribute step said, what the filters threw out and why, and which samples the weights
favour, as one self-contained HTML page.

It is built from a run's contents (the rows of each finished stage, as
`RunDirectory.contents` returns them) and, when given, the embeddings of the real and
synthetic texts; it reads no file itself. Tables of samples show a seeded sample of at
most `max_rows` per group, so a run of 100,000 samples gives a page as light as one of
1,000; every sample stays in the run's JSONL files.
"""

from __future__ import annotations

import html
import tomllib
from collections import Counter
from typing import Any

import numpy as np

from synalign.report.document import Document
from synalign.report.plots import equal_shares
from synalign.report.run_plots import plot_run_lengths, plot_run_projection, plot_run_weights

BASE_FIELDS = {
    *("id", "text", "label", "cluster", "demo_ids", "attributes", "backend", "model"),
    "model_sha256",
    *("prompt_family", "sampling", "seed", "reason", "raw", "doc_id", "document", "weight"),
}
"""Provenance every sample carries; any other number on a rejected row is a check score."""


def _words(text: str) -> int:
    return len(str(text).split())


def _cut(text: str, n: int = 300) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RunReport:
    """Builds the page; `max_rows` caps each group's table of samples."""

    def __init__(self, max_rows: int = 100, seed: int = 0) -> None:
        self.max_rows = max_rows
        self.seed = seed

    def document(
        self, contents: dict[str, Any], vectors: tuple[np.ndarray, np.ndarray] | None = None
    ) -> Document:
        """Every section the contents allow; `vectors` (real, synthetic embeddings in the
        rows' order) adds the projection."""
        self.c = contents
        config = tomllib.loads(contents["config_toml"]) if contents["config_toml"] else {}
        self.retrieval = config.get("task") == "retrieval"
        self.config = config
        doc = Document()
        name = config.get("name") or contents["root"]
        doc.h(1, f"SynAlign run: {name}")
        doc.p(self._summary())
        self._counts(doc)
        self._attributes(doc)
        self._weights(doc, vectors)
        self._samples(doc)
        self._rejected(doc)
        self._setup(doc)
        return doc

    def html(self, contents: dict[str, Any], vectors: Any = None) -> str:
        doc = self.document(contents, vectors)
        return doc.html(f"SynAlign run: {self.config.get('name') or contents['root']}")

    # ----- helpers -----------------------------------------------------------------------

    def _group(self, row: dict[str, Any]) -> str:
        """Classification samples group by label; a retrieval run's queries form one group."""
        return "queries" if self.retrieval else str(row.get("label"))

    def _groups(self) -> list[str]:
        rows = [*self.c["real"], *self.c["synthetic"], *self.c["rejected"]]
        return list(dict.fromkeys(self._group(r) for r in rows))

    def _pick(self, idx: list[int]) -> list[int]:
        if len(idx) <= self.max_rows:
            return idx
        rng = np.random.default_rng(self.seed)
        return sorted(int(i) for i in rng.choice(idx, self.max_rows, replace=False))

    def _demo_texts(self) -> dict[str, str]:
        out = {}
        for r in self.c["real"]:
            doc = r.get("document")
            out[str(r["id"])] = f"{r['text']}  →  {_cut(doc, 160)}" if doc else str(r["text"])
        return out

    # ----- sections ----------------------------------------------------------------------

    def _summary(self) -> str:
        """One sentence: what went in, what came out, how far the weights moved it."""
        st, c = self.c["stages"], self.c
        real = len(c["real"])
        what = "real (query, document) pairs" if self.retrieval else "real texts"
        groups = "" if self.retrieval else f" over {len(self._groups())} labels"
        parts = [f"**{real} {what}**{groups}"]
        if "generate" in st or c["synthetic"]:
            parts.append(
                f"**{len(c['synthetic'])} synthetic samples accepted** of "
                f"{len(c['synthetic']) + len(c['rejected'])} generated"
            )
        else:
            parts.append("nothing generated yet (the run stopped before `generate`)")
        a = c["alignment"]
        if a:
            before = np.mean(list(a["mmd2_before"].values()))
            after = np.mean(list(a["mmd2_after"].values()))
            ess = sum(a["ess"].values())
            over = "" if self.retrieval else ", the mean over labels,"
            parts.append(
                f"MMD weights took MMD² to the real data{over} from {before:.4f} to"
                f" {after:.4f} (effective sample size {ess:.0f} of {len(c['synthetic'])})"
            )
        return "; ".join(parts) + "."

    def _counts(self, doc: Document) -> None:
        c = self.c
        reasons = sorted(Counter(r.get("reason", "?") for r in c["rejected"]))
        doc.h(2, "Counts per label" if not self.retrieval else "Counts")
        headers = ["group", "real", "generated", "accepted", *[f"rejected: {r}" for r in reasons]]
        aligned = (c["alignment"] or {}).get("aligned_per_label", {})
        if aligned:
            headers.append("in the aligned set")
        rows = []
        for g in self._groups():
            real = sum(self._group(r) == g for r in c["real"])
            acc = sum(self._group(r) == g for r in c["synthetic"])
            rej = Counter(r.get("reason", "?") for r in c["rejected"] if self._group(r) == g)
            row = [f"`{g}`", str(real), str(acc + sum(rej.values())), str(acc)]
            row += [str(rej.get(r, 0)) for r in reasons]
            if aligned:
                row.append(str(sum(aligned.values()) if self.retrieval else aligned.get(g, 0)))
            rows.append(row)
        doc.table(headers, rows)
        if reasons:
            doc.p(
                "`label_mismatch` is the label check and `not_specific` the query check; every"
                " other reason is one of the sample filters (empty, copied, repeated,"
                " truncated, off-language text). Every rejected sample, with its scores, is in"
                " rejected.jsonl."
            )

    def _attributes(self, doc: Document) -> None:
        rows = self.c["attributes"]
        if not rows:
            return
        from synalign.lar.prompts import worked_example_values

        doc.h(2, "What the attribute step said")
        copied = worked_example_values()
        keys = list(dict.fromkeys(k for r in rows for k in r.get("attributes", {})))
        table = []
        for key in keys:
            values = [str(r["attributes"][key]) for r in rows if r["attributes"].get(key)]
            common = Counter(v.lower() for v in values).most_common(3)
            same = sum(v.lower() in copied.get(key, set()) for v in values)
            table.append(
                [
                    key,
                    f"{len(values)} of {len(rows)}",
                    str(len(set(v.lower() for v in values))),
                    str(same),
                    "; ".join(f"{_cut(v, 60)} ({n})" for v, n in common),
                ]
            )
        parsed = sum(bool(r.get("parsed", r.get("attributes"))) for r in rows)
        doc.p(
            f"One attribute line per demonstration cluster: {parsed} of {len(rows)} clusters"
            " gave a usable line. `copies a worked example`: values equal to the prompt's own"
            " worked example, which describe the prompt rather than the real data."
        )
        headers = [
            "key",
            "clusters with a value",
            "distinct values",
            "copies a worked example",
            "most common values (count)",
        ]
        doc.table(headers, table)

    def _weights(self, doc: Document, vectors: Any) -> None:
        c = self.c
        if not c["synthetic"]:
            return
        doc.h(2, "Real vs synthetic, before and after weighting")
        a, w = c["alignment"], c["weights"]
        groups = [self._group(r) for r in c["synthetic"]]
        if a:
            rows = [
                [
                    f"`{g}`",
                    f"{a['mmd2_before'].get(g, np.nan):.4f}",
                    f"{a['mmd2_after'].get(g, np.nan):.4f}",
                    f"{a['ess'].get(g, np.nan):.1f}",
                    str(sum(x == g for x in groups)),
                ]
                for g in (["all"] if self.retrieval else list(a["mmd2_before"]))
            ]
            doc.p(
                f"MMD² (RBF kernel, bandwidth {a['bandwidth']:.3g}) between the synthetic and"
                " the real embeddings, with equal weights and with the learned ones; the"
                " effective sample size (ESS) says how many equally weighted samples the"
                " weighted set is worth."
            )
            doc.table(["group", "MMD² before", "MMD² after", "ESS", "samples"], rows)
            doc.image("weights.png", plot_run_weights(w, groups), "MMD weight distribution")
        else:
            doc.p("Not weighted yet: the `align` stage has not run.")
        if vectors is not None:
            real_groups = [self._group(r) for r in c["real"]]
            png = plot_run_projection(vectors[0], real_groups, vectors[1], groups, w)
            doc.image("projection.png", png, "real and synthetic embeddings, PCA")
        real_len = [_words(r["text"]) for r in c["real"]]
        syn_len = [_words(r["text"]) for r in c["synthetic"]]
        png = plot_run_lengths(real_len, syn_len, w)
        doc.image("lengths.png", png, "length in words, real vs synthetic")

    def _samples(self, doc: Document) -> None:
        c = self.c
        if not c["synthetic"]:
            return
        doc.h(2, "Accepted samples")
        w = c["weights"]
        groups = [self._group(r) for r in c["synthetic"]]
        shares = None if w is None else equal_shares(w, groups)
        demos = self._demo_texts()
        doc.p(
            f"Each group shows at most {self.max_rows} samples (a seeded random sample when"
            " there are more), highest weight first; a weight of 1 is an equal share. Every"
            " sample is in synthetic.jsonl, with its provenance."
        )
        e = html.escape
        for g in self._groups():
            idx = [i for i, x in enumerate(groups) if x == g]
            if not idx:
                continue
            shown = self._pick(idx)
            if w is not None:
                shown.sort(key=lambda i: -w[i])
            head = ["weight", "query" if self.retrieval else "text"]
            head += ["document"] if self.retrieval else []
            head += ["attributes", "demonstrations"]
            body = []
            for i in shown:
                r = c["synthetic"][i]
                weight = f"{shares[i]:.2f}" if shares is not None else "–"
                attrs = "; ".join(f"{k}: {v}" for k, v in (r.get("attributes") or {}).items())
                items = "".join(
                    f"<li>{e(_cut(demos.get(str(d), d), 240))}</li>" for d in r.get("demo_ids", [])
                )
                cells = [weight, f'<td class="text">{e(str(r["text"]))}</td>']
                if self.retrieval:
                    cells.append(f'<td class="text">{e(_cut(r.get("document", ""), 300))}</td>')
                cells.append(f'<td class="text">{e(_cut(attrs, 300))}</td>')
                cells.append(
                    f'<td class="text"><details><summary>{len(r.get("demo_ids", []))}</summary>'
                    f'<ol class="demos">{items}</ol></details></td>'
                )
                body.append("<tr><td>" + cells[0] + "</td>" + "".join(cells[1:]) + "</tr>")
            title = f"`{g}`: {len(shown)} of {len(idx)} accepted samples"
            doc.raw(_folded(title, head, body, opened=g == self._groups()[0]), f"### {title}")

    def _rejected(self, doc: Document) -> None:
        c = self.c
        doc.h(2, "Rejected samples")
        if not c["rejected"]:
            done = "generate" in c["stages"] or c["synthetic"]
            doc.p("None were rejected." if done else "Nothing generated yet.")
            return
        doc.p(
            f"At most {self.max_rows} per group (a seeded random sample when there are more),"
            " with the reason and any check score; all are in rejected.jsonl."
        )
        e = html.escape
        for g in self._groups():
            idx = [i for i, r in enumerate(c["rejected"]) if self._group(r) == g]
            if not idx:
                continue
            body = []
            for i in self._pick(idx):
                r = c["rejected"][i]
                scores = {
                    k: v
                    for k, v in r.items()
                    if k not in BASE_FIELDS and isinstance(v, int | float)
                }
                text = r.get("text") or r.get("raw") or ""
                body.append(
                    f"<tr><td>{e(str(r.get('reason', '?')))}</td>"
                    f"<td>{e('; '.join(f'{k} {_num(v)}' for k, v in scores.items()))}</td>"
                    f'<td class="text">{e(_cut(text, 300))}</td></tr>'
                )
            title = f"`{g}`: {len(body)} of {len(idx)} rejected samples"
            doc.raw(_folded(title, ["reason", "scores", "text"], body), f"### {title}")

    def _setup(self, doc: Document) -> None:
        st = self.c["stages"]
        doc.h(2, "Stages and config")
        rows = []
        for name, info in st.items():
            skip = ("fingerprint", "seconds", "warnings")
            facts = {
                k: v for k, v in info.items() if k not in skip and not isinstance(v, dict | list)
            }
            llm = info.get("llm") or {}
            if llm.get("calls") is not None:
                facts["LLM calls"] = llm["calls"]
            rows.append(
                [
                    name,
                    f"{info.get('seconds', 0):.1f}",
                    ", ".join(f"{k} {_num(v)}" for k, v in facts.items()),
                ]
            )
        doc.table(["stage", "seconds", "figures"], rows)
        text = html.escape(self.c["config_toml"])
        doc.raw(
            f"<details><summary>config.toml (the resolved config of the last invocation)"
            f"</summary><pre>{text}</pre></details>",
            f"```toml\n{self.c['config_toml']}```",
        )


def _folded(title: str, headers: list[str], body: list[str], opened: bool = False) -> str:
    """A table under a summary line that opens and closes without any script."""
    from synalign.report.document import inline

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    attr = " open" if opened else ""
    return (
        f"<details{attr}><summary>{inline(title)}</summary><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></details>"
    )
