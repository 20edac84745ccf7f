"""Snapshot files and schedule units: CSV structure (empty, header-only, truncated
lines, blank lines), volume and date spellings, future dates, empty --tickers, calendar bounds of the
non-session warning, out-of-range Yahoo volume, and systemd path settings ending in a blank or backslash."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yfinance
from market_fakes import DATA, FakeYahoo, bar, yf_download_frame

from market.schedule import render
from market.sources import parse_download, read_snapshot_file
from market.validate import missing_sessions

HEADER = "date,open,high,low,close,adj_close,volume"


def _folder(tmp_path: Path, text: str, name: str = "NVDA.csv") -> Path:
    d = tmp_path / "prices"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(text.encode())
    return d


def _stored(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT date, open, close, adj_close, volume FROM price_rows ORDER BY date"
                           ).fetchall()
    finally:
        con.close()


def _load(run_cli: Callable, capsys: pytest.CaptureFixture[str], d: Path, db: Path) -> tuple[int, str, str]:
    return run_cli(["market", "load-snapshot", "--db", str(db), "--prices-dir", str(d)], capsys)


@pytest.mark.parametrize(("text", "line", "message"), [
    # polars raised NoDataError: a traceback instead of an error line.
    ("", 1, "file is empty (expected the header date,open,high,low,close,adj_close,volume)"),
    # Only a header: "snapshot not loaded: every ticker in it has fetched prices" (false) and exit 0.
    (HEADER + "\n", 2, "no price rows (the file has only a header)"),
    # A file cut short mid-line: the row was stored with close 1.0 (of 1.5...) and no adj_close/volume.
    (HEADER + "\n2024-01-02,1,2,0.5,1.5,1.4,100\n2024-01-03,1,2,0.5,1.\n", 3,
     "5 fields, the header has 7 (a truncated or malformed line?)"),
    (HEADER + "\n2024-01-02,1,2,0.5,1.5,1.4,100,7\n", 2, "8 fields, the header has 7 (a truncated or malformed line?)"),
    (HEADER + "\n2024-01-02,1,2,0.5,1.5,1.4,100\n\n2024-01-03,1,2,0.5,1.6,1.5,100\n", 3,
     "blank line between price rows"),
])
def test_structurally_bad_file_is_one_error_line(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, text: str, line: int, message: str) -> None:
    d = _folder(tmp_path, text)
    db = tmp_path / "c.duckdb"
    code, out, err = _load(run_cli, capsys, d, db)
    assert (code, out) == (2, "")
    assert err == f"error: {d / 'NVDA.csv'}:{line}: {message}\n"
    assert _stored(db) == []
    code, _, err = run_cli(["market", "validate", "--prices-dir", str(d)], capsys)
    assert code == 2 and err == f"error: {d / 'NVDA.csv'}:{line}: {message}\n"


def test_bom_crlf_trailing_blank_lines_float_volumes_and_midnight_times_load(
        run_cli: Callable, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = [
        HEADER,
        "2024-01-02,1e0,2,0.5,1.5E+0,1.4,23370800.0",  # pandas writes a float volume column so
        "2024-01-03 00:00:00, 1.25 ,2,0.5,1.6,1.5,1.5e6",  # a daily index with its midnight
        "2024-01-04T00:00:00-05:00,1,2,0.5,1.7,1.6,4070000.000000001",  # tz-aware pandas index
        "", "",
    ]
    d = _folder(tmp_path, "\ufeff" + "\r\n".join(body) + "\r\n")
    db = tmp_path / "c.duckdb"
    code, out, err = _load(run_cli, capsys, d, db)
    assert code == 0, err
    assert "batch 1: 3 rows appended" in out
    assert _stored(db) == [
        (date(2024, 1, 2), 1.0, 1.5, 1.4, 23370800),
        (date(2024, 1, 3), 1.25, 1.6, 1.5, 1500000),
        (date(2024, 1, 4), 1.0, 1.7, 1.6, 4070000),
    ]


@pytest.mark.parametrize(("cell", "field", "message"), [
    ("100.5", "volume", "volume must be a whole number of shares (below 2**63), got 100.5"),
    ("1e20", "volume", "volume must be a whole number of shares (below 2**63), got 1e20"),
    ("nan", "volume", "volume must be a whole number of shares (below 2**63), got nan"),
])
def test_bad_volume_spellings_are_refused(tmp_path: Path, cell: str, field: str, message: str) -> None:
    from core.errors import InputError

    d = _folder(tmp_path, f"{HEADER}\n2024-01-02,1,2,0.5,1.5,1.4,{cell}\n")
    with pytest.raises(InputError) as exc:
        read_snapshot_file(d / "NVDA.csv")
    assert (exc.value.line, exc.value.field) == (2, field)
    assert str(exc.value).endswith(message)


def test_time_of_day_other_than_midnight_is_refused(tmp_path: Path) -> None:
    from core.errors import InputError

    d = _folder(tmp_path, f"{HEADER}\n2024-01-02,1,2,0.5,1.5,1.4,1\n2024-01-03 16:00:00,1,2,0.5,1.5,1.4,1\n")
    with pytest.raises(InputError, match=r"NVDA.csv:3, field 'date': cannot parse '2024-01-03 16:00:00'"):
        read_snapshot_file(d / "NVDA.csv")


def test_future_dated_row_is_refused(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    # A typo (2099 for 2024) used to be stored; refresh then started after it and never fetched again.
    text = f"{HEADER}\n2024-01-02,1,2,0.5,1.5,1.4,1\n2099-01-05,1,2,0.5,1.5,1.4,1\n"
    d = _folder(tmp_path, text)
    db = tmp_path / "c.duckdb"
    code, out, err = _load(run_cli, capsys, d, db)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {d / 'NVDA.csv'}:3, field 'date': 2099-01-05 is after today (")
    assert _stored(db) == []
    # The bound is today's UTC date: the same row is fine once that day has come.
    rows = read_snapshot_file(d / "NVDA.csv", today=date(2099, 1, 5))
    assert rows["date"].to_list() == [date(2024, 1, 2), date(2099, 1, 5)]


@pytest.mark.parametrize("value", ["", " , "])
def test_empty_tickers_option_is_refused(monkeypatch: pytest.MonkeyPatch, run_cli: Callable,
                                         capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         value: str) -> None:
    # `--tickers "$LIST"` with an empty list used to refresh the whole default universe.
    fake = FakeYahoo({"SPY": {date(2025, 10, 1): bar(600.0)}})
    monkeypatch.setattr(yfinance, "download", fake)
    db = tmp_path / "c.duckdb"
    code, out, err = run_cli(["refresh", "--db", str(db), "--tickers", value], capsys)
    assert (code, out) == (2, "")
    assert err == ("error: field '--tickers': no symbol given (leave the option out to refresh the "
                   "default universe)\n")
    assert fake.calls == [] and not db.exists()


def test_rows_outside_the_calendar_range_are_not_non_sessions() -> None:
    import polars as pl

    rows = pl.DataFrame({"date": [date(2009, 12, 30), date(2009, 12, 31), date(2010, 1, 4),
                                  date(2010, 1, 18)]})
    m = missing_sessions(rows, "NVDA")
    # 2009-12-30/31 were NYSE sessions; the calendar starts 2010-01-04 and cannot judge them.
    # 2010-01-18 (Martin Luther King Jr. Day) is a real non-session.
    assert m.extra == [date(2010, 1, 18)]
    assert m.missing == [date(2010, 1, d) for d in (5, 6, 7, 8, 11, 12, 13, 14, 15)]


def test_snapshot_with_2009_rows_has_no_false_warning(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    d = _folder(tmp_path, f"{HEADER}\n2009-12-30,1,2,0.5,1.5,1.4,1\n2009-12-31,1,2,0.5,1.5,1.4,1\n"
                          "2010-01-04,1,2,0.5,1.5,1.4,1\n")
    code, out, err = _load(run_cli, capsys, d, tmp_path / "c.duckdb")
    assert code == 0, err
    assert "batch 1: 3 rows appended" in out and "warning" not in out


def test_yahoo_volume_beyond_bigint_fails_that_ticker_only() -> None:
    days = [date(2025, 10, 1), date(2025, 10, 2)]
    frame = yf_download_frame({"AMD": {d: bar(10.0) for d in days}, "SPY": {d: bar(600.0) for d in days}})
    frame[("Volume", "AMD")] = [float("nan"), 1e20]  # float column, as when Yahoo pads with NaN
    res = parse_download(frame, ["AMD", "SPY"])  # used to raise InvalidOperationError for both
    assert res["AMD"].error == "non-finite values in 'Volume' from Yahoo (or beyond BIGINT)"
    assert res["SPY"].ok and res["SPY"].rows is not None
    assert res["SPY"].rows["volume"].to_list() == [1_000_000, 1_000_000]


# --------------------------------------------------------------------------------------------- schedule

@pytest.mark.parametrize("name", ["ends in backslash\\", "ends in blank "])
def test_systemd_working_directory_ending_badly(tmp_path: Path, name: str) -> None:
    work = tmp_path / name
    exe = work / "bin" / "carousel"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    files = render(carousel=str(exe), db=work / "x.duckdb", log=work / "x.log", workdir=work)
    lines = files.service.splitlines()
    # Without the slash a trailing backslash continued the line into ExecStart= (no ExecStart at all)
    # and systemd stripped a trailing blank (another directory).
    assert f"WorkingDirectory={work}/" in lines
    assert any(ln.startswith("ExecStart=") for ln in lines)
    if shutil.which("systemd-analyze"):
        (tmp_path / "carousel-refresh.service").write_text(files.service)
        (tmp_path / "carousel-refresh.timer").write_text(files.timer)
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "carousel-refresh.timer"),
                            str(tmp_path / "carousel-refresh.service")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("log", ["/tmp/x.log\\", "/tmp/x.log "])
def test_log_path_systemd_cannot_hold_is_refused(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, log: str) -> None:
    code, out, err = run_cli(["schedule", "--db", str(tmp_path / "c.duckdb"), "--log", log], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: field '--log': log file ") and "ends in a blank or a backslash" in err


def test_shipped_snapshot_values_unchanged() -> None:
    rows = read_snapshot_file(DATA / "prices" / "NVDA.csv")
    first = rows.row(0, named=True)
    assert (first["date"], first["open"], first["close"], first["adj_close"], first["volume"]) == (
        date(2018, 1, 2), 4.8945, 4.98375, 4.922531, 355616000)
    assert rows.height == 2170
