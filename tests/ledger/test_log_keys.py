"""The writer's integer lookup keys (``ledger_log_keys``, ``ledger.log._lookup``).

The keys only make the append's id and stream checks cheap; they must never change what an append does.
Each test below compares the keyed route with the scan of the text columns it replaces, or edits the keys
by hand and shows the append still keeps every guarantee (idempotent ids, gapless stream versions, the
projections equal to a replay of the log).
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from carousel.db import connect
from core.errors import ConflictError
from ledger import log
from ledger.model import NewEvent, deal_stream, event_id_for


def _announce(i: int) -> NewEvent:
    did = f"k-{i:04d}"
    s = deal_stream(did)
    return NewEvent(event_id_for(s, "DealAnnounced"), s, "DealAnnounced", {
        "deal_id": did, "contract_id": did, "announced_date": "2025-01-02", "session": "unknown",
        "payers": ["openai"], "payees": ["oracle"], "amount_usd": f"{i}.00", "amount_kind": "exact",
        "deal_type": "cloud_compute_purchase", "tickers": ["ORCL"], "title": f"deal {i}", "sources": []})


def _correct(i: int, k: int) -> NewEvent:
    did = f"k-{i:04d}"
    s = deal_stream(did)
    return NewEvent(event_id_for(s, "DealCorrected", str(k)), s, "DealCorrected",
                    {"deal_id": did, "changes": {"title": f"title {k}"}, "reason": ""})


def _keys(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int, int]]:
    return con.execute("SELECT * FROM ledger_log_keys ORDER BY position").fetchall()


def _sql_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int, int]]:
    return con.execute("SELECT position, md5_number_lower(event_id), md5_number_lower(stream_id) FROM ledger_log "
                       "ORDER BY position").fetchall()


def _intact(con: duckdb.DuckDBPyConnection) -> None:
    """The full replay (chain, head, every projection row) and the fast route both find the log intact."""
    full, fast = log.verify(con, full=True), log.verify(con)
    assert full.ok, full.reason
    assert fast == full


def test_id_key_is_duckdbs_md5_number_lower() -> None:
    texts = ["", "abc", "deal-openai-oracle-2025-09-10", "Ünïcødé ☃", "x" * 1000,
             *(event_id_for(deal_stream(str(i)), "DealAnnounced") for i in range(50))]
    con = duckdb.connect()
    want = con.execute("SELECT list(md5_number_lower(t) ORDER BY i) FROM (SELECT unnest(?::VARCHAR[]) AS t, "
                       "generate_subscripts(?::VARCHAR[], 1) AS i)", [texts, texts]).fetchall()[0][0]
    assert [log.id_key(t) for t in texts] == want
    assert log.id_key("abc") == 8250560606382298838  # bytes 8..15 of md5("abc"), little-endian


def test_the_keyed_lookup_returns_the_rows_the_scan_returns(db_path: Path) -> None:
    rng = random.Random(7)
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(300)])
        log.append(con, [_correct(rng.randrange(300), k) for k in range(200)])
        assert _keys(con) == _sql_keys(con)
        for _ in range(20):
            batch = [_announce(rng.randrange(400)) for _ in range(rng.randrange(1, 60))]
            batch += [_correct(rng.randrange(300), rng.randrange(250)) for _ in range(rng.randrange(0, 30))]
            ids = list(dict.fromkeys(e.event_id for e in batch))
            streams = sorted({e.stream_id for e in batch})
            keys = {t: log.id_key(t) for t in (*ids, *streams)}
            keyed = log._lookup(con, ids, streams, keys)
            scanned = log._lookup(con, ids, streams, None)
            assert keyed == scanned
            assert keyed  # the batches name events and streams the log holds


def test_appends_keep_one_key_row_per_event(db_path: Path) -> None:
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(50)])
        log.append(con, [_correct(i, 0) for i in range(0, 50, 3)])
        assert log.append(con, [_announce(i) for i in range(50)]).skipped == 50  # identical retry
        assert _keys(con) == _sql_keys(con)
        assert len(_keys(con)) == 50 + 17
        _intact(con)


def test_keys_removed_by_hand_are_rebuilt_by_the_next_append(db_path: Path) -> None:
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(20)])
        log.append(con, [_correct(3, 0)])
        con.execute("DELETE FROM ledger_log_keys WHERE position > 5")
        res = log.append(con, [_announce(i) for i in range(20)] + [_correct(3, 1)])
        assert (res.appended, res.skipped) == (1, 20)
        assert con.execute("SELECT stream_version FROM ledger_log WHERE position = ?",
                           [res.head_position]).fetchall() == [(3,)]
        assert _keys(con) == _sql_keys(con)
        _intact(con)


def test_a_stream_whose_key_was_edited_is_looked_up_by_the_scan(db_path: Path) -> None:
    """The key of version 1 of a stream is changed: the keyed lookup finds versions 2 and 3 only, a hole;
    the writer scans instead, so the new event is version 4 and the deal folds its whole stream."""
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(10)])
        log.append(con, [_correct(4, 0), _correct(4, 1)])
        con.execute("UPDATE ledger_log_keys SET stream_key = 1 WHERE position = 5")
        res = log.append(con, [_correct(4, 2)])
        assert con.execute("SELECT stream_version FROM ledger_log WHERE position = ?",
                           [res.head_position]).fetchall() == [(4,)]
        assert con.execute("SELECT title, amount_usd, version FROM ledger_deals WHERE deal_id = 'k-0004'").fetchall() \
            == [("title 2", 4, 4)]
        assert _keys(con) == _sql_keys(con)  # repaired in the same transaction
        _intact(con)


def test_an_id_hidden_by_an_edited_key_is_refused_then_the_keys_are_repaired(db_path: Path) -> None:
    """The key of an event id is changed: its identical retry is not recognised by the lookup, so the
    log's UNIQUE constraint refuses the insert. Nothing is written, the keys are rebuilt, and the retry
    then is a skip, as it always was."""
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(10)])
        con.execute("UPDATE ledger_log_keys SET event_key = 1, stream_key = 2 WHERE position = 10")
        before = con.execute("SELECT count(*) FROM ledger_log").fetchall()
        with pytest.raises(ConflictError, match="ledger_log_keys did not show it"):
            log.append(con, [_announce(9)])
        assert con.execute("SELECT count(*) FROM ledger_log").fetchall() == before
        assert _keys(con) == _sql_keys(con)
        res = log.append(con, [_announce(9)])
        assert (res.appended, res.skipped) == (0, 1)
        _intact(con)


def test_a_database_without_the_keys_gains_them_at_its_next_read_write_open(db_path: Path) -> None:
    with connect(db_path) as con:
        log.append(con, [_announce(i) for i in range(30)])
        con.execute("DROP TABLE ledger_log_keys")
        con.execute("UPDATE carousel_schema SET fingerprint = 'a schema older than the keys'")
    with connect(db_path) as con:
        assert _keys(con) == _sql_keys(con)
        assert len(_keys(con)) == 30
        assert log.append(con, [_announce(i) for i in range(31)]).appended == 1
        _intact(con)
