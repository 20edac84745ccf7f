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
th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#aaa}
.headline{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.headline div{flex:1 1 10em;border:1px solid #ddd;
padding:.5em .8em;border-radius:4px}.headline b{display:block;font-size:1.5em}.headline span{font-size:.8em;color:#555}
#flowtip{position:fixed;pointer-events:none;background:#fff;border:1px solid #888;padding:.3em .5em;font-size:.8em;
display:none;max-width:26em}svg.flows path.edge{cursor:pointer}svg.flows path.edge:hover{stroke-opacity:1}
dl.glossary dt{font-weight:bold}dl.glossary dd{margin:0 0 .4em 1.2em;font-size:.9em}
"""

#: Inlined, no external script: click a header to sort its table (numbers numerically, blanks last);
#: hover a flow edge to see its deals, amount and CAR.
JS = """
(function(){
function key(td){var t=(td?td.textContent:'').replace(/[,%$*]|bn|<sup>.*$/g,'').trim();
var n=parseFloat(t.replace(/^\\[|\\]$/g,''));return t===''?null:(isNaN(n)?t.toLowerCase():n);}
document.querySelectorAll('table.sortable').forEach(function(tb){
tb.querySelectorAll('th').forEach(function(th,i){th.classList.add('sortable');th.addEventListener('click',function(){
var body=tb.tBodies[0],rows=Array.prototype.slice.call(body.rows),asc=th.getAttribute('data-dir')!=='asc';
tb.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-dir');});th.setAttribute('data-dir',asc?'asc':'desc');
rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);if(x===null)return 1;if(y===null)return -1;
if(x<y)return asc?-1:1;if(x>y)return asc?1:-1;return 0;});rows.forEach(function(r){body.appendChild(r);});});});});
var tip=document.getElementById('flowtip');
document.querySelectorAll('svg.flows path.edge').forEach(function(e){
e.addEventListener('mouseenter',function(){tip.textContent=e.getAttribute('data-info');tip.style.display='block';});
e.addEventListener('mousemove',function(ev){tip.style.left=(ev.clientX+12)+'px';tip.style.top=(ev.clientY+12)+'px';});
e.addEventListener('mouseleave',function(){tip.style.display='none';});});
})();
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


def sortable(table_markup: str) -> str:
    """Mark the rendered tables sortable (the inlined script sorts by a header click)."""
    return table_markup.replace("<table>", '<table class="sortable">')


def render(title: str, intro: str, sections: Sequence[Section]) -> str:
    body = "".join(f"<h2>{html.escape(s.title)}</h2>{s.body_html}" for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{intro}</p>{body}<div id=\"flowtip\"></div>"
        f"<script>{JS}</script></body></html>\n"
    )
