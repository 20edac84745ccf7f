"""Second-stage cross-sectional regression: statsmodels and wildboottest as independent routes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from formulaic import model_matrix

from analysis.crosssection import (
    bootstrap_pvalue,
    bootstrap_weights,
    fit_crosssection,
    wild_cluster_bootstrap_t,
)
from core.errors import InputError

DEALS = Path(__file__).resolve().parents[2] / "data" / "events" / "deals.csv"
FORMULA = "car ~ log_amount + on_round_trip + C(kind)"


def _kind(deal_type: str) -> str:
    if "equity" in deal_type or "stake" in deal_type or "warrant" in deal_type:
        return "equity"
    if "chip" in deal_type:
        return "chips"
    if "compute" in deal_type or "cloud" in deal_type or "capacity" in deal_type:
        return "compute"
    return "other"


@pytest.fixture(scope="module")
def firm_events() -> pl.DataFrame:
    """A frame shaped like the real one: the shipped deals exploded to firm-events (their real dates,
    tickers, kinds and amounts, undisclosed amounts null), with seeded CARs that share a shock per
    announcement date, heteroskedastic errors and a CAR standard error per firm-event."""
    deals = pl.read_csv(DEALS, try_parse_dates=True).filter(
        pl.col("counterparty_tickers").is_not_null() & pl.col("announced_date").is_not_null()
    )
    fe = (
        deals.with_columns(pl.col("counterparty_tickers").str.split(";").alias("ticker"))
        .explode("ticker")
        .select(
            pl.col("announced_date").alias("t0"),
            "ticker",
            pl.col("deal_type").map_elements(_kind, return_dtype=pl.String).alias("kind"),
            pl.col("amount_usd_bn").log().alias("log_amount"),
            (pl.col("payer").str.contains("OpenAI") | pl.col("payee").str.contains("OpenAI")).alias(
                "on_round_trip"
            ),
        )
    )
    rng = np.random.default_rng(20260130)
    n = fe.height
    codes = fe["t0"].rank("dense").cast(pl.Int64).to_numpy() - 1
    day_shock = rng.normal(0.0, 0.012, codes.max() + 1)[codes]
    se = rng.uniform(0.008, 0.05, n)
    la = fe["log_amount"].fill_null(0.0).to_numpy()
    car = 0.004 * la + 0.01 * fe["on_round_trip"].to_numpy() + day_shock + rng.normal(0.0, 1.0, n) * se
    return fe.with_columns(pl.Series("car", car), pl.Series("se", se))


def _statsmodels(frame: pl.DataFrame, *, wls: bool, cov_type: str, groups: list[str] | None):
    c = frame.drop_nulls(["car", "log_amount"]).to_pandas()
    mm = model_matrix(FORMULA, c)
    model = sm.WLS(mm.lhs, mm.rhs, weights=1.0 / c["se"] ** 2) if wls else sm.OLS(mm.lhs, mm.rhs)
    kw = None
    if groups:
        codes = [pd.factorize(c[g])[0] for g in groups]
        kw = {"groups": codes[0] if len(codes) == 1 else np.column_stack(codes)}
    return model.fit(cov_type=cov_type, cov_kwds=kw, use_t=True)


def test_frame_is_shaped_like_the_real_one(firm_events: pl.DataFrame) -> None:
    assert 45 <= firm_events.height <= 70
    assert firm_events["log_amount"].null_count() > 5
    assert firm_events["kind"].n_unique() >= 3
    assert firm_events["on_round_trip"].dtype == pl.Boolean


@pytest.mark.parametrize("wls", [False, True])
@pytest.mark.parametrize(
    ("cov_type", "groups"),
    [
        ("nonrobust", None),
        ("HC0", None),
        ("HC1", None),
        ("HC2", None),
        ("HC3", None),
        ("cluster", ["t0"]),
        ("cluster", ["t0", "ticker"]),
    ],
)
def test_agrees_with_statsmodels(firm_events: pl.DataFrame, wls: bool, cov_type: str, groups) -> None:
    res = fit_crosssection(
        firm_events, FORMULA, se="se" if wls else None, cov_type=cov_type, cluster=groups
    )
    ref = _statsmodels(firm_events, wls=wls, cov_type=cov_type, groups=groups)
    assert list(res.params) == list(ref.params.index)
    np.testing.assert_allclose(list(res.params.values()), ref.params.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(list(res.bse.values()), ref.bse.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(list(res.tvalues.values()), ref.tvalues.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(list(res.pvalues.values()), ref.pvalues.to_numpy(), rtol=1e-8, atol=1e-12)
    ci = res.conf_int()
    np.testing.assert_allclose(ci["lower"].to_numpy(), ref.conf_int()[0].to_numpy(), atol=1e-8)
    np.testing.assert_allclose(ci["upper"].to_numpy(), ref.conf_int()[1].to_numpy(), atol=1e-8)
    assert res.nobs == int(ref.nobs)
    assert res.df_resid == ref.df_resid
    assert res.rsquared == pytest.approx(ref.rsquared, abs=1e-10)
    assert res.rsquared_adj == pytest.approx(ref.rsquared_adj, abs=1e-10)
    # statsmodels refers clustered t statistics to t(G-1), G the smaller number of clusters
    expected_df = ref.df_resid_inference if cov_type == "cluster" else ref.df_resid
    assert res.df_inference == expected_df


def test_missing_rows_are_dropped_and_counted(firm_events: pl.DataFrame) -> None:
    frame = firm_events.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("car")).alias("car")
    )
    res = fit_crosssection(frame, FORMULA)
    n_amount = int(frame["log_amount"].is_null().sum())
    both = bool(frame["log_amount"][3] is None)
    assert res.n_dropped == n_amount + (0 if both else 1)
    assert res.nobs == frame.height - res.n_dropped
    assert res.dropped_by["log_amount"] == n_amount
    assert res.dropped_by["car"] == 1
    assert f"{res.n_dropped} row(s) dropped for missing values" in res.summary()


def test_decimal_amounts_are_numbers_and_functions_apply(firm_events: pl.DataFrame) -> None:
    """The ledger's amount_usd is Decimal(38,2): it must enter as a number, np.log must apply."""
    frame = firm_events.with_columns(
        (pl.col("log_amount").exp() * 1e9).round(2).cast(pl.Decimal(38, 2)).alias("amount_usd")
    )
    res = fit_crosssection(frame, "car ~ np.log(amount_usd) + on_round_trip + C(kind)")
    ref = fit_crosssection(firm_events, FORMULA)
    assert res.nobs == ref.nobs
    # log(1e9 x) = log(x) + const: same slope up to the rounding to cents
    assert res.params["np.log(amount_usd)"] == pytest.approx(ref.params["log_amount"], rel=1e-9)
    assert res.bse["np.log(amount_usd)"] == pytest.approx(ref.bse["log_amount"], rel=1e-8)


def test_results_frame_and_latex(firm_events: pl.DataFrame) -> None:
    res = fit_crosssection(firm_events, FORMULA, cov_type="cluster", cluster="t0")
    f = res.to_frame()
    assert f.columns == ["term", "coef", "se", "t", "p", "lower", "upper"]
    j = f["term"].to_list().index("on_round_trip")
    assert f["coef"][j] == res.params["on_round_trip"]
    assert f["t"][j] == pytest.approx(res.params["on_round_trip"] / res.bse["on_round_trip"], rel=1e-12)
    tex = res.to_latex(caption="CARs on deal characteristics")
    assert r"on\_round\_trip" in tex and r"\toprule" in tex
    assert "cluster-robust CRV1, one-way, by t0" in res.summary()


def test_bad_input_names_the_problem(firm_events: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="exposure"):
        fit_crosssection(firm_events, "car ~ exposure")
    with pytest.raises(InputError, match="cluster"):
        fit_crosssection(firm_events, FORMULA, cov_type="cluster")
    with pytest.raises(InputError, match="positive"):
        fit_crosssection(firm_events.with_columns(pl.lit(0.0).alias("se")), FORMULA, se="se")
    with pytest.raises(InputError, match="rank deficient"):
        fit_crosssection(firm_events.with_columns(pl.lit(1.0).alias("one")), "car ~ one + log_amount")


# ------------------------------------------------------------------------ wild cluster bootstrap


def _wildboottest_cl(X, y, g, j, v):
    from wildboottest.wildboottest import WildboottestCL

    R = np.zeros(X.shape[1])
    R[j] = 1.0
    wb = WildboottestCL(X=X, Y=y, cluster=g, R=R, B=v.shape[1], seed=1, parallel=False)
    wb.get_scores(bootstrap_type="11", impose_null=True)
    wb.v, wb.B = v, v.shape[1]
    wb.get_numer()
    wb.get_denom()
    wb.get_tboot()
    wb.get_vcov()
    wb.get_tstat()
    wb.get_pvalue()
    return wb


def test_wild_bootstrap_draws_equal_wildboottest_on_the_same_weights(firm_events: pl.DataFrame) -> None:
    """Same data and the same weight matrix: every bootstrap t agrees with wildboottest's."""
    res = fit_crosssection(firm_events, FORMULA, se="se", cov_type="cluster", cluster="t0")
    fa, g = res.fit_arrays, res.cluster_values["t0"]
    j = res.table.names.index("on_round_trip")
    v, _ = bootstrap_weights("webb", len(np.unique(g)), 2000, np.random.default_rng(3))
    t, t_boot = wild_cluster_bootstrap_t(fa.y, fa.X, g, j, v)
    wb = _wildboottest_cl(fa.X, fa.y, pd.factorize(g)[0], j, v)
    assert t == pytest.approx(float(np.ravel(wb.t_stat)[0]), rel=1e-10)
    np.testing.assert_allclose(t_boot, wb.t_boot, rtol=1e-9, atol=1e-12)
    # the t statistic is the statsmodels one-way CRV1 t
    assert t == pytest.approx(res.tvalues["on_round_trip"], rel=1e-10)


def test_wild_bootstrap_full_enumeration_agrees_with_wildboottest(firm_events: pl.DataFrame) -> None:
    """Few clusters (kinds: G=4): both enumerate all 2^G Rademacher draws, so p-values are exact."""
    res = fit_crosssection(
        firm_events, "car ~ log_amount + on_round_trip", cov_type="cluster", cluster="kind"
    )
    boot = res.wild_bootstrap("on_round_trip", weights="rademacher", reps=999)
    assert boot.enumerated and boot.reps == 2**4
    fa, g = res.fit_arrays, res.cluster_values["kind"]
    from wildboottest.wildboottest import wildboottest

    exog = pd.DataFrame(fa.X, columns=list(res.table.names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = wildboottest(
            sm.OLS(fa.y, exog), B=999, cluster=pd.factorize(g)[0], param="on_round_trip", show=False, parallel=False
        )
    # wildboottest counts strictly larger |t*|; the identity draws v = +-1 give |t*| = |t| exactly,
    # which it counts or not depending on the last bit. Ours counts them: p differs by at most 2/16.
    ours = boot.pvalue
    theirs = float(ref["p-value"].iloc[0])
    n_ties = int(np.sum(np.isclose(np.abs(boot.t_boot), abs(boot.tstat), rtol=1e-9, atol=0)))
    assert n_ties >= 2
    strict = float(np.mean(np.abs(boot.t_boot) > abs(boot.tstat) * (1 + 1e-9)))
    assert strict <= theirs <= ours
    assert ours == pytest.approx(strict + n_ties / 16, abs=1e-15)
    assert float(ref["statistic"].iloc[0]) == pytest.approx(boot.tstat, rel=1e-10)


@pytest.mark.parametrize("weights", ["rademacher", "webb"])
def test_wild_bootstrap_pvalue_agrees_with_wildboottest_within_monte_carlo(
    firm_events: pl.DataFrame, weights: str
) -> None:
    """Independent draws (ours seeded, wildboottest's seeded differently): p within 4 MC s.e.; with
    Rademacher and G clusters where 2^G <= reps, both enumerate and must agree exactly."""
    res = fit_crosssection(firm_events, FORMULA, se="se", cov_type="cluster", cluster="t0")
    reps = 49_999
    boot = res.wild_bootstrap("on_round_trip", weights=weights, reps=reps, seed=11)
    fa, g = res.fit_arrays, res.cluster_values["t0"]
    from wildboottest.wildboottest import wildboottest

    exog = pd.DataFrame(fa.X, columns=list(res.table.names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = wildboottest(
            sm.OLS(fa.y, exog),
            B=reps,
            cluster=pd.factorize(g)[0],
            param="on_round_trip",
            weights_type=weights,
            seed=12,
            show=False,
            parallel=False,
        )
    p_ref = float(ref["p-value"].iloc[0])
    p = boot.pvalue
    mc_se = np.sqrt(2 * max(p * (1 - p), 1e-4) / reps)
    assert boot.n_clusters > 16  # 2^G > reps: both sample
    assert abs(p - p_ref) < 4 * mc_se, (p, p_ref, mc_se)
    # and the test is not degenerate: the cluster-robust t is far from 0 here
    assert abs(boot.tstat) > 1.0


def test_bootstrap_is_reproducible_from_its_seed(firm_events: pl.DataFrame) -> None:
    res = fit_crosssection(firm_events, FORMULA, cov_type="cluster", cluster="t0")
    a = res.wild_bootstrap("on_round_trip", reps=999, seed=4)
    b = res.wild_bootstrap("on_round_trip", reps=999, seed=4)
    c = res.wild_bootstrap("on_round_trip", reps=999, seed=5)
    np.testing.assert_array_equal(a.t_boot, b.t_boot)
    assert not np.array_equal(a.t_boot, c.t_boot)
    assert a.pvalue == bootstrap_pvalue(a.tstat, a.t_boot)


def _size_simulation(n_sims: int, n_clusters: int, per: int, seed: int) -> tuple[float, float]:
    """Rejection rates at 5% of the CRV1 t(G-1) test and the WCR (Webb) bootstrap under H0, with a
    cluster-level regressor and cluster-correlated errors (the case where CRV1 over-rejects)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), per)
    rej_t = rej_b = 0
    for _ in range(n_sims):
        x = rng.lognormal(0.0, 1.0, n_clusters)[g]  # skewed, cluster-level: few effective obs
        y = rng.normal(0.0, 1.0, n_clusters)[g] + rng.normal(0.0, 1.0, g.size)
        frame = pl.DataFrame({"y": y, "x": x, "g": g})
        res = fit_crosssection(frame, "y ~ x", cov_type="cluster", cluster="g")
        rej_t += res.pvalues["x"] < 0.05
        rej_b += res.wild_bootstrap("x", weights="webb", reps=399, seed=rng).pvalue < 0.05
    return rej_t / n_sims, rej_b / n_sims


@pytest.mark.slow
def test_wild_bootstrap_holds_its_size_where_crv1_over_rejects() -> None:
    """Small version of bench/bench_crosssection.py (2,000 replications there)."""
    p_t, p_boot = _size_simulation(n_sims=300, n_clusters=8, per=6, seed=2026)
    # 300 replications: MC s.e. of a 5% rate is 1.26 points
    assert p_t > 0.08
    assert abs(p_boot - 0.05) < 0.035
    assert p_boot < p_t


def test_dropped_rows_are_named_with_what_they_miss(firm_events: pl.DataFrame) -> None:
    frame = firm_events.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("car")).alias("car")
    )
    res = fit_crosssection(frame, FORMULA)
    expected = []
    for i, r in enumerate(frame.iter_rows(named=True)):  # by hand, row by row
        miss = tuple(c for c in ("car", "kind", "log_amount", "on_round_trip")
                     if r[c] is None or (isinstance(r[c], float) and np.isnan(r[c])))
        if miss:
            expected.append((f"row {i + 1}", miss))
    assert list(res.dropped_rows) == expected and len(expected) == res.n_dropped > 1
    assert ("row 4", ("car",) if frame["log_amount"][3] is not None else ("car", "log_amount")) in expected
    assert "; ".join(f"{r} ({', '.join(m)})" for r, m in expected) in res.summary()
    named = fit_crosssection(frame.with_row_index("event_id").with_columns(pl.format("fe-{}", "event_id").alias("event_id")),
                             FORMULA)
    assert [r for r, _ in named.dropped_rows] == [f"fe-{int(r.split()[1]) - 1}" for r, _ in expected]
