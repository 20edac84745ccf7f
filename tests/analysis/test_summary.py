"""analysis.summary: one table, five formats, the same numbers; escaping, missing cells, stars, notes."""

from __future__ import annotations

import datetime as dt
import io
import math

import polars as pl
import pytest

from analysis.summary import (
    STAR_NOTE,
    Column,
    Summary,
    Table,
    fixed,
    general,
    integer,
    percent,
    pvalue,
    stars,
    tex_escape,
)

NASTY = "a&b%c$d#e_f{g}h~i^j\\k"


def _table() -> Table:
    frame = pl.DataFrame(
        {
            "deal": ["amd-openai", NASTY, "none"],
            "t0": [dt.date(2025, 10, 6), None, dt.date(2026, 1, 30)],
            "car": [0.2314, float("nan"), -0.0123456],
            "p": [1e-20, 0.07, None],
            "n": [12345, 7, None],
            "why": [None, "no prices on day 0", None],
        }
    )
    cols = (
        Column("deal", "Deal"),
        Column("t0", tex_label="$t_0$"),
        Column("car", "CAR %", percent(2), stars="p", footnote="why"),
        Column("p", fmt=pvalue(4)),
        Column("n", "N", integer()),
    )
    return Table(frame, cols)


def test_number_formats() -> None:
    assert fixed(2)(1234.5) == "1234.50"
    assert fixed(1, thousands=True)(1234567.25) == "1,234,567.2"  # round-half-even on the binary value
    assert percent(2)(0.2314) == "23.14" and percent(1, sign=True)(-0.05) == "-5.0%"
    assert pvalue(4)(0.04999) == "0.0500" and pvalue(4)(3e-7) == "<0.0001" and pvalue(3)(0.5) == "0.500"
    assert general(4)(0.000123456) == "0.0001235" and general(3)(123456.0) == "1.23e+05"
    assert integer()(1234567) == "1,234,567" and integer(thousands=False)(1234567) == "1234567"
    for f in (fixed(2), percent(2), pvalue(), general(), integer()):
        assert f(None) == "" and f(float("nan")) == ""
    assert fixed(2, missing="--")(None) == "--"
    assert fixed(2)(True) == "True"  # a bool is not a number to format
    assert [stars(p) for p in (0.0099, 0.01, 0.0499, 0.05, 0.0999, 0.1, None, math.nan)] == [
        "***", "**", "**", "*", "*", "", "", ""]


def test_tex_escape_all_specials_once() -> None:
    assert tex_escape(NASTY) == (
        r"a\&b\%c\$d\#e\_f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    assert tex_escape("p<0.1 | x>y") == r"p\textless{}0.1 \textbar{} x\textgreater{}y"
    # already-escaped text is escaped again (the escaper takes plain text, not LaTeX)
    assert tex_escape(r"\&") == r"\textbackslash{}\&"


def test_text() -> None:
    s = Summary.of(_table(), title="Event study", header=["model=market"], notes=[STAR_NOTE])
    assert s.to_text().splitlines() == [
        "Event study",
        "model=market",
        "",
        "Deal                   t0             CAR %        p       N",
        "------------------------------------------------------------",
        "amd-openai             2025-10-06  23.14***  <0.0001  12,345",
        NASTY + "                   [a]   0.0700       7",
        "none                   2026-01-30     -1.23",
        "[a] no prices on day 0",
        "",
        STAR_NOTE,
    ]
    assert str(s) == s.to_text()


def test_markdown() -> None:
    md = Summary.of(_table(), notes=[STAR_NOTE]).to_markdown()
    assert md == (
        "| Deal | t0 | CAR % | p | N |\n"
        "|---|---|---:|---:|---:|\n"
        "| amd-openai | 2025-10-06 | 23.14\\*\\*\\* | <0.0001 | 12,345 |\n"
        f"| {NASTY} |  | <sup>a</sup> | 0.0700 | 7 |\n"
        "| none | 2026-01-30 | -1.23 |  |  |\n"
        "\n<sup>a</sup> no prices on day 0\n"
        "\n\\* p<0.10, \\*\\* p<0.05, \\*\\*\\* p<0.01 (two-sided; t with M-k degrees of freedom).\n"
    )
    piped = Table(pl.DataFrame({"x": ["a|b"]}), (Column("x"),))
    assert "| a\\|b |" in Summary.of(piped).to_markdown()


def test_latex_booktabs() -> None:
    tex = Summary.of(_table(), notes=[STAR_NOTE]).to_latex("CARs & co", "tab:car_x", size="small")
    assert tex == "\n".join([
        r"\begin{table}[htbp]",
        r"\centering\small",
        r"\caption{CARs \& co}",
        r"\label{tab:car_x}",  # a label is an identifier: not escaped
        r"\begin{tabular}{llrrr}",
        r"\toprule",
        r"Deal & $t_0$ & CAR \% & p & N \\",
        r"\midrule",
        r"amd-openai & 2025-10-06 & 23.14*** & \textless{}0.0001 & 12,345 \\",
        tex_escape(NASTY) + r" &  & \textsuperscript{a} & 0.0700 & 7 \\",
        r"none & 2026-01-30 & -1.23 &  &  \\",
        r"\bottomrule",
        r"\end{tabular}",
        "",
        r"\par\footnotesize \textsuperscript{a}no prices on day 0 * p\textless{}0.10, ** p\textless{}0.05, "
        r"*** p\textless{}0.01 (two-sided; t with M-k degrees of freedom).",
        r"\end{table}",
        "",
    ])


def test_latex_longtable_repeats_the_header() -> None:
    tex = Summary.of(_table()).to_latex("Appendix", "tab:app", longtable=True)
    lines = tex.splitlines()
    assert lines[0] == r"\begin{longtable}{llrrr}" and lines[1] == r"\caption{Appendix}\label{tab:app}\\"
    head = r"Deal & $t_0$ & CAR \% & p & N \\"
    assert lines.count(head) == 2
    assert lines.index(r"\endfirsthead") < lines.index(r"\endhead") < lines.index(r"\endlastfoot")
    assert lines[-2] == r"\end{longtable}"
    assert lines[-1] == r"\par{\footnotesize \textsuperscript{a}no prices on day 0\par}"
    assert r"\begin{table}" not in tex


def test_html_escapes_and_aligns() -> None:
    out = Summary.of(_table()).to_html(max_rows=2)
    assert out.startswith('<table><thead><tr><th class="l">Deal</th><th class="l">t0</th><th>CAR %</th>')
    assert "<td>23.14***</td><td>&lt;0.0001</td><td>12,345</td>" in out
    assert '<td class="l">a&amp;b%c$d#e_f{g}h~i^j\\k</td>' in out and "<td><sup>a</sup></td>" in out
    assert "none" not in out and '<p class="note">1 more rows omitted.</p>' in out
    assert '<p class="note"><sup>a</sup> no prices on day 0</p>' in out


def test_csv_is_the_unformatted_frame() -> None:
    s = Summary.of(_table())
    back = pl.read_csv(io.StringIO(s.to_csv()), try_parse_dates=True)
    assert back["car"][0] == 0.2314 and back["car"][2] == pytest.approx(-0.0123456, rel=0, abs=0)
    assert back["deal"][1] == NASTY and back["t0"][0] == dt.date(2025, 10, 6)
    assert back["p"][0] == 1e-20 and back["n"][0] == 12345 and back["why"][1] == "no prices on day 0"


def test_several_tables_and_defaults() -> None:
    a = Table.from_frame(pl.DataFrame({"x": [1.23456, None], "k": [3, 4], "s": ["u", "v"]}), title="A")
    b = Table.from_frame(pl.DataFrame({"y": [0.5]}), title="B", float_fmt=fixed(1))
    s = Summary((a, b), title="Two")
    assert s.to_text().splitlines() == [
        "Two", "", "A", "    x  k  s", "-" * 11, "1.235  3  u", "       4  v", "", "B", "  y", "---", "0.5"]
    tex = s.to_latex()
    assert tex.count(r"\begin{tabular}") == 2 and r"\textit{B}\par\smallskip" in tex
    assert r"\caption{Two}" in tex


def test_same_input_same_bytes_and_bad_spec() -> None:
    assert Summary.of(_table()).to_latex() == Summary.of(_table()).to_latex()
    with pytest.raises(ValueError, match="'pv' is not in the frame"):
        Table(pl.DataFrame({"a": [1.0]}), (Column("a", stars="pv"),))


def test_the_car_table_reads_the_same_everywhere() -> None:
    from rich.console import Console

    from analysis.engine import EventStudy
    from carousel.cli.study import render_table
    from tests.analysis.test_engine import synthetic

    ret, events, _ = synthetic(3, seed=3, inject=0.05)
    res = EventStudy(ret, events, benchmarks=("MKT",)).fit()
    row = res.car.row(1, named=True)  # e0000 [-1,+1]
    cell = f"{100 * row['car']:.2f}{stars(row['p'])}"
    assert row["window"] == "[-1,+1]" and cell.endswith("*")
    text, tex = res.summary(), res.to_latex()
    line = next(ln for ln in text.splitlines() if ln.startswith("d0000") and "[-1,+1]" in ln)
    assert line.split()[4:7] == [cell, f"{100 * row['se']:.2f}", f"{row['t']:.2f}"]
    assert f"d0000 & F0000 & {row['t0']} & [-1,+1] & {cell} & {100 * row['se']:.2f} & " in tex
    console = Console(width=200, record=True)
    render_table(res, console)
    shown = console.export_text()
    assert "CAR %" in shown and "BHAR %" in shown and cell in shown
    assert "CAAR over firm-events with a complete window" in text


def test_latex_row_starting_with_a_bracket_is_not_an_optional_argument() -> None:
    """`\\\\` followed by `[0,0]` would be read as a vertical skip of length "0,0": LaTeX stops with
    "Missing number". The renderer puts an empty group in front of such a row."""
    import polars as pl

    from analysis.summary import Column, Summary, Table

    t = Table(pl.DataFrame({"window": ["[0,0]", "[-1,+1]"], "n": [1, 2]}), (Column("window"), Column("n")))
    tex = Summary((t,)).to_latex()
    assert "{}[0,0] & 1 \\\\" in tex and "{}[-1,+1] & 2 \\\\" in tex
