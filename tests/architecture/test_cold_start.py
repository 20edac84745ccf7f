"""Cold start: `carousel --help` (and every command's --help) loads none of the heavy libraries.

Why: help needs only typer; duckdb, polars, numpy, pyarrow, scipy and matplotlib together take about
0.6 s to import (bench/bench_coldstart.py). Each check runs the real entry point in a fresh process and
reads its ``sys.modules``, so a heavy import added at the top of any command module fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "numpy", "pyarrow", "duckdb", "scipy", "matplotlib", "pandas", "exchange_calendars",
         "statsmodels", "networkx")

PROBE = """
import json, sys
from carousel.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(HEAVY)))
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
"""


def _help(args: list[str]) -> tuple[dict[str, object], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    res = subprocess.run([sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *args],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    text, _, last = res.stdout.rstrip().rpartition("\n")
    return json.loads(last), text


def test_top_level_help_imports_no_heavy_library() -> None:
    probe, text = _help(["--help"])
    assert probe == {"code": 0, "loaded": []}
    # Every command is still listed with its help line (registration did not become lazy or lossy).
    for name, words in [("refresh", "Incremental price refresh"), ("schedule", "crontab"),
                        ("study", "Abnormal returns"), ("sql", "read-only SQL"), ("run", "The main job"),
                        ("report", "HTML report"), ("explain", "characteristics"), ("ledger", "deal ledger"),
                        ("market", "Price store")]:
        assert any(line.strip("│ ").startswith(name) and words in line for line in text.splitlines()), name


@pytest.mark.parametrize("args", [["study", "--help"], ["ledger", "--help"], ["ledger", "import", "--help"],
                                  ["ledger", "asof", "--help"], ["market", "--help"], ["refresh", "--help"],
                                  ["sql", "--help"], ["run", "--help"], ["report", "--help"],
                                  ["explain", "--help"]])
def test_command_help_imports_no_heavy_library(args: list[str]) -> None:
    probe, text = _help(args)
    assert probe == {"code": 0, "loaded": []}
    assert "Usage:" in text


def test_a_command_still_loads_what_it_needs(tmp_path: Path) -> None:
    # The other side of lazy imports: a command that opens the database does import duckdb, and a
    # damaged database still ends in one clear line and exit 4 (not a NameError from a moved import).
    db = tmp_path / "broken.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    probe, _ = _help(["ledger", "log", "--db", str(db)])
    assert "duckdb" in probe["loaded"]  # type: ignore[operator]
    assert probe["code"] == 4

