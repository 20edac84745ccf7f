"""t0 alignment on real dates (exchange_calendars XNYS / XTKS, real half-day closes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl
import pytest

from market.calendars import align_t0, calendar_for, close_time_utc, sessions, sessions_back


def _t0(rows: Sequence[tuple[date | None, str | None, str]], cal: str = "XNYS", **kw: str) -> list:
    ev = pl.DataFrame(rows, schema={"announced_date": pl.Date, "announced_time_et": pl.Utf8,
                                    "session": pl.Utf8}, orient="row")
    out = align_t0(ev, cal, **kw)  # type: ignore[arg-type]
    assert out.columns == ["announced_date", "announced_time_et", "session", "t0", "t0_rule"]
    assert out.schema["t0"] == pl.Date
    return list(zip(out["t0"].to_list(), out["t0_rule"].to_list(), strict=True))


def test_calendar_for() -> None:
    assert calendar_for("9984.T") == "XTKS"
    assert [calendar_for(t) for t in ("NVDA", "^GSPC", "SPY", "BRK-B")] == ["XNYS"] * 4
    # Review (market) finding 2: every other foreign listing was put on XNYS.
    assert [calendar_for(t) for t in ("2330.TW", "0700.HK", "005930.KS", "AZN.L", "SAP.DE", "^N225")] == [
        "XTAI", "XHKG", "XKRX", "XLON", "XETR", "XTKS"]


def test_calendar_for_takes_the_ledgers_exchange_first_and_refuses_unknown_ones() -> None:
    from core.errors import InputError

    # The ledger's MIC wins over the symbol's form; Nasdaq's MIC shares the NYSE calendar.
    assert calendar_for("TSMX", {"TSMX": "XTAI"}) == "XTAI"
    assert calendar_for("MSFT", {"MSFT": "XNAS"}) == "XNYS"
    with pytest.raises(InputError, match=r"2330\.TWO.*suffix") as e:
        calendar_for("2330.TWO")
    assert e.value.field == "ticker"
    with pytest.raises(InputError, match=r"ABC: exchange 'XXXX'"):
        calendar_for("ABC", {"ABC": "XXXX"})
    with pytest.raises(InputError, match="EURUSD=X"):
        calendar_for("EURUSD=X")


def test_every_mapped_calendar_is_an_exchange_calendars_calendar_and_aliases_agree() -> None:
    """The static maps (no exchange_calendars import at resolve time) against exchange_calendars itself:
    every target is one of its calendars, and a MIC it knows resolves to the calendar it resolves to."""
    import exchange_calendars as xcals

    from market.calendars import INDEX_CALENDARS, MIC_CALENDARS, SUFFIX_CALENDARS

    names = set(xcals.get_calendar_names(include_aliases=False))
    aliases = set(xcals.get_calendar_names(include_aliases=True))
    for target in (*MIC_CALENDARS.values(), *SUFFIX_CALENDARS.values(), *INDEX_CALENDARS.values()):
        assert target in names, target
    for mic, cal in MIC_CALENDARS.items():
        if mic in aliases:
            assert xcals.resolve_alias(mic) == cal, mic


def test_a_taipei_listing_gets_taipeis_day_0() -> None:
    """07:00 ET on Monday 2025-10-06: Taipei was closed that day (Mid-Autumn Festival) and its 10-03
    session closed before the news, so t0 is 10-07 on XTAI (the next XTAI session after the instant,
    from exchange_calendars' own sessions); on XNYS it would be 10-06."""
    import warnings

    import exchange_calendars as xcals
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XTAI", start="2025-01-02", end="2025-12-31")
    instant = pd.Timestamp("2025-10-06 07:00", tz="America/New_York").tz_convert("UTC")
    assert not cal.is_session("2025-10-06")
    expected = cal.closes[cal.closes > instant].index[0].date()
    assert expected == date(2025, 10, 7)
    assert _t0([(date(2025, 10, 6), "07:00", "pre_market")], "XTAI") == [(expected, "time->next_session")]
    assert _t0([(date(2025, 10, 6), "07:00", "pre_market")], calendar_for("2330.TW")) == [
        (expected, "time->next_session")]


def test_contract_cases() -> None:
    got = _t0([
        (date(2025, 10, 6), None, "pre_market"),     # AMD-OpenAI, Monday before the open
        (date(2025, 1, 21), None, "after_close"),    # Stargate, Tuesday evening
        (date(2025, 10, 4), None, "non_trading"),    # Saturday
        (date(2025, 10, 4), None, "unknown"),        # Saturday, unknown time
        (date(2025, 9, 10), "15:59", "intraday"),
        (date(2025, 9, 10), "16:00", "after_close"),  # at the close = after it
    ])
    assert got == [
        (date(2025, 10, 6), "session:pre_market->same_day"),
        (date(2025, 1, 22), "session:after_close->next_session"),
        (date(2025, 10, 6), "session:non_trading->next_session"),
        (date(2025, 10, 6), "unknown:same_day->next_session"),
        (date(2025, 9, 10), "time->same_day"),
        (date(2025, 9, 11), "time->next_session"),
    ]


def test_before_a_holiday_and_half_days() -> None:
    # 2025-07-03 closes at 13:00 ET (half day); 07-04 is a holiday; next session Monday 07-07.
    assert close_time_utc("XNYS", date(2025, 7, 3)).isoformat() == "2025-07-03T17:00:00+00:00"
    got = _t0([
        (date(2025, 7, 3), "12:59", "intraday"),
        (date(2025, 7, 3), "13:00", "unknown"),
        (date(2025, 7, 3), "14:30", "unknown"),   # would be intraday on a normal day
        (date(2025, 7, 3), None, "after_close"),
        (date(2025, 7, 4), "10:00", "non_trading"),
        (date(2025, 11, 28), "13:05", "unknown"),  # day after Thanksgiving, 13:00 close
        (date(2025, 12, 24), "12:00", "intraday"),  # Christmas Eve half day
        (date(2025, 12, 24), "15:00", "unknown"),   # after 13:00 close -> 12-26 (25th holiday)
    ])
    assert [d for d, _ in got] == [
        date(2025, 7, 3), date(2025, 7, 7), date(2025, 7, 7), date(2025, 7, 7), date(2025, 7, 7),
        date(2025, 12, 1), date(2025, 12, 24), date(2025, 12, 26),
    ]


def test_dst_boundary() -> None:
    # 2025-03-10 is the first session after the US DST switch: 15:30 ET is still before the close.
    assert _t0([(date(2025, 3, 10), "15:30", "intraday")])[0][0] == date(2025, 3, 10)
    assert _t0([(date(2025, 11, 3), "16:01", "after_close")])[0][0] == date(2025, 11, 4)
    # A wall time in the spring-forward gap does not exist (02:30 on 2025-03-09): read as an hour later,
    # never a null t0. The fall-back hour (01:30 on 2025-11-02 happens twice) takes the earlier instant.
    assert _t0([(date(2025, 3, 9), "02:30", "non_trading")]) == [(date(2025, 3, 10), "time->next_session")]
    assert _t0([(date(2025, 3, 9), "02:30", "non_trading")], "XTKS")[0][0] == date(2025, 3, 10)
    assert _t0([(date(2025, 11, 2), "01:30", "non_trading")]) == [(date(2025, 11, 3), "time->next_session")]


def test_unknown_policy() -> None:
    rows = [(date(2025, 10, 6), None, "unknown"), (date(2025, 10, 5), None, "unknown")]
    assert [d for d, _ in _t0(rows)] == [date(2025, 10, 6), date(2025, 10, 6)]
    nxt = _t0(rows, unknown_policy="next_session")
    assert nxt == [(date(2025, 10, 7), "unknown:next_session->next_session"),
                   (date(2025, 10, 6), "unknown:next_session->next_session")]
    with pytest.raises(ValueError, match="unknown_policy"):
        _t0(rows, unknown_policy="later")


def test_tokyo_calendar() -> None:
    # Tokyo closes 15:30 JST = 06:30 UTC (since 2024-11-05) = 02:30 ET; US pre-market news
    # therefore reaches Tokyo the next session. 2025-10-13 is Sports Day (TSE closed).
    got = _t0([
        (date(2025, 10, 6), None, "pre_market"),
        (date(2025, 10, 10), "20:00", "after_close"),
        (date(2025, 10, 6), None, "unknown"),
    ], cal="XTKS")
    # Unknown time follows the US business day too: Tokyo's 10-06 session closed before it began.
    assert [d for d, _ in got] == [date(2025, 10, 7), date(2025, 10, 14), date(2025, 10, 7)]


def test_null_and_out_of_range() -> None:
    got = _t0([(None, None, "unknown"), (date(2035, 1, 2), None, "pre_market")])
    assert got == [(None, "no_date"), (None, "out_of_calendar")]


def test_sessions_helpers() -> None:
    s = sessions("XNYS", date(2025, 7, 1), date(2025, 7, 8))
    assert s.to_list() == [date(2025, 7, d) for d in (1, 2, 3, 7, 8)]
    assert sessions_back("XNYS", date(2025, 7, 7), 2) == date(2025, 7, 2)
    assert sessions_back("XNYS", date(2025, 7, 5), 0) == date(2025, 7, 3)


def test_vectorised_many_rows() -> None:
    days = pl.date_range(date(2024, 1, 1), date(2025, 12, 31), eager=True)
    ev = pl.DataFrame({"announced_date": days, "announced_time_et": ["17:00"] * len(days),
                       "session": ["after_close"] * len(days)})
    out = align_t0(ev, "XNYS")
    assert out.height == len(days)
    assert (out["t0"] > out["announced_date"]).all()
    # every t0 is a session and at most 5 calendar days later (the longest 2024-25 gap)
    sess = set(sessions("XNYS", date(2024, 1, 1), date(2026, 1, 10)).to_list())
    assert set(out["t0"].to_list()) <= sess
    gaps = (out["t0"] - out["announced_date"]).dt.total_days()
    assert gaps.max() == 4 and gaps.min() == 1  # Thu before Good Friday -> Mon; any weekday -> next


def test_unknown_time_on_tokyo_is_the_first_session_after_the_us_morning() -> None:
    # SoftBank-OpenAI, 2025-03-31 (a US date), time unknown: Tokyo's 03-31 session closed at 02:30 ET,
    # before the US news day began, so the first Tokyo session that can react is 04-01.
    rows = [(date(2025, 3, 31), None, "unknown"), (date(2025, 3, 29), None, "unknown")]
    assert _t0(rows, "XTKS") == [(date(2025, 4, 1), "unknown:same_day->next_session"),
                                 (date(2025, 3, 31), "unknown:same_day->next_session")]
    # The same rows on XNYS stay on the US session day.
    assert [d for d, _ in _t0(rows)] == [date(2025, 3, 31), date(2025, 3, 31)]


def test_every_mapped_calendar_builds_over_the_range_the_code_asks_for(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each calendar a ticker can resolve to is built (fresh cache: exchange_calendars itself) from
    CALENDAR_START to a year ahead and holds its sessions; a calendar that cannot be built (holidays known
    only to 2026, a later first date) is an InputError naming it, never a traceback (review finding:
    XSES, XSHG, XBOM, XSAU, XTAE, ASEX and XBSE were mapped and stopped `carousel run`)."""
    from core.errors import InputError
    from market import calendars
    from market.calendars import CALENDAR_START, INDEX_CALENDARS, MIC_CALENDARS, SUFFIX_CALENDARS

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendars._arrays.cache_clear()
    try:
        for name in sorted({*MIC_CALENDARS.values(), *SUFFIX_CALENDARS.values(), *INDEX_CALENDARS.values()}):
            first, last = calendars.calendar_bounds(name)
            assert first <= date.fromisoformat(CALENDAR_START) + timedelta(days=10) and last > date.today(), name
        for unbuildable in ("XSES", "XSAU", "ASEX"):
            with pytest.raises(InputError, match=f"exchange calendar {unbuildable} cannot be built") as e:
                calendars._arrays(unbuildable)
            assert e.value.field == "exchanges"
    finally:
        calendars._arrays.cache_clear()

