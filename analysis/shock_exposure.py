"""Exposure to a common shock: did firms more exposed to OpenAI move more on a day of OpenAI news?

The 2026-01-30 report that Nvidia's OpenAI investment had stalled, or Stargate (2025-01-21), hit every
listed firm of the deal web on one day. The question is a cross-section of that day's abnormal returns
on each firm's exposure (its share of OpenAI's disclosed committed flows, from the ledger), and its
inference must survive the cross-correlation of same-day returns: the Sefcik-Thompson portfolios of
:func:`analysis.common_shock.common_shock_test`.

Exposure is measured as known on the day *before* the announcement (valid time; the ledger's records up
to ``recorded_by``): the event's own news must not define the exposure it is tested against (the stall
report itself replaces Nvidia's $100bn letter as the report standing for that contract).

The cross-section is every listed company of the ledger, one line each (its first ticker: GOOGL for
Alphabet), whether or not it is a party to the deal; a company with no OpenAI flow has exposure 0; one
linked to OpenAI only by undisclosed amounts (AMD, Alphabet, Broadcom before the stall report) has an
unknown exposure (null): it is left out of the test and named, not coded as unexposed.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import duckdb
import polars as pl

from analysis.common_shock import CommonShockResult, common_shock_test
from analysis.features import (
    OPENAI,
    KnownLedger,
    graph_measures,
    ledger_as_known,
    with_stand_in_reports,
)
from core.errors import InputError
from ledger import api as ledger_api

EXPOSURE_COLUMNS = ("openai_share", "openai_flows_usd", "degree", "in_degree", "out_degree", "betweenness")


def primary_tickers(companies: pl.DataFrame) -> pl.DataFrame:
    """company, ticker: the first listed ticker of every listed company (one line per firm)."""
    return (
        companies.filter(pl.col("listed") & (pl.col("tickers").list.len() > 0))
        .select(pl.col("company_id").alias("company"), pl.col("tickers").list.first().alias("ticker"))
        .sort("company")
    )


def ticker_exposures(known: KnownLedger, companies: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """ticker, company and the graph measures of every listed company as known on ``day`` (pure)."""
    if day not in known.days:
        raise InputError(f"the known ledger lacks {day}", field="day")
    flows = with_stand_in_reports(known.flows.filter(pl.col("known_on") == day), known.current_deals)
    _, nodes = graph_measures(flows)
    total = nodes.filter(pl.col("company") == OPENAI)["openai_flows_usd"]
    has_openai = total.len() > 0 and float(total[0]) > 0
    out = primary_tickers(companies).join(
        nodes.drop("known_on").with_columns(pl.lit(True).alias("_in_graph")), on="company", how="left")
    # 0 only for a firm outside the committed graph; a firm linked to OpenAI by undisclosed amounts
    # only keeps its null share (unknown exposure) and is left out of the test, named.
    outside = pl.col("_in_graph").is_null()
    return out.with_columns(
        pl.col("degree", "in_degree", "out_degree").fill_null(0),
        pl.col("betweenness").fill_null(0.0),
        pl.when(outside).then(pl.lit(0.0)).otherwise(pl.col("openai_flows_usd")).alias("openai_flows_usd"),
        (pl.when(outside).then(pl.lit(0.0)).otherwise(pl.col("openai_share")) if has_openai
         else pl.lit(None, dtype=pl.Float64)).alias("openai_share"),
    ).select("ticker", "company", *EXPOSURE_COLUMNS)


def event_day(deals: pl.DataFrame, deal_id: str, *, unknown_policy: str = "same_day",
              date_basis: str = "official") -> tuple[dt.date, dt.date]:
    """(announcement date, t0 on the New York calendar) of ``deal_id`` on ``date_basis``
    (:func:`analysis.date_basis.apply_date_basis`: the moment taken as the news, as in every study)."""
    from market.calendars import align_t0

    row = deals.filter(pl.col("deal_id") == deal_id)
    if row.height == 0:
        raise InputError(f"unknown deal id {deal_id!r}", field="--common-shock")
    if row["announced_date"][0] is None:
        raise InputError(f"deal {deal_id!r} has no announcement date", field="--common-shock")
    if unknown_policy not in ("same_day", "next_session"):
        raise InputError(f"unknown policy {unknown_policy!r}; choose same_day or next_session", field="--unknown-policy")
    from analysis.date_basis import apply_date_basis

    # The study's date basis, as every study's t0 (official: the timing evidence fills a row without a
    # time of day; first_report: an earlier first report moves the date itself).
    based = apply_date_basis(row, date_basis)
    aligned = align_t0(
        based.select("announced_date", "announced_time_et", "session"),
        "XNYS",
        unknown_policy="same_day" if unknown_policy == "same_day" else "next_session",
    )
    return based["announced_date"][0], aligned["t0"][0]


def common_shock_exposure(
    con: duckdb.DuckDBPyConnection,
    returns: pl.DataFrame,
    deal_id: str,
    *,
    formula: str = "~ openai_share",
    benchmark: str = "SPY",
    model: Literal["market", "mean"] = "market",
    estimation: tuple[int, int] = (-250, -11),
    unknown_policy: str = "same_day",
    recorded_by: dt.datetime | None = None,
    date_basis: str = "official",
) -> tuple[CommonShockResult, pl.DataFrame]:
    """Sefcik-Thompson test of ``formula`` over the listed firms on ``deal_id``'s t0, with exposures
    as known the day before the announcement (on ``date_basis``: the first report's date when that basis
    moves it). Returns the result and the exposure frame it used."""
    deals = ledger_api.deals_with_timing_dates(con, as_known_at=recorded_by)
    announced, t0 = event_day(deals, deal_id, unknown_policy=unknown_policy, date_basis=date_basis)
    day = announced - dt.timedelta(days=1)
    known = ledger_as_known(con, [day], recorded_by=recorded_by)
    exposures = ticker_exposures(known, ledger_api.companies(con), day)
    res = common_shock_test(
        returns, exposures, t0, formula=formula, benchmark=benchmark, model=model, estimation=estimation
    )
    return res, exposures


__all__ = ["EXPOSURE_COLUMNS", "common_shock_exposure", "event_day", "primary_tickers", "ticker_exposures"]
