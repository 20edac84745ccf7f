"""Validation of price rows before they are stored.

Hard errors (``InputError`` naming file, line and field), checked on every path into the store (the
snapshot files and each ticker of a Yahoo download):

* a price (open, high, low, close, adj_close) that is not a finite positive number: NaN, ``inf``, 0 or
  negative. ``inf`` passes a ``<= 0`` test, so finiteness is checked explicitly; a stored ``inf`` turns
  into returns of ``inf`` and -100 %;
* a missing close;
* a negative volume, or dividends/splits that are negative or not finite;
* a missing or duplicate date;
* a bar that contradicts itself: ``high`` below ``low``, or ``open``/``close`` outside [low, high]
  (beyond OHLC_REL_TOL, which absorbs Yahoo's float32 rounding, never a real price move);
* a date before FIRST_PLAUSIBLE_DATE or more than a day after today (UTC; a Tokyo session's date can be
  a day ahead of the UTC date);
* a ticker with a control or bidirectional-formatting character (U+202E would print "NVDA" reversed
  inside a table and make two tickers look alike);
* a date on a Saturday or Sunday. Neither XNYS nor XTKS ever trades on a weekend, so such a row is a
  wrong date (a typo, or a Tokyo bar shifted a day by a time-zone conversion), never a session;
* snapshot files only (:func:`check_order`): dates not in strictly ascending file order. A row out of
  order in a hand-kept or vendor file usually means a mistyped date, which a silent sort would hide
  among the other days; the error names the line to fix. (A Yahoo frame is keyed by its index, so its
  order carries no meaning and it is simply sorted.)

Reported, not rejected (:func:`missing_sessions`): sessions missing against the exchange calendar (a
young listing or a halted stock legitimately lacks sessions) and rows on a *weekday* that the calendar
says is not a session. The latter is usually a data-vendor quirk (a stale copy of the previous bar on an
exchange holiday) or a calendar that does not know an ad hoc opening or closure; rejecting the whole file
or ticker for it would be worse than storing it and telling the user, who decides.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from core.errors import InputError
from market.calendars import calendar_bounds, calendar_for, sessions, suffix_calendar

_PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]

#: Relative slack for the OHLC ordering: Yahoo serves float32 values printed as doubles (about 6e-8
#: relative, see market.store.REL_TOL); 1e-6 absorbs that and the snapshot's 6-decimal rounding, while
#: a real inconsistency (a close above the high) is a whole tick, >= 1e-4 relative below $100.
OHLC_REL_TOL = 1e-6
#: No daily series is older: Yahoo's longest, ^GSPC, starts on 1927-12-30. An earlier date is a typo
#: (1900-01-01 is also what spreadsheets show for a day number of 1).
FIRST_PLAUSIBLE_DATE = date(1920, 1, 1)
#: Control characters (Cc) and format characters (Cf: the bidi overrides U+202A..U+202E, U+2066..U+2069,
#: zero-width joiners) in a ticker.
_HIDDEN_CHARS = r"[\p{Cc}\p{Cf}]"


def _today_bound() -> date:
    return datetime.now(UTC).date() + timedelta(days=1)


def _ohlc_rules(columns: list[str]) -> list[tuple[str, pl.Expr, str]]:
    """(field, violation, message) for the bar's internal order; only columns present are checked."""
    up, down = 1 + OHLC_REL_TOL, 1 - OHLC_REL_TOL
    hi, lo = pl.col("high"), pl.col("low")
    rules: list[tuple[str, pl.Expr, str]] = []
    if {"high", "low"} <= set(columns):
        rules.append(("high", hi < lo * down, "high is below low"))
    for f in ("close", "open"):
        if f not in columns:
            continue
        if "high" in columns:
            rules.append((f, pl.col(f) > hi * up, f"{f} is above high"))
        if "low" in columns:
            rules.append((f, pl.col(f) < lo * down, f"{f} is below low"))
    return [(f, e.fill_null(False), m) for f, e, m in rules]
_NON_NEGATIVE_FIELDS = ["dividends", "splits"]


@dataclass(frozen=True)
class MissingSessions:
    ticker: str
    calendar: str
    first: object
    last: object
    missing: list
    extra: list  # rows on non-session days


def _at(bad: pl.DataFrame, line_offset: int) -> int:
    return int(bad["_i"][0]) + line_offset


def _day(bad: pl.DataFrame) -> str:
    d = bad["date"][0] if "date" in bad.columns else None
    return f" (date {d})" if d is not None else ""


def _violations(columns: list[str]) -> list[pl.Expr]:
    """Per-row "this row breaks a rule" for every rule :func:`check_rows` enforces (same conditions)."""
    out = [pl.col("close").is_null() | pl.col("close").is_nan()]
    if "date" in columns:
        out += [pl.col("date").is_null(), pl.col("date").is_duplicated(), pl.col("date").dt.weekday() >= 6,
                pl.col("date") < FIRST_PLAUSIBLE_DATE, pl.col("date") > _today_bound()]
    if "ticker" in columns:
        out.append(pl.col("ticker").str.contains(_HIDDEN_CHARS))
    out += [e for _, e, _ in _ohlc_rules(columns)]
    out += [pl.col(f).is_not_null() & (~pl.col(f).is_finite() | (pl.col(f) <= 0))
            for f in _PRICE_FIELDS if f in columns]
    if "volume" in columns:
        out.append(pl.col("volume").is_not_null() & (pl.col("volume") < 0))
    out += [pl.col(f).is_not_null() & (~pl.col(f).is_finite() | (pl.col(f) < 0))
            for f in _NON_NEGATIVE_FIELDS if f in columns]
    return [e.fill_null(False) for e in out]


def check_rows(rows: pl.DataFrame, *, file: str, line_offset: int = 2) -> None:
    """Raise InputError on the first bad row of one ticker's rows (file order).

    ``line_offset`` maps row index 0 to a file line (2 for a CSV with a header line).
    """
    # Fast path: one pass over the frame answers "is anything wrong?" (a snapshot load checks 20 files;
    # a dozen separate filters per file cost more than parsing them). Only a frame that fails looks for
    # the first offending row below, with the same conditions; the tests plant every kind of fault.
    if not rows.height or not rows.select(pl.any_horizontal(_violations(rows.columns))).to_series().any():
        return
    idx = pl.int_range(pl.len()).alias("_i")
    work = rows.with_columns(idx)
    if "date" in work.columns:
        no_date = work.filter(pl.col("date").is_null())
        if no_date.height:
            raise InputError("date is missing", file=file, line=_at(no_date, line_offset), field="date")
    bad_close = work.filter(pl.col("close").is_null() | pl.col("close").is_nan())
    if bad_close.height:
        raise InputError(f"close is missing or NaN{_day(bad_close)}", file=file,
                         line=_at(bad_close, line_offset), field="close")
    for f in _PRICE_FIELDS:
        if f not in work.columns:
            continue
        # is_finite() is false for NaN and +-inf; `<= 0` alone lets inf through.
        bad = work.filter(pl.col(f).is_not_null() & (~pl.col(f).is_finite() | (pl.col(f) <= 0)))
        if bad.height:
            raise InputError(f"{f} must be a finite positive number, got {bad[f][0]}{_day(bad)}",
                             file=file, line=_at(bad, line_offset), field=f)
    if "volume" in work.columns:
        bad = work.filter(pl.col("volume").is_not_null() & (pl.col("volume") < 0))
        if bad.height:
            raise InputError(f"volume must not be negative, got {bad['volume'][0]}{_day(bad)}",
                             file=file, line=_at(bad, line_offset), field="volume")
    for f in _NON_NEGATIVE_FIELDS:
        if f not in work.columns:
            continue
        bad = work.filter(pl.col(f).is_not_null() & (~pl.col(f).is_finite() | (pl.col(f) < 0)))
        if bad.height:
            raise InputError(f"{f} must be a finite number >= 0, got {bad[f][0]}{_day(bad)}",
                             file=file, line=_at(bad, line_offset), field=f)
    if "ticker" in work.columns:
        bad = work.filter(pl.col("ticker").str.contains(_HIDDEN_CHARS).fill_null(False))
        if bad.height:
            chars = ", ".join(f"U+{ord(c):04X}" for c in bad["ticker"][0] if not c.isprintable() or
                              unicodedata.category(c) in ("Cc", "Cf"))
            raise InputError(f"ticker '{bad['ticker'][0].encode('unicode_escape').decode()}' contains a control "
                             f"or bidirectional-formatting character ({chars})", file=file,
                             line=_at(bad, line_offset), field="ticker")
    for f, rule, message in _ohlc_rules(work.columns):
        bad = work.filter(rule)
        if bad.height:
            r = bad.row(0, named=True)
            vals = ", ".join(f"{k} {r[k]}" for k in ("open", "high", "low", "close") if k in r)
            raise InputError(f"{message} ({vals}){_day(bad)}", file=file, line=_at(bad, line_offset), field=f)
    if "date" in work.columns:
        early = work.filter(pl.col("date") < FIRST_PLAUSIBLE_DATE)
        if early.height:
            raise InputError(f"{early['date'][0]} is before {FIRST_PLAUSIBLE_DATE}, older than any daily "
                             "price series (a typo?)", file=file, line=_at(early, line_offset), field="date")
        late = work.filter(pl.col("date") > _today_bound())
        if late.height:
            raise InputError(f"{late['date'][0]} is in the future: not a closed session", file=file,
                             line=_at(late, line_offset), field="date")
    dup = work.filter(pl.col("date").is_duplicated()).sort("_i")
    if dup.height:
        first = dup["date"][0]
        lines = dup.filter(pl.col("date") == first)["_i"].to_list()
        raise InputError(f"duplicate date {first} (also on line {lines[0] + line_offset})",
                         file=file, line=int(lines[1]) + line_offset, field="date")
    weekend = work.filter(pl.col("date").dt.weekday() >= 6)  # polars: Monday = 1 ... Sunday = 7
    if weekend.height:
        d = weekend["date"][0]
        ticker = work["ticker"][0] if "ticker" in work.columns and work.height else None
        known = suffix_calendar(ticker) if ticker else None
        cal = f" of {known}" if known else ""
        raise InputError(f"{d} is a {d.strftime('%A')}, not a trading session{cal}", file=file,
                         line=_at(weekend, line_offset), field="date")


def check_order(dates: pl.Series, *, file: str, line_offset: int = 2) -> None:
    """InputError unless ``dates`` (file order, no nulls expected) are strictly ascending.

    Names the first line whose date is not after the previous line's (an equal date is a duplicate).
    """
    d = dates.to_list()
    for i in range(1, len(d)):
        prev, cur = d[i - 1], d[i]
        if prev is None or cur is None or cur > prev:
            continue
        if cur == prev:
            raise InputError(f"duplicate date {cur} (also on line {i - 1 + line_offset})",
                             file=file, line=i + line_offset, field="date")
        raise InputError(
            f"dates must be in ascending order: {cur} comes after {prev} on line {i - 1 + line_offset}",
            file=file, line=i + line_offset, field="date")


def non_session_warning(rows: pl.DataFrame, ticker: str) -> str | None:
    """A one-line warning for rows on weekdays that are not sessions of the ticker's calendar."""
    m = missing_sessions(rows, ticker)
    if not m.extra:
        return None
    days: list[date] = m.extra
    shown = ", ".join(str(x) for x in days[:5]) + (" ..." if len(days) > 5 else "")
    return (f"{ticker}: {len(days)} row(s) on days that are not {m.calendar} sessions (stored; "
            f"check the source): {shown}")


def missing_sessions(rows: pl.DataFrame, ticker: str, calendar: str | None = None) -> MissingSessions:
    """Sessions between the first and last row that have no row, and rows on non-session days.
    ``calendar``: the ticker's exchange calendar (the ledger's exchange); default: its suffix's."""
    cal = calendar or calendar_for(ticker)
    dates = rows["date"].drop_nulls()
    if dates.is_empty():
        return MissingSessions(ticker, cal, None, None, [], [])
    first, last = dates.min(), dates.max()
    expected = sessions(cal, first, last)  # type: ignore[arg-type]
    have = dates.to_numpy().astype("datetime64[D]")
    exp = expected.to_numpy().astype("datetime64[D]")
    missing = exp[~np.isin(exp, have)]
    # Only a date inside the calendar's range can be judged: one before its first session (2010-01-04)
    # or after its last (about a year ahead) is not known to be a non-session, and must not be reported
    # as one (a real 2009 row would otherwise be flagged as a holiday row).
    lo, hi = (np.datetime64(d, "D") for d in calendar_bounds(cal))
    judged = have[(have >= lo) & (have <= hi)]
    extra = judged[~np.isin(judged, exp)]
    return MissingSessions(
        ticker, cal, first, last,
        pl.Series(missing).cast(pl.Date).to_list(), pl.Series(extra).cast(pl.Date).to_list(),
    )
