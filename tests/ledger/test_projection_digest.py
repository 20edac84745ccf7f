"""The projection digest (``ledger.digest``) and verify's fast route (``ledger.log._fast_verify``).

The fast route may only say "intact" when the full replay would: every tamper below must make it stand
aside (return None), so that the full route decides and names the difference. The digest the writer
advances append by append must equal the one computed afresh from a fold of the whole log.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from carousel.db import connect
from ledger import digest, log, project
from ledger.load import import_file
from ledger.model import NewEvent, deal_stream

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
DEALS = DATA / "deals.csv"
N_EVENTS = len((DATA / "companies.csv").read_text().splitlines()) - 1 + 44  # companies + deals
NVCR = "nvda-crwv-2025-09-15"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped deals, then an amendment, a correction and a retraction (streams that held events
    before: the writer subtracts their old rows from the digest)."""
    db = tmp_path_factory.mktemp("digest") / "l.duckdb"
    with connect(db) as c:
        import_file(c, DEALS)
        s = deal_stream(NVCR)
        log.append(c, [NewEvent("amend-1", s, "DealAmended", {"deal_id": NVCR, "effective_date": "2026-01-01",
                                                              "changes": {"amount_usd": "7000000000.00"}, "reason": ""})])
        log.append(c, [NewEvent("correct-1", s, "DealCorrected", {"deal_id": NVCR, "changes": {"title": "fixed"},
                                                                  "reason": ""}),
                       NewEvent("retract-1", deal_stream("meta-googl-2025-08-21"), "DealRetracted",
                                {"deal_id": "meta-googl-2025-08-21", "reason": "", "effective_date": None})])
    return db


@pytest.fixture
def db(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.duckdb"
    shutil.copy(built, out)
    return out


def _recorded(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    rows = con.execute("SELECT projections, seal FROM ledger_projection_digest").fetchall()
    assert len(rows) == 1
    return rows[0][0], rows[0][1]


def test_the_writers_digest_equals_one_computed_from_a_fold_of_the_whole_log(db: Path) -> None:
    with connect(db) as c:
        text, seal = _recorded(c)
        frames = project.projection_frames(project.fold(log.read(c)))
        fresh = {t: digest.frame_sums(c, frames[t], log._SCHEMAS[t]) for t in digest.TABLES}
        assert digest.from_text(text) == fresh
        # Real counts: every stored row is in the digest.
        for t in digest.TABLES:
            assert fresh[t][0] == c.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] > 0  # noqa: S608
        assert fresh["ledger_deals"][0] == 44
        head = log.anchor(c)
        assert seal == digest.seal(head["hash"], text)
        assert head["position"] == N_EVENTS + 3


def test_fast_and_full_routes_agree_on_an_intact_database(db: Path) -> None:
    with connect(db, read_only=True) as c:
        fast = log._fast_verify(c, projections=True)
        full = log.verify(c, full=True)
    assert fast is not None
    assert fast == full
    assert (fast.ok, fast.events, fast.head_position) == (True, N_EVENTS + 3, N_EVENTS + 3)


TAMPERS = {
    "deal amount": "UPDATE ledger_deals SET amount_usd = 999 WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "NULL to 'NULL'": "UPDATE ledger_deals SET horizon = 'NULL' WHERE deal_id = "
                      "(SELECT min(deal_id) FROM ledger_deals WHERE horizon IS NULL)",
    "list split": "UPDATE ledger_deals SET tickers = ['NVDA, CRWV'] WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "deleted deal": "DELETE FROM ledger_deals WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "ghost deal": "INSERT INTO ledger_deals SELECT * REPLACE ('ghost' AS deal_id) FROM ledger_deals "
                  "WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "flow amount": "UPDATE ledger_flows SET amount_usd = 1 WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "duplicated flow": "INSERT INTO ledger_flows SELECT * FROM ledger_flows WHERE deal_id = 'nvda-crwv-2025-09-15'",
    "company name": "UPDATE ledger_companies SET name = 'Facebook' WHERE company_id = 'meta'",
    "payload, not re-chained": "UPDATE ledger_log SET payload = replace(payload, 'verified', 'verifiee') "
                               "WHERE position = 40",
    "recorded_at": "UPDATE ledger_log SET recorded_at = recorded_at + INTERVAL 1 MICROSECOND WHERE position = 40",
    "swapped positions": "UPDATE ledger_log SET position = CASE position WHEN 30 THEN 31 ELSE 30 END "
                         "WHERE position IN (30, 31)",
    "deleted head event": "DELETE FROM ledger_log WHERE position = (SELECT max(position) FROM ledger_log)",
    "deleted middle event": "DELETE FROM ledger_log WHERE position = 20",
    "digest edited": "UPDATE ledger_projection_digest SET projections = replace(projections, '44', '45')",
    "seal edited": "UPDATE ledger_projection_digest SET seal = repeat('0', 64)",
    "digest removed": "DELETE FROM ledger_projection_digest",
    "head row removed": "DELETE FROM ledger_head",
    "column dropped": "ALTER TABLE ledger_deals DROP COLUMN title",
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_the_fast_route_stands_aside_for_every_tamper(db: Path, name: str) -> None:
    with duckdb.connect(str(db)) as c:
        if name == "swapped positions":  # two steps (the key is unique)
            c.execute("UPDATE ledger_log SET position = position + 1000 WHERE position IN (30, 31)")
            c.execute("UPDATE ledger_log SET position = CASE WHEN position = 1030 THEN 31 ELSE 30 END "
                      "WHERE position > 1000")
        elif name.startswith(("digest", "seal", "column")):
            c.execute(TAMPERS[name])
        else:
            assert c.execute(TAMPERS[name]).fetchall()[0][0] >= 1  # the tamper changed something
    with connect(db, read_only=True) as c:
        assert log._fast_verify(c, projections=True) is None
        # The full route names each (the digest's own rows, the head row and a column are not projections
        # of the log: without them it compares what there is, as for a database older than them).
        if name not in {"digest edited", "seal edited", "digest removed", "head row removed", "column dropped"}:
            assert log.verify(c).ok is False


def test_an_edit_before_the_checkpoint_re_chained_with_a_repaired_head_is_caught(db: Path) -> None:
    """A deal's amount edited (long before the digest's head), every later event re-chained and
    ``ledger_head`` repaired: the chain and the head are then self-consistent, but the seal binds the
    digest to the old head hash, so the fast route stands aside and the replay finds the stale rows."""
    with duckdb.connect(str(db)) as c:
        rows = c.execute("SELECT position, event_id, stream_id, stream_version, event_type, schema_version, "
                         "payload, epoch_us(recorded_at) FROM ledger_log ORDER BY position").fetchall()
        target = next(r[0] for r in rows if r[4] == "DealAnnounced")
        prev = log.GENESIS
        for pos, eid, sid, sv, et, ver, payload, us in rows:
            if pos == target:
                edited = payload.replace('"amount_usd":"1', '"amount_usd":"2', 1)
                assert edited != payload
                payload, deal = edited, json.loads(edited)["deal_id"]
            h = log.chain_hash(prev, pos, eid, sid, sv, et, ver, us, payload)
            c.execute("UPDATE ledger_log SET payload = ?, prev_hash = ?, hash = ? WHERE position = ?",
                      [payload, prev, h, pos])
            prev = h
        c.execute("UPDATE ledger_head SET hash = ?", [prev])
    with connect(db, read_only=True) as c:
        assert log._fast_verify(c, projections=True) is None
        rep = log.verify(c)
    assert (rep.ok, rep.check, rep.broken_position) == (False, "projection", target)
    assert f"{deal} field amount_usd" in (rep.reason or "")


def test_a_non_canonical_payload_re_chained_and_rebuilt_by_a_forger_is_still_named(db: Path) -> None:
    """The forger re-chains a payload that is not canonical JSON, repairs the head and rebuilds the
    projections with carousel's own ``rebuild_projections``: the rebuild records no digest for a log
    that is not canonical, so verify replays and names the payload (as before the fast route)."""
    with duckdb.connect(str(db)) as c:
        rows = c.execute("SELECT position, event_id, stream_id, stream_version, event_type, schema_version, "
                         "payload, epoch_us(recorded_at) FROM ledger_log ORDER BY position").fetchall()
        prev = log.GENESIS
        for pos, eid, sid, sv, et, ver, payload, us in rows:
            if pos == 25:
                payload = json.dumps(json.loads(payload), indent=1)  # same content, not canonical
            h = log.chain_hash(prev, pos, eid, sid, sv, et, ver, us, payload)
            c.execute("UPDATE ledger_log SET payload = ?, prev_hash = ?, hash = ? WHERE position = ?",
                      [payload, prev, h, pos])
            prev = h
        c.execute("UPDATE ledger_head SET hash = ?", [prev])
        log.rebuild_projections(c)
        assert _recorded(c) == (None, None)
    with connect(db, read_only=True) as c:
        assert log._fast_verify(c, projections=True) is None
        rep = log.verify(c)
    assert (rep.ok, rep.broken_position, rep.reason) == (False, 25, "payload is not canonical JSON")


def test_a_projection_edited_before_the_digest_existed_still_shows(db: Path) -> None:
    """A database older than the digest table: the first read-write open records the digest from a fold
    of the log, not from the stored rows, so an edit made before that open is not laundered."""
    with duckdb.connect(str(db)) as c:
        c.execute("UPDATE ledger_deals SET amount_usd = 1 WHERE deal_id = ?", [NVCR])
        c.execute("DROP TABLE ledger_projection_digest")
        c.execute("UPDATE carousel_schema SET fingerprint = 'a schema older than the digest'")
    with connect(db, read_only=True) as c:  # read-only: no digest yet, the replay decides
        assert log._fast_verify(c, projections=True) is None
        assert log.verify(c).check == "projection"
    with connect(db) as c:  # read-write open: digest recorded from the log
        text, _seal = _recorded(c)
        assert digest.from_text(text) is not None
        assert c.execute("SELECT amount_usd FROM ledger_deals WHERE deal_id = ?", [NVCR]).fetchall()[0][0] == 1
    with connect(db, read_only=True) as c:
        assert log._fast_verify(c, projections=True) is None
        rep = log.verify(c)
    assert (rep.ok, rep.check) == (False, "projection")
    assert f"{NVCR} field amount_usd: stored 1.00" in (rep.reason or "")


def test_a_digest_of_another_duckdb_version_is_not_used_and_is_recorded_again(db: Path) -> None:
    with duckdb.connect(str(db)) as c:
        text, _seal = _recorded(c)
        doc = json.loads(text)
        doc["duckdb"] = "0.0.1"
        other = json.dumps(doc, separators=(",", ":"))
        head = c.execute("SELECT hash FROM ledger_head").fetchall()[0][0]
        c.execute("UPDATE ledger_projection_digest SET projections = ?, seal = ?", [other, digest.seal(head, other)])
        # What another DuckDB leaves: its library version is part of the schema fingerprint the marker
        # records (core.db.catalog_fingerprint), so the next read-write open here runs the schema hooks.
        c.execute("UPDATE carousel_schema SET fingerprint = 'written under duckdb 0.0.1'")
    assert digest.from_text(other) is None
    with connect(db, read_only=True) as c:
        assert log._fast_verify(c, projections=True) is None
        assert log.verify(c).ok  # the replay decides: intact
    with connect(db) as c:
        assert _recorded(c)[0] == text  # recorded again at the read-write open, with the same sums


def test_an_append_over_an_unusable_digest_leaves_it_unusable(db: Path) -> None:
    with connect(db) as c:
        c.execute("UPDATE ledger_projection_digest SET seal = repeat('0', 64)")
        log.append(c, [NewEvent("x-1", deal_stream("x-deal"), "DealAnnounced", {
            "deal_id": "x-deal", "announced_date": "2025-01-02", "payers": ["openai"], "payees": ["oracle"],
            "amount_usd": "1.00", "amount_kind": "exact", "deal_type": "cloud_compute_purchase"})])
        assert _recorded(c) == (None, None)
        assert log._fast_verify(c, projections=True) is None
        assert log.verify(c).ok
        log.rebuild_projections(c)  # the repair records it again
        assert log._fast_verify(c, projections=True) == log.verify(c, full=True)


def test_frames_built_from_columns_equal_the_row_route(db: Path) -> None:
    with connect(db, read_only=True) as c:
        state = project.fold(log.read(c))
    frames = project.projection_frames(state)
    rows = project.deal_rows(state)
    assert frames["ledger_deals"].equals(project.rows_frame(rows, project.DEAL_COLUMNS))
    assert frames["ledger_flows"].equals(project.rows_frame(project.flow_rows(rows), project.FLOW_COLUMNS))
    assert frames["ledger_deals"].height == 44
    # A multi-party deal's edges carry no amount and do not count (the row route's rule).
    multi = frames["ledger_flows"].filter(pl.col("amount_kind") == "undisclosed", ~pl.col("counts_toward_total"))
    assert multi.height > 0 and multi["amount_usd"].null_count() == multi.height
