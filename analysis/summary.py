"""One renderer for every results table: text, Markdown, LaTeX (booktabs, longtable), HTML and CSV.

Why one module: the CAR table used to be rendered five ways (``summary()``, ``to_latex()``, the paper
tables, the CLI and the HTML report) with two LaTeX escapers that disagreed on ``^`` and ``~``. A
:class:`Summary` holds the content once (Polars frames plus :class:`Column` specs saying label, number
format, alignment, stars and footnotes); each ``to_*`` method only lays it out, so the formats cannot
drift apart. Everything is pure and deterministic: the same frame gives the same bytes.

great-tables was considered and not used: importing it costs ~0.8 s (pandas-free but heavy), its HTML
carries a generated id and a large style block per table, and the layouts needed here are small.

Example::

    t = Table(frame, (Column("ticker"), Column("car", "CAR %", percent(2), stars="p")),
              notes=(STAR_NOTE,))
    Summary((t,), title="Event study").to_markdown()
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

Align = Literal["left", "right", "center"]
FmtKind = Literal["text", "fixed", "percent", "pvalue", "general", "integer"]

STAR_LEVELS: tuple[float, float, float] = (0.10, 0.05, 0.01)
STAR_NOTE = "* p<0.10, ** p<0.05, *** p<0.01 (two-sided; t with M-k degrees of freedom)."

# ----------------------------------------------------------------------------- escaping

_TEX = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    # In LaTeX's default OT1 encoding these print as other glyphs (< as an inverted !).
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def tex_escape(s: str) -> str:
    """Escape LaTeX's special characters (and < > |) in plain text (one pass, so ``\\`` is not re-escaped)."""
    return "".join(_TEX.get(c, c) for c in s)


def _md_escape(s: str) -> str:
    # A pipe would end the Markdown cell; stars would start emphasis (or, leading a note, a list).
    return s.replace("|", r"\|").replace("*", r"\*")


# ----------------------------------------------------------------------------- numbers


def stars(p: float | None, levels: tuple[float, float, float] = STAR_LEVELS) -> str:
    """``'***'``/``'**'``/``'*'``/``''`` for p below levels[2]/levels[1]/levels[0]; missing p -> ``''``."""
    if p is None or not isinstance(p, (int, float)) or not math.isfinite(p):
        return ""
    return "***" if p < levels[2] else "**" if p < levels[1] else "*" if p < levels[0] else ""


@dataclass(frozen=True)
class Fmt:
    """How one cell value becomes text. Build with :func:`text`, :func:`fixed`, :func:`percent`, ...

    ``None`` and NaN become ``missing``; a non-number in a numeric column is shown as ``str(v)``.
    """

    kind: FmtKind = "text"
    digits: int = 2
    thousands: bool = False
    missing: str = ""
    suffix: str = ""

    @property
    def numeric(self) -> bool:
        return self.kind != "text"

    def __call__(self, v: object) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return self.missing
        if self.kind == "text" or isinstance(v, bool) or not isinstance(v, (int, float)):
            return v if isinstance(v, str) else str(v)
        sep = "," if self.thousands else ""
        if self.kind == "fixed":
            out = format(v, f"{sep}.{self.digits}f")
        elif self.kind == "percent":
            out = format(100 * v, f"{sep}.{self.digits}f")
        elif self.kind == "pvalue":
            floor = 10.0**-self.digits
            out = f"<{floor:.{self.digits}f}" if v < floor else format(v, f".{self.digits}f")
        elif self.kind == "general":
            out = format(v, f"{sep}.{self.digits}g")
        else:  # integer
            out = format(round(v), f"{sep}d")
        return out + self.suffix


def text() -> Fmt:
    """The value as a string (dates in ISO form)."""
    return Fmt("text")


def fixed(digits: int, *, thousands: bool = False, missing: str = "") -> Fmt:
    """``digits`` decimals: fixed(2)(1234.5) -> ``'1234.50'``; thousands=True -> ``'1,234.50'``."""
    return Fmt("fixed", digits, thousands, missing)


def percent(digits: int, *, sign: bool = False, missing: str = "") -> Fmt:
    """A fraction shown in percent: percent(2)(0.2314) -> ``'23.14'`` (``'23.14%'`` with sign=True)."""
    return Fmt("percent", digits, False, missing, "%" if sign else "")


def pvalue(digits: int = 4, *, missing: str = "") -> Fmt:
    """A p-value with ``digits`` decimals; below 10^-digits it reads ``'<0.0001'``, never ``'0.0000'``."""
    return Fmt("pvalue", digits, False, missing)


def general(digits: int = 4, *, thousands: bool = False, missing: str = "") -> Fmt:
    """``digits`` significant digits (Python's ``g``)."""
    return Fmt("general", digits, thousands, missing)


def integer(*, thousands: bool = True, missing: str = "") -> Fmt:
    """A count: integer()(12345) -> ``'12,345'``."""
    return Fmt("integer", 0, thousands, missing)


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Column:
    """One displayed column of a :class:`Table`.

    name      column of the frame
    label     header text (default: name); ``tex_label`` replaces it in LaTeX, unescaped (math mode)
    fmt       number format (default text)
    align     default right for numbers, left for text
    stars     name of a p-value column: its stars follow this cell's number (``23.14***``)
    footnote  name of a string column: a non-null value there marks this cell with a letter and lists
              the text once under the table (e.g. why a CAR is blank)
    """

    name: str
    label: str | None = None
    fmt: Fmt = field(default_factory=text)
    align: Align | None = None
    stars: str | None = None
    footnote: str | None = None
    tex_label: str | None = None

    @property
    def header(self) -> str:
        return self.label if self.label is not None else self.name

    @property
    def alignment(self) -> Align:
        if self.align is not None:
            return self.align
        return "right" if self.fmt.numeric else "left"


@dataclass(frozen=True)
class Table:
    """A frame and the columns to show, with an optional title and notes of its own."""

    frame: pl.DataFrame
    columns: tuple[Column, ...]
    title: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = set(self.frame.columns)
        for c in self.columns:
            for ref in (c.name, c.stars, c.footnote):
                if ref is not None and ref not in names:
                    raise ValueError(f"column {ref!r} is not in the frame (has {sorted(names)})")

    @classmethod
    def from_frame(
        cls, frame: pl.DataFrame, *, float_fmt: Fmt | None = None, title: str | None = None
    ) -> Table:
        """Every column of ``frame``: floats with ``float_fmt`` (default 4 significant digits),
        integers as integers, everything else as text."""
        ffmt = float_fmt or general(4)
        cols = []
        for name, dtype in frame.schema.items():
            if dtype.is_float():
                cols.append(Column(name, fmt=ffmt))
            elif dtype.is_integer():
                cols.append(Column(name, fmt=integer(thousands=False)))
            else:
                cols.append(Column(name))
        return cls(frame, tuple(cols), title=title)

    def head(self, n: int) -> Table:
        """The first ``n`` rows (the notes say nothing about the rest; callers add that)."""
        return Table(self.frame.head(n), self.columns, self.title, self.notes)

    def cells(
        self,
        escape: Callable[[str], str] = lambda s: s,
        marker: Callable[[str], str] = lambda m: f"[{m}]",
    ) -> tuple[list[list[str]], list[str]]:
        """Formatted body cells (row-major) and the footnote texts in order of first use.

        ``escape`` quotes a value for the output format; ``marker`` turns a footnote letter into the
        format's mark (e.g. ``\\textsuperscript{a}``), added after escaping so it stays markup.
        """
        notes: list[str] = []
        columns: list[list[str]] = []
        for c in self.columns:
            raw = self.frame[c.name].to_list()
            cells = [c.fmt(v) for v in raw]
            if c.stars is not None:
                ps = self.frame[c.stars].to_list()
                cells = [s + stars(p) if s else s for s, p in zip(cells, ps, strict=True)]
            cells = [escape(s) for s in cells]
            if c.footnote is not None:
                marked = []
                for s, note in zip(cells, self.frame[c.footnote].to_list(), strict=True):
                    if note is None or note == "":
                        marked.append(s)
                        continue
                    if note not in notes:
                        notes.append(note)
                    marked.append(s + marker(_letter(notes.index(note))))
                cells = marked
            columns.append(cells)
        rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
        return rows, notes


def _letter(i: int) -> str:
    """a, b, ..., z, aa, ab, ...: footnote marks that never collide with stars or digits."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(97 + r) + out
    return out


# ----------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class Summary:
    """One or more tables under a title, header lines (model, sample) and notes.

    Every format shows the same columns, labels and numbers; CSV alone carries the frame itself,
    unformatted and at full precision, because it is for machines and for checking.
    """

    tables: tuple[Table, ...]
    title: str | None = None
    header: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, table: Table, *, title: str | None = None, header: Sequence[str] = (), notes: Sequence[str] = ()
    ) -> Summary:
        """A summary of one table."""
        return cls((table,), title, tuple(header), tuple(notes))

    # -- text
    def to_text(self, sep: str = "  ") -> str:
        """Fixed-width plain text (what ``summary()`` prints)."""
        out: list[str] = []
        if self.title:
            out.append(self.title)
        out.extend(self.header)
        for t in self.tables:
            if out:
                out.append("")
            if t.title:
                out.append(t.title)
            rows, fnotes = t.cells()
            heads = [c.header for c in t.columns]
            widths = [max([len(h), *(len(r[j]) for r in rows)]) for j, h in enumerate(heads)]
            aligns = [c.alignment for c in t.columns]
            line = sep.join(_pad(h, w, a) for h, w, a in zip(heads, widths, aligns, strict=True))
            out += [line.rstrip(), "-" * len(line.rstrip())]
            for r in rows:
                out.append(sep.join(_pad(s, w, a) for s, w, a in zip(r, widths, aligns, strict=True)).rstrip())
            out += [f"[{_letter(i)}] {n}" for i, n in enumerate(fnotes)] + list(t.notes)
        if self.notes:
            out += ["", *self.notes]
        return "\n".join(out)

    # -- markdown
    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown tables; each note a paragraph of its own."""
        parts: list[str] = []
        if self.title:
            parts.append(f"**{_md_escape(self.title)}**\n")
        parts += [line + "\n" for line in self.header]
        for t in self.tables:
            if parts:
                parts.append("\n")
            if t.title:
                parts.append(f"*{_md_escape(t.title)}*\n\n")
            rows, fnotes = t.cells(_md_escape, lambda m: f"<sup>{m}</sup>")
            rule = {"left": "---", "right": "---:", "center": ":---:"}
            parts.append("| " + " | ".join(_md_escape(c.header) for c in t.columns) + " |\n")
            parts.append("|" + "|".join(rule[c.alignment] for c in t.columns) + "|\n")
            parts += ["| " + " | ".join(r) + " |\n" for r in rows]
            notes = [f"<sup>{_letter(i)}</sup> {_md_escape(n)}" for i, n in enumerate(fnotes)]
            for n in notes + [_md_escape(n) for n in t.notes]:
                parts.append(f"\n{n}\n")
        for n in self.notes:
            parts.append(f"\n{_md_escape(n)}\n")
        return "".join(parts)

    # -- latex
    def to_latex(
        self,
        caption: str | None = None,
        label: str | None = None,
        *,
        longtable: bool = False,
        size: str | None = None,
    ) -> str:
        """booktabs LaTeX. ``longtable=True`` breaks across pages (the header repeats), for appendices.

        ``caption`` defaults to the title and is escaped; ``label`` is an identifier and is not.
        ``size`` (e.g. ``'small'``) sets the font size of the table. Notes go below in footnote size.
        Needs ``\\usepackage{booktabs}`` (and ``longtable``).
        """
        caption = caption if caption is not None else self.title
        body: list[str] = []
        notes: list[str] = []
        blocks = [self._latex_block(t) for t in self.tables]
        for i, (t, (spec, head, rows, tnotes)) in enumerate(zip(self.tables, blocks, strict=True)):
            notes += tnotes
            if longtable:
                body += self._longtable(t, spec, head, rows, caption if i == 0 else None, label if i == 0 else None)
                continue
            if i:
                body.append(r"\medskip")
            if t.title and len(self.tables) > 1:
                body.append(rf"\textit{{{tex_escape(t.title)}}}\par\smallskip")
            body += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule", *rows,
                     r"\bottomrule", r"\end{tabular}"]
        notes += [tex_escape(n) for n in self.notes]
        note_lines = ["", r"\par\footnotesize " + " ".join(notes)] if notes else []
        if longtable:
            out = ([rf"\begingroup\{size}"] if size else []) + body
            if notes:
                out += [r"\par{\footnotesize " + " ".join(notes) + r"\par}"]
            out += [r"\endgroup"] if size else []
            return "\n".join(out) + "\n"
        out = [r"\begin{table}[htbp]", r"\centering" + (rf"\{size}" if size else "")]
        if caption:
            out.append(rf"\caption{{{tex_escape(caption)}}}")
        if label:
            out.append(rf"\label{{{label}}}")
        out += body + note_lines + [r"\end{table}"]
        return "\n".join(out) + "\n"

    @staticmethod
    def _latex_block(t: Table) -> tuple[str, str, list[str], list[str]]:
        rows, fnotes = t.cells(tex_escape, lambda m: rf"\textsuperscript{{{m}}}")
        spec = "".join({"left": "l", "right": "r", "center": "c"}[c.alignment] for c in t.columns)
        head = " & ".join(c.tex_label if c.tex_label is not None else tex_escape(c.header) for c in t.columns)
        # A row that starts with "[" (a window label) would be read as the optional argument of the
        # previous row's \\ ("\\[0,0]" is a length): an empty group in front ends that argument.
        lines = [("{}" if r and r[0].startswith("[") else "") + " & ".join(r) + r" \\" for r in rows]
        notes = [rf"\textsuperscript{{{_letter(i)}}}{tex_escape(n)}" for i, n in enumerate(fnotes)]
        return spec, head + r" \\", lines, notes + [tex_escape(n) for n in t.notes]

    @staticmethod
    def _longtable(
        t: Table, spec: str, head: str, rows: list[str], caption: str | None, label: str | None
    ) -> list[str]:
        n = len(t.columns)
        first = []
        if caption or label:
            cap = rf"\caption{{{tex_escape(caption)}}}" if caption else ""
            lab = rf"\label{{{label}}}" if label else ""
            first.append(cap + lab + r"\\")
        return [
            rf"\begin{{longtable}}{{{spec}}}",
            *first,
            r"\toprule",
            head,
            r"\midrule",
            r"\endfirsthead",
            rf"\multicolumn{{{n}}}{{l}}{{\footnotesize (continued)}}\\",
            r"\toprule",
            head,
            r"\midrule",
            r"\endhead",
            r"\midrule",
            rf"\multicolumn{{{n}}}{{r}}{{\footnotesize (continued on next page)}}\\",
            r"\endfoot",
            r"\bottomrule",
            r"\endlastfoot",
            *rows,
            r"\end{longtable}",
        ]

    # -- html
    def to_html(self, max_rows: int | None = None) -> str:
        """HTML tables (no style of their own: the page's stylesheet decides). Left-aligned columns
        carry ``class="l"``; ``max_rows`` cuts long tables and says how many rows were left out."""
        parts: list[str] = []
        if self.title:
            parts.append(f"<p><strong>{html.escape(self.title)}</strong></p>")
        parts += [f"<p>{html.escape(line)}</p>" for line in self.header]
        for t in self.tables:
            shown = t.head(max_rows) if max_rows is not None else t
            rows, fnotes = shown.cells(html.escape, lambda m: f"<sup>{m}</sup>")
            cls = [' class="l"' if c.alignment == "left" else "" for c in t.columns]
            head = "".join(f"<th{k}>{html.escape(c.header)}</th>" for c, k in zip(t.columns, cls, strict=True))
            body = "".join(
                "<tr>" + "".join(f"<td{k}>{s}</td>" for s, k in zip(r, cls, strict=True)) + "</tr>"
                for r in rows
            )
            cap = f"<caption>{html.escape(t.title)}</caption>" if t.title else ""
            parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            if max_rows is not None and t.frame.height > max_rows:
                parts.append(f'<p class="note">{t.frame.height - max_rows} more rows omitted.</p>')
            notes = [f"<sup>{_letter(i)}</sup> {html.escape(n)}" for i, n in enumerate(fnotes)]
            notes += [html.escape(n) for n in t.notes]
            parts += [f'<p class="note">{n}</p>' for n in notes]
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in self.notes]
        return "".join(parts)

    # -- csv
    def to_csv(self, table: int = 0, *, float_precision: int | None = None) -> str:
        """The frame of one table as CSV: every column, unformatted, full precision (or
        ``float_precision`` decimals), dates in ISO form. For machines and for checking."""
        return self.tables[table].frame.write_csv(float_precision=float_precision)

    def __str__(self) -> str:
        return self.to_text()


def _pad(s: str, width: int, align: Align) -> str:
    if align == "right":
        return s.rjust(width)
    if align == "center":
        return s.center(width)
    return s.ljust(width)


__all__ = [
    "STAR_NOTE",
    "Column",
    "Fmt",
    "Summary",
    "Table",
    "fixed",
    "general",
    "integer",
    "percent",
    "pvalue",
    "stars",
    "tex_escape",
    "text",
]
