"""`carousel explain`'s market caps are the dollar CARs' market caps (one home: ``analysis.dollar.caps_before``).

Checked three ways on the shipped data: (1) for every shipped firm-event, explain's value at t0-1 equals,
to the last bit, the ``mcap_usd`` of the [0,0] dollar CAR (valued at t0-1 too) with the same reason;
(2) Alphabet's caps, which the old explain route could not value (no GOOG close: ``class_price_missing``),
equal (A+B) x GOOGL close + C x GOOG close computed here with the csv module from data/; (3) a Yahoo
count dated like a filing does not replace the filing in explain either (the filings are preferred).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from analysis.dollar_columns import load_dollar_inputs, with_dollars
from analysis.events import collapse_same_day, firm_events
from analysis.explain import market_caps_at_t0
from analysis.study import load_inputs, run_study
from carousel.db import connect
from ledger import api as ledger_api
from market.shares_store import append_share_batch

DATA = Path(__file__).resolve().parents[2] / "data"


def _events(con: object) -> pl.DataFrame:
    return collapse_same_day(firm_events(ledger_api.deals(con)))  # type: ignore[arg-type]


def _close(ticker: str, day: str) -> float:
    with (DATA / "prices" / f"{ticker}.csv").open(newline="") as fh:
        return next(float(r["close"]) for r in csv.DictReader(fh) if r["date"] == day)


def test_explain_caps_equal_the_dollar_caps_for_every_shipped_firm_event(shipped_db: Path) -> None:
    with connect(shipped_db, read_only=True) as con:
        events = _events(con)
        caps = market_caps_at_t0(con, events)
        deals, returns = load_inputs(con, ["SPY"])
        res = run_study(deals, returns)
        tickers = sorted(set(res.car["ticker"].to_list()))
        dollars = with_dollars(res.car.filter(pl.col("window") == "[0,0]"), load_dollar_inputs(con, tickers))
    assert caps is not None
    assert caps.height == events.filter(pl.col("t0").is_not_null()).select("ticker", "t0").unique().height == 54
    j = dollars.select("ticker", "t0", "mcap_usd", "mcap_date", "dollar_reason").join(
        caps, on=["ticker", "t0"], how="left", suffix="_explain")
    assert j.height == res.car.filter(pl.col("window") == "[0,0]").height == 40
    # identical values (not approximately): the same function on the same inputs
    assert j.filter(pl.col("mcap_usd").is_not_null()).height == 27  # 13 without a cap: stale, missing, JPY
    assert (j["mcap_usd"].fill_null(-1.0) == j["mcap_usd_explain"].fill_null(-1.0)).all()
    assert (j["mcap_date"] == j["price_date"]).all()
    # the cap's reason is the dollar reason, except where the dollar CAR alone is withheld (INTC's issuance)
    gap = j.filter(pl.col("dollar_reason") == "count_changed_in_gap")
    assert sorted(gap["ticker"].to_list()) == ["INTC", "INTC"] and gap["mcap_usd_explain"].is_not_null().all()
    rest = j.filter(pl.col("dollar_reason") != "count_changed_in_gap")
    assert (rest["dollar_reason"].fill_null("") == rest["mcap_reason"].fill_null("")).all()


def test_alphabet_is_valued_class_by_class(shipped_db: Path) -> None:
    with connect(shipped_db, read_only=True) as con:
        caps = market_caps_at_t0(con, _events(con))
    assert caps is not None
    googl = caps.filter(pl.col("ticker") == "GOOGL").sort("t0")
    assert googl["t0"].to_list() == [dt.date(2025, 6, 10), dt.date(2025, 8, 22), dt.date(2025, 10, 23)]
    assert googl["mcap_reason"].is_null().all()
    # class counts of the filing in force at t0-1 (data/shares), closes of that day (data/prices)
    counts = {"2025-06-09": (5820 + 856, 5459), "2025-08-21": (5817 + 847, 5430), "2025-10-22": (5818 + 842, 5407)}
    for r in googl.iter_rows(named=True):
        day = r["price_date"].isoformat()
        ab, c = counts[day]
        want = ab * 1e6 * _close("GOOGL", day) + c * 1e6 * _close("GOOG", day)
        assert r["mcap_usd"] == pytest.approx(want, rel=1e-12)
    # 2025-10-23's t0-1 is the day of the 2025-10-22 count: 3,041.7 bn in the CSV's sanity column
    assert googl["mcap_usd"][2] / 1e9 == pytest.approx(3041.7, abs=0.05)


def test_a_newer_yahoo_count_does_not_replace_the_filing(shipped_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "y.duckdb"
    path.write_bytes(shipped_db.read_bytes())
    # ORCL's count in force on 2025-09-09 (t0-1 of the Oracle contract): 2,841 M as of 2025-08-31
    yahoo = pl.DataFrame({"ticker": ["ORCL"], "as_of_date": [dt.date(2025, 8, 31)],
                          "shares": [3_000_000_000], "shares_split_adjusted": [3_000_000_000]})
    with connect(path) as con:
        append_share_batch(con, yahoo, source="yahoo", tickers=["ORCL"])
    with connect(path, read_only=True) as con:
        caps = market_caps_at_t0(con, _events(con))
    assert caps is not None
    orcl = caps.filter((pl.col("ticker") == "ORCL") & (pl.col("t0") == dt.date(2025, 9, 10))).row(0, named=True)
    assert orcl["mcap_usd"] == pytest.approx(2_841_000_000 * _close("ORCL", "2025-09-09"), rel=1e-12)
