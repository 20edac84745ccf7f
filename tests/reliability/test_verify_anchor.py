"""``carousel verify --anchor``: an anchor kept outside the database catches what the chains inside it
cannot (README, "What verify catches"): a ledger, price or share table re-chained after an edit with its
head fixed, the newest batch deleted, dropped chain columns, study results edited with a recomputed stamp.
Each forgery below first passes ``verify`` without the anchor (exit 0, which is why the README says it
needs one), then fails with it (exit 5, the part named). Legitimate work after the anchor (new batches,
a rerun study) still verifies; old ledger-only anchor files are read; a bad anchor file is exit 2 naming
the file and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from carousel_runs import carousel, carousel_here

from carousel import anchor as anchors
from core.errors import InputError


@pytest.fixture
def anchor(db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "anchor.json"
    res = carousel_here("ledger", "anchor", "--out", str(path), "--db", str(db))
    assert res.returncode == 0, res.stderr
    return path


def _rechain(con: duckdb.DuckDBPyConnection, which: str) -> None:
    """The forger's tool: recompute every hash of a store after an edit, then fix the study stamp's
    record of that head so that the study does not call itself stale."""
    from market import chain

    c = chain.PRICE_CHAIN if which == "price" else chain.SHARE_CHAIN
    con.execute(f"UPDATE {c.batches} b SET row_count = (SELECT count(*) FROM {c.rows} r "  # noqa: S608
                "WHERE r.batch_id = b.batch_id), rows_hash = NULL, chain_hash = NULL")
    assert chain.backfill(con, c) >= 1
    _fix_stamp(con, which)


def _fix_stamp(con: duckdb.DuckDBPyConnection, which: str) -> None:
    from market import chain

    c = chain.PRICE_CHAIN if which == "price" else chain.SHARE_CHAIN
    batch, link = chain.head(con, c)
    con.execute(f"UPDATE study_stamp SET {which}_batch = ?, {which}_hash = ?", [batch, link])  # noqa: S608


def _forge_ledger(path: Path) -> None:
    """Rewrite a deal's title, re-chain the log after it, fix ledger_head, rebuild the projections and the
    study stamp's ledger head (as tests/ledger's forger does for `ledger verify`)."""
    from ledger.log import GENESIS, chain_hash, rebuild_projections

    with duckdb.connect(str(path)) as con:
        rows = con.execute("SELECT position, event_id, stream_id, stream_version, event_type, schema_version, "
                           "payload, epoch_us(recorded_at) FROM ledger_log ORDER BY position").fetchall()
        prev = GENESIS
        first_deal = next(r[0] for r in rows if r[4] == "DealAnnounced")
        for pos, eid, sid, sv, et, ver, payload, us in rows:
            if pos == first_deal:
                payload = payload.replace('"title":"', '"title":"EDITED ', 1)
            h = chain_hash(prev, pos, eid, sid, sv, et, ver, us, payload)
            con.execute("UPDATE ledger_log SET payload = ?, prev_hash = ?, hash = ? WHERE position = ?",
                        [payload, prev, h, pos])
            prev = h
        con.execute("UPDATE ledger_head SET hash = ?", [prev])
        rebuild_projections(con)
        con.execute("UPDATE study_stamp SET ledger_hash = ?", [prev])


def _sql_then(which: str, *stmts: str, rechain: bool = True) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with duckdb.connect(str(path)) as con:
            for st in stmts:
                con.execute(st)
            if rechain:
                _rechain(con, which)
            else:
                _fix_stamp(con, which)
    return apply


def _sql_all(path: Path, *stmts: str) -> None:
    with duckdb.connect(str(path)) as con:
        for st in stmts:
            con.execute(st)


def _restamp(new_time: bool) -> Callable[[Path], None]:
    """Edit an abnormal return and recompute the stamp's results hash (optionally with a new time)."""
    def apply(path: Path) -> None:
        from analysis.store import RESULTS_HASH_SQL

        with duckdb.connect(str(path)) as con:
            con.execute("UPDATE study_ar SET ar = ar + 0.01 WHERE rel_day = 0 AND event_id LIKE 'amd-openai%'")
            con.execute(f"UPDATE study_stamp SET results_hash = ({RESULTS_HASH_SQL})")  # noqa: S608
            if new_time:
                con.execute("UPDATE study_stamp SET stamped_at = stamped_at + INTERVAL 1 HOUR")
    return apply


def _drop_share_chain(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE share_batches DROP COLUMN chain_hash")
        con.execute("ALTER TABLE share_batches DROP COLUMN rows_hash")
        con.execute("UPDATE study_stamp SET share_hash = NULL")
        # and the marker's fingerprint erased, so the catalog (which names the dropped columns) is not
        # compared: the file then looks like one from before the share chain, which only the anchor refutes
        con.execute("UPDATE carousel_schema SET fingerprint = NULL")


FORGERIES: dict[str, tuple[Callable[[Path], None], str]] = {
    "ledger re-chained, head fixed": (_forge_ledger, "ledger anchor FAILED: hash at anchored position"),
    "price close edited, chain recomputed": (
        _sql_then("price", "UPDATE price_rows SET close = close * 1.2 WHERE ticker = 'AMD' AND date = DATE '2025-10-06'"),
        "prices anchor FAILED: price batch 2 differs from the anchor"),
    "price row deleted, chain recomputed": (
        _sql_then("price", "DELETE FROM price_rows WHERE ticker = 'SPY' AND date = DATE '2024-03-01'"),
        "prices anchor FAILED: price batch 2 differs from the anchor"),
    "price row inserted, chain recomputed": (
        _sql_then("price", "INSERT INTO price_rows SELECT batch_id, ticker, DATE '2025-06-14', open, high, low, close, "
                           "adj_close, volume, dividends, splits FROM price_rows WHERE batch_id = 2"),
        "prices anchor FAILED: price batch 2 differs from the anchor"),
    "newest price batch deleted": (
        _sql_then("price", "DELETE FROM price_rows WHERE batch_id = 2", "DELETE FROM price_batches WHERE batch_id = 2",
                  rechain=False),
        "prices anchor FAILED: anchored price batch 2 is missing"),
    "share count edited, chain recomputed": (
        _sql_then("share", "UPDATE share_rows SET shares_split_adjusted = shares_split_adjusted * 2 "
                           "WHERE ticker = 'AMD' AND batch_id = 1"),
        "shares anchor FAILED: share batch 2 differs from the anchor"),
    "share row deleted, chain recomputed": (
        _sql_then("share", "DELETE FROM share_rows WHERE ticker = 'ORCL' AND as_of_date = DATE '2025-09-05'"),
        "shares anchor FAILED: share batch 2 differs from the anchor"),
    "share row inserted, chain recomputed": (
        _sql_then("share", "INSERT INTO share_rows SELECT batch_id, ticker, DATE '2025-09-09', shares, "
                           "shares_split_adjusted, class_detail, count_basis, source_ref, filing_date, verification, "
                           "withdrawn FROM share_rows WHERE batch_id = 2 AND as_of_date = DATE '2025-09-05'"),
        "shares anchor FAILED: share batch 2 differs from the anchor"),
    "newest share batch deleted": (
        _sql_then("share", "DELETE FROM share_rows WHERE batch_id = 2", "DELETE FROM share_batches WHERE batch_id = 2",
                  rechain=False),
        "shares anchor FAILED: anchored share batch 2 is missing"),
    "share chain columns dropped": (_drop_share_chain, "shares anchor FAILED: the share batches carry no chain"),
    "study results and stamp deleted": (
        lambda path: _sql_all(path, "DELETE FROM study_ar", "DELETE FROM study_car", "DELETE FROM study_stamp"),
        "study anchor FAILED: the study stamped 20"),
    "study edited, stamp recomputed": (_restamp(new_time=False),
                                       "study anchor FAILED: the study stamp of 20"),
    "study edited, stamp recomputed with a new time": (
        _restamp(new_time=True), "has the inputs and parameters of the anchored one"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_each_forgery_passes_alone_and_is_caught_by_the_anchor(db: Path, anchor: Path, name: str) -> None:
    forge, message = FORGERIES[name]
    forge(db)
    alone = carousel_here("verify", "--db", str(db))
    assert alone.returncode == 0, (name, alone.stdout, alone.stderr)  # consistent with itself
    res = carousel_here("verify", "--anchor", str(anchor), "--db", str(db))
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 5, (name, res.stdout, res.stderr)
    assert message in res.stdout, (name, res.stdout)
    assert res.stderr.startswith("error: verify FAILED: ")


def test_the_shipped_run_verifies_against_its_anchor(db: Path, anchor: Path) -> None:
    doc = json.loads(anchor.read_text(encoding="utf-8"))
    with duckdb.connect(str(db), read_only=True) as con:  # the heads, read independently of carousel.anchor
        led = con.execute("SELECT position, hash FROM ledger_log ORDER BY position DESC LIMIT 1").fetchall()[0]
        price = con.execute("SELECT batch_id, chain_hash FROM price_batches ORDER BY 1 DESC LIMIT 1").fetchall()[0]
        share = con.execute("SELECT batch_id, chain_hash FROM share_batches ORDER BY 1 DESC LIMIT 1").fetchall()[0]
        stamp = con.execute("SELECT results_hash, share_batch FROM study_stamp").fetchall()[0]
    assert doc["version"] == 2
    assert (doc["ledger"]["position"], doc["ledger"]["hash"]) == led
    assert (doc["prices"]["batch"], doc["prices"]["hash"]) == price == (2, price[1])
    assert (doc["shares"]["batch"], doc["shares"]["hash"]) == share == (2, share[1])
    assert (doc["study"]["results_hash"], doc["study"]["share_batch"]) == stamp
    assert [p.name for p in anchor.parent.iterdir() if p.name.startswith(".anchor")] == []  # no temporary left
    res = carousel("verify", "--anchor", str(anchor), "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    for part in ("ledger", "prices", "shares", "study"):
        line = next(x for x in res.stdout.splitlines() if x.startswith(f"{part} OK: "))
        assert line.endswith("(matches the anchor)"), line
    printed = carousel_here("ledger", "anchor", "--db", str(db))  # without --out: the same document on stdout
    assert json.loads(printed.stdout) == doc


def test_work_after_the_anchor_is_not_tampering(db: Path, anchor: Path, tmp_path: Path) -> None:
    from carousel.db import connect
    from market.shares_store import append_share_batch
    from market.store import append_batch

    with connect(db) as con:
        append_batch(con, pl.DataFrame({"ticker": ["AMD"], "date": [date(2025, 6, 11)], "close": [122.0]}),
                     source="yahoo", tickers=["AMD"], start=date(2025, 6, 11), end=date(2025, 6, 11),
                     fetched_at=datetime(2025, 6, 13, 1, tzinfo=UTC))
        append_share_batch(con, pl.DataFrame({"ticker": ["AMD"], "as_of_date": [date(2025, 9, 30)],
                                              "shares": [1_623_000_000], "shares_split_adjusted": [1_623_000_000]}),
                           source="yahoo", tickers=["AMD"])
    res = carousel_here("verify", "--anchor", str(anchor), "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "prices OK: 3 batches" in res.stdout and "shares OK: 3 batches" in res.stdout
    assert "study STALE" in res.stdout
    res = carousel("report", "--out", str(tmp_path / "out"), "--db", str(db))  # the study rerun on new data
    assert res.returncode == 0, res.stderr
    res = carousel_here("verify", "--anchor", str(anchor), "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    study = next(x for x in res.stdout.splitlines() if x.startswith("study OK: "))
    assert "(rerun since the anchor (stamped " in study, study


def test_an_anchor_written_before_version_2_checks_the_ledger_only(db: Path, tmp_path: Path) -> None:
    from carousel.db import connect
    from ledger import log

    with connect(db, read_only=True) as con:
        old = log.anchor(con)  # what `ledger anchor` wrote before: the ledger's head alone
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, sort_keys=True) + "\n", encoding="utf-8")
    res = carousel_here("verify", "--anchor", str(path), "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert next(x for x in lines if x.startswith("ledger OK")).endswith("(matches the anchor)")
    assert next(x for x in lines if x.startswith("prices OK")).endswith(
        "(the anchor, written before version 2, does not cover it)")
    assert carousel_here("ledger", "verify", "--anchor", str(path), "--db", str(db)).returncode == 0
    path.write_text(json.dumps({**old, "hash": "1" * 64}), encoding="utf-8")
    res = carousel_here("verify", "--anchor", str(path), "--db", str(db))
    assert res.returncode == 5 and "ledger anchor FAILED: hash at anchored position" in res.stdout


def _doc() -> dict[str, object]:
    h = "ab" * 32
    return {"version": 2, "ledger": {"position": 3, "hash": h, "recorded_at": None, "extra": 1},
            "prices": {"batch": 2, "hash": h}, "shares": {"batch": 0, "hash": "0" * 64},
            "study": {"stamped_at": "2026-01-01T00:00:00+00:00", "params_hash": h, "results_hash": h,
                      "ledger_position": 3, "ledger_hash": h, "price_batch": None, "price_hash": None,
                      "share_batch": 0, "share_hash": None}}


def _without(key: str) -> dict[str, object]:
    d = _doc()
    del d[key]
    return d


BAD: dict[str, tuple[object, str | None, str]] = {
    "wrong version": ({**_doc(), "version": 3}, "version", "unsupported anchor version 3"),
    "version true": ({**_doc(), "version": True}, "version", "unsupported anchor version true"),
    "no prices": (_without("prices"), "prices", "missing or not a JSON object"),
    "prices a list": ({**_doc(), "prices": [1]}, "prices", "missing or not a JSON object"),
    "negative batch": ({**_doc(), "prices": {"batch": -1, "hash": "0" * 64}}, "prices.batch",
                       "missing or not a non-negative integer"),
    "short share hash": ({**_doc(), "shares": {"batch": 1, "hash": "abc"}}, "shares.hash",
                         "missing or not a 64-character hex SHA-256"),
    "ledger without position": ({**_doc(), "ledger": {"hash": "0" * 64}}, "ledger.position",
                                "missing or not a non-negative integer"),
    "study stamped_at naive": ({**_doc(), "study": {**_doc()["study"], "stamped_at": "2026-01-01T00:00:00"}},  # type: ignore[dict-item]
                               "study.stamped_at", "missing or not an ISO 8601 time with an offset"),
    "study results hash missing": ({**_doc(), "study": {"stamped_at": "2026-01-01T00:00:00+00:00",
                                                        "params_hash": "0" * 64}},
                                   "study.results_hash", "missing or not a 64-character hex SHA-256"),
    "old format, no hash": ({"position": 3}, "hash", "missing or not a 64-character hex SHA-256"),
    "an array": ([1, 2], None, "expected a JSON object from `carousel ledger anchor`"),
}


def test_a_good_document_reads_in_the_version_2_shape(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(_doc()), encoding="utf-8")
    assert anchors.read(path) == _doc()
    path.write_text(json.dumps({"position": 0, "hash": "0" * 64}), encoding="utf-8")
    assert anchors.read(path) == {"version": 1, "ledger": {"position": 0, "hash": "0" * 64}, "prices": None,
                                  "shares": None, "study": None}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_anchor_document_names_file_and_field(tmp_path: Path, name: str) -> None:
    doc, field, message = BAD[name]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError) as err:
        anchors.read(path)
    assert (err.value.file, err.value.field) == (str(path), field)
    assert f": {message}" in str(err.value), str(err.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "{path}: file not found"),
    ("nope", "{path}:1: not JSON (Expecting value)"),
    ("[" * 200_000 + "]" * 200_000, "{path}: JSON nested too deeply to be an anchor"),
    ('{"version": 2, "ledger": {"position": 1, "hash": "' + "0" * 64 + '"}, "prices": {"batch": 1}}',
     "{path}, field 'prices.hash': missing or not a 64-character hex SHA-256"),
])
def test_a_bad_anchor_file_is_exit_2_before_the_database_is_read(db: Path, tmp_path: Path, content: str | None,
                                                                 message: str) -> None:
    path = tmp_path / "anchor.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    res = carousel_here("verify", "--anchor", str(path), "--db", str(db))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert message.format(path=path) in res.stderr, res.stderr
    assert res.stdout == ""


def test_anchor_out_refuses_a_symlink_and_a_directory(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("keep", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for out in (link, tmp_path):
        res = carousel("ledger", "anchor", "--out", str(out), "--db", str(db))
        assert res.returncode == 2 and "is a directory or a symbolic link" in res.stderr, res.stderr
    assert target.read_text(encoding="utf-8") == "keep"
