"""Validation of price rows before they are stored.

Hard errors (``InputError`` naming file, line and field): a non-positive price, a duplicate date, a
NaN/missing close. Sessions missing against the exchange calendar are reported, not rejected: a young
listing or a halted stock legitimately lacks sessions, and the user decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from carousel.errors import InputError
from market.calendars import calendar_for, sessions

_PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]


@dataclass(frozen=True)
class MissingSessions:
    ticker: str
    calendar: str
    first: object
    last: object
    missing: list
    extra: list  # rows on non-session days


def check_rows(rows: pl.DataFrame, *, file: str, line_offset: int = 2) -> None:
    """Raise InputError on the first bad row of one ticker's rows (file order).

    ``line_offset`` maps row index 0 to a file line (2 for a CSV with a header line).
    """
    idx = pl.int_range(pl.len()).alias("_i")
    work = rows.with_columns(idx)
    bad_close = work.filter(pl.col("close").is_null() | pl.col("close").is_nan())
    if bad_close.height:
        raise InputError("close is missing or NaN", file=file,
                         line=int(bad_close["_i"][0]) + line_offset, field="close")
    for f in _PRICE_FIELDS:
        if f not in work.columns:
            continue
        bad = work.filter(pl.col(f).is_not_null() & (pl.col(f).is_nan() | (pl.col(f) <= 0)))
        if bad.height:
            raise InputError(f"{f} must be a positive number, got {bad[f][0]}", file=file,
                             line=int(bad["_i"][0]) + line_offset, field=f)
    dup = work.filter(pl.col("date").is_duplicated()).sort("_i")
    if dup.height:
        first = dup["date"][0]
        lines = dup.filter(pl.col("date") == first)["_i"].to_list()
        raise InputError(f"duplicate date {first} (also on line {lines[0] + line_offset})",
                         file=file, line=int(lines[1]) + line_offset, field="date")


def missing_sessions(rows: pl.DataFrame, ticker: str) -> MissingSessions:
    """Sessions between the first and last row that have no row, and rows on non-session days."""
    cal = calendar_for(ticker)
    dates = rows["date"].drop_nulls()
    if dates.is_empty():
        return MissingSessions(ticker, cal, None, None, [], [])
    first, last = dates.min(), dates.max()
    expected = sessions(cal, first, last)  # type: ignore[arg-type]
    have = dates.to_numpy().astype("datetime64[D]")
    exp = expected.to_numpy().astype("datetime64[D]")
    missing = exp[~np.isin(exp, have)]
    extra = have[~np.isin(have, exp)]
    return MissingSessions(
        ticker, cal, first, last,
        pl.Series(missing).cast(pl.Date).to_list(), pl.Series(extra).cast(pl.Date).to_list(),
    )
