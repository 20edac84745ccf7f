"""What a normal-return model is to the engine: its design, fit, prediction and prediction-error variance.

Every model is written in one form so that the batch engine can treat N firm-events at once::

    y_model = r - offset            (offset: rf for FF3, the benchmark for market-adjusted, else 0)
    y_model = X b + e               (X as k regressor planes of shape (N, L); k = 0 is allowed)
    expected raw return = offset + X b,   AR = r - expected

A model subclass says which grid series it reads (:meth:`NormalReturnModel.series`), how they become
regressor planes and an offset (:meth:`design`), and how it is fitted. :class:`LinearModel` is the
OLS family (mean, market, multifactor, FF3): they differ only in design. A model with another
estimator (no parameters, GARCH errors) overrides :meth:`fit`, :meth:`fit_one` and the variance
methods. The engine calls only these methods; it never looks at a model's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.prediction_error import Plane, ar_variance_factor, car_variance_factor

_LAGGED = re.compile(r"^(?P<ticker>.+)\[(?P<lag>[+-]?\d{1,3})\]$")


def parse_benchmark(name: str) -> tuple[str, int]:
    """``'SPY'`` -> ('SPY', 0); ``'SPY[-1]'`` -> ('SPY', -1): the ticker and its lag in grid days."""
    m = _LAGGED.match(name)
    if m is None:
        return name, 0
    return m["ticker"], int(m["lag"])


def benchmark_tickers(benchmarks: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The distinct tickers behind ``benchmarks`` (lags removed), in first-seen order."""
    return tuple(dict.fromkeys(parse_benchmark(b)[0] for b in benchmarks))


def lagged(series: np.ndarray, lag: int) -> np.ndarray:
    """``series`` shifted by ``lag`` grid days (negative: earlier days), NaN where no day exists."""
    out = np.full(series.shape, np.nan)
    if lag == 0:
        out[:] = series
    elif lag < 0 and -lag < series.shape[0]:
        out[-lag:] = series[:lag]
    elif lag > 0 and lag < series.shape[0]:
        out[:-lag] = series[lag:]
    return out


def stack(planes: list[Plane], shape: tuple[int, int]) -> np.ndarray:
    """The (N, L, k) design array of ``planes`` (ones for the intercept)."""
    if not planes:
        return np.empty((*shape, 0))
    return np.stack([np.ones(shape) if p is None else p for p in planes], axis=2)


# ----------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class BatchFit:
    """Estimates of N firm-events (rows flagged ``singular`` are placeholders to be dropped)."""

    b: np.ndarray  # (N, k)
    a: np.ndarray  # (N, k, k): (X'X)^-1, the matrix of the prediction-error variance
    sigma2: np.ndarray  # (N,) residual variance with the convention's ddof
    bse: np.ndarray  # (N, k)
    fitted: np.ndarray  # (N, L) X b on every day (NaN where a regressor is missing)
    singular: np.ndarray  # (N,) bool: X'X not invertible (collinear regressors)


@dataclass(frozen=True)
class RowFit:
    """One firm-event fitted by the reference (statsmodels) route."""

    b: np.ndarray  # (k,)
    a: np.ndarray  # (k, k)
    ssr: float  # sum of squared residuals around the model (demeaned for k = 0)
    resid: np.ndarray  # residuals on the estimation days
    predict: Callable[[np.ndarray], np.ndarray]  # regressor rows (m, k) -> fitted values (m,)


def moments(
    planes: list[Plane], use: np.ndarray, yz: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Batched X'X (n, k, k) and X'y (n, k) over the days in ``use`` (``yz``: y zeroed off ``use``)."""
    n, k = use.shape[0], len(planes)
    z = [np.empty(0) if p is None else np.where(use, p, 0.0) for p in planes]
    xtx = np.empty((n, k, k))
    for i in range(k):
        for j in range(i, k):
            if planes[i] is None and planes[j] is None:
                v = use.sum(axis=1).astype(np.float64)
            elif planes[i] is None:
                v = z[j].sum(axis=1)
            elif planes[j] is None:
                v = z[i].sum(axis=1)
            else:
                v = np.einsum("nl,nl->n", z[i], z[j])
            xtx[:, i, j] = xtx[:, j, i] = v
    xty = np.empty((n, k))
    if yz is not None:
        for j in range(k):
            xty[:, j] = yz.sum(axis=1) if planes[j] is None else np.einsum("nl,nl->n", z[j], yz)
    return xtx, xty


def condition(xtx: np.ndarray) -> np.ndarray:
    """Condition numbers of a stack of symmetric PSD matrices after scaling to unit diagonal.

    Scaling first makes the check about collinearity, not units (a return series has X'X entries ~1e-4
    next to the intercept's M). Batched ``eigvalsh`` on k x k blocks is cheap; inf for a zero column.
    """
    d = np.sqrt(np.diagonal(xtx, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = xtx / d[:, :, None] / d[:, None, :]
    out = np.full(xtx.shape[0], np.inf)
    fine = np.isfinite(scaled).all(axis=(1, 2)) & (d > 0).all(axis=1)
    if fine.any():
        ev = np.linalg.eigvalsh(scaled[fine])
        with np.errstate(divide="ignore"):
            out[fine] = np.where(ev[:, 0] > 0, ev[:, -1] / ev[:, 0], np.inf)
    return out


def require_one_benchmark(model: str, benchmarks: tuple[str, ...]) -> None:
    """ValueError unless exactly one benchmark is given (market and market-adjusted models)."""
    if len(benchmarks) != 1:
        raise ValueError(f"model {model!r} takes exactly one benchmark, got {len(benchmarks)}")


#: X'X with a scaled condition number at or above this is treated as singular.
MAX_CONDITION = 1e12


def intercept_fix(m_firm: np.ndarray, m_all: np.ndarray) -> np.ndarray:
    """estudy2's correction term: 1/M_i (the firm's own observations) in place of 1/M_all.

    With an intercept, (X'X)^-1 over all market days is [[1/M_all + mbar'S^-1 mbar, ...], ...]; estudy2
    takes the regressor mean and squared deviations over every market day of the estimation window
    but divides by the firm's own count, so only the (0, 0) element moves by 1/M_i - 1/M_all.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        fix = 1.0 / m_firm - 1.0 / m_all
    return np.where(np.isfinite(fix), fix, 0.0)


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class NormalReturnModel:
    """A resolved normal-return model: its benchmarks, parameters and how it is estimated.

    Subclasses set ``name`` (and ``aliases``) and implement :meth:`param_names_for`, :meth:`design`
    and, unless they are OLS on their design (:class:`LinearModel`), the fit and variance methods.
    """

    benchmarks: tuple[str, ...]

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    #: True when the model regresses on (or subtracts) the benchmarks' returns; False when a benchmark
    #: only sets the trading-day grid (mean-adjusted, FF3), so one benchmark at most makes sense.
    reads_benchmark_returns: ClassVar[bool] = True
    #: True when the design reads the Fama-French factor file instead of benchmark returns.
    needs_factors: ClassVar[bool] = False
    #: False when the batch engine cannot estimate the model and ``analysis.study.run_study`` routes it
    #: elsewhere (GARCH: a per-firm-event likelihood over unbroken days).
    batch_engine: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.check_benchmarks(self.benchmarks)

    # -- identity
    @classmethod
    def check_benchmarks(cls, benchmarks: tuple[str, ...]) -> None:
        """ValueError when the benchmarks do not fit the model (count, duplicates)."""

    @property
    def param_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def k(self) -> int:
        return len(self.param_names)

    @property
    def has_intercept(self) -> bool:
        """True when the first regressor is the constant (the estudy2 correction needs it)."""
        return self.k > 0 and self.param_names[0] == "alpha"

    def series(self) -> tuple[str, ...]:
        """Grid series the design needs: benchmark names (lags allowed) or factor columns."""
        return self.benchmarks if self.reads_benchmark_returns else ()

    # -- design
    def design(self, series: Mapping[str, np.ndarray]) -> tuple[list[Plane], np.ndarray | None]:
        """Regressor planes (``None`` = the intercept's ones, never materialised) and the offset
        (``None`` when zero) from grid-gathered series, each (N, L). NaN propagates: the engine treats
        such days as unusable."""
        raise NotImplementedError

    # -- estimation (batch engine)
    def fit(
        self, planes: list[Plane], y: np.ndarray, use: np.ndarray, ok: np.ndarray, ddof: int
    ) -> BatchFit:
        """Fit every row of ``y`` (N, L) on the days in ``use``; rows not ``ok`` may hold garbage."""
        raise NotImplementedError

    def prediction_matrix(
        self, planes: list[Plane], fit: BatchFit, use: np.ndarray, pe_days: np.ndarray, ok: np.ndarray
    ) -> np.ndarray:
        """The matrix A of the prediction-error variance when it is computed over ``pe_days``
        (estudy2: every market day of the estimation window) instead of the fitted days."""
        return fit.a

    # -- estimation (reference route, one firm-event at a time)
    def fit_one(self, x: np.ndarray, y: np.ndarray) -> RowFit:
        """Fit one firm-event's estimation days: x (M, k), y (M,)."""
        raise NotImplementedError

    def prediction_matrix_one(self, x_pe: np.ndarray, m_fit: int) -> np.ndarray:
        """Reference-route counterpart of :meth:`prediction_matrix` for one firm-event."""
        raise NotImplementedError

    # -- prediction-error variance
    def ar_variance_factor(self, a: np.ndarray, x: list[np.ndarray]) -> np.ndarray | float:
        """Var(AR_t) / sigma^2 per day (regressor planes ``x`` on the event days)."""
        return ar_variance_factor(a, x)

    def car_variance_factor(self, a: np.ndarray, s: list[np.ndarray], length: float) -> np.ndarray:
        """Var(CAR) / sigma^2 for a window of ``length`` days with regressor sums ``s``."""
        return car_variance_factor(a, s, length)


@dataclass(frozen=True)
class LinearModel(NormalReturnModel):
    """A model estimated by OLS of y_model on its design (mean, market, multifactor, FF3)."""

    def fit(
        self, planes: list[Plane], y: np.ndarray, use: np.ndarray, ok: np.ndarray, ddof: int
    ) -> BatchFit:
        k, n = self.k, y.shape[0]
        # Sufficient statistics plane by plane with invalid days zeroed (the NaN mask):
        # X'X[i, j] = sum_l z_i z_j and X'y[j] = sum_l z_j y, each one einsum pass over (n, L).
        yz = np.where(use, y, 0.0)
        xtx, xty = moments(planes, use, yz)
        singular = np.zeros(n, dtype=bool)
        singular[ok] = ~(condition(xtx[ok]) < MAX_CONDITION)
        # Rows being dropped get an identity so the batched inverse never fails on them.
        xtx[~(ok & ~singular)] = np.eye(k)
        a = np.linalg.inv(xtx)
        b = np.einsum("nkj,nj->nk", a, xty)
        fitted = np.zeros(y.shape)
        for j, p in enumerate(planes):
            fitted += b[:, j, None] if p is None else b[:, j, None] * p
        e_est = np.where(use, y - fitted, 0.0)
        ssr = np.einsum("nl,nl->n", e_est, e_est)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma2 = ssr / (use.sum(axis=1) - ddof)
            bse = np.sqrt(sigma2[:, None] * np.diagonal(a, axis1=1, axis2=2))
        return BatchFit(b, a, sigma2, bse, fitted, singular)

    def prediction_matrix(
        self, planes: list[Plane], fit: BatchFit, use: np.ndarray, pe_days: np.ndarray, ok: np.ndarray
    ) -> np.ndarray:
        xtx_pe, _ = moments(planes, pe_days, None)
        xtx_pe[~ok] = np.eye(self.k)
        a_pe = np.linalg.inv(xtx_pe)
        if self.has_intercept:
            a_pe[:, 0, 0] += intercept_fix(use.sum(axis=1), pe_days.sum(axis=1))
        return a_pe

    def fit_one(self, x: np.ndarray, y: np.ndarray) -> RowFit:
        import statsmodels.api as sm

        res = sm.OLS(y, x).fit()

        def predict(xe: np.ndarray) -> np.ndarray:
            return np.asarray(res.get_prediction(xe).predicted_mean)

        return RowFit(
            b=np.asarray(res.params),
            a=np.asarray(res.normalized_cov_params),
            ssr=float(res.ssr),
            resid=np.asarray(res.resid),
            predict=predict,
        )

    def prediction_matrix_one(self, x_pe: np.ndarray, m_fit: int) -> np.ndarray:
        import statsmodels.api as sm

        a_pe = np.asarray(sm.OLS(np.zeros(x_pe.shape[0]), x_pe).fit().normalized_cov_params)
        if self.has_intercept:
            a_pe[0, 0] += intercept_fix(np.array([m_fit]), np.array([x_pe.shape[0]]))[0]
        return a_pe
