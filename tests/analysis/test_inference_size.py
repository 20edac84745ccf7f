"""Size of the joint-inference tests under simulated nulls (reduced size; full size in bench/).

Bounds: the central 99.9% binomial range of the number of rejections of a test whose true size is 5%,
so a correct test fails a check with probability 1e-3 (the seeds are fixed, so the outcome is too).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import size_simulation as S


def assert_size(pvalues: np.ndarray, label: str) -> None:
    n = pvalues.size
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, 0.05)
    k = int(np.sum(pvalues <= 0.05))
    assert lo <= k <= hi, f"{label}: {k}/{n} rejections at 5%, outside [{lo:.0f}, {hi:.0f}]"


@pytest.mark.slow
def test_calendar_time_size() -> None:
    assert_size(S.calendar_time_null_pvalues(600, np.random.default_rng(2015)), "calendar time")


@pytest.mark.slow
def test_hein_westfall_bootstrap_size() -> None:
    p = S.hein_westfall_null_pvalues(400, np.random.default_rng(2004), n_boot=199)
    for j, h in enumerate(("all_zero", "sum_zero", "equal")):
        assert_size(p["boot"][:, j], f"Hein-Westfall {h}")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bootstrap", "sign_flip"])
def test_caar_resampling_size(method: str) -> None:
    assert_size(S.caar_bootstrap_null_pvalues(1000, np.random.default_rng(1993), method=method),
                f"CAAR {method}")


def test_rejection_summary_interval_equals_clopper_pearson() -> None:
    p = np.r_[np.full(7, 0.01), np.full(193, 0.5)]
    r = S.rejection_summary(p)
    assert r.rate == 7 / 200
    ref = stats.binomtest(7, 200).proportion_ci(method="exact")
    assert (r.low, r.high) == (pytest.approx(ref.low, rel=1e-10), pytest.approx(ref.high, rel=1e-10))
