"""Shared fixtures: every test gets its own database file; nothing touches data/carousel.duckdb."""

from __future__ import annotations

import fcntl
import gc
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from carousel_runs import carousel

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
# Helpers of the analysis tests (estudy2_reference, test_engine's synthetic panels) import by module
# name from any test folder, as tests/market does for market_fakes.
sys.path.insert(0, str(Path(__file__).resolve().parent / "analysis"))


#: The longest single tests (seconds of one `-n 2` run, tests/… path::name, parametrised cases by prefix),
#: started first. Why: xdist hands out tests in collection order, and the slowest ones sat in the last
#: folders (reliability, shell): one worker ran a two-minute test alone while the other idled. Many short
#: tests at the end (the attack corpus) let both workers finish together. Order only; nothing deselected.
SLOWEST_FIRST: dict[str, float] = {
    "tests/shell/test_mainjob.py::test_run_never_reverts_a_users_correction": 121,
    "tests/reliability/test_verify_anchor.py::test_work_after_the_anchor_is_not_tampering": 76,
    "tests/ledger/test_asof_sql.py::test_sql_fold_equals_python_fold": 70,
    "tests/reliability/test_truncated_db.py::test_a_corrupt_block_is_a_clear_error_never_a_traceback": 52,
    "tests/reliability/test_staged_import.py::test_a_killed_staged_import_leaves_the_database_as_it_was": 50,
    "tests/shell/test_project_config.py::test_study_formats_and_config": 49,
    "tests/reliability/test_faults.py::test_sigkill_at_random_points_loses_nothing": 48,
    # 201 s with a verify process per flipped block; in-process since 2026-12-02 (about a fifth of that)
    "tests/reliability/test_verify_all.py::test_byte_flips_are_caught_by_verify_not_by_the_next_import": 45,
    "tests/reliability/test_truncated_db.py::test_every_command_refuses_a_truncated_database": 45,
    "tests/ledger/test_valid_time_and_verify.py::test_projection_matches_valid_time_model_with_out_of_order": 44,
    "tests/shell/test_figure_pool.py::test_figures_drawn_in_workers_are_the_serial_bytes": 40,
    "tests/shell/test_mainjob.py::test_the_job_opens_the_database_once": 37,
    "tests/reliability/test_staged_import.py::test_a_conflict_in_a_late_batch": 35,
    "tests/reliability/test_faults.py::test_missing_empty_corrupt_and_truncated_databases": 34,
    "tests/shell/test_explain_config.py::test_main_job_second_stage_follows_the_file": 34,
    "tests/outputs/test_outputs.py::test_report_uses_the_users_ledger_and_adds_nothing_to_it": 33,
    "tests/shell/test_project_config.py::test_db_before_or_after_the_subcommand_and_over_the_environment": 30,
    # not in the list before; 97 s at load average 14 (2026-12-02), about 30 s quiet
    "tests/reliability/test_outputs_and_snapshot_files.py::test_report_rewrites_byte_identical_outputs": 30,
    "tests/shell/test_paper_spec_run.py::test_an_ff3_paper_spec_drives_run_report_and_study": 29,
}


def _weight(item: pytest.Item) -> float:
    node = item.nodeid
    return next((w for prefix, w in SLOWEST_FIRST.items() if node.startswith(prefix)), 0.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of :data:`SLOWEST_FIRST` first, longest first; the rest keep their order (stable sort)."""
    items.sort(key=lambda item: -_weight(item))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported out of the garbage collector's full passes.

    statsmodels' ``multipletests`` (Holm) calls ``gc.collect()`` on every call; with polars, duckdb,
    statsmodels and hypothesis loaded a full pass took 0.3-0.7 s, so a 200-example property test against it
    ran a minute. Objects alive after collection (modules, classes, constants) live for the whole session
    anyway; frozen, a full pass walks only what the tests allocate.
    """
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The calendar session cache goes to a per-run folder, so the suite writes nothing under ~/.cache.

    Set in os.environ (not monkeypatch) so CLI subprocesses inherit it; each xdist worker builds its own
    entries once, which costs a second or two and keeps a user's real cache out of the tests' reach.
    """
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def shared_build(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder built by ``build`` once per test run, shared by every xdist worker of that run.

    Why: a session fixture is built once per worker, so with ``-n 2`` an expensive artefact (the main job's
    database and outputs) was built twice, each build taking a core the other worker's tests wanted. Under
    xdist the workers' temp folders (``popen-gw0``...) sit in one folder of the run; the first worker to
    ask builds there under a file lock, the other waits and reuses it. The result is read-only: a test that
    writes copies it first (a shared DuckDB file may be opened read-only by both workers at once).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / f"shared-{name}"
    with (base / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / f"shared-{name}.built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way is started over
            folder.mkdir()
            build(folder)
            (base / f"shared-{name}.built").touch()
    return folder


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Path], None]], Path]:
    """:func:`shared_build` for fixtures elsewhere: ``shared(name, build)`` -> the folder, built once per run."""
    def get(name: str, build: Callable[[Path], None]) -> Path:
        return shared_build(tmp_path_factory, name, build)
    return get


def _carousel_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return carousel(*args, cwd=REPO, timeout=600)


@pytest.fixture(scope="session")
def main_job_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`carousel run` on a fresh database, as a user calls it (a subprocess): its database and ``--out``
    folder, built once per test run and shared read-only (tests that write copy them)."""
    def build(folder: Path) -> None:
        res = _carousel_cli("run", "--db", str(folder / "c.duckdb"), "--out", str(folder / "out"))
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr

    folder = shared_build(tmp_path_factory, "main-job-run", build)
    return folder / "c.duckdb", folder / "out"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database path; $CAROUSEL_DB points at it so CLI calls without --db use it too."""
    path = tmp_path / "carousel.duckdb"
    monkeypatch.setenv("CAROUSEL_DB", str(path))
    return path


@pytest.fixture(scope="session")
def seeded_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the shipped deals imported through the real CLI, built once per test run (shared by
    the xdist workers, read-only: tests that write copy it, as :func:`ledger_db` does)."""
    def build(folder: Path) -> None:
        res = _carousel_cli("ledger", "import", str(DATA / "events" / "deals.csv"), "--db", str(folder / "seed.duckdb"))
        assert res.returncode == 0, res.stderr

    return shared_build(tmp_path_factory, "seeded-ledger", build) / "seed.duckdb"


@pytest.fixture(scope="session")
def shipped_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped deals, prices and share counts loaded once per session (tests that write copy it)."""
    from carousel.db import connect
    from ledger.load import import_file
    from market.shares_store import load_shares_snapshot
    from market.snapshot import load_snapshot

    path = tmp_path_factory.mktemp("shipped") / "c.duckdb"
    with connect(path) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
        load_shares_snapshot(con)
    return path


@pytest.fixture(scope="session")
def evidenced_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped deals with their timing evidence and the price snapshot, loaded once per session
    (read-only: the date-basis tests read it)."""
    from carousel.db import connect
    from ledger.load import import_file
    from market.snapshot import load_snapshot

    path = tmp_path_factory.mktemp("evidenced") / "c.duckdb"
    with connect(path) as con:
        import_file(con, DATA / "events" / "deals.csv")
        import_file(con, DATA / "events" / "timing_evidence.csv")
        load_snapshot(con)
    return path


@pytest.fixture
def ledger_db(seeded_ledger: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`seeded_ledger` (tests may write to it or break it)."""
    path = tmp_path / "c.duckdb"
    shutil.copy(seeded_ledger, path)
    return path
