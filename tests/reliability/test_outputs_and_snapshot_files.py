"""Outputs are staged and renamed into place; nothing is written through a symlink under --out; a
snapshot folder accepts regular files only, checked before anything is read (a FIFO used to hang)."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from carousel_runs import carousel

sys.path.insert(0, str(Path(__file__).parent))
from dbstate import content_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "prices"


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (symlinks not followed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def ran(main_job_run: tuple[Path, Path]) -> tuple[Path, Path]:
    """A database after one `carousel run`, and that run's outputs (tests/conftest.py, shared read-only;
    :func:`job` copies both for each test)."""
    return main_job_run


@pytest.fixture
def job(ran: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    db, out = tmp_path / "c.duckdb", tmp_path / "out"
    shutil.copy(ran[0], db)
    shutil.copytree(ran[1], out)
    return db, out


def test_report_rewrites_byte_identical_outputs_and_leaves_no_staging_folder(job: tuple[Path, Path]) -> None:
    db, out = job
    before = tree(out)
    assert "report.html" in before and len(before) > 20
    res = carousel("report", "--out", str(out), "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "tables"]


@pytest.mark.parametrize("target", ["report.html", "tables/cycles.csv", "figures/caar.pdf"])
def test_a_symlink_under_out_is_refused_and_its_target_untouched(job: tuple[Path, Path], tmp_path: Path,
                                                                  target: str) -> None:
    db, out = job
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / target).unlink()
    (out / target).symlink_to(victim)
    before = tree(out)
    res = carousel("report", "--out", str(out), "--db", str(db))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{out / target} is a symbolic link" in res.stderr
    assert victim.read_text() == "precious"
    assert tree(out) == before  # all or nothing: no output was replaced
    assert not any(p.name.startswith(".carousel-staging-") for p in out.iterdir())


def test_a_symlinked_figures_folder_is_refused_before_the_job_starts(job: tuple[Path, Path], tmp_path: Path) -> None:
    db, out = job
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "figures")
    (out / "figures").symlink_to(elsewhere, target_is_directory=True)
    res = carousel("report", "--out", str(out), "--db", str(db))
    assert res.returncode == 2 and f"{out / 'figures'} is a symbolic link" in res.stderr, res.stderr
    assert list(elsewhere.iterdir()) == []


def test_report_html_that_is_a_directory_is_one_clean_error(job: tuple[Path, Path]) -> None:
    db, out = job
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    before = tree(out)
    res = carousel("report", "--out", str(out), "--db", str(db))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{out / 'report.html'} exists and is not a regular file" in res.stderr
    assert tree(out) == before


def test_a_full_disk_while_writing_outputs_leaves_the_old_outputs_whole(job: tuple[Path, Path]) -> None:
    db, out = job
    before, db_before = tree(out), content_hash(db)

    def limit() -> None:  # writes past 200 kB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    res = carousel("report", "--out", str(out), "--db", str(db), preexec=limit)
    assert res.returncode in (1, 4) and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert tree(out) == before  # no truncated PDF: the staged files never replaced the old ones
    assert not any(p.name.startswith(".carousel-staging-") for p in out.iterdir())
    assert content_hash(db) == db_before


def _dangling(p: Path) -> None:
    p.symlink_to(p.parent / "nowhere.csv")


def _loop(p: Path) -> None:
    p.symlink_to(p)


BAD_ENTRIES: dict[str, tuple[Callable[[Path], None], str]] = {
    "directory": (lambda p: p.mkdir(), "is a directory, not a regular price file"),
    "dangling symlink": (_dangling, "cannot read price file: a dangling symlink"),
    "symlink loop": (_loop, "cannot read price file: a symlink loop"),
    "fifo": (lambda p: os.mkfifo(p), "is a FIFO, not a regular price file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ENTRIES))
@pytest.mark.parametrize("command", [["market", "load-snapshot"], ["market", "validate"],
                                     ["refresh", "--source", "snapshot", "--tickers", "AMD"]])
def test_a_snapshot_entry_that_is_not_a_regular_file_is_refused_before_reading(
        ledger_db: Path, tmp_path: Path, kind: str, command: list[str]) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    for name in ("AMD.csv", "SPY.csv"):
        shutil.copy(PRICES / name, prices / name)
    make, message = BAD_ENTRIES[kind]
    make(prices / "ZZZ.csv")
    before = content_hash(ledger_db)
    args = [*command, "--prices-dir", str(prices)] + ([] if command[1] == "validate" else ["--db", str(ledger_db)])
    res = carousel(*args, timeout=60)  # a FIFO hung here forever
    assert res.returncode == 2 and "Traceback" not in res.stderr, (kind, command, res.stderr)
    assert f"{prices / 'ZZZ.csv'}: {message}" in res.stderr, res.stderr
    assert content_hash(ledger_db) == before
