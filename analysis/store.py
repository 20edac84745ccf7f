"""The last study's results in the database: the ``abnormal_returns`` and ``car`` views.

Why a module: ``carousel run`` and ``carousel report`` store the study they ran so that ``carousel sql``
and the Python queries can read it; the tables' shape and the replace-all write live in one place.

The ``car`` table carries the dollar columns (``analysis.dollar_columns.DOLLAR_COLUMNS``: market value
at t0-1, dollar CAR, its se and the reason where there is none). A database created before they existed
gets them at its next read-write open: ``ensure_schema`` runs ``ALTER TABLE study_car ADD COLUMN IF NOT
EXISTS`` for each (idempotent; old rows read NULL until the next ``carousel run``/``report`` rewrites
the table), then recreates the ``car`` view over the widened table. Rows are inserted BY NAME, so the
column order of an altered table never matters.
"""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from core.db import transaction

STUDY_DDL = [
    """
    CREATE TABLE IF NOT EXISTS study_ar (
        event_id VARCHAR NOT NULL, deal_id VARCHAR, ticker VARCHAR NOT NULL, t0 DATE,
        rel_day INTEGER NOT NULL, ar DOUBLE, se DOUBLE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS study_car (
        event_id VARCHAR NOT NULL, deal_id VARCHAR, ticker VARCHAR NOT NULL, t0 DATE, "window" VARCHAR NOT NULL,
        car DOUBLE, se DOUBLE, t DOUBLE, p DOUBLE, bhar DOUBLE, n_days BIGINT,
        mcap_usd DOUBLE, mcap_date DATE, count_known_after_t0 BOOLEAN, dollar_car DOUBLE, dollar_se DOUBLE,
        dollar_reason VARCHAR
    )
    """,
    # Databases created before the dollar columns: widen in place (no-ops on a new table).
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS mcap_usd DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_car DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_se DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_reason VARCHAR",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS mcap_date DATE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS count_known_after_t0 BOOLEAN",
    "CREATE OR REPLACE VIEW abnormal_returns AS SELECT * FROM study_ar",
    "CREATE OR REPLACE VIEW car AS SELECT * FROM study_car",
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in STUDY_DDL:
        con.execute(stmt)


def persist_study(con: duckdb.DuckDBPyConnection, res: Any, keys: pl.DataFrame,
                  dollars: pl.DataFrame | None = None) -> None:
    """Replace the study tables with this run's results, atomically.

    ``dollars``: ``res.car`` with the dollar columns (``analysis.dollar_columns.with_dollars``); None
    reads the share counts and closes from ``con`` and computes them (what ``carousel run`` does).
    """
    # Imported here: every read-write open imports this module for its DDL, and the dollar maths pull
    # in the market-cap and ledger readers, which only a write of results needs.
    from analysis.dollar_columns import DOLLAR_COLUMNS, study_dollars

    ar = res.ar.join(keys, on="event_id", how="left").select(
        "event_id", "deal_id", "ticker", "t0", "rel_day", "ar", "se"
    )
    if dollars is None:
        dollars = study_dollars(con, res.car)
    car = dollars.select("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar",
                         "n_days", *DOLLAR_COLUMNS)
    with transaction(con):
        con.execute("DELETE FROM study_ar")
        con.execute("DELETE FROM study_car")
        con.register("_ar", ar.to_arrow())
        con.register("_car", car.to_arrow())
        con.execute("INSERT INTO study_ar BY NAME SELECT * FROM _ar")
        con.execute("INSERT INTO study_car BY NAME SELECT * FROM _car")
        con.unregister("_ar")
        con.unregister("_car")
