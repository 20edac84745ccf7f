"""Event-study tables for papers: LaTeX (booktabs), CSV and Markdown, with significance stars.

All three formats come from one Polars frame (:func:`car_table`), so they always agree; rows are
sorted so the same inputs give byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

STAR_NOTE = "* p<0.10, ** p<0.05, *** p<0.01 (two-sided; t with M-k degrees of freedom)."


def stars(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.10 else ""


def car_table(car: pl.DataFrame) -> pl.DataFrame:
    """One row per firm-event and window: deal, ticker, t0, window, CAR %, SE %, t, p, stars."""
    return (
        car.filter(pl.col("car").is_not_null())
        .select(
            "deal_id",
            "ticker",
            pl.col("t0").cast(pl.String),
            "window",
            # Full precision here (the CSV is for machines and for checking); LaTeX, Markdown and
            # HTML round when they format, so no file shows digits that were rounded away.
            (pl.col("car") * 100).alias("car_pct"),
            (pl.col("se") * 100).alias("se_pct"),
            "t",
            "p",
            pl.col("p").map_elements(stars, return_dtype=pl.String).alias("stars"),
        )
        .sort(["t0", "deal_id", "ticker", "window"])
    )


def _fmt(v: object, spec: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return format(v, spec or ".2f")
    return str(v)


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$"), ("^", r"\^{}"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b)
    return s


def to_latex(t: pl.DataFrame, caption: str, label: str) -> str:
    lines = [
        r"\begin{table}[htbp]",
        r"\centering\small",
        rf"\caption{{{_tex(caption)}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{lllrrrr}",
        r"\toprule",
        r"Deal & Ticker & $t_0$ & Window & CAR (\%) & SE (\%) & $t$ \\",
        r"\midrule",
    ]
    for r in t.iter_rows(named=True):
        lines.append(
            f"{_tex(r['deal_id'])} & {_tex(r['ticker'])} & {r['t0']} & {_tex(r['window'])} & "
            f"{_fmt(r['car_pct'])}{r['stars']} & {_fmt(r['se_pct'])} & {_fmt(r['t'])} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", "", rf"\par\footnotesize {_tex(STAR_NOTE)}", r"\end{table}", ""]
    return "\n".join(lines)


def to_markdown(t: pl.DataFrame) -> str:
    head = "| Deal | Ticker | t0 | Window | CAR % | SE % | t | p |\n|---|---|---|---|---:|---:|---:|---:|\n"
    body = "".join(
        f"| {r['deal_id']} | {r['ticker']} | {r['t0']} | {r['window']} | {_fmt(r['car_pct'])}{r['stars']} | "
        f"{_fmt(r['se_pct'])} | {_fmt(r['t'])} | {_fmt(r['p'], '.4f')} |\n"
        for r in t.iter_rows(named=True)
    )
    return head + body + f"\n{STAR_NOTE}\n"


def write_all(t: pl.DataFrame, folder: Path, name: str, caption: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.tex", folder / f"{name}.csv", folder / f"{name}.md"]
    paths[0].write_text(to_latex(t, caption, f"tab:{name}"), encoding="utf-8")
    t.write_csv(paths[1])
    paths[2].write_text(to_markdown(t), encoding="utf-8")
    return paths
