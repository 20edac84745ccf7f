"""The last study's results in the database: the ``abnormal_returns`` and ``car`` views.

Why a module: ``carousel run`` and ``carousel report`` store the study they ran so that ``carousel sql``
and the Python queries can read it; the tables' shape and the replace-all write live in one place.

The ``car`` table carries the dollar columns (``analysis.dollar_columns.DOLLAR_COLUMNS``: market value
at t0-1, dollar CAR, its se and the reason where there is none) and the Holm and Benjamini-Hochberg
adjusted p-values per window (``p_holm``, ``p_bh``: ``analysis.multiplicity.adjusted_car_pvalues``, as in
the appendix table). A database created before they existed gets them at its next read-write open: ``ensure_schema`` runs ``ALTER TABLE study_car ADD COLUMN IF NOT
EXISTS`` for each (idempotent; old rows read NULL until the next ``carousel run``/``report`` rewrites
the table), then recreates the ``car`` view over the widened table. Rows are inserted BY NAME, so the
column order of an altered table never matters.

Each write also stamps the results (``study_stamp``, one row) with what they came from: the ledger head
(position, hash), the price chain's head (batch id, chain hash), the SHA-256 of the study parameters, and
a SHA-256 over the stored rows themselves. :func:`verify_study` recomputes the rows hash (an edited
result is named) and compares the heads with the database's current ones (results computed from an
older ledger or older prices are named as stale).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
        dollar_reason VARCHAR, p_holm DOUBLE, p_bh DOUBLE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS study_stamp (
        ledger_position BIGINT, ledger_hash VARCHAR, price_batch BIGINT, price_hash VARCHAR,
        params_hash VARCHAR NOT NULL, params VARCHAR NOT NULL, results_hash VARCHAR NOT NULL,
        stamped_at TIMESTAMPTZ NOT NULL
    )
    """,
    # Databases created before the dollar columns: widen in place (no-ops on a new table).
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS mcap_usd DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_car DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_se DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS dollar_reason VARCHAR",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS mcap_date DATE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS count_known_after_t0 BOOLEAN",
    # ... and before the multiplicity-adjusted p-values (core.db.SCHEMA_VERSION 2).
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS p_holm DOUBLE",
    "ALTER TABLE study_car ADD COLUMN IF NOT EXISTS p_bh DOUBLE",
    "CREATE OR REPLACE VIEW abnormal_returns AS SELECT * FROM study_ar",
    "CREATE OR REPLACE VIEW car AS SELECT * FROM study_car",
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in STUDY_DDL:
        con.execute(stmt)


def _text(cols: tuple[str, ...], optional: tuple[str, ...] = ()) -> str:
    """A row's values as one string; ``optional`` columns are left out where NULL (concat_ws skips
    NULLs), so rows stamped before those columns existed (NULL there) keep their hash."""
    parts = [f"coalesce(\"{c}\"::VARCHAR, '~')" for c in cols] + [f"\"{c}\"::VARCHAR" for c in optional]
    return "concat_ws('|', " + ", ".join(parts) + ")"


_AR_COLS = ("event_id", "deal_id", "ticker", "t0", "rel_day", "ar", "se")
_CAR_COLS = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar", "n_days",
             "mcap_usd", "dollar_car", "dollar_se", "dollar_reason")
#: Columns added after stamps existed: hashed where present (see :func:`_text`).
_CAR_OPTIONAL = ("p_holm", "p_bh")
#: One SHA-256 over both tables' rows, every value in DuckDB's text form, in a total order.
RESULTS_HASH_SQL = (
    f"SELECT sha256(coalesce((SELECT string_agg(x, chr(10) ORDER BY x) FROM (SELECT {_text(_AR_COLS)} AS x "  # noqa: S608
    f"FROM study_ar)), '') || chr(30) || coalesce((SELECT string_agg(x, chr(10) ORDER BY x) FROM (SELECT "
    f"{_text(_CAR_COLS, _CAR_OPTIONAL)} AS x FROM study_car)), ''))"
)


def _heads(con: duckdb.DuckDBPyConnection) -> tuple[Any, Any, Any, Any]:
    """(ledger position, ledger hash, price batch, price chain hash) of the database now (None if empty)."""
    led = con.execute("SELECT position, hash FROM ledger_log ORDER BY position DESC LIMIT 1").fetchall()
    has_chain = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = 'price_batches' AND column_name = 'chain_hash'").fetchall()[0][0]
    sql = ("SELECT batch_id, chain_hash FROM price_batches ORDER BY batch_id DESC LIMIT 1" if has_chain
           else "SELECT batch_id, NULL FROM price_batches ORDER BY batch_id DESC LIMIT 1")
    price = con.execute(sql).fetchall()
    return (*(led[0] if led else (None, None)), *(price[0] if price else (None, None)))


def params_hash(params: dict[str, Any]) -> tuple[str, str]:
    """Canonical JSON of the study parameters and its SHA-256."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return text, hashlib.sha256(text.encode()).hexdigest()


def persist_study(con: duckdb.DuckDBPyConnection, res: Any, keys: pl.DataFrame,
                  dollars: pl.DataFrame | None = None, params: dict[str, Any] | None = None) -> None:
    """Replace the study tables with this run's results and their stamp (``params``), atomically.

    ``dollars``: ``res.car`` with the dollar columns (``analysis.dollar_columns.with_dollars``); None
    reads the share counts and closes from ``con`` and computes them (what ``carousel run`` does).
    """
    # Imported here: every read-write open imports this module for its DDL, and the dollar maths pull
    # in the market-cap and ledger readers, which only a write of results needs.
    from analysis.dollar_columns import DOLLAR_COLUMNS, study_dollars
    from analysis.multiplicity import ADJUSTED_COLUMNS, adjusted_car_pvalues

    ar = res.ar.join(keys, on="event_id", how="left").select(
        "event_id", "deal_id", "ticker", "t0", "rel_day", "ar", "se"
    )
    if dollars is None:
        dollars = study_dollars(con, res.car)
    # Holm and BH p per window over the whole study's firm-events: the appendix table's function.
    car = adjusted_car_pvalues(dollars).select("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t",
                                               "p", "bhar", "n_days", *DOLLAR_COLUMNS, *ADJUSTED_COLUMNS)
    with transaction(con):
        con.execute("DELETE FROM study_ar")
        con.execute("DELETE FROM study_car")
        con.register("_ar", ar.to_arrow())
        con.register("_car", car.to_arrow())
        con.execute("INSERT INTO study_ar BY NAME SELECT * FROM _ar")
        con.execute("INSERT INTO study_car BY NAME SELECT * FROM _car")
        con.unregister("_ar")
        con.unregister("_car")
        text, digest = params_hash(params or {})
        results = con.execute(RESULTS_HASH_SQL).fetchall()[0][0]
        con.execute("DELETE FROM study_stamp")
        con.execute("INSERT INTO study_stamp VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                    [*_heads(con), digest, text, results])


@dataclass
class StudyVerify:
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_study(con: duckdb.DuckDBPyConnection) -> StudyVerify:
    """Edited study results are problems; results from another ledger head or price head are stale."""
    rep = StudyVerify()
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    if "study_ar" not in tables:
        rep.note = "no study tables"
        return rep
    rep.rows = int(con.execute("SELECT (SELECT count(*) FROM study_ar) + (SELECT count(*) FROM study_car)"
                               ).fetchall()[0][0])
    stamp = (con.execute("SELECT ledger_position, ledger_hash, price_batch, price_hash, params_hash, params, "
                         "results_hash FROM study_stamp").fetchall() if "study_stamp" in tables else [])
    if not stamp:
        if rep.rows:
            rep.problems.append(f"study tables hold {rep.rows} rows but no stamp (written outside carousel, "
                                "or by a version before stamps: rerun `carousel run` or `carousel report`)")
        else:
            rep.note = "no study stored"
        return rep
    if len(stamp) > 1:
        rep.problems.append(f"study_stamp has {len(stamp)} rows, carousel writes one")
        return rep
    led_pos, led_hash, batch, price_hash, p_hash, p_text, r_hash = stamp[0]
    if hashlib.sha256(p_text.encode()).hexdigest() != p_hash:
        rep.problems.append("study_stamp: the recorded parameters do not match their hash (edited)")
    if con.execute(RESULTS_HASH_SQL).fetchall()[0][0] != r_hash:
        rep.problems.append("study tables (study_ar/study_car) were edited after the study wrote them "
                            "(their rows hash differs from the stamp)")
    now = _heads(con)
    if (led_pos, led_hash) != now[:2]:
        rep.stale.append(f"computed from ledger position {led_pos}, the ledger is now at {now[0]}")
    if (batch, price_hash) != now[2:]:
        rep.stale.append(f"computed from price batch {batch}, the prices are now at batch {now[2]}")
    return rep
