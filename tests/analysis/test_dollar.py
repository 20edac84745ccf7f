"""Dollar abnormal value: shares x close(t0-1) x CAR, checked by hand from the shipped CSV and price files."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from analysis.dollar import DollarResult, by_cycle, dollar_abnormal_value
from analysis.engine import EventStudy
from market.returns import compute_returns
from market.shares_sources import read_shares_csv
from market.sources import read_snapshot_file

DATA = Path(__file__).resolve().parents[2] / "data"
ORCL_DEAL, AMD_DEAL, AMD_WARRANT = "openai-orcl-2025-09-10", "amd-openai-2025-10-06", \
    "amd-openai-2025-10-06-warrant"


def _csv_count(ticker: str, as_of: str) -> int:
    """shares_outstanding of one CSV row, read with the csv module (no project code)."""
    with (DATA / "shares" / "shares_outstanding.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["ticker"] == ticker and row["as_of_date"] == as_of:
                return int(row["split_adjusted_to_2026"])
    raise KeyError((ticker, as_of))


def _close(ticker: str, day: str) -> float:
    with (DATA / "prices" / f"{ticker}.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["date"] == day:
                return float(row["close"])
    raise KeyError((ticker, day))


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    return pl.concat([read_snapshot_file(p) for p in sorted((DATA / "prices").glob("*.csv"))])


@pytest.fixture(scope="module")
def study(prices: pl.DataFrame) -> tuple[pl.DataFrame, DollarResult]:
    events = pl.DataFrame({
        "event_id": [f"{ORCL_DEAL}:ORCL", f"{AMD_DEAL}:AMD", f"{AMD_WARRANT}:AMD", "sb-2026-01-05:9984.T",
                     "sb-2025-10-02:9984.T"],
        "deal_id": [ORCL_DEAL, AMD_DEAL, AMD_WARRANT, "sb-2026-01-05", "sb-2025-10-02"],
        "ticker": ["ORCL", "AMD", "AMD", "9984.T", "9984.T"],
        "t0": [dt.date(2025, 9, 10), dt.date(2025, 10, 6), dt.date(2025, 10, 6), dt.date(2026, 1, 5),
               dt.date(2025, 10, 2)],
    })
    car = EventStudy(compute_returns(prices), events).fit().car
    return car, dollar_abnormal_value(car, read_shares_csv(), prices)


def _row(frame: pl.DataFrame, event_id: str, window: str = "[0,0]") -> dict:
    return frame.filter((pl.col("event_id") == event_id) & (pl.col("window") == window)).row(0, named=True)


def test_orcl_and_amd_event_day_dollar_car_by_hand(study: tuple[pl.DataFrame, DollarResult]) -> None:
    car, res = study
    # ORCL t0 2025-09-10 (intraday report): t0-1 = 2025-09-09; count in force = 2,841 M of 2025-08-31.
    c = _row(car, f"{ORCL_DEAL}:ORCL")
    d = _row(res.frame, f"{ORCL_DEAL}:ORCL")
    shares, close = _csv_count("ORCL", "2025-08-31"), _close("ORCL", "2025-09-09")
    assert shares == 2_841_000_000
    assert d["dollar_car"] == pytest.approx(shares * close * c["car"], rel=1e-12)
    assert d["dollar_se"] == pytest.approx(shares * close * c["se"], rel=1e-12)
    assert d["mcap_usd"] == pytest.approx(shares * close, rel=1e-12)
    assert 230e9 < d["dollar_car"] < 250e9  # "Oracle added about $250bn in a day"
    # AMD t0 2025-10-06 (pre-market): t0-1 = Friday 2025-10-03; count 1,622,843,689 of 2025-07-30.
    c = _row(car, f"{AMD_DEAL}:AMD")
    d = _row(res.frame, f"{AMD_DEAL}:AMD")
    shares, close = _csv_count("AMD", "2025-07-30"), _close("AMD", "2025-10-03")
    assert shares == 1_622_843_689
    assert d["dollar_car"] == pytest.approx(shares * close * c["car"], rel=1e-12)
    assert d["dollar_se"] == pytest.approx(shares * close * c["se"], rel=1e-12)
    assert 55e9 < d["dollar_car"] < 65e9
    assert d["price_date"] == dt.date(2025, 10, 3) and d["dollar_reason"] is None


def test_reason_codes_and_accessors(study: tuple[pl.DataFrame, DollarResult]) -> None:
    car, res = study
    fresh = _row(res.frame, "sb-2026-01-05:9984.T")
    assert fresh["dollar_reason"] == "fx_missing" and fresh["dollar_car"] is None
    assert fresh["mcap_local"] == pytest.approx(5_711_848_120 * _close("9984.T", "2025-12-30"), rel=1e-12)
    assert _row(res.frame, "sb-2025-10-02:9984.T")["dollar_reason"] == "count_stale"  # 427 days old
    t = res.tvalues.join(car.select("event_id", "window", pl.col("t").alias("t_car")),
                         on=["event_id", "window"]).drop_nulls()
    assert t.height == 12
    assert ((t["t"] - t["t_car"]).abs() <= 1e-12 * t["t_car"].abs()).all()
    p = res.pvalues.join(car.select("event_id", "window", pl.col("p").alias("p_car")),
                         on=["event_id", "window"]).drop_nulls()
    assert p.height == 12 and (p["p"] == p["p_car"]).all()
    ci = _row(res.conf_int(0.05), f"{ORCL_DEAL}:ORCL")
    d = _row(res.frame, f"{ORCL_DEAL}:ORCL")
    assert ci["lower"] == pytest.approx(d["dollar_car"] - 1.959963984540054 * d["dollar_se"], rel=1e-12)
    assert f"{d['dollar_car'] / 1e9:.1f}" in res.summary()
    assert f"{d['dollar_car'] / 1e9:.1f} & {d['dollar_se'] / 1e9:.1f}" in res.to_latex()
    assert res.to_frame() is res.frame


def test_aggregates_sum_each_market_move_once(study: tuple[pl.DataFrame, DollarResult]) -> None:
    _car, res = study
    orcl = _row(res.frame, f"{ORCL_DEAL}:ORCL")
    amd = _row(res.frame, f"{AMD_DEAL}:AMD")
    members = pl.DataFrame({"cycle": ["amd-oracle"] * 3, "deal_id": [ORCL_DEAL, AMD_DEAL, AMD_WARRANT]})
    cyc = by_cycle(res.frame, members).filter(pl.col("window") == "[0,0]").row(0, named=True)
    # The chips deal and the warrant are one announcement: AMD's move counts once.
    assert cyc["n"] == 2 and cyc["complete"]
    assert cyc["dollar_car"] == pytest.approx(orcl["dollar_car"] + amd["dollar_car"], rel=1e-12)
    assert cyc["dollar_se"] == pytest.approx(math.hypot(orcl["dollar_se"], amd["dollar_se"]), rel=1e-12)
    assert cyc["p"] == pytest.approx(math.erfc(cyc["t"] / math.sqrt(2)), rel=1e-9)
    companies = pl.DataFrame({"company_id": ["oracle", "amd", "softbank"],
                              "tickers": [["ORCL"], ["AMD"], ["9984.T"]]})
    comp = res.by_company(companies).filter(pl.col("window") == "[0,0]").rows_by_key(
        "company_id", named=True, unique=True)
    assert comp["amd"]["dollar_car"] == pytest.approx(amd["dollar_car"], rel=1e-12)
    assert comp["amd"]["n"] == 1
    sb = comp["softbank"]
    assert sb["dollar_car"] is None and sb["dollar_car_partial"] is None and not sb["complete"]
    assert sb["missing"] == ["9984.T 2025-10-02: count_stale", "9984.T 2026-01-05: fx_missing"]


def test_value_moved_per_committed_dollar(study: tuple[pl.DataFrame, DollarResult]) -> None:
    _car, res = study
    deals = pl.DataFrame({"deal_id": [ORCL_DEAL, AMD_DEAL, "sb-2026-01-05"],
                          "amount_usd": [300e9, None, 22.5e9],
                          "amount_kind": ["estimate", "undisclosed", "exact"]},
                         schema_overrides={"amount_usd": pl.Decimal(38, 2)})
    out = res.per_committed_dollar(deals).filter(pl.col("window") == "[0,0]").rows_by_key(
        "deal_id", named=True, unique=True)
    orcl = _row(res.frame, f"{ORCL_DEAL}:ORCL")
    assert out[ORCL_DEAL]["per_committed_dollar"] == pytest.approx(orcl["dollar_car"] / 300e9, rel=1e-12)
    assert 0.75 < out[ORCL_DEAL]["per_committed_dollar"] < 0.85  # ~$0.8 of Oracle value per $1 reported
    assert out[AMD_DEAL]["ratio_reason"] == "amount_undisclosed"
    assert out[AMD_DEAL]["per_committed_dollar"] is None
    assert out["sb-2026-01-05"]["ratio_reason"] == "parties_missing"


def test_bad_frames_are_refused(prices: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="car frame lacks column"):
        dollar_abnormal_value(pl.DataFrame({"ticker": ["ORCL"]}), read_shares_csv(), prices)


def test_with_excluded_rows_are_members_without_a_value() -> None:
    """A hand frame: a deal with one valued party and one the study excluded, two undated exclusions of
    one ticker (two deals: two members, not one move), and an excluded id already in the frame (not
    added twice)."""
    from analysis.dollar import by_company, by_deal, with_excluded

    day = dt.date(2025, 10, 14)
    frame = pl.DataFrame({
        "event_id": ["a:X", "a:X"], "deal_id": ["a", "a"], "ticker": ["X", "X"], "t0": [day, day],
        "window": ["[0,0]", "[-1,+1]"], "car": [0.02, 0.03], "se": [0.01, 0.02],
        "dollar_car": [2e9, 3e9], "dollar_se": [1e9, 2e9], "dollar_reason": [None, None]})
    excluded = pl.DataFrame({
        "event_id": ["a:Y", "u1:Y", "u2:Y", "a:X"], "deal_id": ["a", "u1", "u2", "a"],
        "ticker": ["Y", "Y", "Y", "X"], "t0": [day, None, None, day],
        "reason": ["overlaps_earlier_event", "no_t0", "no_t0", "ticker_not_found"]})
    out = with_excluded(frame, excluded)
    assert out.columns == frame.columns and out.height == 2 + 3 * 2
    assert out.head(2).equals(frame)  # the study's rows first, untouched
    added = out.tail(6)
    assert added["car"].null_count() == added["dollar_car"].null_count() == 6
    assert sorted(set(added["dollar_reason"].to_list())) == ["no_t0", "overlaps_earlier_event"]
    deal = by_deal(out).filter(deal_id="a", window="[-1,+1]").row(0, named=True)
    assert deal["dollar_car"] is None and deal["complete"] is False and deal["dollar_car_partial"] == 3e9
    assert deal["n"] == 2 and deal["missing"] == ["Y 2025-10-14: overlaps_earlier_event"]
    comp = by_company(out, pl.DataFrame({"company_id": ["y"], "tickers": [["Y"]]}))
    y = comp.filter(company_id="y", window="[0,0]").row(0, named=True)
    assert y["n"] == 3 and y["n_valued"] == 0 and y["dollar_car_partial"] is None
    assert y["missing"] == ["Y 2025-10-14: overlaps_earlier_event", "Y undated: no_t0", "Y undated: no_t0"]
    assert with_excluded(frame, excluded.head(0)).equals(frame)


def test_dollar_abnormal_value_with_the_studys_exclusions(study: tuple[pl.DataFrame, DollarResult],
                                                          prices: pl.DataFrame) -> None:
    """``excluded=`` (an ORCL-AMD 2025-10-14 AMD firm-event, overlapping AMD 2025-10-06): AMD's company
    total and the deal become incomplete, the valued moves kept as the partial sum."""
    car, res = study
    excluded = pl.DataFrame({"event_id": ["orcl-amd-2025-10-14:AMD"], "deal_id": ["orcl-amd-2025-10-14"],
                             "ticker": ["AMD"], "t0": [dt.date(2025, 10, 14)], "reason": ["overlaps_earlier_event"]})
    with_ex = dollar_abnormal_value(car, read_shares_csv(), prices, excluded=excluded)
    assert with_ex.frame.head(res.frame.height).equals(res.frame)
    companies = pl.DataFrame({"company_id": ["amd"], "tickers": [["AMD"]]})
    amd = with_ex.by_company(companies).filter(company_id="amd", window="[0,0]").row(0, named=True)
    moved = _row(res.frame, f"{AMD_DEAL}:AMD")["dollar_car"]
    assert amd["dollar_car"] is None and amd["dollar_car_partial"] == pytest.approx(moved, rel=1e-12)
    assert amd["missing"] == ["AMD 2025-10-14: overlaps_earlier_event"] and amd["n"] == 2
    deal = with_ex.by_deal().filter(deal_id="orcl-amd-2025-10-14", window="[0,0]").row(0, named=True)
    assert deal["dollar_car"] is None and deal["n_valued"] == 0
    assert res.by_company(companies).filter(company_id="amd", window="[0,0]")["complete"].to_list() == [True]
