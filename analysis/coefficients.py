"""A table of estimated coefficients with their inference, in the statsmodels manner.

The second-stage statistics (``analysis.crosssection``, ``analysis.common_shock``,
``analysis.dollar_test``) all end in the same object: named estimates, standard errors and a reference
distribution (Student t with stated degrees of freedom, or the normal). Keeping the t/p/confidence
arithmetic and the plain-text/LaTeX rendering in one place means the three cannot drift apart; a shared
Summary renderer for the whole package will replace ``render_text``/``render_latex`` later.

Tails come from ``scipy.special`` (``stdtr``/``stdtrit``/``ndtr``/``ndtri``), not ``scipy.stats``,
whose import costs a noticeable part of the CLI's cold start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import special

from analysis.summary import tex_escape
from core.errors import InputError


class CoefficientResults:
    """The statsmodels-style accessors of a result whose main estimates are one :class:`CoefficientTable`
    in its ``table`` attribute (mixed into the cross-section, common-shock and dollar-test results)."""

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
        return self.table.cov.copy()

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        return self.table.conf_int(alpha)


@dataclass(frozen=True)
class CoefficientTable:
    """Named estimates, their covariance and the distribution their t statistics are referred to.

    ``df`` is the degrees of freedom of the Student t reference distribution; ``None`` means the
    standard normal. ``null`` holds the hypothesised value of each coefficient (0 unless a test says
    otherwise), so ``tvalues = (params - null) / bse``.
    """

    names: tuple[str, ...]
    estimates: np.ndarray
    cov: np.ndarray
    df: float | None
    null: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.null.size == 0:
            object.__setattr__(self, "null", np.zeros(len(self.names)))

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, self.estimates.tolist(), strict=True))

    @property
    def bse(self) -> dict[str, float]:
        return dict(zip(self.names, self.se_array.tolist(), strict=True))

    @property
    def se_array(self) -> np.ndarray:
        d = np.diag(self.cov)
        # A two-way clustered covariance can have a negative diagonal (CGM 2011, section 2.3); the
        # standard error is then undefined, shown as NaN as statsmodels does, never clipped silently.
        with np.errstate(invalid="ignore"):
            return np.sqrt(d)

    @property
    def t_array(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.estimates - self.null) / self.se_array

    @property
    def p_array(self) -> np.ndarray:
        t = np.abs(self.t_array)
        if self.df is None:
            return 2.0 * special.ndtr(-t)
        return 2.0 * special.stdtr(self.df, -t)

    @property
    def tvalues(self) -> dict[str, float]:
        return dict(zip(self.names, self.t_array.tolist(), strict=True))

    @property
    def pvalues(self) -> dict[str, float]:
        return dict(zip(self.names, self.p_array.tolist(), strict=True))

    def critical_value(self, alpha: float) -> float:
        if self.df is None:
            return float(-special.ndtri(alpha / 2.0))
        return float(-special.stdtrit(self.df, alpha / 2.0))

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        """Two-sided (1 - alpha) intervals: term, lower, upper."""
        if not 0.0 < alpha < 1.0:
            raise InputError(f"alpha must lie strictly between 0 and 1, got {alpha}", field="alpha")
        q = self.critical_value(alpha)
        se = self.se_array
        return pl.DataFrame(
            {
                "term": list(self.names),
                "lower": self.estimates - q * se,
                "upper": self.estimates + q * se,
            },
            schema={"term": pl.String, "lower": pl.Float64, "upper": pl.Float64},
        )

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """One row per term: term, coef, se, t, p, lower, upper (Polars)."""
        ci = self.conf_int(alpha)
        return pl.DataFrame(
            {
                "term": list(self.names),
                "coef": self.estimates,
                "se": self.se_array,
                "t": self.t_array,
                "p": self.p_array,
                "lower": ci["lower"],
                "upper": ci["upper"],
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


def render_text(title: str, header: Sequence[str], table: CoefficientTable, notes: Sequence[str]) -> str:
    """Plain-text summary: a title, header lines, the coefficient table, then notes."""
    frame = table.to_frame()
    width = max([len("term"), *(len(n) for n in table.names)])
    stat = "t" if table.df is not None else "z"
    head = (
        f"{'term':<{width}} {'coef':>12} {'std err':>11} {stat:>8} {'P>|' + stat + '|':>8} "
        f"{'[0.025':>12} {'0.975]':>12}"
    )
    lines = [title, *header, "", head, "-" * len(head)]
    for r in frame.iter_rows(named=True):
        lines.append(
            f"{r['term']:<{width}} {_num(r['coef'], '12.6g')} {_num(r['se'], '11.4g')} "
            f"{_num(r['t'], '8.3f')} {_num(r['p'], '8.4f')} {_num(r['lower'], '12.6g')} "
            f"{_num(r['upper'], '12.6g')}"
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def render_latex(
    table: CoefficientTable | Sequence[CoefficientTable],
    notes: Sequence[str],
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """A booktabs table of coef, SE, t and p per term (* p<0.10, ** p<0.05, *** p<0.01).

    Several tables (tests with different reference distributions) stack their rows; the statistic's
    column is then headed $t$/$z$ and the notes say which row uses which.
    """
    tables = [table] if isinstance(table, CoefficientTable) else list(table)
    kinds = {"t" if t.df is not None else "z" for t in tables}
    stat = kinds.pop() if len(kinds) == 1 else "t/z"
    out = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        out.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        out.append(rf"\label{{{tex_escape(label)}}}")
    out += [
        r"\begin{tabular}{lrrrr}",
        r"\toprule",
        rf"Term & Coef. & SE & ${stat}$ & $p$ \\",
        r"\midrule",
    ]
    rows = [r for t in tables for r in t.to_frame().iter_rows(named=True)]
    for r in rows:
        out.append(
            f"{tex_escape(r['term'])} & {_num(r['coef'], '.4g')}{_stars(r['p'])} & "
            f"{_num(r['se'], '.4g')} & {_num(r['t'], '.2f')} & {_num(r['p'], '.4f')} \\\\"
        )
    out += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        out.append(r"\par\smallskip\footnotesize " + tex_escape(" ".join(notes)))
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.10 else ""


def _num(v: float | None, spec: str) -> str:
    if v is None or not math.isfinite(v):
        digits = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return format("nan", ">" + digits) if digits else "nan"
    return format(v, spec)
