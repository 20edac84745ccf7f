"""Shares outstanding: the shipped CSV's validation, append-only storage and idempotent loading."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import duckdb
import polars as pl
import pytest

from carousel.db import connect
from core.errors import InputError
from market.api import prices
from market.mcap import market_caps_before
from market.shares_sources import SHARES_CSV, parse_class_detail, read_shares_csv
from market.shares_store import append_share_batch, load_shares_snapshot, share_counts
from market.snapshot import load_snapshot


def _rows() -> tuple[list[str], list[list[str]]]:
    with SHARES_CSV.open(newline="", encoding="utf-8") as fh:
        rec = list(csv.reader(fh))
    return rec[0], rec[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def test_shipped_csv_reads_with_the_values_sources_md_states() -> None:
    df = read_shares_csv()
    assert df.height == 121
    assert df["ticker"].n_unique() == 13
    get = {(r["ticker"], r["as_of_date"]): r for r in df.iter_rows(named=True)}
    # SOURCES.md sanity values and split notes.
    assert get[("AMD", dt.date(2025, 7, 30))]["shares"] == 1_622_843_689
    assert get[("ORCL", dt.date(2025, 8, 31))]["shares"] == 2_841_000_000
    assert get[("NVDA", dt.date(2024, 5, 24))]["shares"] == 2_460_000_000
    assert get[("NVDA", dt.date(2024, 5, 24))]["shares_split_adjusted"] == 24_600_000_000
    assert get[("9984.T", dt.date(2025, 10, 31))]["shares_split_adjusted"] == 4 * 1_427_962_030
    assert get[("AVGO", dt.date(2023, 10, 29))]["shares_split_adjusted"] == 10 * 413_900_000
    assert parse_class_detail(get[("GOOGL", dt.date(2025, 10, 22))]["class_detail"]) == {
        "A": 5_818_000_000, "B": 842_000_000, "C": 5_407_000_000}
    assert parse_class_detail("ADS_equiv=5,186,414,200 (1 ADS = 5 sh)") is None


def test_load_is_append_only_and_idempotent(db_path: Path, tmp_path: Path) -> None:
    con = connect(db_path)
    first = load_shares_snapshot(con)
    assert (first.appended_rows, first.revised_rows, first.skipped) == (121, 0, False)
    again = load_shares_snapshot(con)
    assert again.skipped and again.appended_rows == 0
    # A changed file (one count revised, one row added): only those two rows are appended.
    header, rows = _rows()
    i_sh, i_adj = header.index("shares_outstanding"), header.index("split_adjusted_to_2026")
    orcl = next(i for i, r in enumerate(rows) if r[0] == "ORCL" and r[1] == "2025-08-31")
    rows[orcl][i_sh] = rows[orcl][i_adj] = "2841500000"
    extra = list(rows[orcl])
    extra[1], extra[i_sh], extra[i_adj] = "2025-09-30", "2850000000", "2850000000"
    rep = load_shares_snapshot(con, _write(tmp_path / "s.csv", header, [*rows, extra]))
    assert (rep.appended_rows, rep.revised_rows) == (2, 1)
    assert con.execute("SELECT count(*) FROM share_rows").fetchall()[0][0] == 123
    latest = share_counts(con, ["ORCL"])
    assert latest.height == 9
    assert latest.filter(latest["as_of_date"] == dt.date(2025, 8, 31))["shares"].item() == 2_841_500_000
    # The old value is still stored (a revision, not an update).
    old = con.execute("SELECT shares FROM share_rows WHERE ticker = 'ORCL' AND as_of_date = DATE "
                      "'2025-08-31' ORDER BY batch_id").fetchall()
    assert [r[0] for r in old] == [2_841_000_000, 2_841_500_000]
    con.close()


@pytest.mark.parametrize(
    ("column", "value", "field", "message"),
    [
        ("shares_outstanding", "2.8e9", "shares_outstanding", "whole positive number"),
        ("shares_outstanding", "-5", "shares_outstanding", "whole positive number"),
        ("split_adjusted_to_2026", "0", "split_adjusted_to_2026", "out of range"),
        ("split_adjusted_to_2026", "100", "split_adjusted_to_2026", "below the count"),
        ("as_of_date", "2025-02-30", "as_of_date", "not a calendar date"),
        ("as_of_date", "31/08/2025", "as_of_date", "YYYY-MM-DD"),
        ("ticker", "orcl", "ticker", "Yahoo symbol"),
        ("filing_date", "soon", "filing_date", "YYYY-MM-DD"),
    ],
)
def test_bad_value_names_file_line_and_field(tmp_path: Path, db_path: Path, column: str, value: str,
                                             field: str, message: str) -> None:
    header, rows = _rows()
    rows[9][header.index(column)] = value  # file line 11
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InputError) as err:
        read_shares_csv(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 11, field)
    assert message in str(err.value)
    con = connect(db_path)
    with pytest.raises(InputError):
        load_shares_snapshot(con, path)
    assert con.execute("SELECT count(*) FROM share_rows").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM share_batches").fetchall()[0][0] == 0
    con.close()


def test_duplicate_and_class_sum_and_structure_errors(tmp_path: Path) -> None:
    header, rows = _rows()
    path = _write(tmp_path / "dup.csv", header, [*rows[:5], rows[2]])
    with pytest.raises(InputError, match="second row for NVDA on 2024-05-24 \\(first on line 4\\)") as err:
        read_shares_csv(path)
    assert (err.value.line, err.value.field) == (7, "as_of_date")
    g = next(i for i, r in enumerate(rows) if r[0] == "GOOGL" and r[1] == "2025-10-22")
    bad = [list(r) for r in rows]
    bad[g][header.index("class_detail")] = "A=5818M;B=842M;C=5507M"  # 100 M too many
    with pytest.raises(InputError, match="classes sum to 12167000000") as err:
        read_shares_csv(_write(tmp_path / "cls.csv", header, bad))
    assert (err.value.line, err.value.field) == (g + 2, "class_detail")
    with pytest.raises(InputError) as err:
        read_shares_csv(_write(tmp_path / "col.csv", [h if h != "as_of_date" else "date" for h in header],
                               rows))
    assert (err.value.line, err.value.field) == (1, "as_of_date")
    short = tmp_path / "short.csv"
    short.write_text(",".join(header) + "\nNVDA,2024-01-28,5\n", encoding="utf-8")
    with pytest.raises(InputError, match="3 fields") as err:
        read_shares_csv(short)
    assert err.value.line == 2


def test_sources_filter_and_a_database_without_share_tables(db_path: Path, tmp_path: Path) -> None:
    con = connect(db_path)
    load_shares_snapshot(con)
    yahoo = pl.DataFrame({"ticker": ["ORCL", "ORCL"], "as_of_date": [dt.date(2025, 8, 31), dt.date(2025, 9, 5)],
                          "shares": [2_845_000_000, 2_846_000_000],
                          "shares_split_adjusted": [2_845_000_000, 2_846_000_000]})
    append_share_batch(con, yahoo, source="yahoo", tickers=["ORCL"])
    both = share_counts(con, ["ORCL"])
    assert both.height == 9  # one new date; 2025-08-31 now Yahoo's (the newer batch)
    assert both.filter(pl.col("as_of_date") == dt.date(2025, 8, 31))["shares"].item() == 2_845_000_000
    filings = share_counts(con, ["ORCL"], sources=["shares_csv"])
    assert filings.height == 8
    assert filings.filter(pl.col("as_of_date") == dt.date(2025, 8, 31))["shares"].item() == 2_841_000_000
    assert share_counts(con, sources=["yahoo"])["shares"].to_list() == [2_845_000_000, 2_846_000_000]
    con.close()
    # A carousel database created before the share tables existed: today's schema without them.
    old = tmp_path / "old.duckdb"
    connect(old).close()
    raw = duckdb.connect(str(old))
    raw.execute("DROP VIEW shares_outstanding")
    raw.execute("DROP TABLE share_rows")
    raw.execute("DROP TABLE share_batches")
    raw.close()
    ro = connect(old, read_only=True)
    empty = share_counts(ro)
    assert empty.height == 0 and "shares_split_adjusted" in empty.columns
    ro.close()


def test_stored_counts_give_the_same_caps_as_the_csv(db_path: Path) -> None:
    con = connect(db_path)
    load_snapshot(con)
    load_shares_snapshot(con)
    ev = pl.DataFrame({"ticker": ["ORCL", "AMD", "GOOGL", "TSM", "9984.T"],
                       "t0": [dt.date(2025, 9, 10), dt.date(2025, 10, 6), dt.date(2025, 10, 24),
                              dt.date(2025, 10, 1), dt.date(2026, 1, 5)]})
    px = prices(con)
    via_db = market_caps_before(share_counts(con), px, ev)
    via_csv = market_caps_before(read_shares_csv(), px, ev)
    assert via_db.equals(via_csv)
    assert via_db["mcap_usd"].null_count() == 1
    con.close()
