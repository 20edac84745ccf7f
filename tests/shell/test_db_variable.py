"""$CAROUSEL_DB: an empty value is an error naming the variable, never the default database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InputError
from core.paths import DEFAULT_DB, resolve_db


def test_an_empty_variable_is_an_error_not_the_default_database(tmp_path: Path) -> None:
    env = {**os.environ, "CAROUSEL_DB": ""}
    res = subprocess.run([sys.executable, "-m", "carousel", "sql", "SELECT 1"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "$CAROUSEL_DB is set but empty" in res.stderr and "Traceback" not in res.stderr


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CAROUSEL_DB", raising=False)
    assert resolve_db() == DEFAULT_DB
    monkeypatch.setenv("CAROUSEL_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db() == tmp_path / "env.duckdb"
    assert resolve_db(tmp_path / "arg.duckdb") == tmp_path / "arg.duckdb"
    monkeypatch.setenv("CAROUSEL_DB", "  ")
    with pytest.raises(InputError, match="set but empty"):
        resolve_db()
    assert resolve_db(tmp_path / "arg.duckdb") == tmp_path / "arg.duckdb"  # --db still wins
