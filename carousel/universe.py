"""Which tickers a refresh covers: the ledger's listed companies plus the benchmarks.

Why in the shell: the market layer fetches and stores whatever tickers it is given and knows nothing of
deals; joining the ledger's companies to the market's benchmarks is the application's decision, so ledger
and market stay independent of each other.
"""

from __future__ import annotations

import duckdb
import polars as pl

from ledger.api import companies
from market.refresh import BENCHMARKS


def _ledger_tickers(con: duckdb.DuckDBPyConnection) -> tuple[list[str], str | None]:
    try:
        df = companies(con)
    except duckdb.CatalogException as exc:
        # Only a genuinely missing table (a price-only database) falls back; DuckDB says
        # "Catalog Error: Table with name ledger_companies does not exist!".
        if "does not exist" not in str(exc):
            raise
        return [], "no ledger in this database (table ledger_companies missing)"
    tickers = (
        df.filter(pl.col("listed")).select(pl.col("tickers").explode()).drop_nulls()
        .to_series().unique().to_list()
    )
    return tickers, None


def universe(
    con: duckdb.DuckDBPyConnection, benchmarks: tuple[str, ...] = BENCHMARKS
) -> tuple[list[str], str | None]:
    """Listed tickers of the ledger's companies + benchmarks.

    Fallback (no ``ledger_companies`` table, or no listed company): the
    tickers already in the price store + benchmarks, so a refresh keeps what is stored up to date; the
    note says which applied. Any other database error (a corrupt or truncated file) propagates: falling
    back would report a "successful" refresh of the wrong universe on a database that cannot be read.
    """
    ledger, note = _ledger_tickers(con)
    if not ledger:
        stored = [r[0] for r in con.execute("SELECT DISTINCT ticker FROM prices").fetchall()]
        note = (note or "no listed companies in the ledger") + "; using stored tickers + benchmarks"
        ledger = stored
    return sorted(set(ledger) | set(benchmarks)), note


def exchanges(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Ticker -> MIC as the ledger's companies record it (``TICKER:MIC:CCY``): the exchange whose calendar
    a refresh uses for that ticker (``market.refresh.refresh(exchanges=)``). {} without a ledger."""
    try:
        df = companies(con)
    except duckdb.CatalogException as exc:
        if "does not exist" not in str(exc):
            raise
        return {}
    pairs = df.select("tickers", "exchanges").explode("tickers", "exchanges").drop_nulls()
    return dict(pairs.unique("tickers", keep="first", maintain_order=True).iter_rows())
