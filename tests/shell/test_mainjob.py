"""The main job as a pipeline: the README's session keeps a user's correction through `carousel run`,
and the job opens the database once."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import carousel_runs
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "events"
OPENAI_ORCL = "openai-orcl-2025-09-10"  # 300 in the shipped file


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, cwd=cwd, timeout=600)


def _fixed(folder: Path) -> Path:
    """The README's fixed.csv: the shipped file with one amount corrected, companies beside it."""
    for f in ("companies.csv", "contracts.csv", "amount_terms.csv"):
        shutil.copy(DATA / f, folder / f)
    rows = list(csv.DictReader(io.StringIO((DATA / "deals.csv").read_text(encoding="utf-8"))))
    for r in rows:
        if r["id"] == OPENAI_ORCL:
            r["amount_usd_bn"] = "317"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = folder / "fixed.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _amount(db: Path, cwd: Path) -> object:
    res = _cli("sql", f"SELECT amount_usd FROM deals WHERE deal_id = '{OPENAI_ORCL}'", "--format", "json",
               "--db", str(db), cwd=cwd)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)[0]["amount_usd"]


def test_run_never_reverts_a_users_correction(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    steps = [
        ("ledger", "import", str(DATA / "deals.csv"), "--db", str(db)),
        ("ledger", "import", str(_fixed(tmp_path)), "--record-changes", "--db", str(db)),
    ]
    for args in steps:
        res = _cli(*args, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    assert float(str(_amount(db, tmp_path))) == pytest.approx(317e9)
    for _ in range(2):  # the first run and a re-run
        run = _cli("run", "--db", str(db), "--out", str(tmp_path / "out"), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "deals corrected" not in run.stdout
        assert float(str(_amount(db, tmp_path))) == pytest.approx(317e9)
    events = _cli("sql", "SELECT count(*) AS n FROM ledger_events WHERE event_type = 'DealCorrected'",
                  "--format", "json", "--db", str(db), cwd=tmp_path)
    assert json.loads(events.stdout) == [{"n": 1}]
    # the flow graph the run drew uses the corrected amount (the CSV lists the Oracle edge at 317 bn)
    flows = _cli("sql", f"SELECT amount_usd FROM flows WHERE deal_id = '{OPENAI_ORCL}'", "--format", "json",
                 "--db", str(db), cwd=tmp_path)
    assert float(json.loads(flows.stdout)[0]["amount_usd"]) == pytest.approx(317e9)


def test_the_job_opens_the_database_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from carousel import mainjob

    opened: list[tuple[Path, bool]] = []
    real = mainjob.connect

    def counting(path: Path | None = None, read_only: bool = False):  # type: ignore[no-untyped-def]
        opened.append((Path(str(path)), read_only))
        return real(path, read_only=read_only)

    monkeypatch.setattr(mainjob, "connect", counting)
    summary = mainjob.run(tmp_path / "c.duckdb", tmp_path / "out", progress=False)
    assert opened == [(tmp_path / "c.duckdb", False)]
    assert summary.firm_events == 40 and summary.cycles == 9  # 50 before same-ticker overlaps were dropped
