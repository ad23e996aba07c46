"""One report written once and rendered twice: as Markdown and as a self-contained HTML page.

The HTML page embeds its plots and styles, so it opens offline from any folder.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

STYLE = (
    "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
    "font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}figcaption{color:#555;font-size:13px}"
    "code{background:#f3f3f3;padding:1px 3px}"
    "details{margin:.5em 0}summary{cursor:pointer;font-weight:600}"
    "td.text{text-align:left;max-width:520px}pre{background:#f6f6f6;padding:.6em;"
    "overflow-x:auto;font-size:13px}ol.demos{margin:0;padding-left:1.2em;font-size:13px}</style>"
)


class Document:
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

    def raw(self, html_text: str, markdown: str = "") -> None:
        """Markup the other blocks cannot express (folded tables of samples); the caller
        escapes every text in it. Markdown shows `markdown` in its place."""
        self.blocks.append(("raw", (html_text, markdown)))

    def image(self, name: str, png: bytes, caption: str) -> None:
        """A plot: linked by file name in Markdown, embedded as data in HTML."""
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
            elif kind == "raw":
                if body[1]:
                    out.append(body[1])
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
            STYLE + "</head><body>",
        ]
        for kind, body in self.blocks:
            if kind == "h":
                parts.append(f"<h{body[0]}>{e(body[1])}</h{body[0]}>")
            elif kind == "p":
                parts.append(f"<p>{inline(body)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in body) + "</ul>")
            elif kind == "table":
                parts.append(_html_table(*body))
            elif kind == "raw":
                parts.append(body[0])
            else:
                _, png, caption = body
                data = base64.b64encode(png).decode("ascii")
                parts.append(
                    f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in headers)
    cells = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"


def inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans (the only inline Markdown used)."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
