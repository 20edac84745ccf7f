"""Dollar columns in every output of a study: ``carousel study --format json`` and the ``car`` SQL view.

Checked through the CLI against shares x close(day before the window's first day) x CAR computed here by hand with the csv module
from data/shares and data/prices (no project code), for every default window.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from carousel.cli import app

DATA = Path(__file__).resolve().parents[2] / "data"
ORCL = "openai-orcl-2025-09-10"
AMD = "amd-openai-2025-10-06"
DOLLAR_KEYS = ["mcap_usd", "mcap_date", "count_known_after_t0", "dollar_car", "dollar_se", "dollar_reason"]
OLD_STUDY_CAR = """
    CREATE TABLE study_car (
        event_id VARCHAR NOT NULL, deal_id VARCHAR, ticker VARCHAR NOT NULL, t0 DATE, "window" VARCHAR NOT NULL,
        car DOUBLE, se DOUBLE, t DOUBLE, p DOUBLE, bhar DOUBLE, n_days BIGINT
    )
"""


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def _by_hand(ticker: str, t0: str, start: int = 0) -> tuple[int, float, str, str]:
    """(split-adjusted count in force on the ticker's trading day before relative day ``start``, close
    that day, the day), from the CSVs: day -1 is the last row before t0, day ``start - 1`` is ``start``
    rows after it in the ticker's own price file."""
    with (DATA / "prices" / f"{ticker}.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["date"])
    last_before = max(i for i, r in enumerate(rows) if r["date"] < t0)
    day = rows[last_before + start]
    with (DATA / "shares" / "shares_outstanding.csv").open(newline="") as fh:
        counts = [r for r in csv.DictReader(fh) if r["ticker"] == ticker and r["as_of_date"] <= day["date"]]
    count = max(counts, key=lambda r: r["as_of_date"])
    return int(count["split_adjusted_to_2026"]), float(day["close"]), day["date"], _known(count)


def _known(count: dict[str, str]) -> str:
    """The day a count was public: its filing date, else its as-of date + 45 days (the documented lag)."""
    if count["filing_date"]:
        return count["filing_date"]
    return (dt.date.fromisoformat(count["as_of_date"]) + dt.timedelta(days=45)).isoformat()


@pytest.fixture(scope="module")
def priced_db(seeded_ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped deals, prices and share counts, loaded through the CLI."""
    path = tmp_path_factory.mktemp("dollar") / "c.duckdb"
    path.write_bytes(seeded_ledger.read_bytes())
    out = _cli("market", "load-snapshot", "--db", str(path))
    assert "share counts batch 1: 121 rows appended" in out
    return path


def test_load_snapshot_loads_share_counts_once(priced_db: Path) -> None:
    out = _cli("market", "load-snapshot", "--db", str(priced_db))
    assert "share counts unchanged: already loaded as batch 1; nothing written" in out
    with duckdb.connect(str(priced_db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT batch_id) FROM share_rows").fetchall() == [(121, 1)]


def test_study_json_dollar_car_equals_shares_x_close_x_car(priced_db: Path) -> None:
    records = json.loads(_cli("study", "--db", str(priced_db), "--format", "json", "--deal", ORCL,
                              "--deal", AMD))
    checked = 0
    starts = {"[0,0]": 0, "[-1,+1]": -1, "[-5,+5]": -5, "[0,+10]": 0}
    for event_id, ticker, t0 in ((f"{ORCL}:ORCL", "ORCL", "2025-09-10"), (f"{AMD}:AMD", "AMD", "2025-10-06")):
        rows = [r for r in records if r["event_id"] == event_id]
        assert [r["window"] for r in rows] == ["[0,0]", "[-1,+1]", "[-5,+5]", "[0,+10]"]
        for r in rows:
            # The value before the window's first day: t0-1 for [0,0], t0-2 for [-1,+1], t0-6 for [-5,+5].
            shares, close, day, known = _by_hand(ticker, t0, starts[r["window"]])
            assert r["dollar_reason"] is None
            assert r["mcap_date"] == day
            # ORCL's 2025-08-31 count has no filing date: public by 2025-10-15 at the latest, after t0.
            assert r["count_known_after_t0"] is (known >= t0)
            assert r["mcap_usd"] == pytest.approx(shares * close, rel=1e-9, abs=0)
            assert r["dollar_car"] == pytest.approx(shares * close * r["car"], rel=1e-9, abs=0)
            assert r["dollar_se"] == pytest.approx(shares * close * r["se"], rel=1e-9, abs=0)
            checked += 1
    assert checked == 8
    orcl = next(r for r in records if r["event_id"] == f"{ORCL}:ORCL" and r["window"] == "[0,0]")
    # 2,841 M shares (2025-08-31) x the 2025-09-09 close 241.51 = $686.1 bn; CAR 35.5 % -> +$243.8 bn.
    assert orcl["mcap_usd"] == pytest.approx(686.13e9, rel=1e-5)
    assert orcl["dollar_car"] == pytest.approx(243.77e9, rel=1e-4)
    amd = next(r for r in records if r["event_id"] == f"{AMD}:AMD" and r["window"] == "[0,0]")
    assert amd["dollar_car"] == pytest.approx(61.84e9, rel=1e-3)


def test_every_record_has_the_dollar_fields_with_a_reason_where_null(priced_db: Path) -> None:
    records = json.loads(_cli("study", "--db", str(priced_db), "--format", "json"))
    assert all(list(r)[-len(DOLLAR_KEYS):] == DOLLAR_KEYS for r in records)
    reasons = {r["dollar_reason"] for r in records if r["dollar_car"] is None}
    assert reasons == {"count_missing", "count_stale", "fx_missing", "count_changed_in_gap"}
    assert all(r["dollar_reason"] is None for r in records if r["dollar_car"] is not None)
    sb = [r for r in records if r["ticker"] == "9984.T" and r["t0"] == "2025-11-12"]
    assert len(sb) == 4 and {r["dollar_reason"] for r in sb} == {"fx_missing"}  # JPY: no guessed rate
    assert all(r["mcap_usd"] is None for r in sb)


def test_study_table_shows_dollar_car(priced_db: Path) -> None:
    args = ("study", "--db", str(priced_db), "--deal", ORCL, "--window", "0,0")
    out = _cli(*args)
    (rec,) = json.loads(_cli(*args, "--format", "json"))
    assert "$CAR bn" in out and f"│ {rec['dollar_car'] / 1e9:7.1f} │" in out


def test_database_without_share_tables_gives_count_missing(priced_db: Path, tmp_path: Path) -> None:
    """An older database (no share tables), opened read-only by `carousel study`: reasons, no crash."""
    path = tmp_path / "old.duckdb"
    path.write_bytes(priced_db.read_bytes())
    with duckdb.connect(str(path)) as con:
        con.execute("DROP VIEW shares_outstanding")
        con.execute("DROP TABLE share_rows")
        con.execute("DROP TABLE share_batches")
    records = json.loads(_cli("study", "--db", str(path), "--format", "json", "--deal", ORCL))
    assert len(records) == 4
    assert all(r["dollar_reason"] == "count_missing" and r["dollar_car"] is None and r["mcap_usd"] is None
               for r in records)


def test_old_car_table_gains_the_columns_at_a_read_write_open(tmp_path: Path) -> None:
    from analysis.dollar_columns import DOLLAR_COLUMNS
    from carousel.db import connect

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(OLD_STUDY_CAR)
        con.execute("INSERT INTO study_car VALUES ('e:X', 'e', 'X', DATE '2025-01-02', '[0,0]', 0.1, 0.01, "
                    "10, 0, 0.1, 1)")
    with connect(path, read_only=True) as con:  # read-only: no DDL, the old view still reads
        assert "dollar_car" not in con.sql("SELECT * FROM study_car").columns
    for _ in range(2):  # idempotent
        with connect(path) as con:
            cols = con.sql('SELECT * FROM car').columns
            # the dollar columns, then the adjusted p-values (added after them)
            assert set(cols[-len(DOLLAR_COLUMNS) - 2:-2]) == set(DOLLAR_COLUMNS) and len(cols) == 19
            assert cols[-2:] == ["p_holm", "p_bh"]
            assert con.execute("SELECT car, dollar_car, dollar_reason FROM car").fetchall() == [(0.1, None, None)]


def test_car_view_of_carousel_report_holds_the_dollars(priced_db: Path, tmp_path: Path) -> None:
    """`carousel report` persists the study with its dollar columns; `carousel sql` reads them."""
    path = tmp_path / "r.duckdb"
    path.write_bytes(priced_db.read_bytes())
    _cli("report", "--db", str(path), "--out", str(tmp_path / "out"))
    rows = pl.read_csv(_cli("sql", "--db", str(path), "--format", "csv",
                            "SELECT event_id, \"window\", car, mcap_usd, mcap_date, dollar_car, dollar_se, dollar_reason "
                            "FROM car WHERE ticker IN ('ORCL', 'AMD') AND t0 IN ('2025-09-10', '2025-10-06')"
                            ).encode())
    assert rows.height == 8
    for r in rows.iter_rows(named=True):
        ticker = r["event_id"].rsplit(":", 1)[1]
        start = {"[0,0]": 0, "[-1,+1]": -1, "[-5,+5]": -5, "[0,+10]": 0}[r["window"]]
        shares, close, day, _ = _by_hand(ticker, "2025-09-10" if ticker == "ORCL" else "2025-10-06", start)
        assert str(r["mcap_date"]) == day
        assert r["dollar_car"] == pytest.approx(shares * close * r["car"], rel=1e-9, abs=0)
    n = pl.read_csv(_cli("sql", "--db", str(path), "--format", "csv",
                         "SELECT count(*) AS n, count(dollar_car) AS valued, "
                         "count(*) FILTER (dollar_car IS NULL AND dollar_reason IS NULL) AS silent FROM car"
                         ).encode()).row(0, named=True)
    assert n["n"] == 160 and n["valued"] == 100 and n["silent"] == 0


def test_load_snapshot_shares_csv_option_appends_only_a_revision(priced_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "rev.duckdb"
    path.write_bytes(priced_db.read_bytes())
    src = (DATA / "shares" / "shares_outstanding.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = next(csv.reader([src[0]]))
    row = next(csv.reader([src[1]]))
    i, j = header.index("shares_outstanding"), header.index("split_adjusted_to_2026")
    factor = int(row[j]) // int(row[i])
    row[i], row[j] = str(int(row[i]) + 1), str((int(row[i]) + 1) * factor)
    revised = tmp_path / "shares.csv"
    with revised.open("w", newline="", encoding="utf-8") as fh:
        fh.write(src[0])
        csv.writer(fh, lineterminator="\n").writerow(row)
        fh.writelines(src[2:])
    out = _cli("market", "load-snapshot", "--db", str(path), "--shares-csv", str(revised))
    assert "share counts batch 2: 1 rows appended (1 revised)" in out
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM share_rows").fetchall() == [(122,)]
