"""Event-study tables for papers: LaTeX (booktabs), CSV and Markdown, with significance stars.

All three formats come from one Polars frame (:func:`car_table`) rendered by
:class:`analysis.summary.Summary` with the CAR table's shared column specs, so they always agree; rows
are sorted so the same inputs give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.results import car_columns
from analysis.summary import STAR_NOTE, Summary, Table, stars


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


def car_summary(t: pl.DataFrame) -> Summary:
    """The paper's CAR table (a :func:`car_table` frame) with the shared CAR column specs."""
    cols = car_columns("deal_id", "ticker", "t0", "window", "car", "se", "t", "p", scaled=True)
    return Summary.of(Table(t, cols), notes=[STAR_NOTE])


def to_latex(t: pl.DataFrame, caption: str, label: str) -> str:
    return car_summary(t).to_latex(caption, label, size="small")


def to_markdown(t: pl.DataFrame) -> str:
    return car_summary(t).to_markdown()


def write_all(t: pl.DataFrame, folder: Path, name: str, caption: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.tex", folder / f"{name}.csv", folder / f"{name}.md"]
    paths[0].write_text(to_latex(t, caption, f"tab:{name}"), encoding="utf-8")
    paths[1].write_text(car_summary(t).to_csv(), encoding="utf-8")
    paths[2].write_text(to_markdown(t), encoding="utf-8")
    return paths
