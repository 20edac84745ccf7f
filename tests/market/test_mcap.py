"""Market capitalisation: as-of join, classes, ADR ratio, splits, staleness and FX exclusion.

Independent route: SOURCES.md's author computed a market cap for every CSV row by hand
(``sanity_close`` and ``sanity_mcap_bn``: the row's count times the close on or before its date, GOOGL
as (A+B) x GOOGL + C x GOOG, TSM as shares / 5 x ADR, 9984.T in JPY on split-adjusted counts).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from market.mcap import MAX_STALE_DAYS, market_caps, market_caps_before, previous_sessions
from market.shares_sources import SHARES_CSV, read_shares_csv
from market.sources import read_snapshot_file

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    return pl.concat([read_snapshot_file(p) for p in sorted((DATA / "prices").glob("*.csv"))])


@pytest.fixture(scope="module")
def counts() -> pl.DataFrame:
    return read_shares_csv()


def _close(ticker: str, day: str) -> float:
    """The close of one day read straight from the price file (csv module, no project code)."""
    with (DATA / "prices" / f"{ticker}.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["date"] == day:
                return float(row["close"])
    raise KeyError((ticker, day))


def test_every_sanity_value_in_the_csv_is_reproduced(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    raw = pl.read_csv(SHARES_CSV, infer_schema_length=0).with_columns(
        pl.col("as_of_date").str.to_date(), pl.col("sanity_price_date").str.to_date())
    # The sanity values price each row's own count on its sanity date (the last session on or before
    # as_of_date), so the test moves each count to that date; the join then picks exactly that row.
    moved = counts.join(raw.select("ticker", "as_of_date", "sanity_price_date"),
                        on=["ticker", "as_of_date"]).with_columns(as_of_date=pl.col("sanity_price_date"))
    at = raw.select("ticker", pl.col("sanity_price_date").alias("date"), "sanity_mcap_bn", "sanity_close")
    m = market_caps(moved, prices, at)
    expected = m["sanity_mcap_bn"].str.extract(r"^([\d,.]+)").str.replace_all(",", "").cast(pl.Float64)
    # Published to 0.1 bn: half a unit of the last digit.
    assert ((m["mcap_local"] / 1e9 - expected).abs() <= 0.05 + 1e-9).all()
    assert m.height == 121
    assert m.filter(pl.col("ticker") == "9984.T")["mcap_reason"].to_list() == ["fx_missing"] * 5
    assert m.filter(pl.col("ticker") == "9984.T")["mcap_usd"].null_count() == 5
    assert m.filter(pl.col("ticker") != "9984.T")["mcap_reason"].null_count() == 116
    methods = dict(m.group_by("mcap_method").len().iter_rows())
    # GOOGL: 8 rows with a class split, 4 period-end totals; TSM: 11 ADR rows; the other 98 plain.
    assert methods == {"shares_x_close": 98, "classes_at_own_close": 8, "total_at_listing": 4,
                       "adr_ratio": 11}


def test_googl_classes_tsm_adr_and_split_by_hand(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    at = pl.DataFrame({"ticker": ["GOOGL", "GOOGL", "TSM", "NVDA"],
                       "date": [dt.date(2025, 10, 23), dt.date(2024, 7, 1), dt.date(2025, 10, 1),
                                dt.date(2024, 6, 7)]})
    m = market_caps(counts, prices, at).rows_by_key("date", named=True, unique=True)
    g = m[dt.date(2025, 10, 23)]  # row 2025-10-22: A=5818M;B=842M;C=5407M
    assert g["mcap_usd"] == pytest.approx(
        (5_818e6 + 842e6) * _close("GOOGL", "2025-10-23") + 5_407e6 * _close("GOOG", "2025-10-23"), rel=1e-12)
    assert g["mcap_method"] == "classes_at_own_close"
    g2 = m[dt.date(2024, 7, 1)]  # row 2024-06-30: total only -> every class at the GOOGL close
    assert g2["mcap_usd"] == pytest.approx(12_322e6 * _close("GOOGL", "2024-07-01"), rel=1e-12)
    assert g2["mcap_method"] == "total_at_listing"
    t = m[dt.date(2025, 10, 1)]  # 5 ordinary shares per ADS
    assert t["mcap_usd"] == pytest.approx(25_932_524_000 / 5 * _close("TSM", "2025-10-01"), rel=1e-12)
    n = m[dt.date(2024, 6, 7)]  # count 2,460 M of 2024-05-24 is pre-split: x10 against adjusted closes
    assert n["mcap_usd"] == pytest.approx(24_600_000_000 * _close("NVDA", "2024-06-07"), rel=1e-12)
    assert 2.8e12 < n["mcap_usd"] < 3.1e12  # NVDA was a ~$3 T company in June 2024


def test_staleness_missing_and_fx_reasons(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    orcl_last = dt.date(2024, 6, 13)  # then no ORCL count until 2025-05-31 (SOURCES.md gap)
    at = pl.DataFrame({"ticker": ["ORCL", "ORCL", "ORCL", "NVDA", "9984.T", "CRWV", "ZZZZ"],
                       "date": [orcl_last + dt.timedelta(days=MAX_STALE_DAYS - 1),  # 2024-10-10 Thu
                                orcl_last + dt.timedelta(days=MAX_STALE_DAYS + 1),  # 2024-10-12 Sat
                                dt.date(2025, 1, 21), dt.date(2023, 6, 1), dt.date(2026, 7, 1),
                                dt.date(2025, 9, 30), dt.date(2025, 1, 2)]})
    m = market_caps(counts, prices, at)
    assert m["mcap_reason"].to_list() == [None, "count_stale", "count_stale", "count_missing",
                                          "fx_missing", "count_stale", "count_missing"]
    assert m["stale_days"].to_list()[:3] == [119, 121, 222]
    assert m["mcap_usd"].to_list()[1:] == [None] * 6
    sb = m.row(4, named=True)
    assert sb["currency"] == "JPY"
    assert sb["mcap_local"] == pytest.approx(5_699_049_389 * _close("9984.T", "2026-07-01"), rel=1e-12)
    # A weekend date has no close: price_missing is not filled from Friday.
    wk = market_caps(counts, prices, pl.DataFrame({"ticker": ["AMD"], "date": [dt.date(2025, 10, 4)]}))
    assert wk["mcap_reason"].item() == "price_missing"
    # A ledger currency overrides the defaults: a USD listing declared in EUR is excluded, not converted.
    eur = market_caps(counts, prices, at.head(1), currencies={"ORCL": "EUR"})
    assert eur["mcap_reason"].item() == "fx_missing"
    assert eur["mcap_local"].item() == pytest.approx(2_755_860_000 * _close("ORCL", "2024-10-10"))


def test_t0_minus_one_is_the_tickers_previous_session(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    ev = pl.DataFrame({"ticker": ["AMD", "ORCL", "9984.T", "NVDA", "AMD"],
                       "t0": [dt.date(2025, 10, 6), dt.date(2025, 9, 10), dt.date(2025, 1, 6),
                              dt.date(2018, 1, 2), None]})
    prev = previous_sessions(prices, ev)
    # Monday -> Friday; Tokyo reopened on 2025-01-06 after the New Year holidays (last session 12-30).
    assert prev["price_date"].to_list() == [dt.date(2025, 10, 3), dt.date(2025, 9, 9),
                                            dt.date(2024, 12, 30), None, None]
    m = market_caps_before(counts, prices, ev)
    assert m["mcap_reason"].to_list()[3:] == ["price_missing", "price_missing"]
    amd = m.row(0, named=True)
    assert amd["as_of_date"] == dt.date(2025, 7, 30)
    assert amd["mcap_usd"] == pytest.approx(1_622_843_689 * _close("AMD", "2025-10-03"), rel=1e-12)
    orcl = m.row(1, named=True)
    assert orcl["mcap_usd"] == pytest.approx(2_841_000_000 * _close("ORCL", "2025-09-09"), rel=1e-12)
    assert orcl["stale_days"] == 9


def test_as_of_join_agrees_with_a_row_by_row_lookup(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    """Random (ticker, date) pairs against the plainest route: scan the rows, pick the count in force."""
    rng = np.random.default_rng(20261201)
    tickers = ["AMD", "ORCL", "MSFT", "NVDA", "META", "AVGO", "AMZN", "INTC", "CRWV", "ARM", "TSM"]
    days = pl.date_range(dt.date(2023, 12, 1), dt.date(2026, 8, 20), eager=True).to_list()
    at = pl.DataFrame({"ticker": [tickers[i] for i in rng.integers(0, len(tickers), 400)],
                       "date": [days[i] for i in rng.integers(0, len(days), 400)]})
    got = market_caps(counts, prices, at)
    rows = counts.to_dicts()
    closes = {(r["ticker"], r["date"]): r["close"] for r in prices.select("ticker", "date", "close").to_dicts()}
    n_valued = 0
    for (t, d), g in zip(at.iter_rows(), got.iter_rows(named=True), strict=True):
        in_force = [r for r in rows if r["ticker"] == t and r["as_of_date"] <= d]
        best = max(in_force, key=lambda r: r["as_of_date"]) if in_force else None
        close = closes.get((t, d))
        if best is None or (d - best["as_of_date"]).days > MAX_STALE_DAYS or close is None:
            assert g["mcap_usd"] is None and g["mcap_reason"] is not None
            continue
        per_quote = 5 if t == "TSM" else 1
        assert g["mcap_usd"] == pytest.approx(best["shares_split_adjusted"] / per_quote * close, rel=1e-12)
        n_valued += 1
    assert n_valued > 200


def test_duplicate_keys_and_missing_columns_are_refused(prices: pl.DataFrame, counts: pl.DataFrame) -> None:
    at = pl.DataFrame({"ticker": ["AMD"], "date": [dt.date(2025, 10, 3)]})
    with pytest.raises(ValueError, match=r"counts frame has 2 rows sharing a \(ticker, as_of_date\), first AMD"):
        market_caps(pl.concat([counts, counts.filter(pl.col("ticker") == "AMD").head(1)]), prices, at)
    with pytest.raises(ValueError, match=r"prices frame has 2 rows sharing a \(ticker, date\)"):
        market_caps(counts, pl.concat([prices, prices.head(1)]), at)
    with pytest.raises(ValueError, match="prices frame lacks column"):
        market_caps(counts, prices.drop("close"), at)
