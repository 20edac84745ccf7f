"""The batch engine's chunked, event-days-only panel: the same numbers as a dense full-grid computation.

The engine estimates firm-events in chunks and keeps per-day arrays only on the event days; the
estimation-window residuals are recomputed from the return grid when a test asks for them. Here a
synthetic panel whose same-ticker events have overlapping windows that straddle chunk edges is fitted
with several chunk sizes and compared with (a) each other, bit for bit, and (b) a dense reference that
holds every firm-event's (L,) row of returns, residuals and ARs at once (the layout before the change)
and computes OLS, CARs, standard errors and the test battery from it, to 1e-12.
"""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest

from analysis.engine import EventStudy
from analysis.panel import ARPanel
from analysis.results import EventStudyResult
from analysis.significance import battery
from analysis.window import DEFAULT_WINDOWS, EventWindow

EST = (-250, -11)
N_DAYS = 720


Data = tuple[pl.DataFrame, pl.DataFrame, np.ndarray, np.ndarray, list[str], np.ndarray]


def _panel_data(seed: int = 11) -> Data:
    """(returns, events, market (T,), dense firm returns (tickers, T) NaN where missing, tickers, dates)."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2012-01-02"), np.datetime64("2012-01-02") + 2 * N_DAYS)
    dates = dates[np.is_busday(dates)][:N_DAYS]
    tickers = [f"T{i}" for i in range(6)]
    m = rng.normal(0.0004, 0.011, N_DAYS)
    beta = rng.uniform(0.5, 1.6, len(tickers))
    r = 0.0003 + beta[:, None] * m[None, :] + rng.normal(0.0, 0.02, (len(tickers), N_DAYS))
    r[rng.random(r.shape) < 0.03] = np.nan  # scattered gaps, some inside event windows
    r[2, 300:420] = np.nan  # T2: a long gap, so one of its events lacks estimation data
    firm = pl.DataFrame(
        {"ticker": np.repeat(tickers, N_DAYS), "date": np.tile(dates, len(tickers)), "ret": r.ravel()}
    ).filter(pl.col("ret").is_not_nan())
    ret = pl.concat([pl.DataFrame({"ticker": ["MKT"] * N_DAYS, "date": dates, "ret": m}), firm])
    # Each ticker gets events 3-9 sessions apart (windows overlap); ids interleave the tickers so that
    # consecutive ids of one ticker land in different chunks for chunk sizes 5 and 7.
    rows = []
    for k, t0 in enumerate(range(300, 700, 7)):
        for j, tic in enumerate(tickers):
            rows.append((f"e{k:03d}{j}", tic, t0 + (j * 3 + k) % 5))
    ids, tics, pos = zip(*rows, strict=True)
    events = pl.DataFrame({"event_id": ids, "ticker": tics, "t0": dates[np.array(pos)]})
    return (
        ret.with_columns(pl.col("date").cast(pl.Date)),
        events.with_columns(pl.col("t0").cast(pl.Date)),
        m,
        r,
        tickers,
        dates,
    )


@pytest.fixture(scope="module")
def data() -> Data:
    return _panel_data()


def _fit(ret: pl.DataFrame, events: pl.DataFrame, chunk: int, *, mask: bool) -> EventStudyResult:
    return EventStudy(
        ret, events, benchmarks=("MKT",), estimation=EST, chunk_size=chunk, mask_other_events=mask,
        overlap="keep",
    ).fit()


@pytest.mark.parametrize("mask", [True, False])
def test_chunk_size_does_not_change_a_bit(data: Data, mask: bool) -> None:
    ret, events, *_ = data
    ref = _fit(ret, events, 100_000, mask=mask)
    # some excluded (T2's gap; with masking, events every 7 sessions leave few estimation days)
    assert 50 < ref.nobs < events.height
    for chunk in (1, 5, 7):
        got = _fit(ret, events, chunk, mask=mask)
        p, q = got.panel, ref.panel
        assert p.keys.equals(q.keys)
        for name in ("ar", "pe_factor", "sigma", "x_event", "xtx_inv"):
            np.testing.assert_array_equal(getattr(p, name), getattr(q, name))
        np.testing.assert_array_equal(p.estimation_residuals(), q.estimation_residuals())
        assert got.car.equals(ref.car) and got.excluded.equals(ref.excluded)
        for w in ((-1, 1), (0, 10)):
            assert got.tests(w).to_frame().equals(ref.tests(w).to_frame())


def _dense_reference(
    data: Data, ids: list[str]
) -> tuple[ARPanel, dict[tuple[str, str], tuple[float, float]]]:
    """The full-grid layout: one (L,) row per firm-event of returns, residuals/ARs and prediction-error
    factors, OLS by normal equations per row, no chunks; ``ids`` are the engine's estimated firm-events
    (so exclusions are not re-implemented here). Returns (panel, {(id, window label): (car, se)})."""
    lo, hi = EST[0], max(b for _, b in DEFAULT_WINDOWS)
    rel = np.arange(lo, hi + 1)
    is_est = rel <= EST[1]
    _, events, m, r, tickers, dates = data
    ev = events.filter(pl.col("event_id").is_in(ids)).sort("event_id")
    n, n_l = ev.height, rel.shape[0]
    ar = np.full((n, n_l), np.nan)
    pe = np.full((n, n_l), np.nan)
    sigma, n_est = np.empty(n), np.empty(n, dtype=np.int64)
    a_all, x_ev = np.empty((n, 2, 2)), np.empty((n, int((~is_est).sum()), 2))
    cars: dict[tuple[str, str], tuple[float, float]] = {}
    for i, (eid, tic, t0) in enumerate(ev.select("event_id", "ticker", "t0").iter_rows()):
        i0 = int(np.searchsorted(dates, np.datetime64(t0, "D")))
        y, x = r[tickers.index(tic), i0 + rel], m[i0 + rel]
        X = np.column_stack([np.ones(n_l), x])
        use = is_est & np.isfinite(y)
        a = np.linalg.inv(X[use].T @ X[use])
        b = a @ (X[use].T @ y[use])
        e = y - X @ b
        s2 = float(e[use] @ e[use]) / (use.sum() - 2)
        ar[i] = np.where(np.isfinite(y) & (use | ~is_est), e, np.nan)
        pe[i, ~is_est] = 1.0 + np.einsum("lk,kj,lj->l", X[~is_est], a, X[~is_est])
        sigma[i], n_est[i], a_all[i], x_ev[i] = np.sqrt(s2), use.sum(), a, X[~is_est]
        for w0, w1 in DEFAULT_WINDOWS:
            c = (rel >= w0) & (rel <= w1)
            s = X[c].sum(axis=0)
            full = bool(np.isfinite(ar[i, c]).all())
            cars[(eid, EventWindow(w0, w1).label)] = (
                float(ar[i, c].sum()) if full else np.nan,
                float(np.sqrt(s2 * (c.sum() + s @ a @ s))) if full else np.nan,
            )
    panel = ARPanel.from_grid(
        keys=ev, rel_days=rel, is_est=is_est, ar=ar, pe_factor=pe, sigma=sigma, n_est=n_est,
        n_params=2, x_event=x_ev, xtx_inv=a_all,
    )
    return panel, cars


def test_event_days_panel_matches_the_dense_full_grid_reference(data: Data) -> None:
    ret, events, *_ = data
    res = _fit(ret, events, 7, mask=False)
    ids = res.panel.keys["event_id"].to_list()
    assert ids == sorted(ids)
    ref, cars = _dense_reference(data, ids)
    p = res.panel
    np.testing.assert_allclose(p.full_ar(), ref.full_ar(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.pe_factor, ref.pe_factor, rtol=1e-12)
    np.testing.assert_allclose(p.sigma, ref.sigma, rtol=1e-12)
    got = res.car.select("event_id", "window", "car", "se").fill_null(np.nan).rows()
    want = np.array([cars[(e, w)] for e, w, _, _ in got])
    have = np.array([(c, s) for _, _, c, s in got])
    assert np.isnan(have[:, 0]).sum() > 10  # gaps blank some windows, in both
    np.testing.assert_array_equal(np.isnan(have), np.isnan(want))
    np.testing.assert_allclose(have[:, 0], want[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(have[:, 1], want[:, 1], rtol=1e-12)
    for w in ((-1, 1), (0, 0), (0, 10), (-5, 5)):
        a, b = battery(p, w).to_frame(), battery(ref, w).to_frame()
        assert a.select("test", "window", "n").equals(b.select("test", "window", "n"))
        sa, sb = a["statistic"].to_numpy(), b["statistic"].to_numpy()
        assert np.isfinite(sa).all()
        np.testing.assert_allclose(sa, sb, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a["p_value"].to_numpy(), b["p_value"].to_numpy(), rtol=1e-10, atol=1e-14)


def test_a_pickled_result_carries_its_estimation_residuals(data: Data) -> None:
    ret, events, *_ = data
    res = _fit(ret, events, 7, mask=True)
    assert not res.panel.estimation.held
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.panel.estimation_residuals(), res.panel.estimation_residuals())
    assert back.tests((-1, 1)).to_frame().equals(res.tests((-1, 1)).to_frame())
