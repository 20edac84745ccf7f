"""A paper's carousel.toml (model = "ff3", other windows) changes every output of `carousel run`
consistently: the main table, the appendix, the report and `carousel study` give the same numbers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import carousel_runs
import polars as pl
import pytest

PAPER = """\
version = 1

[study]
model = "ff3"
windows = ["-1,1", "0,2"]
"""


def _carousel(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    res = carousel_runs.carousel(*args, cwd=cwd, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


def test_an_ff3_paper_spec_drives_run_report_and_study(tmp_path: Path) -> None:
    (tmp_path / "carousel.toml").write_text(PAPER, encoding="utf-8")
    db, out = tmp_path / "c.duckdb", tmp_path / "out"
    _carousel(["run", "--db", str(db), "--out", str(out)], tmp_path)

    main = pl.read_csv(out / "tables" / "main_results.csv")
    assert sorted(main["window"].unique().to_list()) == ["[-1,+1]", "[0,+2]"]
    appendix = pl.read_csv(out / "tables" / "event_study_car.csv")
    assert set(appendix["window"].unique().to_list()) == {"[-1,+1]", "[0,+2]"}
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Fama-French" in report and "[0,+2]" in report

    # The same file drives `carousel study`: its CARs are the appendix's, number for number.
    study = json.loads(_carousel(["study", "--db", str(db), "--format", "json"], tmp_path).stdout)
    assert {r["window"] for r in study} == {"[-1,+1]", "[0,+2]"}
    by_key = {(r["deal_id"], r["ticker"], r["window"]): r["car"] for r in study}
    rows = appendix.filter(pl.col("car_pct").is_not_null())
    assert rows.height > 20
    for r in rows.iter_rows(named=True):
        # the appendix is in percent; a same-day group names its first deal in both
        assert r["car_pct"] / 100 == pytest.approx(by_key[(r["deal_id"], r["ticker"], r["window"])],
                                                   rel=1e-9, abs=1e-12)
    # FF3 factors end 2026-04-30: later announcements are excluded, never filled.
    assert all(r["t0"] <= "2026-05-15" for r in rows.iter_rows(named=True))
