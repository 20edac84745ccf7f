"""A bad --out is refused before anything is written (no traceback, no half-run main job)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import carousel_runs
import pytest

ROOT = Path(__file__).resolve().parents[2]


def carousel(*args: str) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, cwd=ROOT)


@pytest.mark.parametrize("command", ["run", "report"])
def test_out_that_is_a_file_or_cannot_be_created(tmp_path: Path, command: str) -> None:
    db = tmp_path / "c.duckdb"
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    res = carousel(command, "--out", str(a_file), "--db", str(db))
    assert res.returncode == 2, res.stderr
    assert f"{a_file} exists and is not a folder" in res.stderr and "Traceback" not in res.stderr
    assert not db.exists()  # the main job did not start: no ledger import, no snapshot load
    nested = a_file / "out"  # a parent that is a file: mkdir fails with an OSError
    res = carousel(command, "--out", str(nested), "--db", str(db))
    assert res.returncode == 2 and "cannot create output folder" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not db.exists()
