"""Reloading share files: the file loaded last is what is in force, and filings win over Yahoo's counts.

Expectations come from the CSV files themselves, read with the csv module.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import polars as pl

from analysis.dollar_columns import load_dollar_inputs
from carousel.db import connect
from market.shares_sources import SHARES_CSV
from market.shares_store import append_share_batch, load_shares_snapshot, share_counts


def _records(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rec = list(csv.reader(fh))
    return rec[0], rec[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _file_counts(path: Path) -> dict[tuple[str, str], int]:
    header, rows = _records(path)
    t, d, n = header.index("ticker"), header.index("as_of_date"), header.index("split_adjusted_to_2026")
    return {(r[t], r[d]): int(r[n]) for r in rows}


def _stored(con) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    df = share_counts(con)
    return {(r["ticker"], r["as_of_date"].isoformat()): r["shares_split_adjusted"] for r in df.iter_rows(named=True)}


def test_reloading_the_shipped_file_after_an_edited_copy_restores_it(tmp_path: Path) -> None:
    header, rows = _records(SHARES_CSV)
    d, n, s = header.index("as_of_date"), header.index("shares_outstanding"), header.index("split_adjusted_to_2026")
    extra = list(rows[-1])
    extra[d] = (dt.date.fromisoformat(extra[d]) + dt.timedelta(days=1)).isoformat()
    extra[n], extra[s] = str(int(extra[n]) + 7), str(int(extra[s]) + 7)
    revised = list(rows[0])
    revised[n], revised[s] = str(int(revised[n]) * 2), str(int(revised[s]) * 2)
    edited = _write(tmp_path / "edited.csv", header, [revised, *rows[1:], extra])
    with connect(tmp_path / "c.duckdb") as con:
        first = load_shares_snapshot(con)
        assert first.appended_rows == 121 and _stored(con) == _file_counts(SHARES_CSV)
        second = load_shares_snapshot(con, edited)
        assert not second.skipped and second.appended_rows == 2 and second.revised_rows == 1
        assert _stored(con) == _file_counts(edited)
        # The shipped file again: not "already loaded" (it is not the file loaded last).
        third = load_shares_snapshot(con)
        assert not third.skipped and third.revised_rows == 1
        assert third.appended_rows == 2  # the first row's count restored, the appended row withdrawn
        assert _stored(con) == _file_counts(SHARES_CSV)
        assert con.execute("SELECT count(*) FROM shares_outstanding").fetchall() == [(121,)]
        fourth = load_shares_snapshot(con)
        assert fourth.skipped and fourth.batch_id == third.batch_id
        # Append-only: the edited values are still in share_rows, with the withdrawal beside them.
        assert con.execute("SELECT count(*), count(*) FILTER (withdrawn) FROM share_rows").fetchall() == [(125, 1)]
        # The withdrawn date comes back if a file holds it again.
        load_shares_snapshot(con, edited)
        assert _stored(con) == _file_counts(edited)


def test_the_dollar_path_prefers_the_filings_over_yahoo(tmp_path: Path) -> None:
    shipped = _file_counts(SHARES_CSV)
    intc = sorted(k for k in shipped if k[0] == "INTC")
    same_day = intc[-1][1]
    yahoo = pl.DataFrame({
        "ticker": ["INTC", "INTC"],
        "as_of_date": [dt.date.fromisoformat(same_day), dt.date(2026, 8, 20)],
        "shares": [shipped[("INTC", same_day)] + 1_000_000, 5_050_000_000],
        "shares_split_adjusted": [shipped[("INTC", same_day)] + 1_000_000, 5_050_000_000],
    })
    with connect(tmp_path / "c.duckdb") as con:
        load_shares_snapshot(con)
        append_share_batch(con, yahoo, source="yahoo", tickers=["INTC"])  # a newer batch
        mixed = {r["as_of_date"].isoformat(): r["shares_split_adjusted"]
                 for r in share_counts(con, ["INTC"]).iter_rows(named=True)}
        assert mixed[same_day] == shipped[("INTC", same_day)] + 1_000_000  # newest batch wins by default
        preferred = {r["as_of_date"].isoformat(): r["shares_split_adjusted"]
                     for r in share_counts(con, ["INTC"], prefer=["shares_csv"]).iter_rows(named=True)}
        assert preferred[same_day] == shipped[("INTC", same_day)]  # the filing wins where both exist
        assert preferred["2026-08-20"] == 5_050_000_000  # Yahoo fills a date the filings do not cover
        assert len(preferred) == len(intc) + 1
        dollar = load_dollar_inputs(con, ["INTC"]).counts
        got = {r["as_of_date"].isoformat(): r["shares_split_adjusted"] for r in dollar.iter_rows(named=True)}
        assert got == preferred
