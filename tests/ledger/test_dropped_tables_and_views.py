"""A ledger table dropped or a view replaced by hand is tampering, caught by verify and kept as evidence.

Review findings 1 and 3 (ledger, 2026-12-02). Before: after ``DROP TABLE ledger_head`` verify took the
database for one older than the table and skipped comparing the projections, so a projection edited
with it passed ``ledger verify`` and ``carousel verify --anchor``; the next read-write open then rebuilt
the projections quietly. A view replaced by hand (``flows`` with ``amount_usd * 2``) passed verify and
doubled the README's published sums. Now the schema marker's fingerprint decides (it records that
carousel's schema ran), verify names the dropped table or changed view, a read-write open refuses (exit
5), and ``carousel ledger repair`` is the explicit way back.

The expected amounts are read from the shipped deals file (``amount_usd_bn`` of the Microsoft-OpenAI
2019 deal), not from the database under test.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from carousel.cli.ledger import app
from carousel.db import connect, ensure_schema
from carousel.verify import verify_all
from core import db as core_db
from core.errors import ConflictError
from ledger import log

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
DEALS = DATA / "deals.csv"
MSFT = "msft-openai-2019-07-22"
#: The deal's amount as the shipped file gives it (1.0 bn), by hand from the CSV.
with DEALS.open(encoding="utf-8", newline="") as _fh:
    AMOUNT = next(Decimal(r["amount_usd_bn"]) * 10**9 for r in csv.DictReader(_fh) if r["id"] == MSFT)
EDIT = [f"UPDATE ledger_deals SET amount_usd = amount_usd * 10 WHERE deal_id = '{MSFT}'",
        f"UPDATE ledger_flows SET amount_usd = amount_usd * 10 WHERE deal_id = '{MSFT}'"]
TABLES = ("ledger_head", "ledger_projection_digest", "ledger_log_keys", "ledger_companies", "ledger_deals",
          "ledger_flows")
LEDGER_VIEWS = ("companies", "deals", "flows", "ledger_events")


@pytest.fixture
def db(ledger_db: Path) -> Path:
    """A private copy of the shipped deals' ledger (conftest's ``ledger_db``, imported once per run)."""
    return ledger_db


def _raw(db: Path, *stmts: str) -> None:
    with duckdb.connect(str(db)) as c:
        for s in stmts:
            c.execute(s)


def _tables(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as c:
        return {r[0] for r in c.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _stored_amount(db: Path) -> Decimal:
    with duckdb.connect(str(db), read_only=True) as c:
        return Decimal(c.execute("SELECT amount_usd FROM ledger_deals WHERE deal_id = ?", [MSFT]).fetchall()[0][0])


def test_a_dropped_head_no_longer_hides_an_edited_projection(db: Path) -> None:
    _raw(db, *EDIT, "DROP TABLE ledger_head")
    with connect(db, read_only=True) as c:
        rep = log.verify(c)
    assert (rep.ok, rep.check) == (False, "missing")
    assert "table ledger_head missing: dropped outside carousel" in (rep.reason or "")
    # the projections are compared all the same: stored 10x the file's amount, the log gives the file's
    assert (f"projection ledger_deals differs from the log: {MSFT} field amount_usd: stored {AMOUNT * 10:.2f}, "
            f"log gives {AMOUNT:.2f}") in (rep.reason or "")
    assert str(AMOUNT) == "1000000000.0"


@pytest.mark.parametrize("table", TABLES)
def test_a_dropped_ledger_table_fails_verify_refuses_writes_and_is_repaired_on_request(db: Path, table: str) -> None:
    edits = [e for e in EDIT if table not in e]
    _raw(db, *edits, f"DROP TABLE {table}")
    res = CliRunner().invoke(app, ["verify", "--db", str(db)])
    assert isinstance(res.exception, ConflictError) and res.exception.exit_code == 5
    text = str(res.exception)
    assert f"table {table} is missing" in text, text  # the catalog part names it
    if table in ("ledger_head", "ledger_projection_digest", "ledger_log_keys"):
        # the projections are still compared: the edited ledger_deals row is named with both amounts
        assert f"{MSFT} field amount_usd: stored {AMOUNT * 10:.2f}, log gives {AMOUNT:.2f}" in text, text
    # a read-write open refuses, writing nothing: the evidence stays for verify
    before = _tables(db)
    with pytest.raises(ConflictError, match=f"ledger table\\(s\\) {table} missing .*carousel ledger repair"):
        connect(db).close()
    assert _tables(db) == before and table not in before
    if table != "ledger_deals":
        assert _stored_amount(db) == AMOUNT * 10
    # the explicit repair rebuilds from the log (the shipped file's amount again) and verify passes
    res = CliRunner().invoke(app, ["repair", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "found: " in res.output and "repaired: ledger tables rebuilt from the log" in res.output
    assert _stored_amount(db) == AMOUNT
    assert CliRunner().invoke(app, ["verify", "--db", str(db)]).exit_code == 0
    with connect(db, read_only=True) as c:
        assert core_db.schema_is_current(c, ensure_schema)


def test_repair_refuses_a_log_that_fails_its_chain(db: Path) -> None:
    _raw(db, "DROP TABLE ledger_head",
         "UPDATE ledger_log SET payload = replace(payload, 'verified', 'verifiee') WHERE position = 40")
    res = CliRunner().invoke(app, ["repair", "--db", str(db)])
    assert isinstance(res.exception, ConflictError)
    assert "cannot repair the ledger: 1 event(s) of the log fail the hash chain" in str(res.exception)


def test_a_database_marked_with_an_older_schema_may_lack_the_derived_tables(db: Path) -> None:
    """The digest and the lookup keys are newer than fingerprints: a marker of an older schema (or of
    another DuckDB) lacks them legitimately, and the open builds them from the log as before."""
    _raw(db, "DROP TABLE ledger_log_keys", "DROP TABLE ledger_projection_digest",
         "UPDATE carousel_schema SET fingerprint = 'an older schema'")
    with connect(db, read_only=True) as c:
        assert core_db.catalog_differences(c, ensure_schema) is None  # not claimed either way
    rep = verify_all(db)
    assert rep.ok and rep.lines[1].startswith("catalog not compared: the schema marker records another")
    connect(db).close()
    assert verify_all(db).lines[1] == "catalog OK: every table and view as carousel defines them"
    assert {"ledger_log_keys", "ledger_projection_digest"} <= _tables(db)
    with connect(db, read_only=True) as c:
        assert log.verify(c).ok and core_db.catalog_differences(c, ensure_schema) == []


def _flows_by_payee(db: Path, source: str) -> dict[str, float]:
    with duckdb.connect(str(db), read_only=True) as c:
        return dict(c.execute(f"SELECT payee, sum(amount_usd) FROM {source} WHERE counts_toward_total "  # noqa: S608
                              "AND amount_usd IS NOT NULL GROUP BY payee").fetchall())


def test_a_view_replaced_by_hand_is_named_by_both_verifies(db: Path, tmp_path: Path) -> None:
    sound = _flows_by_payee(db, "flows")
    _raw(db, "CREATE OR REPLACE VIEW flows AS SELECT f.* REPLACE (f.amount_usd * 2 AS amount_usd) "
             "FROM ledger_flows f JOIN ledger_deals d USING (deal_id) WHERE d.status = 'active'")
    doubled = _flows_by_payee(db, "flows")
    assert doubled == {k: 2 * v for k, v in sound.items()} and doubled["oracle"] == 600e9  # the README's query
    res = CliRunner().invoke(app, ["verify", "--db", str(db)])
    assert isinstance(res.exception, ConflictError) and res.exception.exit_code == 5
    assert "the ledger's catalog differs from carousel's: view flows differs from carousel's definition" in str(
        res.exception)
    rep = verify_all(db)
    assert not rep.ok and [f for f in rep.failures if f.startswith("catalog: view flows differs")]
    assert any(line.startswith("ledger OK") for line in rep.lines)  # the stored rows themselves are sound


def _every_view() -> list[str]:
    """The views carousel's composed schema creates, from an in-memory database it builds."""
    with core_db.connect(":memory:", schema=ensure_schema) as c:
        return sorted(r[0] for r in c.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())


def test_every_view_is_in_the_reference() -> None:
    assert set(LEDGER_VIEWS) | {"prices", "returns", "shares_outstanding", "car"} <= set(_every_view())


@pytest.mark.parametrize("view", _every_view())
def test_every_view_replaced_by_hand_fails_carousel_verify(db: Path, view: str) -> None:
    with duckdb.connect(str(db)) as c:
        sql = c.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]).fetchall()[0][0]
        body = sql.split(" AS ", 1)[1].rstrip().rstrip(";")
        c.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM ({body}) LIMIT 1000000000')
    rep = verify_all(db)
    assert not rep.ok
    assert [f for f in rep.failures if f.startswith(f"catalog: view {view} differs from carousel's definition")]
    ledger = CliRunner().invoke(app, ["verify", "--db", str(db)])
    assert (ledger.exit_code != 0) is (view in LEDGER_VIEWS)  # ledger verify checks the ledger's own objects


def test_a_view_turned_into_a_table_and_a_dropped_column_are_named(db: Path) -> None:
    _raw(db, "DROP VIEW deals", "CREATE TABLE deals AS SELECT * FROM ledger_deals",
         "ALTER TABLE ledger_deals DROP COLUMN title")
    with connect(db, read_only=True) as c:
        got = core_db.catalog_differences(c, ensure_schema)
    assert got == ["table ledger_deals: column title is missing",
                   "view deals is missing (a table of that name stands in its place)"]


def test_dropped_chain_columns_are_named_by_the_catalog_without_an_anchor(db: Path) -> None:
    """Before, a share or price chain with its columns dropped read as a store from before the chain and
    needed the anchor; under today's marker the catalog names the dropped columns."""
    _raw(db, "ALTER TABLE share_batches DROP COLUMN chain_hash", "ALTER TABLE price_batches DROP COLUMN rows_hash")
    rep = verify_all(db)
    assert [f for f in rep.failures if f.startswith("catalog: ")] == [
        "catalog: table price_batches: column rows_hash is missing (changed outside carousel)",
        "catalog: table share_batches: column chain_hash is missing (changed outside carousel)"]
