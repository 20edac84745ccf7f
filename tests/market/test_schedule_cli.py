"""`carousel schedule` output (crontab + systemd) and the `market` sub-commands."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from market.schedule import CRON_SCHEDULE, render

DATA = Path(__file__).resolve().parents[2] / "data" / "prices"

_CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _cron_values(field: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in field.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        assert m, f"bad cron field {field!r}"
        rng, step = m.group(1), int(m.group(2) or 1)
        a, b = (lo, hi) if rng == "*" else (
            (int(rng.split("-")[0]), int(rng.split("-")[-1])))
        assert lo <= a <= b <= hi, f"{field!r} out of range {lo}-{hi}"
        out |= set(range(a, b + 1, step))
    return out


def test_crontab_line_parses(tmp_path: Path) -> None:
    files = render(carousel="/usr/bin/carousel", db=tmp_path / "c.duckdb", log=tmp_path / "r.log",
                   workdir=tmp_path)
    lines = [ln for ln in files.crontab.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    fields = lines[1].split(None, 5)
    assert " ".join(fields[:5]) == CRON_SCHEDULE
    minute, hour, dom, month, dow = (_cron_values(f, *r) for f, r in zip(fields[:5], _CRON_FIELDS, strict=True))
    assert (minute, hour, dow) == ({30}, {22}, {1, 2, 3, 4, 5})  # 22:30 UTC, Mon-Fri
    assert len(dom) == 31 and len(month) == 12
    # 22:30 UTC is after the NYSE close (20:00 UTC in summer, 21:00 UTC in winter)
    assert "refresh --db" in fields[5] and f">> {tmp_path / 'r.log'} 2>&1" in fields[5]


def test_systemd_units_content(tmp_path: Path) -> None:
    files = render(carousel="/usr/bin/carousel", db=tmp_path / "c.duckdb", log=tmp_path / "r.log",
                   workdir=tmp_path)
    assert "OnCalendar=Mon..Fri 17:30 America/New_York" in files.timer
    assert "Persistent=true" in files.timer
    assert f"StandardOutput=append:{tmp_path / 'r.log'}" in files.service
    assert "Type=oneshot" in files.service


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = shutil.which("true") or "/bin/true"
    files = render(carousel=exe, db=tmp_path / "c.duckdb", log=tmp_path / "r.log", workdir=tmp_path)
    (tmp_path / "carousel-refresh.service").write_text(files.service)
    (tmp_path / "carousel-refresh.timer").write_text(files.timer)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "carousel-refresh.timer"),
                        str(tmp_path / "carousel-refresh.service")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cal = subprocess.run(["systemd-analyze", "calendar", "Mon..Fri 17:30 America/New_York"],
                         capture_output=True, text=True)
    assert cal.returncode == 0, cal.stderr


def test_schedule_command(run_cli: Callable, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(["schedule", "--db", str(tmp_path / "c.duckdb")], capsys)
    assert code == 0
    assert "30 22 * * 1-5" in out and "[Timer]" in out and "[Service]" in out
    assert f"{tmp_path / 'c.duckdb'}.refresh.log" in out


def test_load_snapshot_status_validate(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    db = str(tmp_path / "c.duckdb")
    code, out, _ = run_cli(["market", "load-snapshot", "--db", db], capsys)
    assert code == 0 and "batch 1: 38381 rows appended (38381 new, 0 revised)" in out
    code, out, _ = run_cli(["market", "load-snapshot", "--db", db], capsys)
    assert code == 0 and "already loaded as batch 1" in out
    code, out, _ = run_cli(["market", "status", "--db", db], capsys)
    assert code == 0 and "9984.T" in out and "2074" in out and "2026-07-06" in out
    code, out, _ = run_cli(["market", "validate"], capsys)
    assert code == 0 and out.count("XNYS") == 19 and "XTKS" in out


def test_validate_bad_file_exit_2(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    text = (DATA / "CRWV.csv").read_text().splitlines()
    text[3] = text[3].replace(text[3].split(",")[4], "0", 1)
    (d / "CRWV.csv").write_text("\n".join(text) + "\n")
    code, _, err = run_cli(["market", "validate", "--prices-dir", str(d)], capsys)
    assert code == 2
    assert f"{d / 'CRWV.csv'}:4" in err and "field 'close'" in err


@pytest.mark.parametrize("make", [False, True])
def test_validate_missing_or_empty_folder_exit_2(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, make: bool) -> None:
    d = tmp_path / "nonexistent"
    if make:
        d.mkdir()
    code, out, err = run_cli(["market", "validate", "--prices-dir", str(d)], capsys)
    assert code == 2 and str(d) in err, (out, err)
    assert ("no *.csv price files" if make else "folder does not exist") in err
    assert "ticker" not in out  # no (empty) table printed
