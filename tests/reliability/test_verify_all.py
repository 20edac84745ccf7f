"""``carousel verify`` covers everything stored: each tamper below is named with exit 5 (never a traceback),
stale study results are named without failing, and a database from before the price chain is chained
once with the same hashes an append computes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from carousel_runs import carousel, carousel_here


def test_an_untouched_database_verifies(db: Path) -> None:
    res = carousel("verify", "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    with duckdb.connect(str(db), read_only=True) as con:  # independent count of what must have been read
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        rows = sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables)  # noqa: S608
    assert f"storage OK: {len(tables)} tables, {rows:,} rows read, every data block checksummed" in out
    assert "ledger OK: " in out and "prices OK: 2 batches, 38,382 rows, chain head batch 2 " in out
    assert "shares OK: 2 batches, 123 rows, chain head batch 2 " in out
    assert "study OK: " in out and "match their stamp" in out and out.rstrip().endswith("verify: OK")


def _sql(*stmts: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with duckdb.connect(str(path)) as con:
            for st in stmts:
                con.execute(st)
    return apply


TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "edited close": (_sql("UPDATE price_rows SET close = close * 1.01 WHERE ticker = 'NVDA' AND date = DATE '2025-09-22'"),
                     "prices FAILED: batch 1: its rows in price_rows were changed"),
    "deleted price row": (_sql("DELETE FROM price_rows WHERE ticker = 'SPY' AND date = DATE '2024-03-01'"),
                          "prices FAILED: batch 1: its rows in price_rows were changed"),
    "inserted price row": (_sql("INSERT INTO price_rows SELECT batch_id, ticker, DATE '2025-06-14', open, high, low, "
                                "close, adj_close, volume, dividends, splits FROM price_rows WHERE batch_id = 2"),
                           "prices FAILED: batch 2: its rows in price_rows were changed"),
    "edited batch record": (_sql("UPDATE price_batches SET source = 'snapshot' WHERE batch_id = 2"),
                            "prices FAILED: batch 2: the batch record"),
    "deleted middle batch": (_sql("DELETE FROM price_rows WHERE batch_id = 1", "DELETE FROM price_batches WHERE batch_id = 1"),
                             "prices FAILED: batch 2: batch ids jump from 0"),
    "erased chain": (_sql("UPDATE price_batches SET chain_hash = NULL WHERE batch_id = 2"),
                     "prices FAILED: batch 2: no rows_hash/chain_hash recorded"),
    "orphan rows": (_sql("UPDATE price_rows SET batch_id = 9 WHERE ticker = 'AMD' AND batch_id = 2"),
                    "price_rows has rows of batch(es) 9"),
    "edited AR": (_sql("UPDATE study_ar SET ar = ar + 0.001 WHERE rel_day = 0 AND event_id LIKE 'amd-openai%'"),
                  "study FAILED: study tables (study_ar/study_car) were edited"),
    "deleted CAR": (_sql("DELETE FROM study_car WHERE \"window\" = '[0,0]' AND event_id LIKE 'amd-openai%'"),
                    "study FAILED: study tables (study_ar/study_car) were edited"),
    "edited params": (_sql("UPDATE study_stamp SET params = replace(params, '-250', '-200')"),
                      "study FAILED: study_stamp: the recorded parameters do not match"),
    "dropped stamp": (_sql("DELETE FROM study_stamp"), "study FAILED: study tables hold"),
    "edited share count": (_sql("UPDATE share_rows SET shares = shares + 1 WHERE ticker = 'AMD' AND batch_id = 1 "
                                "AND as_of_date = (SELECT max(as_of_date) FROM share_rows WHERE ticker = 'AMD')"),
                           "shares FAILED: batch 1: its rows in share_rows were changed"),
    "deleted share row": (_sql("DELETE FROM share_rows WHERE ticker = 'ORCL' AND as_of_date = DATE '2025-09-05'"),
                          "shares FAILED: batch 2: its rows in share_rows were changed"),
    "inserted share row": (_sql("INSERT INTO share_rows SELECT batch_id, ticker, DATE '2025-09-09', shares, "
                                "shares_split_adjusted, class_detail, count_basis, source_ref, filing_date, "
                                "verification, withdrawn FROM share_rows WHERE batch_id = 2 "
                                "AND as_of_date = DATE '2025-09-05'"),
                           "shares FAILED: batch 2: its rows in share_rows were changed"),
    "edited share batch record": (_sql("UPDATE share_batches SET source = 'shares_csv' WHERE batch_id = 2"),
                                  "shares FAILED: batch 2: the batch record"),
    "deleted share batch 1": (_sql("DELETE FROM share_rows WHERE batch_id = 1", "DELETE FROM share_batches WHERE batch_id = 1"),
                              "shares FAILED: batch 2: batch ids jump from 0"),
    "erased share chain": (_sql("UPDATE share_batches SET rows_hash = NULL WHERE batch_id = 1"),
                           "shares FAILED: batch 1: no rows_hash/chain_hash recorded"),
    "inserted CAR": (_sql("INSERT INTO study_car SELECT * FROM study_car WHERE \"window\" = '[0,0]' LIMIT 1"),
                     "study FAILED: study tables (study_ar/study_car) were edited"),
    "dropped ledger_log": (_sql("DROP TABLE ledger_log"), "FAILED"),
    "edited payload": (_sql("UPDATE ledger_log SET payload = replace(payload, 'verified', 'verifiee') WHERE position = 40"),
                       "ledger FAILED: position 40"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_each_tamper_is_named_with_exit_5(db: Path, name: str) -> None:
    """In this process (``carousel.cli.main``, which computes the exit code); the test below shows that
    a separate process ends with the same code and output."""
    tamper, message = TAMPERS[name]
    tamper(db)
    res = carousel_here("verify", "--db", str(db))
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 5, (name, res.stdout, res.stderr)
    assert message in res.stdout, (name, res.stdout)
    assert res.stderr.startswith("error: verify FAILED: ")


def test_a_verify_process_exits_5_with_what_main_prints(db: Path) -> None:
    """The exit status a shell sees, from a separate process, is the code ``main`` gives, and its output
    the same lines (one tamper stands for all: the process only adds interpreter start and exit)."""
    TAMPERS["edited close"][0](db)
    res = carousel("verify", "--db", str(db))
    here = carousel_here("verify", "--db", str(db))
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == here.returncode == 5, (res.stdout, res.stderr)
    assert res.stdout == here.stdout
    assert "prices FAILED: batch 1: its rows in price_rows were changed" in res.stdout
    assert res.stderr.startswith("error: verify FAILED: ")


def test_stale_study_results_are_named_but_are_not_tampering(db: Path) -> None:
    from carousel.db import connect
    from market.store import append_batch

    with connect(db) as con:
        append_batch(con, pl.DataFrame({"ticker": ["AMD"], "date": [date(2025, 6, 11)], "close": [121.9]}),
                     source="yahoo", tickers=["AMD"], start=date(2025, 6, 11), end=date(2025, 6, 11))
    res = carousel_here("verify", "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "study STALE (not tampering" in res.stdout
    assert "computed from price batch 2, the prices are now at batch 3" in res.stdout


def test_results_computed_from_other_share_counts_are_stale(db: Path) -> None:
    from carousel.db import connect
    from market.shares_store import append_share_batch

    with connect(db) as con:
        append_share_batch(con, pl.DataFrame({"ticker": ["AMD"], "as_of_date": [date(2025, 9, 30)],
                                              "shares": [1_623_000_000], "shares_split_adjusted": [1_623_000_000]}),
                           source="yahoo", tickers=["AMD"])
    res = carousel_here("verify", "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "study STALE (not tampering" in res.stdout
    assert "computed from share-count batch 2, the counts are now at batch 3" in res.stdout
    assert "shares OK: 3 batches, 124 rows, chain head batch 3 " in res.stdout


def test_byte_flips_are_caught_by_verify_not_by_the_next_import(db: Path, tmp_path: Path) -> None:
    """Flip one byte in each of the file's blocks in turn: verify must never say OK for a damaged block
    that a later full read would trip on."""
    data = db.read_bytes()
    block = 262144
    caught = missed = 0
    codes: dict[int, Path] = {}
    for b in range((len(data) - 12288) // block):
        bad = bytearray(data)
        bad[12288 + b * block + 1000] ^= 0xFF
        path = tmp_path / f"flip{b}.duckdb"
        path.write_bytes(bytes(bad))
        # In this process (main's exit code and output; an exception main lets through is a "Traceback"):
        # a fresh process per block cost a second of interpreter start each, over some hundred blocks.
        res = carousel_here("verify", "--db", str(path))
        assert "Traceback" not in res.stderr, (b, res.stderr)
        if res.returncode in (4, 5):
            caught += 1
            codes.setdefault(res.returncode, path)
            continue
        assert res.returncode == 0, (b, res.stdout, res.stderr)
        # verify said OK: then the block is unused, and a full read of every table must agree
        with duckdb.connect(str(path), read_only=True) as con:
            for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                con.execute(f'SELECT max(hash(COLUMNS(*))) FROM "{t}"').fetchall()  # noqa: S608
        missed += 1
        path.unlink()
    assert caught >= 1, (caught, missed)
    for code, path in codes.items():  # a damaged file seen by a separate process: the same exit, no traceback
        res = carousel("verify", "--db", str(path))
        assert "Traceback" not in res.stderr, res.stderr
        assert res.returncode == code, (path, code, res.stdout, res.stderr)


def test_a_pre_chain_database_is_chained_once_with_the_hashes_an_append_computes(db: Path) -> None:
    from carousel.db import connect

    with duckdb.connect(str(db)) as con:
        recorded = con.execute("SELECT batch_id, rows_hash, chain_hash FROM price_batches ORDER BY 1").fetchall()
        con.execute("ALTER TABLE price_batches DROP COLUMN chain_hash")
        con.execute("ALTER TABLE price_batches DROP COLUMN rows_hash")
    res = carousel_here("verify", "--db", str(db))  # read-only: nothing to check yet, nothing written
    assert "no price chain yet" in res.stdout, res.stdout
    connect(db).close()  # first read-write open: chained
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT batch_id, rows_hash, chain_hash FROM price_batches ORDER BY 1").fetchall() == recorded
    res = carousel_here("verify", "--db", str(db))
    assert "prices OK: 2 batches" in res.stdout, res.stdout


def test_the_anchor_kept_outside_the_file_is_checked(db: Path, tmp_path: Path) -> None:
    res = carousel_here("ledger", "anchor", "--db", str(db))
    assert res.returncode == 0, res.stderr
    anchor = tmp_path / "anchor.json"
    anchor.write_text(res.stdout)
    res = carousel_here("verify", "--anchor", str(anchor), "--db", str(db))
    assert res.returncode == 0 and "(matches the anchor)" in res.stdout, res.stdout + res.stderr
    forged = tmp_path / "forged.json"
    doc = json.loads(anchor.read_text())
    doc["ledger"]["hash"] = "0" * 64
    forged.write_text(json.dumps(doc))
    res = carousel_here("verify", "--anchor", str(forged), "--db", str(db))
    assert res.returncode == 5 and "ledger anchor FAILED" in res.stdout, res.stdout + res.stderr
