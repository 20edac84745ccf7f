"""Golden outputs: `carousel run` and `carousel study --format json` on the shipped data give exactly the
files and records recorded in tests/outputs/golden/.

Why: a refactor must not change a published number or a byte of a figure. When a change is *meant* to
change the outputs, regenerate the golden files with ``CAROUSEL_UPDATE_GOLDEN=1 python3 -m pytest
tests/outputs/test_golden.py`` and review the diff of ``outputs.sha256`` and ``study.json`` in the commit.
The report's ledger anchor is the one part that differs between fresh databases (the hash chain covers
each event's recorded_at), so it is masked before hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("CAROUSEL_UPDATE_GOLDEN") == "1"
_ANCHOR = re.compile(rb"hash <code>[0-9a-f]{64}</code>")


def _digest(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "report.html":
        data = _ANCHOR.sub(b"hash <code>ANCHOR</code>", data)
    return hashlib.sha256(data).hexdigest()


def _manifest(out: Path) -> str:
    rows = [f"{_digest(p)}  {p.relative_to(out).as_posix()}" for p in sorted(out.rglob("*")) if p.is_file()]
    return "\n".join(rows) + "\n"


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        pytest.skip(f"golden file {name} rewritten")
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from the golden copy"


def test_main_job_outputs_are_the_golden_ones(run_out: tuple[Path, Path]) -> None:
    _check("outputs.sha256", _manifest(run_out[1]))


def test_study_json_is_the_golden_one(run_out: tuple[Path, Path]) -> None:
    db, _ = run_out
    res = subprocess.run([sys.executable, "-m", "carousel", "study", "--db", str(db), "--format", "json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    # The recorded numbers must be real: AMD's event-day CAR is the one the README quotes.
    amd = next(r for r in records if r["event_id"] == "amd-openai-2025-10-06:AMD" and r["window"] == "[0,0]")
    assert amd["car"] == pytest.approx(0.2314, abs=5e-5)
    _check("study.json", res.stdout)
