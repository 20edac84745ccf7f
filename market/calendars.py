"""Exchange sessions (exchange_calendars) and event-day (t0) alignment.

Rule (DEVELOPERS.md): an announcement before the close on a session day has t0 = that day; at/after the
close, or on a non-session day, t0 = the next session. Implemented uniformly as "t0 = the first session
whose close (UTC, with real half-day closes) is strictly after the announcement instant", vectorised with
one ``searchsorted`` over the calendar's close times. This also handles a US (ET) announcement against the
Tokyo calendar: 07:00 ET is after the Tokyo close of the same date, so t0 is the next Tokyo session.

Without an announcement time the ``session`` label decides: 'pre_market'/'intraday' -> that session day,
'after_close' -> the next session, 'non_trading' -> the next session. 'unknown' follows ``unknown_policy``:

* ``'same_day'`` (default): the US business day of the announcement date: on XNYS a session day is its
  own t0; on XTKS (9984.T) it is the next Tokyo session, which is the first to trade after a US morning. Deal news is overwhelmingly released before or
  during US trading hours, and with the usual [-1, +1] or [0, +1] windows choosing the earlier day keeps
  both candidate reaction days inside the window; choosing the later day would drop day 0 entirely if
  the news came out pre-market.
* ``'next_session'``: conservative, treat as after the close.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal

import numpy as np
import polars as pl

from core.errors import InputError
from market import session_cache

UnknownPolicy = Literal["same_day", "next_session"]
CALENDAR_START = "2010-01-04"
ET = "America/New_York"

# Representative ET clock times for rows without an explicit time. The labels describe the US session,
# so 'pre_market' is 08:00 ET: before the NYSE close (same day) but after the Tokyo close (next session).
_LABEL_TIME = {"pre_market": "08:00", "intraday": "12:00", "after_close": "23:59", "non_trading": "23:59"}
# Unknown time, same_day policy: the US business day of the (US) announcement date. 08:00 ET is before
# every NYSE close of that date (half days close at 13:00), so XNYS keeps the same day; it is after the
# Tokyo close of that date, so XTKS moves to the next Tokyo session. A Tokyo session that closed before
# the US news day began cannot have reacted to it (00:00 ET here would have picked exactly that session).
_EARLY = "08:00"
_LATE = "23:59"  # unknown time, next_session policy: after any close of that date


#: The exchange_calendars calendar of an ISO 10383 MIC as the ledger records it (companies.csv
#: ``TICKER:MIC:CCY``). exchange_calendars names its calendars by MIC; the US venues share the NYSE
#: calendar (its own aliases: XNAS, ARCX, BATS, XASE, OOTC), as do Nasdaq's segment MICs. Static, so
#: resolving a ticker does not import exchange_calendars (1.5 s); tests/market/test_calendars.py checks
#: every value against ``exchange_calendars.get_calendar_names()``.
MIC_CALENDARS: dict[str, str] = {
    **dict.fromkeys(("XNYS", "XNAS", "XNGS", "XNMS", "XNCM", "XASE", "ARCX", "BATS", "OOTC", "IEXG"), "XNYS"),
    "XTSX": "XTSE",
    **{m: m for m in (
        "BVMF", "XAMS", "XASX", "XBKK", "XBOG", "XBRU", "XBUD", "XBUE", "XCSE", "XDUB", "XETR", "XFRA",
        "XHEL", "XHKG", "XIDX", "XIST", "XJSE", "XKLS", "XKRX", "XLIS", "XLON", "XMAD", "XMEX", "XMIL",
        "XNZE", "XOSL", "XPAR", "XPRA", "XSGO", "XSTO", "XSWX", "XTAI", "XTKS", "XTSE", "XWAR", "XWBO")},
}
#: Not mapped, so that a listing there is refused by name before any work starts (exchange_calendars
#: cannot build them over CALENDAR_START .. a year ahead): ASEX and XBSE (not implemented), XBOM, XSES and
#: XSHG (holidays recorded only to 2026), XSAU (starts 2021), XTAE (Sunday-Thursday sessions it cannot
#: build from 2010). tests/market/test_calendars.py builds every mapped calendar.

#: Yahoo symbol suffix -> calendar, for a ticker the ledger gives no exchange for (a peer, a benchmark).
#: A symbol without a suffix is a US listing (Yahoo's convention; share classes use '-', 'BRK-B').
SUFFIX_CALENDARS: dict[str, str] = {
    "T": "XTKS", "TW": "XTAI", "HK": "XHKG", "KS": "XKRX", "KQ": "XKRX",
    "AX": "XASX", "NZ": "XNZE", "BK": "XBKK", "KL": "XKLS", "JK": "XIDX", "L": "XLON",
    "DE": "XETR", "F": "XFRA", "PA": "XPAR", "AS": "XAMS", "BR": "XBRU", "LS": "XLIS", "MI": "XMIL",
    "MC": "XMAD", "SW": "XSWX", "ST": "XSTO", "CO": "XCSE", "HE": "XHEL", "OL": "XOSL", "IR": "XDUB",
    "VI": "XWBO", "WA": "XWAR", "PR": "XPRA", "BD": "XBUD", "IS": "XIST",
    "TO": "XTSE", "V": "XTSE", "SA": "BVMF", "MX": "XMEX", "BA": "XBUE", "SN": "XSGO", "JO": "XJSE",
}
#: Index symbols ('^...') carry no suffix; these are a foreign exchange's, the rest are US indices.
INDEX_CALENDARS: dict[str, str] = {
    "^N225": "XTKS", "^TWII": "XTAI", "^HSI": "XHKG", "^KS11": "XKRX", "^FTSE": "XLON", "^GDAXI": "XETR",
    "^FCHI": "XPAR", "^AXJO": "XASX", "^GSPTSE": "XTSE",
}


def suffix_calendar(ticker: str) -> str | None:
    """The calendar a Yahoo symbol's form implies (suffix, index, or none: US), None when unknown."""
    t = ticker.strip().upper()
    if t.startswith("^"):
        return INDEX_CALENDARS.get(t, "XNYS")
    if "=" in t:
        return None  # currencies and futures ('EURUSD=X', 'GC=F') trade on no exchange calendar here
    if "." not in t:
        return "XNYS"
    return SUFFIX_CALENDARS.get(t.rsplit(".", 1)[1])


def calendar_for(ticker: str, exchanges: Mapping[str, str] | None = None) -> str:
    """Exchange calendar of a Yahoo symbol: the one of the MIC ``exchanges`` (ticker -> MIC, the ledger's
    companies) records for it, else the one its suffix implies (:data:`SUFFIX_CALENDARS`; no suffix: XNYS).

    Why not XNYS for whatever is not Tokyo: a Taipei listing priced against New York sessions gets the
    wrong day 0 (07:00 ET on 2025-10-06, a Taipei holiday, is t0 2025-10-07 on XTAI) and the wrong
    refresh overlap. An exchange or suffix without a calendar is an InputError naming the ticker.
    """
    mic = (exchanges or {}).get(ticker)
    if mic:
        cal = MIC_CALENDARS.get(mic.strip().upper())
        if cal is None:
            raise InputError(f"{ticker}: exchange {mic!r} has no trading calendar here (known MICs: "
                             f"{', '.join(sorted(MIC_CALENDARS))})", field="exchanges")
        return cal
    cal = suffix_calendar(ticker)
    if cal is None:
        raise InputError(f"{ticker}: no exchange recorded and the symbol's suffix names no known exchange "
                         "calendar; record its MIC in the ledger's companies (TICKER:MIC:CCY)", field="ticker")
    return cal


def calendars_of(tickers: Iterable[str], exchanges: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{ticker: calendar_for(ticker, exchanges)}``: resolved once, before any download or alignment,
    so an unknown exchange stops the work with a message, not halfway."""
    return {t: calendar_for(t, exchanges) for t in tickers}


#: A calendar built for the disk cache reaches this far beyond the end a fresh build covers today, so
#: one entry serves for a year before the range check asks for a rebuild.
_CACHE_AHEAD = timedelta(days=366)


def _build(name: str, end: date) -> tuple[np.ndarray, np.ndarray, str]:
    """(sessions datetime64[D], closes int64 UTC us, time-zone key) from exchange_calendars."""
    # Imported here: exchange_calendars (and pandas under it) take about 1.5 s to import, and the arrays
    # usually come from the disk cache.
    import exchange_calendars as xcals

    # exchange_calendars 4.13 itself calls pandas APIs that pandas 3 deprecates while building a calendar
    # (Series.values; DatetimeIndex.weekday in the Hong Kong calendar and its utilities); the warnings are
    # not ours to fix and would be repeated in every user's output.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        warnings.filterwarnings("ignore", message="DatetimeIndex.weekday is deprecated")
        try:
            cal = xcals.get_calendar(name, start=CALENDAR_START, end=end.isoformat())
        except (ValueError, NotImplementedError) as exc:  # a calendar with data for a shorter range
            raise InputError(f"exchange calendar {name} cannot be built for {CALENDAR_START} .. {end}: "
                             f"{str(exc).splitlines()[0][:200]}", field="exchanges") from None
    sessions = cal.sessions.to_numpy().astype("datetime64[D]")
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)  # UTC microseconds
    return sessions, closes, str(getattr(cal.tz, "key", cal.tz))


@lru_cache(maxsize=8)
def _arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sessions and UTC closes of ``name`` from CALENDAR_START to the end exchange_calendars' default
    calendar reaches today (a year ahead): exactly what ``get_calendar(name, start=CALENDAR_START)``
    gives, read from the validated disk cache (market.session_cache) or built and stored there."""
    need_end = session_cache.default_end(date.today())
    cached = session_cache.load(name, CALENDAR_START, need_end)
    if cached is None:
        build_end = need_end + _CACHE_AHEAD
        sessions, closes, tz = _build(name, build_end)
        fp = session_cache.fingerprint(name, CALENDAR_START, tz)
        session_cache.store(name, session_cache.encode(fp, build_end, sessions, closes))
    else:
        sessions, closes = cached
    # The sessions up to need_end of a calendar built further ahead are those of the default build
    # (holiday rules do not depend on the range; tests/market/test_session_cache.py checks it).
    keep = int(np.searchsorted(sessions, np.datetime64(need_end, "D"), side="right"))
    return sessions[:keep], closes[:keep]


def sessions(calendar: str, start: date, end: date) -> pl.Series:
    """Sessions of ``calendar`` in [start, end] as a pl.Date series."""
    s, _ = _arrays(calendar)
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    return pl.Series("date", s[(s >= lo) & (s <= hi)]).cast(pl.Date)


def calendar_bounds(calendar: str) -> tuple[date, date]:
    """First and last session ``calendar`` knows (CALENDAR_START .. about a year ahead)."""
    s, _ = _arrays(calendar)
    return _as_date(s[0]), _as_date(s[-1])


def _as_date(day: np.datetime64) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day.astype(np.int64)))


def close_time_utc(calendar: str, day: date) -> datetime:
    """Close of a session (tz-aware UTC), including half days; KeyError if ``day`` is no session."""
    s, closes = _arrays(calendar)
    i = int(np.searchsorted(s, np.datetime64(day, "D")))
    if i >= len(s) or s[i] != np.datetime64(day, "D"):
        raise KeyError(day)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(closes[i]))


def sessions_back(calendar: str, day: date, n: int) -> date:
    """The session ``n`` sessions before the last session on or before ``day``."""
    s, _ = _arrays(calendar)
    i = int(np.searchsorted(s, np.datetime64(day, "D"), side="right")) - 1
    return _as_date(s[max(i - n, 0)])


def align_t0(
    events: pl.DataFrame, calendar: str, unknown_policy: UnknownPolicy = "same_day"
) -> pl.DataFrame:
    """Add ``t0`` (pl.Date) and ``t0_rule`` (str) to a frame of announcements.

    Needs ``announced_date`` (Date), ``announced_time_et`` ('HH:MM' or null) and ``session``.
    Rows without a date, or beyond the calendar's range, get t0 = null and a rule saying why.
    """
    if unknown_policy not in ("same_day", "next_session"):
        raise ValueError(f"unknown_policy must be 'same_day' or 'next_session', not {unknown_policy!r}")
    sess_arr, closes = _arrays(calendar)
    time_expr = pl.coalesce(
        pl.col("announced_time_et"),
        pl.col("session").replace_strict(_LABEL_TIME, default=None, return_dtype=pl.Utf8),
        pl.lit(_EARLY if unknown_policy == "same_day" else _LATE),
    )
    rule_expr = (
        pl.when(pl.col("announced_date").is_null())
        .then(pl.lit("no_date"))
        .when(pl.col("announced_time_et").is_not_null())
        .then(pl.lit("time"))
        .when(pl.col("session").is_in(list(_LABEL_TIME)))
        .then(pl.lit("session:") + pl.col("session"))
        .otherwise(pl.lit(f"unknown:{unknown_policy}"))
    )
    naive = (pl.col("announced_date").cast(pl.Utf8) + pl.lit(" ") + time_expr).str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M", strict=True
    )
    work = events.with_columns(
        # A wall time inside the spring-forward gap (02:30 on the second Sunday of March) does not exist;
        # read it an hour later, as the clocks did (Polars has no 'shift_forward'). The gap is one hour in
        # America/New_York and falls on a Sunday night, so the t0 is the Monday session either way.
        _ts=pl.coalesce(
            naive.dt.replace_time_zone(ET, ambiguous="earliest", non_existent="null"),
            (naive + pl.duration(hours=1)).dt.replace_time_zone(ET, ambiguous="earliest", non_existent="null"),
        ).dt.convert_time_zone("UTC"),
        _rule=rule_expr,
    )
    inst = work["_ts"].dt.epoch("us").to_numpy()
    valid = ~np.isnan(inst.astype(float)) if inst.dtype.kind == "f" else np.ones(len(inst), bool)
    inst_i = np.where(valid, np.nan_to_num(inst.astype(float)), 0).astype(np.int64)
    idx = np.searchsorted(closes, inst_i, side="right")
    in_range = valid & (idx < len(closes)) & (inst_i >= closes[0] - 86_400_000_000 * 7)
    t0 = np.where(in_range, sess_arr[np.minimum(idx, len(sess_arr) - 1)], np.datetime64("NaT"))
    same = in_range & (t0 == work["announced_date"].to_numpy().astype("datetime64[D]"))
    base = work["_rule"].to_numpy()
    suffix = np.where(same, "->same_day", "->next_session")
    rule = np.where(in_range, base.astype(str) + suffix, np.where(valid, "out_of_calendar", base))
    return work.drop("_ts", "_rule").with_columns(
        pl.Series("t0", t0).cast(pl.Date), pl.Series("t0_rule", rule, dtype=pl.Utf8)
    )
