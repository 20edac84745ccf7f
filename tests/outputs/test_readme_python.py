"""The README's Python examples run as written, against the database `carousel run` built, and give the
CLI's numbers (the golden `carousel study --format json` records)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "study.json"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_blocks_run_and_match_the_cli(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    blocks = _blocks()
    assert len(blocks) >= 2
    check = (
        "\nimport json\nrecs = {(r['event_id'], r['window']): r for r in res.to_json_records()}\n"
        f"golden = json.load(open({str(GOLDEN)!r}))\n"
        "assert len(golden) == len(recs)\n"
        "bad = [g for g in golden if any(abs((recs[(g['event_id'], g['window'])][k] or 0) - (g[k] or 0)) > 1e-12"
        " for k in ('car', 'se', 't', 'p'))]\n"
        "assert not bad, bad[:2]\n"
        "print('CLI-NUMBERS-OK')\n"
    )
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks) + check, encoding="utf-8")
    env = {**os.environ, "CAROUSEL_DB": str(run_out[0]), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0] == "12"  # NVDA firm-events, as the CLI builds them (11 estimated, one has no date)
    assert "CLI-NUMBERS-OK" in lines


def test_the_unmerged_route_has_14_nvda_rows(run_out: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the README points at study_events: one row per deal row counts two announcements twice."""
    from analysis.events import firm_events
    from carousel import queries

    monkeypatch.setenv("CAROUSEL_DB", str(run_out[0]))
    raw = firm_events(queries.deals())
    assert raw.filter(ticker="NVDA").height == 14
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len({r["event_id"] for r in golden if r["ticker"] == "NVDA"}) == 7
