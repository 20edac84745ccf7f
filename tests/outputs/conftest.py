"""Fixtures of the output tests: one `carousel run` per test session, shared by every module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`carousel run` once, as a user would call it (subprocess, fresh database)."""
    tmp = tmp_path_factory.mktemp("run")
    db, out = tmp / "c.duckdb", tmp / "out"
    res = subprocess.run([sys.executable, "-m", "carousel", "run", "--db", str(db), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return db, out
