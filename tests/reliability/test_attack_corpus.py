"""The attack corpus (tests/reliability/attack.py): every case a clean error with its exit code, no
traceback, no database changed wrongly. A fast subset always; the whole corpus slow-marked (and printed
as a table by bench/bench_attack.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from attack import Case, corpus, run_case, seed  # noqa: E402

FAST = {"foreign sqlite file as --db: import", "foreign ledger_log file as --db: load-snapshot",
        "--out attack: report.html is a symlink", "snapshot entry is a fifo: load-snapshot",
        "price file with close above high", "sql: COPY TO", "sql: markup value", "tamper: edited close",
        "tamper: nested payload", "full disk: load-snapshot", "tamper: dropped ledger_head",
        "tamper: dropped ledger_head, then a write command", "tamper: replaced view flows"}


@pytest.fixture(scope="module")
def seed_db(shared: Callable[[str, Callable[[Path], None]], Path]) -> Path:
    """The seeded database, built once per test run (both xdist workers copy it for each case)."""
    return shared("attack-seed", seed) / "seed.duckdb"


def _check(case: Case, seed_db: Path, tmp: Path) -> None:
    o = run_case(case, seed_db, tmp)
    assert not o.traceback, o.detail
    assert not o.changed_wrongly, o.detail
    assert o.clean, (case.codes, case.message, o.detail)


def test_the_fast_subset_names_real_cases() -> None:
    assert FAST.issubset({c.name for c in corpus()})
    assert len(corpus()) >= 90


@pytest.mark.parametrize("case", [c for c in corpus() if c.name in FAST], ids=lambda c: c.name)
def test_attack_fast(case: Case, seed_db: Path, tmp_path: Path) -> None:
    _check(case, seed_db, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in corpus() if c.name not in FAST], ids=lambda c: c.name)
def test_attack_full(case: Case, seed_db: Path, tmp_path: Path) -> None:
    _check(case, seed_db, tmp_path)
