"""The append's overlap of DuckDB calls with Python work (``ledger.overlap``, ``ledger.log.OVERLAP``).

The overlapped append must write exactly what the sequential one writes and fail exactly as it fails:
the same log rows (all but the wall-clock time and the hashes that cover it), the same projection rows,
the same projection digest, the same errors with nothing written, on a log that mixes new deals,
corrections, companies, identical retries, conflicting retries and an expected-version clash.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from carousel.db import connect
from core.errors import ConflictError
from ledger import log
from ledger.model import NewEvent, company_stream, deal_stream, event_id_for
from ledger.overlap import Background, Done


def _announce(i: int, **extra: Any) -> NewEvent:
    did = f"o-{i:04d}"
    s = deal_stream(did)
    return NewEvent(event_id_for(s, "DealAnnounced"), s, "DealAnnounced", {
        "deal_id": did, "contract_id": did, "announced_date": "2025-01-02", "session": "unknown",
        "payers": ["openai"] if i % 3 else ["openai", "softbank"], "payees": ["oracle"],
        "amount_usd": f"{i}.25", "amount_kind": "exact", "deal_type": "cloud_compute_purchase",
        "tickers": ["ORCL"], "title": f"deal {i}", "sources": [], **extra})


def _correct(i: int, k: int) -> NewEvent:
    did = f"o-{i:04d}"
    s = deal_stream(did)
    return NewEvent(event_id_for(s, "DealCorrected", str(k)), s, "DealCorrected",
                    {"deal_id": did, "changes": {"title": f"title {k}", "amount_usd": f"{k}.5"}, "reason": ""})


def _company(c: str) -> NewEvent:
    s = company_stream(c)
    return NewEvent(event_id_for(s, "CompanyRegistered"), s, "CompanyRegistered", {
        "company_id": c, "name": c.title(), "listed": True,
        "tickers": [{"symbol": c[:4].upper(), "exchange": "XNYS", "currency": "USD"}]})


def _script(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Append a mixed history; return each step's outcome (the result, or the error's type and text)."""
    steps: list[tuple[list[NewEvent], dict[str, Any]]] = [
        ([_announce(i) for i in range(40)], {}),
        ([_company("acme"), _company("zeta"), *(_announce(i) for i in range(40, 60))], {}),
        ([_correct(i, 1) for i in range(0, 60, 7)], {}),
        ([_announce(i) for i in range(40)], {}),  # an identical retry: skipped
        ([_announce(3, title="changed")], {}),  # same id, other content: refused
        ([_correct(7, 2)], {deal_stream("o-0007"): 1}),  # stale expected version: refused
        ([_correct(7, 3)], {deal_stream("o-0007"): 2}),
        ([_announce(71, amount_usd=1.5)], {}),  # a float payload: refused, naming the field
        ([_correct(99, 1)], {}),  # a correction of an unknown deal: refused
        ([_announce(i) for i in range(60, 90)], {}),
    ]
    out: list[str] = []
    for events, expected in steps:
        try:
            res = log.append(con, events, expected=expected)
            out.append(f"ok {res.appended} {res.skipped} {res.head_position}")
        except (ConflictError, TypeError) as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "log": con.execute("SELECT position, event_id, stream_id, stream_version, event_type, schema_version, "
                           "payload FROM ledger_log ORDER BY position").fetchall(),
        "keys": con.execute("SELECT * FROM ledger_log_keys ORDER BY position").fetchall(),
        "companies": con.execute("SELECT * FROM ledger_companies ORDER BY company_id").fetchall(),
        "deals": con.execute("SELECT * FROM ledger_deals ORDER BY deal_id").fetchall(),
        # rowid: the physical order too (readers without ORDER BY see it)
        "flows": con.execute("SELECT rowid, * FROM ledger_flows ORDER BY rowid").fetchall(),
        "digest": con.execute("SELECT projections FROM ledger_projection_digest").fetchall(),
    }


def test_overlapped_append_writes_and_fails_as_the_sequential_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    results, tables = {}, {}
    for overlap in (True, False):
        monkeypatch.setattr(log, "OVERLAP", overlap)
        with connect(tmp_path / f"{overlap}.duckdb") as con:
            results[overlap] = _script(con)
            tables[overlap] = _tables(con)
            full, fast = log.verify(con, full=True), log.verify(con)
            assert full.ok, full.reason
            assert fast == full
    assert results[True] == results[False]
    assert tables[True] == tables[False]
    # The script did what it says (so the comparison above compares something).
    assert results[True][:4] == ["ok 40 0 40", "ok 22 0 62", "ok 9 0 71", "ok 0 40 71"]
    assert results[True][4].startswith("ConflictError: event id") and "different content" in results[True][4]
    assert results[True][5] == f"ConflictError: stream {deal_stream('o-0007')} is at version 2, expected 1"
    assert results[True][6] == "ok 1 0 72"
    assert results[True][7].startswith("TypeError: payload.amount_usd is a float")
    assert results[True][8].startswith("ConflictError: DealCorrected for unknown deal stream")
    assert results[True][9] == "ok 30 0 102"
    assert len(tables[True]["deals"]) == 90 and len(tables[True]["companies"]) == 2
    # a three-party deal (i % 3 == 0) gives two edges without an amount
    assert sum(1 for r in tables[True]["flows"] if r[5] is None) == 2 * 30


def test_insert_error_is_raised_and_nothing_is_written(tmp_path: Path) -> None:
    """A duplicate that the lookup keys hid fails in the overlapped insert: its error (not the Python
    work's) is raised, the whole batch is rolled back, and the keys are repaired, as before."""
    with connect(tmp_path / "k.duckdb") as con:
        log.append(con, [_announce(i) for i in range(5)])
        before = _tables(con)
        con.execute("UPDATE ledger_log_keys SET event_key = event_key + 1, stream_key = stream_key + 1 "
                    "WHERE position = 2")
        with pytest.raises(ConflictError, match="ledger_log_keys did not show it"):
            log.append(con, [_announce(1), _announce(9)])
        assert _tables(con) == before
        assert log.append(con, [_announce(9)]).appended == 1
        assert log.verify(con, full=True).ok


def test_background_returns_and_raises_like_done() -> None:
    calls: list[str] = []

    def ok() -> str:
        calls.append(threading.current_thread().name)
        return "value"

    def bad() -> str:
        raise ValueError("from the statement")

    assert Background(ok).join() == "value" and Done(ok).join() == "value"
    assert calls == ["ledger-append", threading.current_thread().name]
    for route in (Background, Done):
        job = route(bad)
        with pytest.raises(ValueError, match="from the statement"):
            job.join()



#: Run in a fresh interpreter that loads only ``ledger.overlap``: with polars imported (as in this test
#: process), a SIGINT does not interrupt the main thread's blocking wait here, so the race would not show.
_CTRL_C = """
import signal, sys, threading, time
from ledger.overlap import Background
from core.errors import ConflictError

def ctrl_c_in(seconds):  # a real SIGINT to the main thread: it interrupts the blocking wait there
    threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()

finished = threading.Event()
def slow():
    time.sleep(0.6)
    finished.set()
    return "done"
job = Background(slow)
ctrl_c_in(0.1)
try:
    job.join()
    sys.exit("no KeyboardInterrupt")
except KeyboardInterrupt:
    assert finished.is_set(), "join returned while the background call was still running"

def failing():
    time.sleep(0.4)
    raise ConflictError("late failure")
job = Background(failing)
ctrl_c_in(0.1)
try:
    job.join()
except KeyboardInterrupt as exc:
    assert isinstance(exc.__cause__, ConflictError), repr(exc.__cause__)
print("ok")
"""


def test_a_ctrl_c_during_join_waits_for_the_call_and_wins_over_its_error() -> None:
    """A KeyboardInterrupt in the joining thread must not return before the background call has ended
    (the caller's rollback would otherwise use the connection while the statement still runs: on CPython
    3.11-3.12 an interrupted ``Thread.join`` marks the thread stopped while it runs); and when the call
    failed meanwhile, the user's Ctrl-C is raised, with the call's error as its cause."""
    res = subprocess.run([sys.executable, "-c", _CTRL_C], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
