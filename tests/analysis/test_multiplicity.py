"""Holm and Benjamini-Hochberg against statsmodels.stats.multitest.multipletests (to 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from analysis.multiplicity import adjust_pvalues, benjamini_hochberg, holm
from core.errors import InputError

METHODS = ["holm", "fdr_bh"]


def reference(p: np.ndarray, method: str) -> np.ndarray:
    """statsmodels on the non-missing entries, NaN put back where it was."""
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


@pytest.mark.parametrize("method", METHODS)
def test_random_families_equal_statsmodels(method: str) -> None:
    rng = np.random.default_rng(15)
    for n in (1, 2, 7, 50, 333):
        p = rng.uniform(0, 1, n) ** 3  # many small values
        np.testing.assert_allclose(adjust_pvalues(p, method), reference(p, method), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_ties_nan_zero_and_one(method: str) -> None:
    p = np.array([0.01, np.nan, 0.01, 0.04, 0.04, 0.0, 1.0, np.nan, 0.03, 0.01, 0.2])
    got = adjust_pvalues(p, method)
    np.testing.assert_allclose(got, reference(p, method), rtol=0, atol=1e-12)
    assert np.isnan(got[[1, 7]]).all()
    assert got[0] == got[2] == got[9]  # ties adjust alike
    # hand values: m = 9 non-missing tests
    if method == "holm":
        assert got[5] == 0.0 and got[0] == pytest.approx(0.01 * 8, abs=1e-15)
    else:
        assert got[0] == pytest.approx(0.01 * 9 / 4, abs=1e-15)


def test_all_nan_and_empty() -> None:
    assert np.isnan(holm(np.array([np.nan, np.nan]))).all()
    assert benjamini_hochberg(np.array([])).shape == (0,)


@pytest.mark.parametrize("method", METHODS)
def test_two_dimensional_families_along_axis(method: str) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, (4, 9))
    p[1, [2, 5]] = np.nan
    p[2, 3] = p[2, 4]
    got_rows = adjust_pvalues(p, method)
    got_cols = adjust_pvalues(p.T, method, axis=0)
    for i in range(4):
        np.testing.assert_allclose(got_rows[i], reference(p[i], method), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got_cols, got_rows.T)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([0.0, 0.01, 0.05, 0.5, 1.0, float("nan")]),
                          st.floats(0, 1)), min_size=1, max_size=40),
       st.sampled_from(METHODS))
def test_property_equals_statsmodels(values: list[float], method: str) -> None:
    p = np.array(values)
    np.testing.assert_allclose(adjust_pvalues(p, method), reference(p, method), rtol=0, atol=1e-12)


def test_bad_input_named() -> None:
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        holm(np.array([0.5, 1.2]))
    with pytest.raises(InputError, match="unknown method"):
        adjust_pvalues(np.array([0.5]), "bonferroni")  # type: ignore[arg-type]


def test_car_frame_families_per_window_rows_in_place() -> None:
    """adjusted_car_pvalues: one family per window, rows kept in their order, a null p left out."""
    import polars as pl

    from analysis.multiplicity import adjusted_car_pvalues

    rng = np.random.default_rng(14)
    n = 61
    windows = rng.choice(["[0,0]", "[-1,+1]", "[-5,+5]"], n)
    p = rng.uniform(0, 1, n) ** 4
    p[[3, 17, 40]] = np.nan
    car = pl.DataFrame({"event_id": [f"e{i}" for i in range(n)], "window": windows,
                        "p": pl.Series(p).fill_nan(None)})
    got = adjusted_car_pvalues(car)
    assert got["event_id"].to_list() == car["event_id"].to_list()
    for method, col in (("holm", "p_holm"), ("fdr_bh", "p_bh")):
        want = np.full(n, np.nan)
        for w in np.unique(windows):
            rows = np.flatnonzero(windows == w)
            want[rows] = reference(p[rows], method)
        np.testing.assert_allclose(got[col].fill_null(np.nan).to_numpy(), want, rtol=0, atol=1e-12)
    assert got.filter(pl.col("p").is_null())["p_holm"].null_count() == 3
    # a family's values move when another firm-event joins it, and only that window's
    more = adjusted_car_pvalues(pl.concat([car, pl.DataFrame({"event_id": ["x"], "window": ["[0,0]"], "p": [0.5]})]))
    same = more.head(n)
    assert (same.filter(pl.col("window") == "[-1,+1]")["p_holm"].equals(got.filter(pl.col("window") == "[-1,+1]")["p_holm"]))
    assert not same.filter(pl.col("window") == "[0,0]")["p_holm"].equals(got.filter(pl.col("window") == "[0,0]")["p_holm"])
    with pytest.raises(InputError):
        adjusted_car_pvalues(car.drop("window"))
