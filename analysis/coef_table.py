"""A coefficient table in the statsmodels manner, shared by the joint-inference results objects.

The MVRM, calendar-time and resampling results all report a handful of named estimates with a standard
error, a statistic and a p-value; they differ only in where the p-value and the interval come from (a
Student t, the normal, or a resampling distribution). :class:`CoefTable` holds exactly that, so each
results object exposes the same ``params``/``bse``/``tvalues``/``pvalues``/``conf_int()``/``to_frame()``
and renders through the two small private functions below until the shared Summary renderer arrives.

Tails come from ``scipy.special`` (``stdtr``, ``stdtrit``, ``ndtr``, ``ndtri``), not ``scipy.stats``,
whose import costs a noticeable part of a cold start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import special

from core.errors import InputError


def two_sided_p(stat: np.ndarray, df: float | None) -> np.ndarray:
    """Two-sided p-value of a t(df) statistic, or of a standard normal one when ``df`` is None."""
    a = -np.abs(np.asarray(stat, dtype=float))
    if df is None:
        return 2.0 * special.ndtr(a)
    return 2.0 * special.stdtr(df, a)


def critical_value(alpha: float, df: float | None) -> float:
    """Upper alpha/2 quantile of t(df) (or of the standard normal when ``df`` is None)."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}", field="alpha")
    if df is None:
        return float(special.ndtri(1.0 - alpha / 2.0))
    return float(special.stdtrit(df, 1.0 - alpha / 2.0))


@dataclass(frozen=True)
class CoefTable:
    """Named estimates with standard errors.

    ``df`` is the Student-t degrees of freedom of ``tvalues`` (None: standard normal). ``pvalues`` and
    ``ci`` may be given explicitly when they come from a resampling distribution instead of a t or a
    normal law; ``ci`` then holds the 95% interval and ``conf_int`` accepts only alpha = 0.05.
    """

    names: tuple[str, ...]
    params: np.ndarray
    bse: np.ndarray
    df: float | None
    pvalues_override: np.ndarray | None = None
    ci: np.ndarray | None = None

    @property
    def tvalues(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.params / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        if self.pvalues_override is not None:
            return self.pvalues_override
        return two_sided_p(self.tvalues, self.df)

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """(k, 2) array of lower and upper bounds of the (1 - alpha) interval."""
        if self.ci is not None:
            if not math.isclose(alpha, 0.05):
                raise InputError("this interval comes from resampling and exists only for alpha=0.05",
                                 field="alpha")
            return self.ci
        q = critical_value(alpha, self.df)
        return np.column_stack([self.params - q * self.bse, self.params + q * self.bse])

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        ci = self.conf_int(alpha)
        return pl.DataFrame(
            {
                "term": list(self.names),
                "coef": self.params,
                "se": self.bse,
                "t": self.tvalues,
                "p": self.pvalues,
                "ci_low": ci[:, 0],
                "ci_high": ci[:, 1],
            }
        )


def _f(v: float, spec: str) -> str:
    return format(v, spec) if math.isfinite(v) else "--"


def render_text(title: str, header: Sequence[str], table: CoefTable,
                extra: Sequence[tuple[str, pl.DataFrame]] = ()) -> str:
    """Plain-text summary: a title, header lines, the coefficient table and extra named frames."""
    frame = table.to_frame()
    width = max([len(n) for n in table.names] + [4])
    hdr = f"{'term':<{width}} {'coef':>11} {'se':>10} {'t':>8} {'p':>8} {'[0.025':>11} {'0.975]':>11}"
    lines = [title, *header, "", hdr, "-" * len(hdr)]
    for r in frame.iter_rows(named=True):
        lines.append(
            f"{r['term']:<{width}} {_f(r['coef'], '11.6f')} {_f(r['se'], '10.6f')} "
            f"{_f(r['t'], '8.3f')} {_f(r['p'], '8.4f')} {_f(r['ci_low'], '11.6f')} "
            f"{_f(r['ci_high'], '11.6f')}"
        )
    for name, extra_frame in extra:
        lines += ["", name]
        cols = extra_frame.columns
        lines.append("  ".join(f"{c:>12}" for c in cols))
        for row in extra_frame.iter_rows():
            lines.append("  ".join(_cell(v) for v in row))
    return "\n".join(lines)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{_f(v, '12.4f')}"
    return f"{v!s:>12}"


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(c, c) for c in s)


def render_latex(table: CoefTable, caption: str | None = None, label: str | None = None,
                 note: str | None = None) -> str:
    """A booktabs table of coef, se, t, p and the 95% interval."""
    out = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        out.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        out.append(rf"\label{{{tex_escape(label)}}}")
    out += [r"\begin{tabular}{lrrrrrr}", r"\toprule",
            r"Term & Coef. & SE & $t$ & $p$ & \multicolumn{2}{c}{95\% CI} \\", r"\midrule"]
    for r in table.to_frame().iter_rows(named=True):
        out.append(
            f"{tex_escape(r['term'])} & {_f(r['coef'], '.6f')} & {_f(r['se'], '.6f')} & "
            f"{_f(r['t'], '.3f')} & {_f(r['p'], '.4f')} & {_f(r['ci_low'], '.6f')} & "
            f"{_f(r['ci_high'], '.6f')} \\\\"
        )
    out += [r"\bottomrule", r"\end{tabular}"]
    if note:
        out.append(rf"\par\footnotesize {tex_escape(note)}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"
