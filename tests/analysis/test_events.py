"""Firm-events from deals: one per (deal, ticker), own t0 per calendar, retracted dropped, no_t0 kept."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import polars as pl
import pytest

from analysis.engine import EventStudy
from analysis.events import firm_events

D = dt.date


def deals_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "deal_id": ["amd-openai", "nvda-intc", "old-retracted", "msft-undated", "sb-openai"],
            "contract_id": ["c1", "c2", "c3", "c4", "c5"],
            "status": ["active", "active", "retracted", "active", "active"],
            "announced_date": [D(2025, 10, 6), D(2025, 9, 18), D(2025, 1, 2), None, D(2025, 10, 3)],
            "announced_time_et": [None, "07:00", None, None, "17:30"],
            "session": ["pre_market", "pre_market", "intraday", "unknown", "after_close"],
            "tickers": [["AMD"], ["NVDA", "INTC"], ["ORCL"], ["MSFT"], ["9984.T", "MSFT"]],
        }
    )


def fake_calendar_for(ticker: str) -> str:
    return "XTKS" if ticker.endswith(".T") else "XNYS"


def fake_align(
    frame: pl.DataFrame, calendar: str, unknown_policy: str = "same_day"
) -> pl.DataFrame:
    """Weekday calendar: after_close -> next weekday, else same day (weekend -> next weekday).

    XTKS is modelled as running one day ahead for after-close US announcements (Tokyo opens next).
    """

    def t0(d: dt.date, session: str) -> tuple[dt.date, str]:
        rule = "same_day"
        if session == "after_close" or d.weekday() >= 5:
            d += dt.timedelta(days=1)
            rule = "next_session"
        while d.weekday() >= 5:
            d += dt.timedelta(days=1)
        return d, f"{calendar}:{rule}"

    vals = [t0(d, s) for d, s in zip(frame["announced_date"], frame["session"], strict=True)]
    return frame.with_columns(
        pl.Series("t0", [v[0] for v in vals], dtype=pl.Date),
        pl.Series("t0_rule", [v[1] for v in vals]),
    )


def test_one_event_per_deal_and_ticker_with_own_calendar() -> None:
    ev = firm_events(deals_frame(), calendar_for=fake_calendar_for, align_t0=fake_align)
    assert ev["event_id"].to_list() == [
        "amd-openai:AMD",
        "msft-undated:MSFT",
        "nvda-intc:INTC",
        "nvda-intc:NVDA",
        "sb-openai:9984.T",
        "sb-openai:MSFT",
    ]
    row = {r["event_id"]: r for r in ev.iter_rows(named=True)}
    assert row["amd-openai:AMD"]["t0"] == D(2025, 10, 6)
    assert row["amd-openai:AMD"]["calendar"] == "XNYS"
    # Friday after-close -> Monday, on each ticker's own calendar
    assert row["sb-openai:9984.T"]["calendar"] == "XTKS"
    assert row["sb-openai:9984.T"]["t0"] == D(2025, 10, 6)
    assert row["sb-openai:9984.T"]["t0_rule"] == "XTKS:next_session"
    assert row["sb-openai:MSFT"]["t0_rule"] == "XNYS:next_session"
    # undated deal kept with a null t0; retracted deal dropped
    assert row["msft-undated:MSFT"]["t0"] is None and row["msft-undated:MSFT"]["t0_rule"] == "no_t0"
    assert "old-retracted:ORCL" not in row
    # several events per firm: MSFT appears in two deals
    assert ev.filter(pl.col("ticker") == "MSFT").height == 2


def test_peers_are_added_without_duplicating_counterparties() -> None:
    ev = firm_events(
        deals_frame(), peers=["NVDA", "SMH"], calendar_for=fake_calendar_for, align_t0=fake_align
    )
    nv = ev.filter(pl.col("deal_id") == "nvda-intc")
    assert sorted(zip(nv["ticker"], nv["role"], strict=True)) == [
        ("INTC", "counterparty"),
        ("NVDA", "counterparty"),
        ("SMH", "peer"),
    ]
    assert (
        ev.filter(pl.col("role") == "peer").height == 2 * 4 - 1
    )  # 4 live deals, NVDA is a counterparty once
    by_deal = firm_events(
        deals_frame(),
        peers={"amd-openai": ["NVDA"]},
        calendar_for=fake_calendar_for,
        align_t0=fake_align,
    )
    assert by_deal.filter(pl.col("role") == "peer")["event_id"].to_list() == ["amd-openai:NVDA"]


def test_undated_deal_is_excluded_by_the_engine_as_no_t0() -> None:
    ev = firm_events(deals_frame(), calendar_for=fake_calendar_for, align_t0=fake_align)
    dates = pl.date_range(D(2024, 1, 1), D(2025, 12, 31), "1d", eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5)
    n = dates.len()
    ret = pl.concat(
        [
            pl.DataFrame(
                {
                    "ticker": [t] * n,
                    "date": dates,
                    "ret": [0.001 * ((i * (j + 3)) % 7 - 3) for i in range(n)],
                }
            )
            for j, t in enumerate(["SPY", "AMD", "NVDA", "INTC", "MSFT"])
        ]
    )
    res = EventStudy(ret, ev).fit()
    reasons = dict(res.excluded.select("event_id", "reason").iter_rows())
    assert reasons["msft-undated:MSFT"] == "no_t0"
    assert reasons["sb-openai:9984.T"] == "ticker_not_found"
    assert set(res.panel.keys["event_id"]) == {
        "amd-openai:AMD",
        "nvda-intc:NVDA",
        "nvda-intc:INTC",
        "sb-openai:MSFT",
    }


def test_missing_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="tickers"):
        firm_events(
            deals_frame().drop("tickers"), calendar_for=fake_calendar_for, align_t0=fake_align
        )


@pytest.mark.skipif(
    importlib.util.find_spec("market.calendars") is None, reason="market layer not built yet"
)
def test_real_calendars_align_tokyo_and_new_york() -> None:
    ev = firm_events(deals_frame())
    row = {r["event_id"]: r for r in ev.iter_rows(named=True)}
    assert row["amd-openai:AMD"]["t0"] == D(2025, 10, 6)
    assert row["nvda-intc:NVDA"]["t0"] == D(2025, 9, 18)
    assert row["sb-openai:9984.T"]["calendar"] == "XTKS"
    assert row["sb-openai:MSFT"]["t0"] == D(2025, 10, 6)


def test_same_day_rows_of_one_announcement_are_one_firm_event() -> None:
    import datetime as dt

    from analysis.events import collapse_same_day

    ev = pl.DataFrame({
        "event_id": ["amd-openai-2025-10-06-warrant:AMD", "amd-openai-2025-10-06:AMD", "x-2025-10-07:AMD", "u:MSFT"],
        "deal_id": ["amd-openai-2025-10-06-warrant", "amd-openai-2025-10-06", "x-2025-10-07", "u"],
        "ticker": ["AMD", "AMD", "AMD", "MSFT"],
        "t0": [dt.date(2025, 10, 6), dt.date(2025, 10, 6), dt.date(2025, 10, 7), None],
    })
    out = collapse_same_day(ev)
    assert out["event_id"].to_list() == ["amd-openai-2025-10-06:AMD", "u:MSFT", "x-2025-10-07:AMD"]
    assert out["deal_ids"].to_list()[0] == ["amd-openai-2025-10-06", "amd-openai-2025-10-06-warrant"]


def test_t0_is_aligned_on_the_exchange_the_ledger_records(tmp_path: Path) -> None:
    """Review (market) finding 2: a Taipei listing (companies.csv ``2330.TW:XTAI:TWD``) and a 07:00 ET deal
    on Monday 2025-10-06 (a Taipei holiday): t0 is 2025-10-07 on XTAI, as exchange_calendars' XTAI
    sessions give, not 10-06 on XNYS. A symbol without a suffix that the ledger records on XTAI follows
    the ledger, and the listing gets the Dimson group of a market that closes before New York opens."""
    import warnings

    import exchange_calendars as xcals

    from analysis.spec import StudySpec
    from analysis.study import load_inputs
    from carousel.db import connect
    from ledger.load import import_file

    events_dir = Path(__file__).resolve().parents[2] / "data" / "events"
    companies = (events_dir / "companies.csv").read_text(encoding="utf-8").rstrip("\n")
    (tmp_path / "companies.csv").write_text(
        companies + "\ntsmc,TSMC,true,2330.TW:XTAI:TWD|TSMX:XTAI:TWD,TSMC,\n", encoding="utf-8")
    header = (events_dir / "deals.csv").read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "deals.csv").write_text(
        header + "\nopenai-tsmc-2025-10-06,2025-10-06,07:00,pre_market,OpenAI,TSMC,,wafers,chip_purchase,"
        "2330.TW;TSMX,none,Test,Test deal,2025-10-06,https://example.com/tsmc,verified\n", encoding="utf-8")
    with connect(tmp_path / "c.duckdb") as con:
        import_file(con, tmp_path / "deals.csv")
        deals, _ = load_inputs(con, [])
    ev = firm_events(deals).sort("ticker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xtai = xcals.get_calendar("XTAI", start="2025-09-01", end="2025-12-31")
    assert not xtai.is_session("2025-10-06")
    expected = xtai.date_to_session("2025-10-06", direction="next").date()
    assert expected == dt.date(2025, 10, 7)
    assert ev.select("ticker", "calendar", "t0").rows() == [("2330.TW", "XTAI", expected), ("TSMX", "XTAI", expected)]
    # Without the ledger's exchanges the symbol alone decides: TSMX would be a New York listing.
    bare = firm_events(deals.drop("exchanges")).sort("ticker")
    assert bare.select("ticker", "calendar", "t0").rows() == [
        ("2330.TW", "XTAI", expected), ("TSMX", "XNYS", dt.date(2025, 10, 6))]
    groups = StudySpec().groups(["2330.TW", "TSMX", "NVDA"], dict(ev.select("ticker", "calendar").iter_rows()))
    assert [(g.model, g.benchmarks, g.tickers) for g in groups[1:]] == [
        ("multifactor", ("SPY", "SPY[-1]"), ("2330.TW", "TSMX"))]
