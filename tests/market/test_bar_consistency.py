"""Price bars that contradict themselves, implausible dates and hidden characters in tickers are refused
with file, line and field, on the snapshot path (through the CLI) and on the Yahoo path (check_rows)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import InputError
from market.sources import read_snapshot_file
from market.validate import FIRST_PLAUSIBLE_DATE, OHLC_REL_TOL, check_rows

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "prices"
LINE = "2025-06-11,124.440002,124.470001,119.879997,121.139999,121.139999,32261900"  # AMD.csv line 1872


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ("2025-06-11,124.440002,119.0,119.879997,121.139999,121.139999,32261900", "high", "high is below low"),
        ("2025-06-11,124.440002,124.470001,119.879997,125.0,125.0,32261900", "close", "close is above high"),
        ("2025-06-11,124.440002,124.470001,119.879997,119.0,119.0,32261900", "close", "close is below low"),
        ("2025-06-11,130.0,124.470001,119.879997,121.139999,121.139999,32261900", "open", "open is above high"),
        ("2025-06-11,110.0,124.470001,119.879997,121.139999,121.139999,32261900", "open", "open is below low"),
    ],
)
def test_snapshot_bar_out_of_order_is_refused_naming_file_line_field(ledger_db: Path, tmp_path: Path, bad: str,
                                                                      field: str, message: str) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    shutil.copy(PRICES / "SPY.csv", prices / "SPY.csv")
    text = (PRICES / "AMD.csv").read_text()
    assert LINE in text
    (prices / "AMD.csv").write_text(text.replace(LINE, bad))
    env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
    res = subprocess.run([sys.executable, "-m", "carousel", "market", "load-snapshot", "--prices-dir", str(prices),
                          "--db", str(ledger_db)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{prices / 'AMD.csv'}:1872, field '{field}': {message}" in res.stderr, res.stderr
    sql = subprocess.run([sys.executable, "-m", "carousel", "sql", "SELECT count(*) FROM price_rows", "--format",
                          "csv", "--db", str(ledger_db)], capture_output=True, text=True, timeout=300, env=env)
    assert sql.stdout.splitlines()[1] == "0"  # nothing stored


def _bar(**kw: object) -> pl.DataFrame:
    row: dict[str, object] = {"ticker": "NVDA", "date": date(2025, 1, 2), "open": 10.0, "high": 11.0, "low": 9.0,
                              "close": 10.5}
    row.update(kw)
    return pl.DataFrame([row])


@pytest.mark.parametrize(
    ("kw", "field", "message"),
    [
        ({"ticker": "NV\u202eDA"}, "ticker", "ticker 'NV\\u202eDA' contains a control or bidirectional-formatting "
                                            "character (U+202E)"),
        ({"ticker": "NVDA\x07"}, "ticker", "(U+0007)"),
        ({"ticker": "NV\u200dDA"}, "ticker", "(U+200D)"),
        ({"date": date(1900, 1, 1)}, "date", "1900-01-01 is before 1920-01-01"),
        ({"date": date(1919, 12, 31)}, "date", "is before 1920-01-01"),
        ({"date": datetime.now(UTC).date() + timedelta(days=3)}, "date", "is in the future"),
        ({"high": 8.0}, "high", "high is below low"),
        ({"close": 11.0 * (1 + 3 * OHLC_REL_TOL)}, "close", "close is above high"),
    ],
)
def test_check_rows_refuses(kw: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        check_rows(_bar(**kw), file="yahoo:NVDA", line_offset=1)
    assert exc.value.field == field and exc.value.line == 1
    assert message in str(exc.value)


def test_the_bounds_themselves_and_float32_rounding_pass() -> None:
    # A close above the high by float32 rounding (Yahoo's 4.894499778747559 for 4.8945) is not an error.
    check_rows(_bar(close=11.0 * (1 + OHLC_REL_TOL / 2), open=9.0 * (1 - OHLC_REL_TOL / 2)), file="y")
    check_rows(_bar(date=FIRST_PLAUSIBLE_DATE + timedelta(days=1)), file="y")  # a Friday
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)  # a Tokyo session's date can be ahead of UTC
    if tomorrow.weekday() < 5:
        check_rows(_bar(ticker="9984.T", date=tomorrow), file="y")


def test_every_shipped_snapshot_file_passes_and_really_has_ordered_bars() -> None:
    files = sorted(PRICES.glob("*.csv"))
    assert len(files) == 20
    checked = 0
    for p in files:
        rows = read_snapshot_file(p)
        check_rows(rows, file=str(p))
        full = rows.drop_nulls(["open", "high", "low"])
        # independent route: plain numpy comparisons, no tolerance needed on the shipped data
        hi, lo, op, cl = (full[c].to_numpy() for c in ("high", "low", "open", "close"))
        assert (hi >= lo).all() and (cl <= hi).all() and (cl >= lo).all() and (op <= hi).all() and (op >= lo).all()
        checked += full.height
    assert checked > 30_000
