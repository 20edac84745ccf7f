"""Pre-event run-up: abnormal returns before the announcement, as a leak test.

Why: an announcement that leaks moves the price before t0, so a study that looks only at [0, +k]
misses (and a [-1, +1] window blurs) what the market knew early. Stargate is the shipped case: CBS
News reported it during the session of 2025-01-21, the White House announced it after the close, so
t0 = 2025-01-22 and ORCL's +7 % leak-day move sits on day -1.

The run-up study is the ordinary event study (same model, estimation window, masking and test
battery) on windows that end the day before t0: by default [-10, -1] and [-1, -1]. The estimation
window must end before the run-up starts (the default [-250, -11] does), so the leak is never part of
the normal-return fit. H0: no abnormal return before the announcement. A significant run-up is
evidence of a leak, of anticipation (rumours, earlier reports of the same contract), or of a wrong
t0; the ledger's timing evidence tells these apart, not the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from analysis.results import EventStudyResult, car_columns
from analysis.summary import STAR_NOTE, Summary, Table
from analysis.window import window_label
from core.errors import InputError

#: The run-up windows of the leak test: the ten trading days before t0, and day -1 alone. Day -1 is
#: the announcement day itself for an after-close announcement (t0 is the next session), where an
#: intraday leak shows (Stargate: ORCL +5.8 % abnormal on 2025-01-21); in a ten-day CAR it can be
#: drowned by the other nine days (ORCL's [-10, -1] is +1.1 %, t 0.19).
RUNUP_WINDOWS: tuple[tuple[int, int], ...] = ((-10, -1), (-1, -1))


def check_runup_windows(windows: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """``windows`` as int pairs; InputError unless every window ends before t0 (day -1 or earlier)."""
    out = tuple((int(a), int(b)) for a, b in windows)
    if not out:
        raise InputError("a run-up test needs at least one window", field="--window")
    late = [window_label(w) for w in out if w[1] >= 0]
    if late:
        raise InputError(
            f"run-up windows must end before t0 (day -1 or earlier): {', '.join(late)}",
            field="--window",
        )
    return out


@dataclass(frozen=True)
class RunupResult:
    """The run-up CAR per firm-event and window, and the test battery of every window.

    ``study`` is the underlying :class:`EventStudyResult` (its ``car`` holds the run-up windows only).
    """

    study: EventStudyResult

    @property
    def windows(self) -> tuple[tuple[int, int], ...]:
        return self.study.windows

    @property
    def car(self) -> pl.DataFrame:
        """event_id, deal_id, ticker, t0, window, car, se, t, p, bhar, n_days: the run-up per firm-event."""
        return self.study.car

    def battery(self, *, daily: bool = True) -> pl.DataFrame:
        """The full test battery of every run-up window (and, ``daily``, of each of its days)."""
        return pl.concat([self.study.tests(w, daily=daily).frame for w in self.windows], how="vertical")

    def to_frame(self) -> pl.DataFrame:
        return self.study.to_frame()

    def summary(self) -> str:
        """The run-up CAR table and the battery of each window (window statistics only)."""
        car = Table(self.car, car_columns(), notes=(STAR_NOTE,))
        tests = Table.from_frame(self.battery(daily=False), title="Test battery per run-up window")
        return Summary(
            (car, tests), title="Pre-event run-up (leak test)", header=tuple(self.study._header())
        ).to_text()

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        return self.study.to_latex(caption, label)

    def __str__(self) -> str:
        return self.summary()


def runup_study(
    deals: pl.DataFrame,
    returns: pl.DataFrame,
    *,
    windows: tuple[tuple[int, int], ...] = RUNUP_WINDOWS,
    model: str = "market",
    **study_options: Any,
) -> RunupResult:
    """The run-up (leak) test of ``deals`` on ``returns``: pure, same options as the return study.

    ``model='garch'`` runs it on the GARCH(1,1) market model (:func:`analysis.study.run_study`
    dispatches it to :func:`analysis.volatility.garch_study`).
    """
    from analysis.study import run_study

    wins = check_runup_windows(windows)
    return RunupResult(run_study(deals, returns, model=model, windows=wins, **study_options))


__all__ = ["RUNUP_WINDOWS", "RunupResult", "check_runup_windows", "runup_study"]
