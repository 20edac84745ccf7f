"""The share-count batches' hash chain (market.chain.SHARE_CHAIN): the hashes written at append equal an
independent recomputation in Python (hashlib over the rows read back), an older database is chained once
with the same hashes, and every edit, deletion or insertion of a share row or batch is named; a chain
recomputed after an edit is caught by the anchored head only."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from carousel.db import connect
from market.chain import GENESIS, SHARE_CHAIN, backfill, check_head, head, verify_shares
from market.shares_sources import SHARES_CSV
from market.shares_store import append_share_batch, load_shares_snapshot

_ROW_COLS = ("ticker", "as_of_date", "shares", "shares_split_adjusted", "class_detail", "count_basis",
             "source_ref", "filing_date", "verification", "withdrawn")


def _text(v: Any) -> str | None:
    """DuckDB's VARCHAR form of the stored values, written out independently."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _independent(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str]]:
    """batch -> (rows_hash, chain_hash) recomputed in Python from the rows and records read back."""
    rows = con.execute(f"SELECT batch_id, {', '.join(_ROW_COLS)} FROM share_rows").fetchall()  # noqa: S608
    by_batch: dict[int, list[list[str | None]]] = {}
    for r in rows:
        by_batch.setdefault(int(r[0]), []).append([_text(v) for v in r[1:]])
    batches = con.execute("SELECT batch_id, source, fetched_at, tickers, status, row_count, message, "
                          "content_hash FROM share_batches ORDER BY batch_id").fetchall()
    out, prev = {}, GENESIS
    for b in batches:
        texts = sorted(by_batch.get(int(b[0]), []), key=lambda t: (t[0], t[1],
                                                                   json.dumps(t, separators=(",", ":"))))
        body = "\n".join(json.dumps(t, separators=(",", ":"), ensure_ascii=False) for t in texts)
        rows_hash = hashlib.sha256(body.encode()).hexdigest()
        epoch_us = (b[2] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        rec = {"batch_id": b[0], "source": b[1], "fetched_at": epoch_us, "tickers": list(b[3]), "status": b[4],
               "row_count": b[5], "message": b[6], "content_hash": b[7], "rows_hash": rows_hash}
        prev = hashlib.sha256(f"{prev}\n{json.dumps(rec, sort_keys=True, separators=(',', ':'))}".encode()
                              ).hexdigest()
        out[int(b[0])] = (rows_hash, prev)
    return out


def _stored(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str]]:
    return {int(b): (r, c) for b, r, c in con.execute(
        "SELECT batch_id, rows_hash, chain_hash FROM share_batches ORDER BY 1").fetchall()}


@pytest.fixture
def chained(db_path: Path, tmp_path: Path) -> Path:
    """Three share batches: the shipped CSV, a Yahoo batch, and an edited CSV (one count changed, one
    dropped, so the batch holds a changed row and a withdrawal row)."""
    with connect(db_path) as con:
        load_shares_snapshot(con)
        append_share_batch(con, pl.DataFrame({
            "ticker": ["ORCL", "ORCL"], "as_of_date": [dt.date(2025, 8, 31), dt.date(2025, 9, 5)],
            "shares": [2_845_000_000, 2_846_000_000], "shares_split_adjusted": [2_845_000_000, 2_846_000_000]}),
            source="yahoo", tickers=["ORCL"], fetched_at=dt.datetime(2025, 9, 6, 1, tzinfo=dt.UTC))
        with SHARES_CSV.open(newline="", encoding="utf-8") as fh:
            rec = list(csv.reader(fh))
        rec[1][rec[0].index("verification")] = "single"  # a changed count record ...
        del rec[2]  # ... and a count no longer in the file (withdrawn)
        path = tmp_path / "edited.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rec)
        load_shares_snapshot(con, path)
    return db_path


def test_hashes_at_append_equal_an_independent_recomputation(chained: Path) -> None:
    with duckdb.connect(str(chained), read_only=True) as con:
        stored, independent = _stored(con), _independent(con)
        counts = con.execute("SELECT batch_id, count(*), count(*) FILTER (withdrawn) FROM share_rows "
                             "GROUP BY 1 ORDER BY 1").fetchall()
    # batch 3: the changed count, a withdrawal, and ORCL 2025-08-31 again (Yahoo's batch 2 was newer)
    assert counts == [(1, 121, 0), (2, 2, 0), (3, 3, 1)]
    assert stored == independent
    assert len({c for _, c in stored.values()}) == 3
    with connect(chained, read_only=True) as con:
        rep = verify_shares(con)
        assert (rep.ok, rep.batches, rep.rows, rep.head_batch, rep.head_hash) == (True, 3, 126, 3, stored[3][1])
        assert head(con, SHARE_CHAIN) == (3, stored[3][1])


def test_an_older_database_is_chained_once_with_the_same_hashes(chained: Path) -> None:
    with duckdb.connect(str(chained)) as con:
        recorded = _stored(con)
        con.execute("ALTER TABLE share_batches DROP COLUMN chain_hash")
        con.execute("ALTER TABLE share_batches DROP COLUMN rows_hash")
    with connect(chained, read_only=True) as con:  # read-only: nothing to check yet, nothing written
        rep = verify_shares(con)
        assert rep.ok and rep.note is not None and "no share chain yet" in rep.note
        assert check_head(con, SHARE_CHAIN, 3, recorded[3][1]) is not None  # an anchor still catches it
    connect(chained).close()  # the first read-write open chains it
    with duckdb.connect(str(chained), read_only=True) as con:
        assert _stored(con) == recorded
        assert backfill(con, SHARE_CHAIN) == 0  # already chained: a no-op


def _sql(*stmts: str) -> list[str]:
    return list(stmts)


TAMPERS: dict[str, tuple[list[str], str]] = {
    "edited count": (_sql("UPDATE share_rows SET shares = shares + 1 WHERE batch_id = 1 AND ticker = 'NVDA' "
                          "AND as_of_date = (SELECT min(as_of_date) FROM share_rows WHERE ticker = 'NVDA')"),
                     "batch 1: its rows in share_rows were changed, added or deleted"),
    "edited withdrawal": (_sql("UPDATE share_rows SET withdrawn = false WHERE withdrawn"),
                          "batch 3: its rows in share_rows were changed"),
    "deleted row": (_sql("DELETE FROM share_rows WHERE batch_id = 2 AND as_of_date = DATE '2025-09-05'"),
                    "batch 2: its rows in share_rows were changed"),
    "inserted row": (_sql("INSERT INTO share_rows SELECT batch_id, ticker, DATE '2025-09-08', shares, "
                          "shares_split_adjusted, class_detail, count_basis, source_ref, filing_date, verification, "
                          "withdrawn FROM share_rows WHERE batch_id = 2 AND as_of_date = DATE '2025-09-05'"),
                     "batch 2: its rows in share_rows were changed"),
    "duplicated row": (_sql("INSERT INTO share_rows SELECT * FROM share_rows WHERE batch_id = 3 AND NOT withdrawn"),
                       "batch 3: its rows in share_rows were changed"),
    "a '|' moved between two text fields": (
        _sql("UPDATE share_rows SET class_detail = 'A|B', count_basis = 'C' WHERE batch_id = 1 AND rowid = "
             "(SELECT min(rowid) FROM share_rows WHERE batch_id = 1)"),
        "batch 1: its rows in share_rows were changed"),
    "edited batch source": (_sql("UPDATE share_batches SET source = 'shares_csv' WHERE batch_id = 2"),
                            "batch 2: the batch record"),
    "edited batch time": (_sql("UPDATE share_batches SET fetched_at = fetched_at + INTERVAL 1 DAY WHERE batch_id = 1"),
                          "batch 1: the batch record"),
    "edited row_count": (_sql("UPDATE share_batches SET row_count = 3 WHERE batch_id = 2"),
                         "batch 2: 2 rows stored, row_count says 3"),
    "deleted middle batch": (_sql("DELETE FROM share_rows WHERE batch_id = 2", "DELETE FROM share_batches WHERE batch_id = 2"),
                             "batch 3: batch ids jump from 1 (a batch was deleted)"),
    "erased chain hash": (_sql("UPDATE share_batches SET chain_hash = NULL WHERE batch_id = 2"),
                          "batch 2: no rows_hash/chain_hash recorded"),
    "orphan rows": (_sql("UPDATE share_rows SET batch_id = 7 WHERE batch_id = 2"),
                    "share_rows has rows of batch(es) 7 that share_batches does not record"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_each_tamper_of_the_share_store_is_named(chained: Path, name: str) -> None:
    stmts, message = TAMPERS[name]
    with duckdb.connect(str(chained)) as con:
        for st in stmts:
            con.execute(st)
    with connect(chained, read_only=True) as con:
        rep = verify_shares(con)
    assert not rep.ok, name
    assert any(message in p for p in rep.problems), (name, rep.problems)


def test_a_rechained_store_passes_alone_and_fails_against_the_anchored_head(chained: Path) -> None:
    with connect(chained, read_only=True) as con:
        anchored = head(con, SHARE_CHAIN)
    with duckdb.connect(str(chained)) as con:
        con.execute("UPDATE share_rows SET shares = shares * 2 WHERE batch_id = 1 AND ticker = 'AMD'")
        con.execute("UPDATE share_batches SET rows_hash = NULL, chain_hash = NULL")
        assert backfill(con, SHARE_CHAIN) == 3  # the forger's re-chain: every hash recomputed
    with connect(chained, read_only=True) as con:
        assert verify_shares(con).ok  # consistent with itself
        assert check_head(con, SHARE_CHAIN, *anchored) == (
            "share batch 3 differs from the anchor (its rows or records, or an earlier batch's, were rewritten "
            "and the chain recomputed)")
        assert check_head(con, SHARE_CHAIN, 0, GENESIS) is None  # the genesis anchor holds for any chain


def test_deleting_the_newest_batch_passes_alone_and_fails_against_the_anchored_head(chained: Path) -> None:
    with connect(chained, read_only=True) as con:
        anchored = head(con, SHARE_CHAIN)
    with duckdb.connect(str(chained)) as con:
        con.execute("DELETE FROM share_rows WHERE batch_id = 3")
        con.execute("DELETE FROM share_batches WHERE batch_id = 3")
    with connect(chained, read_only=True) as con:
        assert verify_shares(con).ok  # a valid shorter chain
        assert check_head(con, SHARE_CHAIN, *anchored) == (
            "anchored share batch 3 is missing (batches deleted since the anchor)")
        assert check_head(con, SHARE_CHAIN, 2, anchored[1]) is not None  # batch 2 never had batch 3's link
