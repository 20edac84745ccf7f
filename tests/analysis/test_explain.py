"""`carousel explain` on the shipped data: the CLI's coefficients and standard errors equal statsmodels'
OLS/WLS (design built by patsy, not formulaic) on the same frame with the same covariance, to 1e-8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.formula.api as smf
from typer.testing import CliRunner

from analysis.explain import explain, parse_cov, study_frame
from carousel.cli import app
from carousel.db import connect
from core.errors import InputError

DATA = Path(__file__).resolve().parents[2] / "data"
FORMULA = "car ~ log_amount + on_round_trip + C(deal_kind)"


@pytest.fixture(scope="module")
def frame(shipped_db: Path) -> pl.DataFrame:
    with connect(shipped_db, read_only=True) as con:
        return study_frame(con, "-1,1")


def _cli(db: Path, *args: str) -> str:
    res = CliRunner().invoke(app, ["explain", FORMULA, "--db", str(db), "--window=-1,1", *args])
    assert res.exit_code == 0, res.output
    return res.stdout


def _statsmodels(frame: pl.DataFrame, *, wls: bool, cov: str, groups: list[str]) -> object:
    c = (
        frame.drop_nulls(["car", "log_amount"])
        .with_columns(pl.col("on_round_trip").cast(pl.Int64))
        .to_pandas()
    )
    kw: dict[str, object] = {}
    if groups:
        codes = [pd.factorize(c[g])[0] for g in groups]
        kw = {"groups": codes[0] if len(codes) == 1 else np.column_stack(codes)}
    model = smf.wls(FORMULA, c, weights=1.0 / c["se"] ** 2) if wls else smf.ols(FORMULA, c)
    return model.fit(cov_type=cov, cov_kwds=kw or None, use_t=True)


def test_amount_relative_to_market_cap_from_the_stored_share_counts(frame: pl.DataFrame) -> None:
    rows = {r["event_id"]: r for r in frame.to_dicts()}
    # ORCL: 2,841M shares (10-Q balance sheet 2025-08-31, data/shares) x $241.509995 close on 2025-09-09
    orcl = rows["openai-orcl-2025-09-10:ORCL"]
    assert orcl["amount_to_mcap"] == pytest.approx(300e9 / (2_841_000_000 * 241.509995), rel=1e-9)
    assert orcl["amount_to_mcap_reason"] == "ok"
    assert rows["softbank-openai-2026-02-27:9984.T"]["amount_to_mcap_reason"] == "fx_missing"
    assert rows["amd-openai-2025-10-06:AMD"]["amount_to_mcap_reason"] == "undisclosed_amount"


def test_frame_holds_the_study_and_the_characteristics(frame: pl.DataFrame) -> None:
    amd = frame.filter(pl.col("event_id") == "amd-openai-2025-10-06:AMD").to_dicts()[0]
    assert amd["window"] == "[-1,+1]" and amd["on_round_trip"] is True and amd["company"] == "amd"
    assert amd["car"] == pytest.approx(0.2576, abs=0.02)  # AMD's [-1,+1] reaction (+23% on the day)
    assert frame.height == frame["event_id"].n_unique() >= 40


@pytest.mark.parametrize(
    ("args", "wls", "cov", "groups"),
    [
        ([], True, "HC3", []),  # the default [explain]: WLS, the first covariance (HC3)
        (["--weights", "ols", "--cov", "hc3"], False, "HC3", []),
        (["--weights", "ols", "--cov", "nonrobust"], False, "nonrobust", []),
        (["--weights", "ols", "--cov", "cluster:date"], False, "cluster", ["t0"]),
        (["--weights", "wls", "--cov", "cluster:date,firm"], True, "cluster", ["t0", "company"]),
    ],
)
def test_cli_matches_statsmodels(
    shipped_db: Path, frame: pl.DataFrame, args: list[str], wls: bool, cov: str, groups: list[str]
) -> None:
    doc = json.loads(_cli(shipped_db, "--format", "json", *args))
    ref = _statsmodels(frame, wls=wls, cov=cov, groups=groups)
    names = list(ref.params.index)  # type: ignore[attr-defined]
    got = {r["term"]: r for r in doc["coefficients"]}
    assert sorted(got) == sorted(names)
    assert doc["nobs"] == int(ref.nobs) == 33  # type: ignore[attr-defined]
    def num(v: object) -> float:  # JSON null = NaN (a two-way variance can be negative, as in statsmodels)
        return float("nan") if v is None else float(v)  # type: ignore[arg-type]

    finite = 0
    for n in names:
        np.testing.assert_allclose(got[n]["coef"], ref.params[n], rtol=1e-8, atol=1e-12)  # type: ignore[attr-defined]
        np.testing.assert_allclose(num(got[n]["se"]), ref.bse[n], rtol=1e-8, atol=1e-12)  # type: ignore[attr-defined]
        np.testing.assert_allclose(num(got[n]["p"]), ref.pvalues[n], rtol=1e-6, atol=1e-12)  # type: ignore[attr-defined]
        finite += got[n]["se"] is not None
    assert finite >= len(names) - 1


def test_csv_and_latex_carry_the_same_numbers(shipped_db: Path) -> None:
    doc = json.loads(_cli(shipped_db, "--format", "json"))
    csv = pl.read_csv(_cli(shipped_db, "--format", "csv").encode())
    assert csv["coef"].to_list() == pytest.approx([r["coef"] for r in doc["coefficients"]], rel=1e-15)
    tex = _cli(shipped_db, "--format", "latex")
    assert r"\begin{tabular}" in tex and "on\\_round\\_trip" in tex
    assert "Cross-sectional regression of CARs" in _cli(shipped_db)


def test_bootstrap_is_seeded_and_reported(frame: pl.DataFrame) -> None:
    a = explain(frame, "car ~ on_round_trip", cov="cluster:date", bootstrap=199, seed=3)
    b = explain(frame, "car ~ on_round_trip", cov="cluster:date", bootstrap=199, seed=3)
    pa, pb = a.to_frame()["boot_p"].to_list(), b.to_frame()["boot_p"].to_list()
    assert pa == pb and pa[0] is None and 0.0 < pa[1] <= 1.0
    # the bootstrap's t is the CRV1 t of the fit
    assert a.bootstrap["on_round_trip"].tstat == pytest.approx(a.tvalues["on_round_trip"], rel=1e-10)


def test_bad_options_are_refused() -> None:
    with pytest.raises(InputError, match="covariance"):
        parse_cov("hc9")
    assert parse_cov("cluster:date,firm") == ("cluster", ("t0", "company"))
    res = CliRunner().invoke(app, ["explain", FORMULA, "--format", "xml"])
    assert res.exit_code != 0


def test_hc3_with_single_observation_categories_is_refused(frame: pl.DataFrame) -> None:
    # Most deal types occur once on the shipped data: HC3 is 0/0 there (statsmodels prints noise)
    with pytest.raises(InputError, match="leverage 1"):
        explain(frame, "car ~ log_amount + C(deal_type)", cov="hc3")
    # ... while a cluster covariance is defined and equals statsmodels'
    res = explain(frame, "car ~ log_amount + on_round_trip + C(deal_type)", cov="cluster:date")
    c = frame.drop_nulls(["car", "log_amount"]).with_columns(pl.col("on_round_trip").cast(pl.Int64)).to_pandas()
    ref = smf.ols("car ~ log_amount + on_round_trip + C(deal_type)", c).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(c["t0"])[0]}, use_t=True
    )
    for n in ref.params.index:
        np.testing.assert_allclose(res.bse[n], ref.bse[n], rtol=1e-8)


def test_explain_regresses_the_cars_of_carousel_study(shipped_db: Path, frame: pl.DataFrame) -> None:
    """The CARs `carousel explain` regresses are `carousel study`'s, firm-event by firm-event: the same
    StudySpec, so 9984.T is estimated on SPY and SPY[-1] there as here (it was on SPY alone before)."""
    res = CliRunner().invoke(app, ["study", "--db", str(shipped_db), "--window=-1,1", "--format", "json"])
    assert res.exit_code == 0, res.output
    study = {(r["ticker"], r["t0"]): (r["car"], r["se"]) for r in json.loads(res.stdout)
             if r["window"] == "[-1,+1]" and r["car"] is not None}
    rows = frame.drop_nulls("car").select("ticker", "t0", "car", "se").iter_rows()
    mine = {(t, str(d)): (c, s) for t, d, c, s in rows}
    assert ("9984.T", "2025-01-22") in mine
    assert mine.keys() == study.keys()
    for key, (car, se) in mine.items():
        assert car == pytest.approx(study[key][0], abs=1e-12), key
        assert se == pytest.approx(study[key][1], abs=1e-12), key


def test_an_unknown_openai_share_is_dropped_and_named(frame: pl.DataFrame) -> None:
    """Review finding 6: a firm linked to OpenAI only by undisclosed amounts has no share; its rows leave
    the fit, named in the notes (they entered as 0 before, as firms with no OpenAI link)."""
    res = explain(frame, "car ~ openai_share", weights="ols", cov="hc3")
    unknown = frame.filter(pl.col("openai_share").is_null() & pl.col("car").is_not_null())["event_id"].to_list()
    assert {"amd-openai-2025-10-06:AMD", "openai-googl-2025-06-10:GOOGL", "openai-avgo-2025-10-13:AVGO"} <= set(unknown)
    dropped = dict(res.fit.dropped_rows)
    for event_id in unknown:
        assert dropped[event_id] == ("openai_share",), event_id
        assert f"{event_id} (openai_share)" in res.summary()
    kept = frame.drop_nulls(["car", "openai_share"]).to_pandas()
    ref = smf.ols("car ~ openai_share", kept).fit(cov_type="HC3", use_t=True)
    assert res.nobs == int(ref.nobs) == frame.height - len(dropped)
    np.testing.assert_allclose(res.params["openai_share"], ref.params["openai_share"], rtol=1e-10)
    np.testing.assert_allclose(res.bse["openai_share"], ref.bse["openai_share"], rtol=1e-8)
    assert json.loads(res.to_json())["dropped"][0] == {"row": res.fit.dropped_rows[0][0],
                                                      "missing": list(res.fit.dropped_rows[0][1])}


def test_first_report_basis_fits_every_firm_event(shipped_db: Path, tmp_path: Path, frame: pl.DataFrame) -> None:
    """Review finding 2, end to end: on the first-report basis the second stage fitted 30 rows (three
    dropped for a missing deal kind: their own deals were not in the ledger of their first-report day);
    it fits the same 33 as the official basis, and agrees with statsmodels."""
    import shutil

    from analysis.spec import DEFAULT_SPEC
    from ledger.load import import_file

    db = tmp_path / "c.duckdb"
    shutil.copy(shipped_db, db)
    with connect(db) as con:
        import_file(con, DATA / "events" / "timing_evidence.csv")
    with connect(db, read_only=True) as con:
        fr = study_frame(con, "-1,1", DEFAULT_SPEC.with_(date_basis="first_report"))
    res = explain(fr, FORMULA, weights="wls", cov="hc3")
    assert res.fit.dropped_by["deal_kind"] == 0 and res.nobs == 33
    moved = fr.join(frame.select("event_id", pl.col("t0").alias("t0_official")), on="event_id").filter(
        pl.col("t0") != pl.col("t0_official"))["event_id"].to_list()
    assert {"amzn-openai-2026-02-27:AMZN", "nvda-openai-2026-02-27:NVDA",
            "anthropic-googl-2025-10-23:GOOGL"} <= set(moved)
    ref = _statsmodels(fr, wls=True, cov="HC3", groups=[])
    for n in ref.params.index:  # type: ignore[attr-defined]
        np.testing.assert_allclose(res.params[n], ref.params[n], rtol=1e-8, atol=1e-12)  # type: ignore[attr-defined]
        np.testing.assert_allclose(res.bse[n], ref.bse[n], rtol=1e-8, atol=1e-12)  # type: ignore[attr-defined]
