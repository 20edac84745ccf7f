"""Shared fixtures: every test gets its own database file; nothing touches data/carousel.duckdb."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database path; $CAROUSEL_DB points at it so CLI calls without --db use it too."""
    path = tmp_path / "carousel.duckdb"
    monkeypatch.setenv("CAROUSEL_DB", str(path))
    return path
