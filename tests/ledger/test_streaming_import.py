"""Streaming import (issue 17): batches in one transaction, the same events as one big append, errors named.

The stored log of a streamed import (batches of 1,000) is compared with a reference built without
streaming: every announcement parsed into one list and appended by one ``ledger.log.append`` call, as
the importer did before. Positions, ids, streams, versions, types and payloads must be identical, and the
projections too; only ``recorded_at`` (and so the hashes) differ between two runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from carousel.db import connect
from core.errors import ConflictError, InputError
from ledger import log
from ledger.load import company_events, import_file, parse_deals, scan_deals
from ledger.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from bench_import import write_deals  # noqa: E402

LOG_COLUMNS = "position, event_id, stream_id, stream_version, event_type, schema_version, payload"


def _log(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"SELECT {LOG_COLUMNS} FROM ledger_log ORDER BY position").fetchall()  # noqa: S608


def _projections(db: Path) -> list[list[tuple[object, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()  # noqa: S608
                for t in ("ledger_companies", "ledger_deals", "ledger_flows")]


def _reference(folder: Path, db: Path) -> None:
    """The import without streaming: all events in one list, one append."""
    deals = folder / "deals.csv"
    reg = load_registry(folder)
    events = company_events(reg) + parse_deals(deals, reg)
    with connect(db) as con:
        log.append(con, events)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_deals(tmp_path_factory.mktemp("synthetic"), 6_000).parent


def test_streamed_batches_store_the_same_events_as_one_append(synthetic: Path, tmp_path: Path) -> None:
    streamed, reference = tmp_path / "streamed.duckdb", tmp_path / "reference.duckdb"
    with connect(streamed) as con:
        rep = import_file(con, synthetic / "deals.csv", chunk_rows=1_000)  # six batches of deals
        assert log.verify(con).ok
    n_companies = len(company_events(load_registry(synthetic)))
    assert (rep.rows, rep.appended, rep.skipped) == (6_000, 6_000 + n_companies, 0)
    _reference(synthetic, reference)
    got, want = _log(streamed), _log(reference)
    assert len(got) == 6_000 + n_companies and got == want
    assert _projections(streamed) == _projections(reference)
    # A re-import in other batch sizes appends nothing; its dry run says so too.
    with connect(streamed) as con:
        again = import_file(con, synthetic / "deals.csv", chunk_rows=777)
        dry = import_file(con, synthetic / "deals.csv", chunk_rows=2_500, dry_run=True)
    assert (again.appended, again.skipped) == (0, 6_000 + n_companies)
    assert (dry.appended, dry.skipped) == (0, 6_000 + n_companies)
    assert _log(streamed) == want


def test_a_failure_in_a_late_batch_leaves_nothing_of_the_earlier_ones(synthetic: Path, tmp_path: Path) -> None:
    """The file is validated, then changed behind the scan's back (same size and mtime): the append pass
    meets the bad row in its fifth batch, after four were appended, and the one transaction rolls back."""
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("deals.csv", "companies.csv"):
        (folder / name).write_bytes((synthetic / name).read_bytes())
    deals = folder / "deals.csv"
    scan = scan_deals(deals, load_registry(folder))
    st = deals.stat()
    data = deals.read_bytes()
    at = data.index(b"bench-0004500,")
    bad = data[:at] + data[at:].replace(b",unknown,", b",unknowm,", 1)
    assert len(bad) == len(data)
    deals.write_bytes(bad)
    os.utime(deals, ns=(st.st_atime_ns, st.st_mtime_ns))
    db = tmp_path / "c.duckdb"
    with connect(db) as con:
        with pytest.raises(InputError) as exc:
            import_file(con, deals, scan=scan, chunk_rows=1_000)
        assert exc.value.line == 4_502 and exc.value.field == "session"
        assert con.execute("SELECT count(*) FROM ledger_log").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM ledger_deals").fetchall() == [(0,)]
        assert log.verify(con).ok


def test_a_duplicate_id_far_apart_is_named_with_both_lines(tmp_path: Path) -> None:
    deals = write_deals(tmp_path / "d", 2_500)
    lines = deals.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2_400] = lines[2_400].replace("bench-0002399,", "bench-0000007,", 1)  # line 2401 repeats line 9's id
    deals.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        scan_deals(deals, load_registry(deals.parent))
    assert str(exc.value) == f"{deals}:2401, field 'id': duplicate deal id 'bench-0000007' (first on line 9)"


def test_every_row_error_is_reported_up_to_the_limit(tmp_path: Path) -> None:
    deals = write_deals(tmp_path / "d", 300)
    lines = deals.read_text(encoding="utf-8").splitlines(keepends=True)
    for i in (5, 50, 120):
        lines[i] = lines[i].replace(",unknown,", ",sometime,", 1)
    lines[200] = lines[200].replace(",verified", ",sure", 1)
    deals.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        scan_deals(deals, load_registry(deals.parent))
    msg = str(exc.value)
    assert (exc.value.line, exc.value.field) == (6, "session")
    assert msg.startswith(f"{deals}:6, field 'session': 'sometime' is not one of")
    assert "\n3 more error(s) in the file:\n" in msg
    assert f"  {deals}:51, field 'session'" in msg and f"  {deals}:121, field 'session'" in msg
    assert f"  {deals}:201, field 'confidence': 'sure' is not one of" in msg
    with pytest.raises(InputError) as capped:
        scan_deals(deals, load_registry(deals.parent), max_errors=2)
    assert "1 more error(s) in the file (reading stopped after 2 errors):" in str(capped.value)
    assert ":121," not in str(capped.value)


def test_conflicts_found_in_a_late_batch_roll_back_the_import(synthetic: Path, tmp_path: Path) -> None:
    """A row that changed since an earlier import is a ConflictError wherever its batch is, and the new
    deals of the batches before it are not kept."""
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "companies.csv").write_bytes((synthetic / "companies.csv").read_bytes())
    lines = (synthetic / "deals.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    first = folder / "deals.csv"
    first.write_text("".join(lines[:1] + lines[4_001:]), encoding="utf-8")  # deals 4000.. imported first
    db = tmp_path / "c.duckdb"
    with connect(db) as con:
        import_file(con, first)
    before = _log(db)
    lines[4_801] = lines[4_801].replace(",verified", ",partial", 1)
    first.write_text("".join(lines), encoding="utf-8")
    with connect(db) as con, pytest.raises(ConflictError, match="bench-0004800"):
        import_file(con, first, chunk_rows=1_000)
    assert _log(db) == before


def _peak_rss(deals: Path, db: Path, chunk: int) -> int:
    """Peak resident set (bytes) of a child process that imports ``deals`` as ``carousel ledger import``
    does a file of several batches (a staged copy committed batch by batch), in batches of ``chunk``."""
    code = ("import sys; from pathlib import Path; from carousel.db import connect\n"
            "from carousel.cli.ledger import _import_staged\n"
            "db = Path(sys.argv[2])\n"
            "with connect(db) as con:\n"
            "    _import_staged(con, db, Path(sys.argv[1]), record_changes=False, scan=None, chunk_rows=int(sys.argv[3]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(deals), str(db), str(chunk)], env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss * 1024


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """50,000 rows in batches of 1,000 peak within 80 MiB of 5,000 rows. Holding the file's events at
    once (the importer before streaming: 3.1 GB at 1M rows) grows by ~3 KB a row, and one transaction
    (DuckDB keeps uncommitted rows in memory) by ~2 KB a row: 90-140 MB here."""
    small = _peak_rss(write_deals(tmp_path / "s", 5_000), tmp_path / "s.duckdb", 1_000)
    large = _peak_rss(write_deals(tmp_path / "l", 50_000), tmp_path / "l.duckdb", 1_000)
    events = _log(tmp_path / "l.duckdb")
    assert len(events) == events[-1][0] == 50_000 + len(company_events(load_registry(tmp_path / "l")))
    with duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True) as con:
        assert log.verify(con).ok
    assert large - small < 80 * 2**20, (small, large)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]
