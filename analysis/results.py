"""The result of an event study, in the statsmodels manner.

``params``/``bse``/``sigma`` hold one row per firm-event (Polars), ``car`` one row per firm-event and
window, ``ar`` one row per firm-event and non-estimation day, ``excluded`` every firm-event that was not
estimated with its reason code. Rows are sorted by event_id (then window in the order given, or rel_day),
so the same inputs always give byte-identical tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from analysis.conventions import Conventions
from analysis.panel import ARPanel
from analysis.summary import STAR_NOTE, Column, Summary, Table, fixed, integer, percent, pvalue
from analysis.window import EventWindow

if TYPE_CHECKING:
    from analysis.models import ModelSpec


@dataclass(frozen=True)
class EventStudyResult:
    """Estimates of one :class:`analysis.engine.EventStudy` fit (either method)."""

    model: ModelSpec
    method: str
    estimation: tuple[int, int]
    windows: tuple[tuple[int, int], ...]
    conventions: Conventions
    panel: ARPanel
    params: pl.DataFrame
    bse: pl.DataFrame
    sigma: pl.DataFrame
    car: pl.DataFrame
    excluded: pl.DataFrame
    mask_other_events: bool = True
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ derived frames

    @property
    def nobs(self) -> int:
        """Number of estimated firm-events."""
        return self.panel.n

    @property
    def ar(self) -> pl.DataFrame:
        """Long AR table on the non-estimation days: event_id, rel_day, ar, se (se = sigma*sqrt(pe))."""
        if "ar" not in self._cache:
            p = self.panel
            ar = p.ar
            se = p.sigma[:, None] * np.sqrt(p.pe_factor)
            n, nd = ar.shape
            self._cache["ar"] = pl.DataFrame(
                {
                    "event_id": np.repeat(p.keys["event_id"].to_numpy(), nd),
                    "rel_day": np.tile(p.event_days, n).astype(np.int32),
                    "ar": ar.ravel(),
                    "se": se.ravel(),
                }
            ).with_columns(pl.col("ar").fill_nan(None), pl.col("se").fill_nan(None))
        return self._cache["ar"]

    @property
    def aar(self) -> pl.DataFrame:
        """Average abnormal return per non-estimation relative day: rel_day, aar, n (events with an AR)."""
        p = self.panel
        # Column-major, so each day's sum is numpy's pairwise sum down a contiguous column.
        ar = np.asfortranarray(p.ar)
        n = np.isfinite(ar).sum(axis=0)
        with np.errstate(invalid="ignore"):
            aar = np.where(n > 0, np.nansum(ar, axis=0) / np.maximum(n, 1), np.nan)
        return pl.DataFrame(
            {"rel_day": p.event_days.astype(np.int32), "aar": aar, "n": n.astype(np.int64)}
        ).with_columns(pl.col("aar").fill_nan(None))

    @property
    def caar(self) -> pl.DataFrame:
        """Cumulative average abnormal return per window over firm-events with a complete window."""
        return (
            self.car.filter(pl.col("car").is_not_null())
            .group_by("window", maintain_order=True)
            .agg(pl.col("car").mean().alias("caar"), pl.len().alias("n"))
        )

    def tests(self, window: tuple[int, int] | None = None, *, daily: bool = True) -> Any:
        """The cross-sectional test battery (:func:`analysis.significance.battery`) for one window.

        Defaults to the first window; returns its ``TestBattery`` (``.frame``/``.to_frame()``).
        """
        from analysis import significance

        w = window if window is not None else self.windows[0]
        return significance.battery(self.panel, w, daily=daily, conventions=self.conventions)

    # ------------------------------------------------------------------ output

    def to_frame(self) -> pl.DataFrame:
        """One row per firm-event and window with CAR, se, t, p, BHAR and the model parameters."""
        return self.car.join(
            self.params.drop("deal_id", "ticker", "t0"),
            on="event_id",
            how="left",
            maintain_order="left",
        ).join(
            self.sigma.select("event_id", "sigma", "n_est"),
            on="event_id",
            how="left",
            maintain_order="left",
        )

    def to_json_records(self) -> list[dict[str, Any]]:
        """One dict per firm-event and window: event_id, deal_id, ticker, t0 (ISO), window, car, se, t, p, bhar."""
        recs = []
        for row in self.car.iter_rows(named=True):
            rec = {}
            for key in (
                "event_id",
                "deal_id",
                "ticker",
                "t0",
                "window",
                "car",
                "se",
                "t",
                "p",
                "bhar",
                "n_days",
            ):
                v = row[key]
                if isinstance(v, date):
                    v = v.isoformat()
                elif isinstance(v, float) and not math.isfinite(v):
                    v = None
                rec[key] = v
            recs.append(rec)
        return recs

    def to_json(self) -> str:
        return json.dumps(self.to_json_records(), indent=None, sort_keys=False)

    def _header(self) -> list[str]:
        bench = ", ".join(self.model.benchmarks) if self.model.reads_benchmark_returns else "-"
        return [
            f"model={self.model.name} benchmarks={bench} method={self.method} "
            f"conventions={self.conventions.name}",
            f"estimation=[{self.estimation[0]},{self.estimation[1]}] "
            f"windows={' '.join(EventWindow.of(w).label for w in self.windows)} "
            f"other events {'masked' if self.mask_other_events else 'flagged'}",
            f"firm-events estimated: {self.nobs}, excluded: {self.excluded.height}",
        ]

    def car_summary(self) -> Summary:
        """The CAR table (one row per firm-event and window), CAAR per window and exclusions, as a
        :class:`analysis.summary.Summary`: ``summary()``, ``to_latex()`` and the CLI all render this."""
        car = Table(self.car, car_columns(), notes=(STAR_NOTE,))
        caar = Table(
            self.caar,
            (Column("window", "Window"), Column("caar", "CAAR %", percent(2)), Column("n", "N", integer())),
            title="CAAR over firm-events with a complete window",
        )
        notes: tuple[str, ...] = ()
        if self.excluded.height:
            counts = self.excluded.group_by("reason").len().sort("reason")
            notes = (
                "excluded: "
                + ", ".join(f"{r['reason']}={r['len']}" for r in counts.iter_rows(named=True)),
            )
        return Summary((car, caar), title="Event study", header=tuple(self._header()), notes=notes)

    def summary(self) -> str:
        """Plain-text summary: header, CAR table per firm-event/window, CAAR, exclusions by reason."""
        return self.car_summary().to_text()

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        """A booktabs table of CAR, SE, t and p per firm-event and window (stars in the notes)."""
        car = Table(self.car, car_columns(), notes=(STAR_NOTE,))
        return Summary.of(car).to_latex(caption, label)

    def __str__(self) -> str:
        return self.summary()


def car_columns(*names: str, scaled: bool = False) -> tuple[Column, ...]:
    """The CAR table's columns (labels, formats, stars), one spec for every output of a CAR frame.

    ``names`` picks and orders columns (default: deal, ticker, t0, window, CAR, SE, t, p, BHAR).
    ``scaled=True`` reads ``car_pct``/``se_pct``/``bhar_pct`` already in percent (the paper tables'
    frame keeps them so for its CSV) instead of the fractions ``car``/``se``/``bhar``.
    """
    pct = fixed(2) if scaled else percent(2)
    suffix = "_pct" if scaled else ""
    spec = {
        "deal_id": Column("deal_id", "Deal"),
        "event_id": Column("event_id", "Event"),
        "ticker": Column("ticker", "Ticker"),
        "t0": Column("t0", "t0", tex_label="$t_0$"),
        "window": Column("window", "Window"),
        "car": Column("car" + suffix, "CAR %", pct, stars="p", tex_label=r"CAR (\%)"),
        "se": Column("se" + suffix, "SE %", pct, tex_label=r"SE (\%)"),
        "t": Column("t", "t", fixed(2), tex_label="$t$"),
        "p": Column("p", "p", pvalue(4), tex_label="$p$"),
        "bhar": Column("bhar" + suffix, "BHAR %", pct, tex_label=r"BHAR (\%)"),
    }
    default = ("deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar")
    return tuple(spec[n] for n in (names or default))
