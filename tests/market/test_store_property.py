"""Adversarial checks of the append-only store against a dict model (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carousel.db import connect
from core.errors import InputError
from market.api import prices, returns
from market.returns import compute_returns
from market.store import append_batch

D0 = date(2025, 1, 2)
# A small key space so that batches collide and revise each other often.
keys = st.tuples(st.sampled_from(["AMD", "NVDA", "9984.T"]), st.integers(0, 6))
# 100.01 vs 100.0 is a 1e-4 change: a real revision (a dividend re-adjustment), above REL_TOL.
value = st.one_of(st.none(), st.sampled_from([1.0, 2.5, 100.0, 100.01]))
batches = st.lists(st.dictionaries(keys, st.tuples(st.sampled_from([10.0, 11.0, 12.5]), value,
                                                   st.sampled_from([None, 5, 7])), max_size=12),
                   min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches)
def test_view_equals_model_and_revisions_counted(tmp_path_factory: pytest.TempPathFactory,
                                                 bs: list[dict]) -> None:
    con = connect(tmp_path_factory.mktemp("prop") / "c.duckdb")
    model: dict[tuple[str, int], tuple] = {}
    stored_rows = 0
    for i, b in enumerate(bs, start=1):
        df = pl.DataFrame(
            [{"ticker": t, "date": D0 + timedelta(days=d), "close": c, "adj_close": a, "volume": v}
             for (t, d), (c, a, v) in sorted(b.items())],
            schema={"ticker": pl.Utf8, "date": pl.Date, "close": pl.Float64,
                    "adj_close": pl.Float64, "volume": pl.Int64},
        )
        rep = append_batch(con, df, source="p", tickers=["x"], start=None, end=None)
        changed = {k for k, v in b.items() if k in model and model[k] != v}
        new = {k for k in b if k not in model}
        assert rep.batch_id == i
        assert rep.new_rows == len(new)
        assert sum(r.rows for r in rep.revisions) == len(changed)
        assert rep.appended_rows == len(new) + len(changed)
        model.update(b)
        stored_rows += len(new) + len(changed)
    got = {(r["ticker"], (r["date"] - D0).days): (r["close"], r["adj_close"], r["volume"])
           for r in prices(con).iter_rows(named=True)}
    assert got == model
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(stored_rows,)]
    view, pure = returns(con), compute_returns(prices(con))
    assert view.select("ticker", "date", "basis").equals(pure.select("ticker", "date", "basis"))
    if view.height:
        assert (view["ret"] - pure["ret"]).abs().max() < 1e-12  # type: ignore[operator]
    con.close()


def test_duplicate_key_in_one_batch_rejected(tmp_path: Path) -> None:
    con = connect(tmp_path / "c.duckdb")
    df = pl.DataFrame({"ticker": ["AMD", "AMD"], "date": [D0, D0], "close": [1.0, 2.0]})
    with pytest.raises(InputError, match="sharing a \\(ticker, date\\)"):
        append_batch(con, df, source="p", tickers=["AMD"], start=None, end=None)
    assert con.execute("SELECT count(*) FROM price_batches").fetchall() == [(0,)]



def test_float_noise_below_tolerance_is_not_a_revision(tmp_path: Path) -> None:
    con = connect(tmp_path / "c.duckdb")
    df = pl.DataFrame({"ticker": ["AMD"], "date": [D0], "close": [203.710007]})
    append_batch(con, df, source="p", tickers=["AMD"], start=None, end=None)
    noisy = df.with_columns(close=pl.col("close") * (1 + 1e-13))
    rep = append_batch(con, noisy, source="p", tickers=["AMD"], start=None, end=None)
    assert (rep.appended_rows, rep.revisions) == (0, [])
    # 203.71 is the same price at 2 decimals (3.4e-8 relative): rounding, not a revision.
    rounded = df.with_columns(close=pl.lit(203.71))
    rep = append_batch(con, rounded, source="p", tickers=["AMD"], start=None, end=None)
    assert (rep.appended_rows, rep.revisions) == (0, [])
    real = df.with_columns(close=pl.lit(203.710007 * (1 + 1e-4)))
    rep = append_batch(con, real, source="p", tickers=["AMD"], start=None, end=None)
    assert rep.appended_rows == 1 and rep.revisions[0].fields == ("close",)
