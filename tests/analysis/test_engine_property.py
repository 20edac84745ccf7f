"""Property test: batch engine == per-event statsmodels == event-dummy regression on random panels
with missing returns, missing benchmark days, several events per firm and both mask modes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.conventions import ESTUDY2, TEXTBOOK
from analysis.engine import EventStudy


def _panel(
    seed: int, n_firms: int, n_events: int, p_missing: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    n_days = 160
    start = np.datetime64("2015-01-05")
    days = np.arange(start, start + 260)
    all_days = days[np.is_busday(days)]
    days = all_days[:n_days]
    m = rng.normal(0, 0.01, n_days)
    m2 = rng.normal(0, 0.015, n_days)
    r = 0.8 * m[None, :] + 0.3 * m2[None, :] + rng.normal(0, 0.02, (n_firms, n_days))
    r[rng.random(r.shape) < p_missing] = np.nan
    keep_m2 = rng.random(n_days) > p_missing / 2  # the second benchmark misses some days too
    frames = [
        pl.DataFrame({"ticker": "M", "date": days, "ret": m}),
        pl.DataFrame({"ticker": "M2", "date": days[keep_m2], "ret": m2[keep_m2]}),
    ]
    for i in range(n_firms):
        ok = ~np.isnan(r[i])
        frames.append(pl.DataFrame({"ticker": f"F{i}", "date": days[ok], "ret": r[i, ok]}))
    ret = pl.concat(frames).with_columns(pl.col("date").cast(pl.Date))
    ev = pl.DataFrame(
        {
            "event_id": [f"e{j:03d}" for j in range(n_events)],
            "deal_id": [f"d{j}" for j in range(n_events)],
            "ticker": [f"F{int(t)}" for t in rng.integers(0, n_firms, n_events)],
            # some t0 fall after the data ends (no_event_returns) or leave too few estimation days
            "t0": [
                all_days[int(i)].astype(dt.date) for i in rng.integers(40, n_days + 5, n_events)
            ],
        }
    )
    return ret, ev


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_firms=st.integers(1, 4),
    n_events=st.integers(1, 8),
    p_missing=st.sampled_from([0.0, 0.05, 0.3]),
    model=st.sampled_from(["market", "multifactor", "mean"]),
    mask=st.booleans(),
    estudy2=st.booleans(),
)
def test_three_routes_agree(
    seed: int, n_firms: int, n_events: int, p_missing: float, model: str, mask: bool, estudy2: bool
) -> None:
    ret, ev = _panel(seed, n_firms, n_events, p_missing)
    study = EventStudy(
        ret,
        ev,
        model=model,
        benchmarks=("M", "M2") if model == "multifactor" else ("M",),
        estimation=(-60, -6),
        windows=((0, 0), (-2, 2), (0, 4)),
        min_obs=20,
        mask_other_events=mask,
        conventions=ESTUDY2 if estudy2 else TEXTBOOK,
    )
    a = study.fit("batch")
    for other in (study.fit("statsmodels"), study.fit("event_dummy")):
        assert a.excluded.equals(other.excluded)
        assert a.panel.keys.equals(other.panel.keys)
        for name in ("params", "bse", "sigma"):
            fa, fb = getattr(a, name), getattr(other, name)
            for c in fa.columns:
                if fa[c].dtype == pl.Float64:
                    np.testing.assert_allclose(
                        fa[c].to_numpy(), fb[c].to_numpy(), rtol=1e-8, atol=1e-12
                    )
        for c in ("car", "se", "t", "p", "bhar"):
            np.testing.assert_allclose(
                a.car[c].to_numpy(), other.car[c].to_numpy(), rtol=1e-8, atol=1e-12
            )
        np.testing.assert_allclose(a.panel.ar, other.panel.ar, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(
            a.panel.estimation_residuals(), other.panel.estimation_residuals(), rtol=1e-8, atol=1e-12
        )
        np.testing.assert_allclose(a.panel.pe_factor, other.panel.pe_factor, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(a.panel.xtx_inv, other.panel.xtx_inv, rtol=1e-7, atol=1e-6)
