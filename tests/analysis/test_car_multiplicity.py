"""Holm and Benjamini-Hochberg p-values beside every CAR: the ``car`` SQL view (written by ``carousel
report``/``run``) and every ``carousel study --format json`` record, one family per window over the
study's firm-events, each checked against statsmodels' multipletests to 1e-12; a filtered study
(``--deal``) prints the full study's adjusted values."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from carousel.cli import app

AMD = "amd-openai-2025-10-06"


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


@pytest.fixture(scope="module")
def reported_db(seeded_ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mult")
    path = tmp / "c.duckdb"
    path.write_bytes(seeded_ledger.read_bytes())
    _cli("market", "load-snapshot", "--db", str(path))
    _cli("report", "--db", str(path), "--out", str(tmp / "out"))
    return path


def _statsmodels(frame: pl.DataFrame) -> pl.DataFrame:
    """Per window: multipletests on the non-missing p (holm, fdr_bh), NaN elsewhere."""
    parts = []
    for (_w,), part in frame.group_by("window"):
        p = part["p"].to_numpy().astype(float)
        ok = ~np.isnan(p)
        holm, bh = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
        holm[ok] = multipletests(p[ok], method="holm")[1]
        bh[ok] = multipletests(p[ok], method="fdr_bh")[1]
        parts.append(part.with_columns(pl.Series("sm_holm", holm), pl.Series("sm_bh", bh)))
    return pl.concat(parts)


def test_car_view_has_statsmodels_adjusted_pvalues(reported_db: Path) -> None:
    view = pl.read_csv(_cli("sql", "--db", str(reported_db), "--format", "csv",
                            'SELECT event_id, "window", p, p_holm, p_bh FROM car').encode())
    assert view.height == 160 and view["window"].n_unique() == 4
    ref = _statsmodels(view.with_columns(pl.col("p").fill_null(float("nan"))))
    for col, sm in (("p_holm", "sm_holm"), ("p_bh", "sm_bh")):
        np.testing.assert_allclose(ref[col].fill_null(np.nan).to_numpy(), ref[sm].to_numpy(), rtol=0, atol=1e-12)
    # real adjustments: the smallest [0,0] p (ORCL 2025-09-10) times the window's 40 tests
    day0 = view.filter(pl.col("window") == "[0,0]").drop_nulls("p").sort("p")
    assert day0.height == 40
    assert day0["p_holm"][0] == pytest.approx(day0["p"][0] * 40, rel=1e-12)
    assert (view.drop_nulls("p")["p_holm"] >= view.drop_nulls("p")["p"]).all()


def test_every_json_record_carries_them_and_a_filtered_study_the_full_family(reported_db: Path) -> None:
    records = json.loads(_cli("study", "--db", str(reported_db), "--format", "json"))
    assert all(list(r)[8:11] == ["p", "p_holm", "p_bh"] for r in records)
    view = {(r[0], r[1]): r[2:] for r in duckdb.connect(str(reported_db), read_only=True).execute(
        'SELECT event_id, "window", p_holm, p_bh FROM car').fetchall()}
    assert len(records) == len(view) == 160
    for r in records:
        holm, bh = view[(r["event_id"], r["window"])]
        if holm is None:
            assert (r["p_holm"], r["p_bh"], r["p"]) == (None, None, None)
        else:
            assert r["p_holm"] == pytest.approx(holm, rel=1e-12) and r["p_bh"] == pytest.approx(bh, rel=1e-12)
    one = json.loads(_cli("study", "--db", str(reported_db), "--format", "json", "--deal", AMD, "-w", "0,0"))
    (amd,) = [r for r in one if r["ticker"] == "AMD"]
    full = next(r for r in records if r["event_id"] == f"{AMD}:AMD" and r["window"] == "[0,0]")
    assert amd["p_holm"] == full["p_holm"] and amd["p_bh"] == full["p_bh"]
    assert amd["p_holm"] > amd["p"] * 30  # adjusted over the window's 40 firm-events, not over 1
    csv = pl.read_csv(_cli("study", "--db", str(reported_db), "--format", "csv", "--deal", AMD).encode())
    assert csv.columns[8:11] == ["p", "p_holm", "p_bh"]
    assert csv.filter((pl.col("ticker") == "AMD") & (pl.col("window") == "[0,0]"))["p_holm"][0] == pytest.approx(
        full["p_holm"], rel=1e-9)


def test_stamp_covers_them_and_older_stamps_still_verify(reported_db: Path, tmp_path: Path) -> None:
    from analysis import store
    from carousel.db import connect

    path = tmp_path / "e.duckdb"
    path.write_bytes(reported_db.read_bytes())
    with connect(path) as con:
        assert store.verify_study(con).ok
        con.execute("UPDATE study_car SET p_holm = 0.5 WHERE p_holm < 0.01")
        assert "edited" in " ".join(store.verify_study(con).problems)
        # Rows written before the columns existed (NULL there) hash as the former formula did.
        con.execute("UPDATE study_car SET p_holm = NULL, p_bh = NULL")
        old = ("SELECT sha256(string_agg(x, chr(10) ORDER BY x)) FROM (SELECT "
               f"{store._text(store._CAR_COLS)} AS x FROM study_car)")
        new = ("SELECT sha256(string_agg(x, chr(10) ORDER BY x)) FROM (SELECT "
               f"{store._text(store._CAR_COLS, store._CAR_OPTIONAL)} AS x FROM study_car)")
        assert con.execute(old).fetchall() == con.execute(new).fetchall()
