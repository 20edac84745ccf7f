"""One self-contained HTML report: figures embedded as base64 PNG, tables, provenance, parameters.

No external scripts, fonts or stylesheets, so the page opens offline and can be mailed or archived as
one file. The content is deterministic (no generation timestamp): the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis.summary import Summary, Table

CSS = """
body{font-family:Georgia,serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}th,td{padding:.2em .6em;text-align:right}
th{border-bottom:1px solid #444}td:first-child,th:first-child,td.l{text-align:left}
tr:nth-child(even){background:#f6f6f6}figure{margin:1.2em 0}img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}code{font-size:.9em}
"""


@dataclass(frozen=True)
class Section:
    title: str
    body_html: str


def figure_html(png: Path, caption: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def table_html(frame: pl.DataFrame, max_rows: int = 200) -> str:
    """Any frame as an HTML table (floats to 4 significant digits), via the shared renderer."""
    return Summary.of(Table.from_frame(frame)).to_html(max_rows=max_rows)


def render(title: str, intro: str, sections: Sequence[Section]) -> str:
    body = "".join(f"<h2>{html.escape(s.title)}</h2>{s.body_html}" for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{intro}</p>{body}</body></html>\n"
    )
