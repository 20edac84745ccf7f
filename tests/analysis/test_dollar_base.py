"""Which market value a dollar CAR scales: the close before the window, the count, and when it was known.

Every expectation is computed here from data/shares and data/prices with the csv module (no project
code): the ticker's trading day before relative day a is the row ``a`` rows after the last row before
t0 in its own price file; the count in force is the latest as_of_date on or before that day; a count
was public on its filing_date (or, without one, 45 days after its as_of_date).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from analysis.dollar import dollar_abnormal_value
from market.shares_sources import read_shares_csv

DATA = Path(__file__).resolve().parents[2] / "data"
WINDOWS = {"[0,0]": 0, "[-1,+1]": -1, "[-5,+5]": -5, "[0,+10]": 0, "[+1,+3]": 1}
#: The five firm-events of the shipped study whose count in force at t0-1 was filed on or after t0.
FILED_LATE = [("AVGO", "2025-09-05"), ("AVGO", "2025-12-12"), ("GOOGL", "2025-10-23"), ("MSFT", "2025-10-28"),
              ("NVDA", "2025-11-18")]


def _price_rows(ticker: str) -> list[dict[str, str]]:
    with (DATA / "prices" / f"{ticker}.csv").open(newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: r["date"])


def _counts(ticker: str) -> list[dict[str, str]]:
    with (DATA / "shares" / "shares_outstanding.csv").open(newline="") as fh:
        return sorted((r for r in csv.DictReader(fh) if r["ticker"] == ticker), key=lambda r: r["as_of_date"])


def _day_before(ticker: str, t0: str, start: int) -> dict[str, str]:
    rows = _price_rows(ticker)
    last_before = max(i for i, r in enumerate(rows) if r["date"] < t0)
    return rows[last_before + start]


def _known(count: dict[str, str]) -> str:
    if count["filing_date"]:
        return count["filing_date"]
    return (dt.date.fromisoformat(count["as_of_date"]) + dt.timedelta(days=45)).isoformat()


def _frames(tickers: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    prices = pl.concat([
        pl.read_csv(DATA / "prices" / f"{t}.csv", try_parse_dates=True).select(
            pl.lit(t).alias("ticker"), pl.col("date").cast(pl.Date), pl.col("close").cast(pl.Float64))
        for t in tickers])
    return read_shares_csv(), prices


def _car(events: list[tuple[str, str]], windows: list[str], car: float = 1.0) -> pl.DataFrame:
    rows = [(f"d:{t}:{t0}", "d", t, dt.date.fromisoformat(t0), w, car, 0.01 * car)
            for t, t0 in events for w in windows]
    return pl.DataFrame(rows, schema={"event_id": pl.Utf8, "deal_id": pl.Utf8, "ticker": pl.Utf8,
                                      "t0": pl.Date, "window": pl.Utf8, "car": pl.Float64, "se": pl.Float64},
                        orient="row")


def test_each_window_is_valued_at_the_close_before_its_first_day() -> None:
    events = [("AMZN", "2025-11-03"), ("ORCL", "2025-09-10"), ("AMD", "2025-10-06"), ("NVDA", "2025-09-22")]
    counts, prices = _frames(sorted({t for t, _ in events}))
    out = dollar_abnormal_value(_car(events, list(WINDOWS)), counts, prices).frame
    assert out.height == len(events) * len(WINDOWS)
    for r in out.iter_rows(named=True):
        day = _day_before(r["ticker"], r["t0"].isoformat(), WINDOWS[r["window"]])
        count = max((c for c in _counts(r["ticker"]) if c["as_of_date"] <= day["date"]),
                    key=lambda c: c["as_of_date"])
        expected = int(count["split_adjusted_to_2026"]) * float(day["close"])
        assert r["mcap_date"].isoformat() == day["date"], (r["event_id"], r["window"])
        assert r["dollar_reason"] is None
        assert r["mcap_usd"] == pytest.approx(expected, rel=1e-12)
        assert r["dollar_car"] == pytest.approx(expected, rel=1e-12)  # CAR = 1
    # AMZN rose 9.6 % on day -1 (2025-10-31): the [-1,+1] base is the 2025-10-30 close, 9.6 % below
    # the t0-1 value that used to scale every window (the evidence of issue 14: 331.6 -> 302.6 bn).
    amzn = {r["window"]: r for r in out.filter(ticker="AMZN").iter_rows(named=True)}
    assert amzn["[-1,+1]"]["mcap_date"] == dt.date(2025, 10, 30)
    assert amzn["[0,0]"]["mcap_usd"] / amzn["[-1,+1]"]["mcap_usd"] == pytest.approx(1.0958, abs=5e-4)
    assert amzn["[+1,+3]"]["mcap_date"] == dt.date(2025, 11, 3)  # a window after t0: the t0 close


def test_a_count_that_moved_more_than_two_percent_in_the_gap_is_not_used() -> None:
    """INTC: 4,377M on 2025-07-18, 4,770M on 2025-10-31 (+8.98 %): both 2025 INTC events are flagged."""
    events = [("INTC", "2025-08-19"), ("INTC", "2025-09-18"), ("AMZN", "2025-11-03"), ("ORCL", "2025-09-10")]
    counts, prices = _frames(["AMZN", "INTC", "ORCL"])
    out = dollar_abnormal_value(_car(events, ["[0,0]", "[-1,+1]"], 0.05), counts, prices).frame
    flagged = 0
    for r in out.iter_rows(named=True):
        day = _day_before(r["ticker"], r["t0"].isoformat(), WINDOWS[r["window"]])["date"]
        cs = _counts(r["ticker"])
        i = max(k for k, c in enumerate(cs) if c["as_of_date"] <= day)
        change = int(cs[i + 1]["split_adjusted_to_2026"]) / int(cs[i]["split_adjusted_to_2026"]) - 1
        if abs(change) > 0.02 and cs[i + 1]["as_of_date"] > day:
            flagged += 1
            assert r["dollar_reason"] == "count_changed_in_gap" and r["dollar_car"] is None
            assert r["dollar_se"] is None and r["mcap_usd"] is not None  # the cap is shown, not used
            assert r["next_count_change"] == pytest.approx(change, rel=1e-12)
        else:
            assert r["dollar_reason"] is None and r["dollar_car"] is not None
    assert flagged == 4
    intc = out.filter(ticker="INTC").row(0, named=True)
    assert intc["shares"] == 4_377_000_000 and intc["next_count_change"] == pytest.approx(4770 / 4377 - 1)


def test_count_known_after_t0_and_the_no_look_ahead_variant() -> None:
    counts, prices = _frames(sorted({"GOOG", *(t for t, _ in FILED_LATE)}))
    car = _car(FILED_LATE, ["[0,0]"])
    default = dollar_abnormal_value(car, counts, prices).frame
    known = dollar_abnormal_value(car, counts, prices, known_at_t0=True).frame
    for (ticker, t0), d, k in zip(FILED_LATE, default.iter_rows(named=True), known.iter_rows(named=True),
                                  strict=True):
        day = _day_before(ticker, t0, 0)["date"]
        cs = [c for c in _counts(ticker) if c["as_of_date"] <= day]
        in_force = max(cs, key=lambda c: c["as_of_date"])
        public = max((c for c in cs if _known(c) < t0), key=lambda c: c["as_of_date"])
        assert in_force["filing_date"] >= t0 and public["as_of_date"] < in_force["as_of_date"]
        assert d["as_of_date"].isoformat() == in_force["as_of_date"] and d["count_known_after_t0"] is True
        assert k["as_of_date"].isoformat() == public["as_of_date"] and k["count_known_after_t0"] is False
        assert d["shares"] == int(in_force["split_adjusted_to_2026"])
        assert k["shares"] == int(public["split_adjusted_to_2026"])
        assert k["mcap_date"] == d["mcap_date"] and k["dollar_reason"] is None
        # Same close (GOOGL's class C at GOOG's): the values differ only by the count, by at most
        # 0.40 % (AVGO 2025-12-12: 4,741.3M in force vs 4,722.4M public before t0).
        assert abs(k["mcap_usd"] / d["mcap_usd"] - 1) < 0.0041
        if ticker != "GOOGL":
            assert k["mcap_usd"] / d["mcap_usd"] == pytest.approx(k["shares"] / d["shares"], rel=1e-12)
    assert known["mcap_usd"].to_list() != default["mcap_usd"].to_list()


def test_a_count_without_filing_date_is_public_45_days_after_its_as_of_date() -> None:
    """ORCL's 2025-08-31 count has no filing date: taken as public from 2025-10-15, after t0 2025-09-10."""
    counts, prices = _frames(["ORCL"])
    car = _car([("ORCL", "2025-09-10"), ("ORCL", "2025-10-16")], ["[0,0]"])
    default = dollar_abnormal_value(car, counts, prices).frame
    known = dollar_abnormal_value(car, counts, prices, known_at_t0=True).frame
    assert default["count_known_after_t0"].to_list() == [True, False]
    assert default["as_of_date"].to_list() == [dt.date(2025, 8, 31)] * 2
    assert known["as_of_date"].to_list() == [dt.date(2025, 5, 31), dt.date(2025, 8, 31)]
