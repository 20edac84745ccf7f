"""The last study's results in the database: the ``abnormal_returns`` and ``car`` views.

Why a module: ``carousel run`` and ``carousel report`` store the study they ran so that ``carousel sql``
and the Python queries can read it; the tables' shape and the replace-all write live in one place.
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
        car DOUBLE, se DOUBLE, t DOUBLE, p DOUBLE, bhar DOUBLE, n_days BIGINT
    )
    """,
    "CREATE OR REPLACE VIEW abnormal_returns AS SELECT * FROM study_ar",
    "CREATE OR REPLACE VIEW car AS SELECT * FROM study_car",
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in STUDY_DDL:
        con.execute(stmt)


def persist_study(con: duckdb.DuckDBPyConnection, res: Any, keys: pl.DataFrame) -> None:
    """Replace the study tables with this run's results, atomically."""
    ar = res.ar.join(keys, on="event_id", how="left").select(
        "event_id", "deal_id", "ticker", "t0", "rel_day", "ar", "se"
    )
    car = res.car.select("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar", "n_days")
    with transaction(con):
        con.execute("DELETE FROM study_ar")
        con.execute("DELETE FROM study_car")
        con.register("_ar", ar.to_arrow())
        con.register("_car", car.to_arrow())
        con.execute("INSERT INTO study_ar SELECT * FROM _ar")
        con.execute("INSERT INTO study_car SELECT * FROM _car")
        con.unregister("_ar")
        con.unregister("_car")
