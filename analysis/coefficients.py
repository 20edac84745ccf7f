"""The one coefficient table of the package: named estimates with their inference, statsmodels-style.

Every second-stage and joint-inference result (``analysis.crosssection``, ``analysis.common_shock``,
``analysis.dollar_test``, ``analysis.mvrm``, ``analysis.calendar_time``, ``analysis.resampling``) ends in
the same object: named estimates, their standard errors (from a full covariance when it is known, or
standard errors alone), a reference distribution (Student t with stated degrees of freedom, or the
normal) and, for resampling tests, p-values and a 95% interval taken from the resampling distribution
instead. Keeping the t/p/interval arithmetic, the accessors and the plain-text/LaTeX rendering in one
place means the six results cannot drift apart (issue 12: one home per idea).

Accessor convention (the statsmodels one): ``params``/``bse``/``tvalues``/``pvalues`` are name -> value
mappings (``dict[str, float]`` in term order), ``conf_int()`` and ``to_frame()`` are Polars frames with
``term``, ``lower`` and ``upper`` columns. The arrays behind them are on the table (``estimates``,
``se_array``, ``t_array``, ``p_array``, ``ci_array``).

Tails come from ``scipy.special`` (``stdtr``/``stdtrit``/``ndtr``/``ndtri``), not ``scipy.stats``,
whose import costs a noticeable part of the CLI's cold start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import special

from analysis.summary import Column, Summary, Table, fixed, general, pvalue
from core.errors import InputError

#: The interval a resampling distribution gives is the 95% one; no other level exists for it.
RESAMPLED_ALPHA = 0.05


def two_sided_p(stat: np.ndarray, df: float | np.ndarray | None) -> np.ndarray:
    """Two-sided p-value of a t(df) statistic (``df`` a number or one per statistic), or of a standard
    normal one when ``df`` is None. From scipy.special, not scipy.stats (about 0.7 s to import in every
    CLI process): the functions scipy.stats' ``t.sf`` and ``norm.sf`` evaluate, so the same bits."""
    a = -np.abs(np.asarray(stat, dtype=float))
    if df is None:
        return 2.0 * special.ndtr(a)
    return 2.0 * special.stdtr(df, a)


def critical_value(alpha: float, df: float | None) -> float:
    """Upper alpha/2 quantile of t(df) (of the standard normal when ``df`` is None).

    Computed as minus the lower alpha/2 quantile, which keeps full precision for small alpha (1 - alpha/2
    would round).
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie strictly between 0 and 1, got {alpha}", field="alpha")
    if df is None:
        return float(-special.ndtri(alpha / 2.0))
    return float(-special.stdtrit(df, alpha / 2.0))


@dataclass(frozen=True, kw_only=True)
class CoefficientTable:
    """Named estimates, their standard errors and the distribution their statistics are referred to.

    Give ``cov`` (the full covariance, when it is known: ``cov_params()`` then exists) or ``se``
    (standard errors only), not both. ``df`` is the degrees of freedom of the Student t reference
    distribution; ``None`` means the standard normal. ``null`` holds the hypothesised value of each
    coefficient (0 unless a test says otherwise), so ``t = (estimate - null) / se``. ``resampled_p`` and
    ``resampled_ci`` ((k, 2) bounds of the 95% interval) replace the t/normal p-values and interval when
    they come from a resampling distribution; such an interval exists only at alpha = 0.05.
    """

    names: tuple[str, ...]
    estimates: np.ndarray
    df: float | None
    cov: np.ndarray | None = None
    se: np.ndarray | None = None
    null: np.ndarray | None = None
    resampled_p: np.ndarray | None = None
    resampled_ci: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(set(self.names)) != k:
            raise InputError(f"coefficient names repeat: {self.names}", field="names")
        est = np.asarray(self.estimates, dtype=float)
        if est.shape != (k,):
            raise InputError(f"{est.size} estimates for {k} names", field="estimates")
        if (self.cov is None) == (self.se is None):
            raise InputError("give either the covariance (cov=) or the standard errors (se=), not both",
                             field="cov")
        shapes = {"cov": (k, k), "se": (k,), "null": (k,), "resampled_p": (k,), "resampled_ci": (k, 2)}
        object.__setattr__(self, "estimates", est)
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float)
            if arr.shape != shape:
                raise InputError(f"{name} has shape {arr.shape}, expected {shape}", field=name)
            object.__setattr__(self, name, arr)
        if self.null is None:
            object.__setattr__(self, "null", np.zeros(k))

    # ------------------------------------------------------------------------------------- arrays

    @property
    def se_array(self) -> np.ndarray:
        if self.cov is None:
            assert self.se is not None
            return self.se
        # A two-way clustered covariance can have a negative diagonal (CGM 2011, section 2.3); the
        # standard error is then undefined, shown as NaN as statsmodels does, never clipped silently.
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.cov))

    @property
    def t_array(self) -> np.ndarray:
        assert self.null is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.estimates - self.null) / self.se_array

    @property
    def p_array(self) -> np.ndarray:
        if self.resampled_p is not None:
            return self.resampled_p
        return two_sided_p(self.t_array, self.df)

    def ci_array(self, alpha: float = 0.05) -> np.ndarray:
        """(k, 2) lower and upper bounds of the two-sided (1 - alpha) interval."""
        if self.resampled_ci is not None:
            if not math.isclose(alpha, RESAMPLED_ALPHA):
                raise InputError(
                    f"this interval comes from resampling and exists only for alpha={RESAMPLED_ALPHA}",
                    field="alpha",
                )
            return self.resampled_ci
        q = critical_value(alpha, self.df)
        se = self.se_array
        return np.column_stack([self.estimates - q * se, self.estimates + q * se])

    @property
    def stat_label(self) -> str:
        """'z' for a statistic referred to the normal, 't' otherwise (Student t or resampled t)."""
        return "z" if self.df is None and self.resampled_p is None else "t"

    # ------------------------------------------------------------------- statsmodels-style views

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, self.estimates.tolist(), strict=True))

    @property
    def bse(self) -> dict[str, float]:
        return dict(zip(self.names, self.se_array.tolist(), strict=True))

    @property
    def tvalues(self) -> dict[str, float]:
        return dict(zip(self.names, self.t_array.tolist(), strict=True))

    @property
    def pvalues(self) -> dict[str, float]:
        return dict(zip(self.names, self.p_array.tolist(), strict=True))

    def cov_params(self) -> np.ndarray:
        """A copy of the full covariance; an error when only standard errors are known."""
        if self.cov is None:
            raise InputError("only standard errors are known for this table, not their covariance",
                             field="cov")
        return self.cov.copy()

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        """Two-sided (1 - alpha) intervals: term, lower, upper."""
        ci = self.ci_array(alpha)
        return pl.DataFrame(
            {"term": list(self.names), "lower": ci[:, 0], "upper": ci[:, 1]},
            schema={"term": pl.String, "lower": pl.Float64, "upper": pl.Float64},
        )

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """One row per term: term, coef, se, t, p, lower, upper (Polars)."""
        ci = self.ci_array(alpha)
        return pl.DataFrame(
            {
                "term": list(self.names),
                "coef": self.estimates,
                "se": self.se_array,
                "t": self.t_array,
                "p": self.p_array,
                "lower": ci[:, 0],
                "upper": ci[:, 1],
            },
            schema={
                "term": pl.String,
                "coef": pl.Float64,
                "se": pl.Float64,
                "t": pl.Float64,
                "p": pl.Float64,
                "lower": pl.Float64,
                "upper": pl.Float64,
            },
        )


class CoefficientResults:
    """The statsmodels-style accessors of a result whose main estimates are one :class:`CoefficientTable`
    in its ``table`` attribute (mixed into every results class that reports coefficients)."""

    table: CoefficientTable

    @property
    def params(self) -> dict[str, float]:
        return self.table.params

    @property
    def bse(self) -> dict[str, float]:
        return self.table.bse

    @property
    def tvalues(self) -> dict[str, float]:
        return self.table.tvalues

    @property
    def pvalues(self) -> dict[str, float]:
        return self.table.pvalues

    def cov_params(self) -> np.ndarray:
        return self.table.cov_params()

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        return self.table.conf_int(alpha)

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """term, coef, se, t, p, lower, upper."""
        return self.table.to_frame(alpha)

    def summary(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.summary()


# ------------------------------------------------------------------------------------- rendering


def coefficient_summary(
    table: CoefficientTable | Sequence[CoefficientTable],
    *,
    title: str | None = None,
    header: Sequence[str] = (),
    notes: Sequence[str] = (),
    extra: Sequence[tuple[str, pl.DataFrame]] = (),
) -> Summary:
    """The coefficient table (several stack their rows: tests with different reference laws), extra named
    frames and notes as one :class:`~analysis.summary.Summary`, which renders every format."""
    tables = [table] if isinstance(table, CoefficientTable) else list(table)
    kinds = {t.stat_label for t in tables}
    stat = kinds.pop() if len(kinds) == 1 else "t/z"
    resampled = any(t.resampled_p is not None for t in tables)
    frame = pl.concat([t.to_frame() for t in tables]).with_columns(
        pl.struct("lower", "upper").map_elements(
            lambda r: f"[{_num(r['lower'], '.4g')}, {_num(r['upper'], '.4g')}]", return_dtype=pl.String
        ).alias("ci")
    )
    p_head = "p*" if resampled else f"P>|{stat}|"
    columns = (
        Column("term", "term", tex_label="Term"),
        Column("coef", "coef", general(6, missing="nan"), stars="p", tex_label="Coef."),
        Column("se", "std err", general(4, missing="nan"), tex_label="SE"),
        Column("t", stat, fixed(3, missing="nan"), tex_label=f"${stat}$"),
        Column("p", p_head, pvalue(4, missing="nan"), tex_label="$p$"),
        Column("ci", "95% interval", align="right", tex_label=r"95\% CI"),
    )
    table_notes = ("* p<0.10, ** p<0.05, *** p<0.01 (two-sided).",) + (
        ("p* and the interval come from the resampling distribution, not from a t or normal law "
         "(nan: the method gives no interval).",) if resampled else ())
    parts = [Table(frame, columns, notes=table_notes)]
    parts += [Table.from_frame(f, title=name) for name, f in extra]
    return Summary(tuple(parts), title=title, header=tuple(header), notes=tuple(notes))


def render_text(
    title: str,
    header: Sequence[str],
    table: CoefficientTable,
    notes: Sequence[str] = (),
    extra: Sequence[tuple[str, pl.DataFrame]] = (),
) -> str:
    """Plain-text summary: a title, header lines, the coefficient table, extra named frames, notes."""
    return coefficient_summary(table, title=title, header=header, notes=notes, extra=extra).to_text()


def render_latex(
    table: CoefficientTable | Sequence[CoefficientTable],
    notes: Sequence[str] = (),
    *,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """A booktabs table of coef (with stars), SE, t and p per term and the 95% interval; several tables
    stack their rows and the statistic's column is then headed $t$/$z$."""
    return coefficient_summary(table, notes=notes).to_latex(caption=caption, label=label)


def _num(v: float | None, spec: str) -> str:
    if v is None or not math.isfinite(v):
        digits = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return format("nan", ">" + digits) if digits else "nan"
    return format(v, spec)


