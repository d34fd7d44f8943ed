"""The console's HTML: one page layout, escaped text, tables, and a bar chart as inline SVG.

Every value from the database goes through ``html.escape`` (``text``); the markup around it is
fixed. The page names ``Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'``
(W3C CSP 3): no script runs and nothing loads from anywhere, this server included, but its own
inline style and forms posting back to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Final

from fastapi.responses import HTMLResponse

__all__ = ["CSP", "bar_chart", "page", "table", "text"]

CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)

_STYLE: Final = """
body{font-family:sans-serif;margin:0;color:#1d2430}
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header .who{margin-left:auto;font-size:.9em}
main{padding:1em 1.2em}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #dde;padding:.3em .7em;text-align:left;font-size:.92em}
th{background:#f1f3f8}.revoked{color:#b00020}.valid{color:#0a7a32}.expired{color:#8a6d00}
form.inline{display:inline}button{cursor:pointer}.panel{display:inline-block;vertical-align:top;margin-right:2em}
"""


def text(value: Any) -> str:
    """``value`` as HTML text (``-`` for None)."""
    return "-" if value is None else escape(str(value))


def table(headings: Sequence[str], rows: Iterable[Sequence[str]], *, row_id: str = "") -> str:
    """A table; each cell is HTML already (the caller escaped what it took from data)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{escape(row_id)}"' if row_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(title: str, counts: dict[str, int], *, chart_id: str) -> str:
    """A horizontal bar chart of ``counts`` as inline SVG (one bar a label, its count beside)."""
    width, bar, gap, label = 420, 22, 8, 110
    peak = max(counts.values(), default=0) or 1
    bars = []
    for index, (name, count) in enumerate(counts.items()):
        y = index * (bar + gap)
        length = round((width - label - 60) * count / peak)
        bars.append(
            f'<text x="0" y="{y + 16}" font-size="13">{escape(name)}</text>'
            f'<rect class="bar" data-label="{escape(name)}" data-count="{count}" x="{label}"'
            f' y="{y}" width="{length}" height="{bar}" fill="#3b6fd8"/>'
            f'<text x="{label + length + 6}" y="{y + 16}" font-size="13">{count}</text>'
        )
    height = max(1, len(counts)) * (bar + gap)
    return (
        f'<figure class="panel"><figcaption>{escape(title)}</figcaption>'
        f'<svg id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(bars)}</svg></figure>"
    )


def page(title: str, body: str, *, who: dict[str, str], status_code: int = 200) -> HTMLResponse:
    """A console page: navigation, the operator and role, ``body``."""
    nav = "".join(
        f'<a href="{href}">{name}</a>'
        for href, name in (
            ("/ui", "Overview"),
            ("/ui/certificates", "Certificates"),
            ("/ui/devices", "Devices"),
            ("/ui/tokens", "Tokens"),
        )
    )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · fleetid</title><style>{_STYLE}</style></head><body>"
        f"<header><strong>fleetid</strong>{nav}"
        f'<span class="who" id="who">{text(who["name"])} ({text(who["role"])})</span></header>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(
        document,
        status_code=status_code,
        headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"},
    )
