"""A refresh takes each ticker's calendar from the ledger's exchange (review, market finding 2): the
unclosed-bar check, the missing-session check and the download groups of a Taipei listing follow Taipei's
sessions (exchange_calendars XTAI), and a ticker without a known calendar fails alone, named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from carousel.db import connect
from market.calendars import sessions
from market.refresh import refresh
from market.sources import TickerResult


class DaySource:
    """One bar per session of the calendar each ticker trades on (given), closes rising 0.1 % a day;
    records the ticker groups it was asked for."""

    name = "fake"

    def __init__(self, calendars: dict[str, str], end: date) -> None:
        self.calendars, self.end, self.calls = calendars, end, []  # type: list[list[str]]

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, TickerResult]:
        self.calls.append(sorted(tickers))
        out = {}
        for t in tickers:
            days = sessions(self.calendars[t], start, end or self.end).to_list()
            closes = [round(100 * 1.001**i, 6) for i in range(len(days))]
            out[t] = TickerResult(t, pl.DataFrame({
                "ticker": t, "date": days, "open": closes, "high": closes, "low": closes, "close": closes,
                "adj_close": closes, "volume": [1000.0] * len(days)}))
        return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "c.duckdb"


def test_a_taipei_listing_is_refreshed_on_taipeis_sessions(db: Path) -> None:
    end = date(2025, 10, 7)
    # 'TSMX' (no suffix) is recorded by the ledger on XTAI; its suffix alone would say New York.
    src = DaySource({"TSMX": "XTAI", "AMD": "XNYS"}, end)
    # 06:00 UTC on 2025-10-07: Taipei's session closed at 05:30 UTC, New York's opens at 13:30 UTC.
    now = datetime(2025, 10, 7, 6, 0, tzinfo=UTC)
    with connect(db) as con:
        rep = refresh(con, src, ["TSMX", "AMD"], start_default=date(2025, 9, 29), end=end,
                      exchanges={"TSMX": "XTAI", "AMD": "XNAS"}, clock=lambda: now)
        stored = dict(con.execute("SELECT ticker, max(date) FROM prices GROUP BY 1").fetchall())
    # One download per exchange, never mixed.
    assert sorted(src.calls) == [["AMD"], ["TSMX"]]
    # Taipei's 10-07 bar is final and stored; 10-06 (Mid-Autumn Festival, closed) is not missing.
    assert stored["TSMX"] == date(2025, 10, 7)
    # New York's 10-07 bar is not final at that hour (AMD, on XNAS = the NYSE calendar).
    assert rep.not_closed == {"AMD": [date(2025, 10, 7)]} and "TSMX" not in rep.missing_sessions
    # The rows follow exchange_calendars' own XTAI sessions (09-29 Teachers' Day and 10-06 closed).
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xtai = xcals.get_calendar("XTAI", start="2025-09-01", end="2025-12-31")
    expected = [d.date() for d in xtai.sessions_in_range("2025-09-29", "2025-10-07")]
    assert date(2025, 10, 6) not in expected and expected[-1] == date(2025, 10, 7)
    with connect(db, read_only=True) as con:
        got = [r[0] for r in con.execute("SELECT date FROM prices WHERE ticker = 'TSMX' ORDER BY date").fetchall()]
    assert got == expected


def test_the_suffix_alone_would_judge_the_taipei_bar_unfinished(db: Path) -> None:
    """The same refresh without the ledger's exchange puts TSMX on New York: the 10-07 bar counts as
    unclosed (New York has not opened) and 10-06 as a missing session. This is what the fix removes."""
    end = date(2025, 10, 7)
    src = DaySource({"TSMX": "XTAI"}, end)
    with connect(db) as con:
        rep = refresh(con, src, ["TSMX"], start_default=date(2025, 9, 29), end=end,
                      clock=lambda: datetime(2025, 10, 7, 6, 0, tzinfo=UTC))
    assert rep.not_closed == {"TSMX": [date(2025, 10, 7)]}


def test_a_ticker_without_a_known_calendar_fails_alone(db: Path) -> None:
    end = date(2025, 10, 7)
    src = DaySource({"AMD": "XNYS"}, end)
    with connect(db) as con:
        rep = refresh(con, src, ["AMD", "2330.TWO"], start_default=date(2025, 9, 29), end=end,
                      exchanges={"AMD": "XNAS"}, clock=lambda: datetime(2025, 10, 8, tzinfo=UTC))
    assert rep.ok == ["AMD"] and list(rep.failed) == ["2330.TWO"]
    assert "2330.TWO" in rep.failed["2330.TWO"] and "suffix" in rep.failed["2330.TWO"]
    assert src.calls == [["AMD"]]


def test_the_shell_reads_the_exchanges_the_ledger_records(db: Path) -> None:
    """carousel.universe.exchanges: ticker -> MIC exactly as companies.csv spells it (parsed by hand here);
    {} for a price-only database."""
    from carousel.universe import exchanges
    from ledger.load import import_file

    events = Path(__file__).resolve().parents[2] / "data" / "events"
    by_hand = {}
    for line in (events / "companies.csv").read_text(encoding="utf-8").splitlines()[1:]:
        for listing in filter(None, line.split(",")[3].split("|")):
            ticker, mic, _ = listing.split(":")
            by_hand[ticker] = mic
    with connect(db) as con:
        assert exchanges(con) == {}
        import_file(con, events / "deals.csv")
        got = exchanges(con)
    assert got == by_hand and got["9984.T"] == "XTKS" and got["GOOG"] == "XNAS"
