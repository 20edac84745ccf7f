"""The portfolio approach of Sefcik and Thompson (1986) for one event that hits many firms on one day.

The 2026-01-30 report that Nvidia's OpenAI investment had stalled, or Stargate, reached every firm of
the deal web on the same day. Asking whether firms more exposed to OpenAI moved more is a
cross-sectional regression of the firms' event-day abnormal returns on their exposure,
gamma = (Z'Z)^-1 Z' AR. Its textbook OLS standard error treats the N abnormal returns as independent
draws; they are not. Same-day returns share industry news beyond the market (AI, semiconductors), so
the residuals are cross-correlated, and when the exposure lines up with the loadings on that common
news (it does: the firms most exposed to OpenAI are the AI-heavy ones) the naive standard error is far
too small and the test over-rejects.

Sefcik and Thompson's answer: gamma is a set of portfolios. Row p of W = (Z'Z)^-1 Z' is a vector of
portfolio weights on the N firms; gamma_p = W_p AR is that portfolio's event-day abnormal return. Form
each portfolio's daily return series R_pt = W_p r_t over the estimation period plus the event day, and
regress it on the market with an event-day dummy:

    R_pt = a_p + b_p R_mt + gamma_p D_t + e_pt.

Because every firm's market model is estimated on the same days with the same regressors, the dummy
coefficient equals W_p AR exactly (an identity, tested to 1e-10), while its standard error comes from
the portfolio's own time-series variance, W_p Sigma W_p' over the estimation days: the cross-correlation
of the firms' residuals is inside it. The reference distribution is t(T - 3) (T - 2 without a
benchmark), T the estimation days plus the event day.

Firms must have a return on every estimation day and on the event day (the identity needs one common
sample); firms that do not are left out and named in the result.

Entry point: :func:`common_shock_test`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import polars as pl

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from analysis.least_squares import full_rank_qr
from core.errors import InputError

# ---------------------------------------------------------------------------------------- core maths


@dataclass(frozen=True)
class PortfolioRegression:
    """Arrays of the Sefcik-Thompson regressions, one column per coefficient portfolio."""

    weights: np.ndarray  # p x N, (Z'Z)^-1 Z'
    portfolio_returns: np.ndarray  # T x p
    design: np.ndarray  # T x q: [1, R_m, D] or [1, D]
    coef: np.ndarray  # q x p
    gamma: np.ndarray  # p
    gamma_se: np.ndarray  # p
    gamma_cov: np.ndarray  # p x p: residual covariance of the portfolios times [(X'X)^-1]_DD
    df_resid: int
    ar: np.ndarray  # N event-day abnormal returns (firm market models on the estimation days)
    naive_cov: np.ndarray  # p x p, s^2 (Z'Z)^-1 from the cross-section of ARs


def portfolio_regression(
    returns: np.ndarray, market: np.ndarray | None, z: np.ndarray, event_row: int
) -> PortfolioRegression:
    """Sefcik-Thompson on arrays: ``returns`` T x N (complete), ``market`` T (or None for the
    mean-adjusted model), ``z`` N x p characteristics (with a constant column where wanted),
    ``event_row`` the event day's row; every other row is an estimation day."""
    t_len, n = returns.shape
    p = z.shape[1]
    if n <= p:
        raise InputError(f"{n} firms for {p} characteristics: need more firms than coefficients")
    _, r_z = full_rank_qr(z, "the characteristics are collinear among the firms with complete returns")
    ztz_inv = np.linalg.solve(r_z, np.linalg.solve(r_z, np.eye(p)).T)
    weights = ztz_inv @ z.T  # p x N
    dummy = np.zeros(t_len)
    dummy[event_row] = 1.0
    cols = [np.ones(t_len)] + ([market] if market is not None else []) + [dummy]
    design = np.column_stack(cols)
    q = design.shape[1]
    df_resid = t_len - q
    if df_resid < 2:
        raise InputError(f"{t_len - 1} estimation days are too few for the portfolio regression")
    xtx_inv = np.linalg.inv(design.T @ design)
    port = returns @ weights.T  # T x p
    coef = xtx_inv @ design.T @ port  # q x p
    resid = port - design @ coef
    s_mat = resid.T @ resid / df_resid  # the portfolios' residual covariance (same regressors)
    gamma = coef[-1]
    gamma_cov = s_mat * xtx_inv[-1, -1]
    gamma_se = np.sqrt(np.diag(gamma_cov))
    # firm-level event-day ARs from market models on the estimation days (the dummy's rows removed)
    est = np.ones(t_len, dtype=bool)
    est[event_row] = False
    x_est = design[est, :-1]
    firm_coef = np.linalg.lstsq(x_est, returns[est], rcond=None)[0]  # (q-1) x N
    ar = returns[event_row] - design[event_row, :-1] @ firm_coef
    e = ar - z @ (weights @ ar)
    naive_cov = ztz_inv * (e @ e / (n - p))
    return PortfolioRegression(
        weights=weights,
        portfolio_returns=port,
        design=design,
        coef=coef,
        gamma=gamma,
        gamma_se=gamma_se,
        gamma_cov=gamma_cov,
        df_resid=df_resid,
        ar=ar,
        naive_cov=naive_cov,
    )


# -------------------------------------------------------------------------------------- the frame API


@dataclass(frozen=True)
class CommonShockResult(CoefficientResults):
    """Sefcik-Thompson coefficients (``table``) and, for comparison only, the naive cross-section."""

    formula: str
    event_date: date
    benchmark: str
    model: str
    estimation: tuple[int, int]
    table: CoefficientTable
    naive: CoefficientTable
    firms: tuple[str, ...]
    dropped: dict[str, str]
    n_days: int
    weights: pl.DataFrame
    portfolio_returns: pl.DataFrame
    ar: pl.DataFrame

    @property
    def nobs(self) -> int:
        """Number of firms in the cross-section."""
        return len(self.firms)

    @property
    def df_resid(self) -> float:
        """Degrees of freedom of each portfolio's time-series regression."""
        assert self.table.df is not None
        return self.table.df

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """term, coef, se, t, p, lower, upper, plus the naive cross-sectional se and t beside them."""
        naive = self.naive.to_frame(alpha).select(
            "term", pl.col("se").alias("naive_se"), pl.col("t").alias("naive_t")
        )
        return self.table.to_frame(alpha).join(naive, on="term", how="left", maintain_order="left")

    def _notes(self) -> list[str]:
        on = f"on {self.benchmark}, a constant" if self.model == "market" else "on a constant"
        notes = [
            f"Sefcik-Thompson (1986) portfolios: each coefficient is the event-day dummy of a regression "
            f"of its portfolio's returns {on} and the dummy over {self.n_days - 1} estimation days "
            f"[{self.estimation[0]},{self.estimation[1]}] plus the event day; t({self.df_resid:g}).",
            "Naive cross-sectional OLS SE (independent ARs) for comparison: "
            + ", ".join(f"{k} {v:.4g}" for k, v in self.naive.bse.items())
            + ".",
        ]
        if self.dropped:
            notes.append(
                f"{len(self.dropped)} firm(s) left out: "
                + "; ".join(f"{k} ({v})" for k, v in sorted(self.dropped.items()))
                + "."
            )
        return notes

    def summary(self) -> str:
        header = [
            f"Event date: {self.event_date}   Firms: {self.nobs}   Formula: {self.formula}",
        ]
        return render_text("Common-shock cross-section (Sefcik-Thompson portfolios)", header, self.table, self._notes())

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        return render_latex(self.table, self._notes(), caption=caption, label=label)


def _wide_returns(returns: pl.DataFrame) -> pl.DataFrame:
    if {"ticker", "date", "ret"} <= set(returns.columns):
        dup = returns.group_by("ticker", "date").len().filter(pl.col("len") > 1)
        if dup.height:
            r = dup.row(0, named=True)
            raise InputError(f"two returns for {r['ticker']} on {r['date']}", field="ret")
        return returns.pivot(on="ticker", index="date", values="ret").sort("date")
    if "date" not in returns.columns:
        raise InputError(
            "returns must be long (ticker, date, ret) or wide (date plus one column per ticker)",
            field="date",
        )
    if returns["date"].is_duplicated().any():
        d = returns.filter(pl.col("date").is_duplicated())["date"][0]
        raise InputError(f"date {d} appears twice in the wide returns", field="date")
    return returns.sort("date")


def common_shock_test(
    returns: pl.DataFrame,
    characteristics: pl.DataFrame,
    event_date: date,
    *,
    formula: str,
    benchmark: str = "SPY",
    model: Literal["market", "mean"] = "market",
    estimation: tuple[int, int] = (-250, -11),
) -> CommonShockResult:
    """Test whether a one-day event moved firms with different characteristics differently.

    ``returns``: long (ticker, date, ret) or wide (date + one column per ticker), including the
    benchmark. ``characteristics``: one row per ticker (column ``ticker``) with the columns the
    right-hand-side ``formula`` uses (e.g. ``"~ openai_exposure + log_mcap"``; formulaic, an
    intercept is added unless ``- 1``). ``event_date`` must be a trading day of the returns (the
    event's t0). ``estimation`` is in trading days relative to it on the benchmark's dates (the
    trading-day grid, as in ``carousel study``). ``model="market"`` regresses on the benchmark;
    ``model="mean"`` is the mean-adjusted model (constant and dummy; the benchmark only sets the grid).

    Example:

    >>> from datetime import date
    >>> from analysis.common_shock import common_shock_test
    >>> res = common_shock_test(returns, exposures, date(2026, 2, 2),
    ...                         formula="~ openai_exposure", benchmark="SPY")  # doctest: +SKIP
    >>> res.params["openai_exposure"], res.bse["openai_exposure"]  # doctest: +SKIP
    """
    from formulaic import Formula

    if estimation[0] > estimation[1] or estimation[1] >= 0:
        raise InputError(
            f"estimation window {estimation} must end before the event day (e.g. (-250, -11))",
            field="estimation",
        )
    if "ticker" not in characteristics.columns:
        raise InputError("characteristics need a 'ticker' column", field="ticker")
    if characteristics["ticker"].is_duplicated().any():
        t = characteristics.filter(pl.col("ticker").is_duplicated())["ticker"][0]
        raise InputError(f"ticker {t!r} appears twice in the characteristics", field="ticker")
    if model not in ("market", "mean"):
        raise InputError(f"unknown model {model!r}; use 'market' or 'mean'", field="model")
    wide = _wide_returns(returns)
    if benchmark not in wide.columns:
        raise InputError(f"benchmark {benchmark!r} has no returns", field="benchmark")
    wide = wide.filter(pl.col(benchmark).is_not_null() & pl.col(benchmark).is_not_nan())
    dates = wide["date"].to_list()
    if event_date not in dates:
        raise InputError(
            f"event date {event_date} is not a trading day of the benchmark {benchmark}",
            field="event_date",
        )
    e = dates.index(event_date)
    lo, hi = e + estimation[0], e + estimation[1]
    if lo < 0:
        raise InputError(
            f"the returns start {-lo} trading day(s) too late for estimation window {estimation}",
            field="estimation",
        )
    rows = [*range(lo, hi + 1), e]
    block = wide[rows]
    rhs = formula.split("~", 1)[1] if "~" in formula else formula
    try:
        parsed = Formula(rhs)
        needed = sorted(parsed.required_variables)
    except Exception as exc:
        raise InputError(f"cannot parse formula {formula!r}: {exc}", field="formula") from exc
    missing_cols = [c for c in needed if c not in characteristics.columns]
    if missing_cols:
        raise InputError(f"characteristic column(s) not found: {', '.join(missing_cols)}", field=missing_cols[0])
    dropped: dict[str, str] = {}
    chars = characteristics.select("ticker", *needed).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    for r in chars.filter(pl.any_horizontal(pl.col(c).is_null() for c in needed) if needed else pl.lit(False)).iter_rows(named=True):
        dropped[r["ticker"]] = "missing characteristic"
    firms: list[str] = []
    for t in chars["ticker"].to_list():
        if t in dropped:
            continue
        if t == benchmark:
            dropped[t] = "is the benchmark"
        elif t not in block.columns:
            dropped[t] = "no returns"
        elif block[t].is_null().any() or block[t].cast(pl.Float64).is_nan().any():
            n_miss = int((block[t].is_null() | block[t].cast(pl.Float64).is_nan()).sum())
            dropped[t] = f"{n_miss} missing return(s) in the estimation days or on the event day"
        else:
            firms.append(t)
    if not firms:
        raise InputError("no firm has complete returns and characteristics")
    firm_chars = chars.filter(pl.col("ticker").is_in(firms))
    order = {t: i for i, t in enumerate(firms)}
    firm_chars = firm_chars.sort(pl.col("ticker").replace_strict(order, return_dtype=pl.Int64))
    mm = parsed.get_model_matrix(firm_chars.to_pandas())
    z = np.asarray(mm, dtype=float)
    names = tuple(str(c) for c in mm.columns)
    r_mat = block.select(firms).cast(pl.Float64).to_numpy()
    market = block[benchmark].cast(pl.Float64).to_numpy() if model == "market" else None
    reg = portfolio_regression(r_mat, market, z, event_row=len(rows) - 1)
    table = CoefficientTable(
        names=names,
        estimates=reg.gamma,
        cov=reg.gamma_cov,
        df=float(reg.df_resid),
    )
    naive = CoefficientTable(
        names=names, estimates=reg.weights @ reg.ar, cov=reg.naive_cov, df=float(len(firms) - len(names))
    )
    weights = pl.DataFrame({"ticker": firms, **{nm: reg.weights[i] for i, nm in enumerate(names)}})
    port = pl.DataFrame({"date": block["date"], **{nm: reg.portfolio_returns[:, i] for i, nm in enumerate(names)}}).sort("date")
    ar = firm_chars.with_columns(pl.Series("ar", reg.ar))
    return CommonShockResult(
        formula=formula,
        event_date=event_date,
        benchmark=benchmark,
        model=model,
        estimation=estimation,
        table=table,
        naive=naive,
        firms=tuple(firms),
        dropped=dropped,
        n_days=len(rows),
        weights=weights,
        portfolio_returns=port,
        ar=ar,
    )


__all__: Sequence[str] = ("common_shock_test", "portfolio_regression", "CommonShockResult")
