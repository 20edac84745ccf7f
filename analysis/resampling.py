"""Resampling tests of the CAAR over firm-events' CARs: bootstrap-t and sign-flip (randomization).

Why: a cross-sectional t-test of the CAAR needs either many firm-events or normal CARs; announcement CARs
are few, skewed and fat-tailed (ORCL +12% on Stargate next to +1% elsewhere), and CARs of firms sharing
an event date are correlated. Both tests below resample *clusters*: pass ``clusters`` (e.g. the t0 or
the deal of each firm-event) so that firm-events of one cluster are drawn or flipped together, which
keeps their correlation; without ``clusters`` every firm-event is its own cluster.

Statistic, for n CARs in G clusters with cluster sums S_g and sizes n_g::

    CAAR = sum_g S_g / n,   se = sqrt(G/(G-1) * sum_g (S_g - n_g CAAR)^2) / n,   t = CAAR / se

(with singleton clusters se = s / sqrt(n), the usual cross-sectional standard error).

``method='bootstrap'`` (bootstrap-t; Efron and Tibshirani 1993, ch. 12; cluster resampling as in Cameron,
Gelbach and Miller 2008). H0: the CARs' mean is zero. Draw G clusters with replacement, compute
t* = (CAAR* - CAAR) / se* (centring on the sample CAAR imposes the null on the resampling law); two-sided
p = (1 + #{|t*| >= |t|}) / (B + 1); the 95% interval is the bootstrap-t interval
[CAAR - q*_0.975 se, CAAR - q*_0.025 se]. Studentizing makes the test second-order accurate, which matters
with skewed CARs.

``method='sign_flip'`` (randomization test; Fisher 1935, Good 2005). H0: the clusters' CARs are
independent and each cluster's sum is symmetric about zero (no effect, symmetric noise). Multiply every
cluster by an independent random sign, recompute |t|; p = (1 + #{|t*| >= |t|}) / (B + 1), or exactly
#{|t*| >= |t|} / 2^G over all sign patterns when G <= ``exact_max_clusters``. It is exact in finite
samples under its null (no normality), but it tests symmetry as well as a zero mean; it gives a p-value,
not an interval (``conf_int`` is NaN).

Example:
    >>> from analysis.resampling import caar_test
    >>> car = study.car.filter(pl.col("window") == "[-1,+1]").drop_nulls("car")     # doctest: +SKIP
    >>> caar_test(car["car"].to_numpy(), clusters=car["t0"].to_numpy(), rng=15).summary()  # +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from core.errors import InputError

Method = Literal["bootstrap", "sign_flip"]
_BLOCK = 2000  # resamples per block (bounds memory at block x G floats)


def cluster_sums(cars: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums S_g and sizes n_g (clusters in sorted label order)."""
    if clusters is None:
        return cars.astype(float), np.ones(cars.size)
    _, inv = np.unique(clusters, return_inverse=True)
    return np.bincount(inv, weights=cars), np.bincount(inv).astype(float)


def caar_t(s: np.ndarray, n_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CAAR and its cluster-robust se along the last axis of s (resamples on leading axes)."""
    g = s.shape[-1]
    n = n_g.sum(axis=-1)
    mean = s.sum(axis=-1) / n
    dev = s - n_g * mean[..., None]
    se = np.sqrt(g / (g - 1.0) * np.sum(dev * dev, axis=-1)) / n
    return mean, se


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0/0 -> 0 (a resample with no spread and no shift) and x/0 -> +-inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    return np.where((den == 0) & (num == 0), 0.0, r)


@dataclass(frozen=True)
class CAARResamplingResult(CoefficientResults):
    """CAAR with its se, t and the resampling p-value (and bootstrap-t interval)."""

    table: CoefficientTable
    method: str
    n: int
    n_clusters: int
    n_resamples: int
    exact: bool
    t_star: np.ndarray

    def _header(self) -> list[str]:
        how = ("exact enumeration of all 2^G sign patterns" if self.exact
               else f"{self.n_resamples} resamples")
        return [f"method={self.method} CARs n={self.n} clusters G={self.n_clusters} ({how})"]

    def summary(self) -> str:
        return render_text("CAAR resampling test (H0: CAAR = 0)", self._header(), self.table)

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        return render_latex(self.table, self._header(), caption=caption, label=label)


def caar_test(
    cars: np.ndarray,
    *,
    method: Method = "bootstrap",
    clusters: np.ndarray | None = None,
    n_resamples: int = 9999,
    rng: np.random.Generator | int = 0,
    exact_max_clusters: int = 12,
) -> CAARResamplingResult:
    """Bootstrap-t or sign-flip test of H0: CAAR = 0 over firm-events' CARs (module docstring)."""
    x = np.asarray(cars, dtype=float)
    if x.ndim != 1:
        raise InputError("cars must be one-dimensional (one CAR per firm-event)", field="cars")
    if not np.isfinite(x).all():
        raise InputError("cars contain a missing or infinite value; drop incomplete windows first",
                         field="cars")
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != x.shape:
            raise InputError(f"clusters has {clusters.size} labels for {x.size} CARs", field="clusters")
    if n_resamples < 1:
        raise InputError("n_resamples must be >= 1", field="n_resamples")
    if method not in ("bootstrap", "sign_flip"):
        raise InputError(f"unknown method {method!r}; use 'bootstrap' or 'sign_flip'", field="method")
    s, n_g = cluster_sums(x, clusters)
    g = s.size
    if g < 2:
        raise InputError(f"{g} cluster(s): a resampling test needs at least 2", field="clusters")
    mean, se = caar_t(s, n_g)
    t = float(_ratio(np.asarray(mean), np.asarray(se)))
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    exact = False
    ci = np.array([[np.nan, np.nan]])
    if method == "bootstrap":
        t_star = _bootstrap_t(s, n_g, float(mean), n_resamples, gen)
        p = (1.0 + np.sum(np.abs(t_star) >= abs(t))) / (n_resamples + 1.0)
        lo_q, hi_q = np.quantile(t_star, [0.025, 0.975])
        ci = np.array([[mean - hi_q * se, mean - lo_q * se]])
    elif g <= exact_max_clusters:
        exact = True
        signs = 1.0 - 2.0 * ((np.arange(2**g)[:, None] >> np.arange(g)) & 1)
        t_star = _flip_t(s, n_g, signs)
        p = np.sum(np.abs(t_star) >= abs(t) * (1 - 1e-12)) / t_star.size
    else:
        t_star = np.concatenate([
            _flip_t(s, n_g, gen.choice(np.array([-1.0, 1.0]), size=(b, g)))
            for b in _blocks(n_resamples)
        ])
        p = (1.0 + np.sum(np.abs(t_star) >= abs(t) * (1 - 1e-12))) / (n_resamples + 1.0)
    table = CoefficientTable(names=("CAAR",), estimates=np.array([mean]), se=np.array([se]), df=None,
                             resampled_p=np.array([p]), resampled_ci=ci)
    return CAARResamplingResult(table=table, method=method, n=x.size, n_clusters=g,
                                n_resamples=int(t_star.size), exact=exact, t_star=t_star)


def _blocks(total: int) -> list[int]:
    return [min(_BLOCK, total - i) for i in range(0, total, _BLOCK)]


def _bootstrap_t(s: np.ndarray, n_g: np.ndarray, mean: float, n_boot: int,
                 rng: np.random.Generator) -> np.ndarray:
    out = []
    g = s.size
    for b in _blocks(n_boot):
        idx = rng.integers(0, g, size=(b, g))
        m_star, se_star = caar_t(s[idx], n_g[idx])
        out.append(_ratio(m_star - mean, se_star))
    return np.concatenate(out)


def _flip_t(s: np.ndarray, n_g: np.ndarray, signs: np.ndarray) -> np.ndarray:
    m_star, se_star = caar_t(signs * s, np.broadcast_to(n_g, signs.shape))
    return _ratio(m_star, se_star)
