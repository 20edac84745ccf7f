"""One study specification: what ``carousel study``, ``run`` and ``report`` (and a notebook) estimate.

Why one frozen object: a paper's numbers must come from one stated specification. Before this module
each command carried its own defaults (``run`` always used the market model and the default windows,
whatever ``study`` was told), so a table and the report of the same repository could disagree.
:class:`StudySpec` holds every choice; :mod:`analysis.study` turns it into estimates and
``carousel.config`` reads it from a project's ``carousel.toml``.

Per-listing benchmarks: a listing whose exchange closes before New York opens (Tokyo: 9984.T) prices a
US day's news on its next session, so a same-day market model understates its beta (0.38 with R^2 0.009
against 1.63 with R^2 0.16 lagged on 9984.T, 2024-07..2026-06). By default such a listing is estimated
with each benchmark and the benchmark one grid day earlier (Dimson 1979: ``SPY`` and ``SPY[-1]``,
model ``multifactor``); :meth:`StudySpec.groups` says which firm-events use which model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from analysis.models import model_spec, parse_benchmark
from analysis.window import DEFAULT_WINDOWS, EventWindow
from core.errors import InputError

METHODS = ("batch", "statsmodels", "event_dummy")
UNKNOWN_POLICIES = ("same_day", "next_session")
#: the values of ``analysis.date_basis.DATE_BASES`` (kept here too: spec validation must not import the
#: frame code; tests/analysis/test_date_basis_option.py checks they agree)
DATE_BASES = ("official", "evidence", "first_report", "deal_row")
CONVENTIONS = ("textbook", "estudy2")
#: The exchange calendar of the trading-day grid (the first benchmark, SPY: NYSE sessions).
GRID_CALENDAR = "XNYS"


@dataclass(frozen=True)
class BenchmarkGroup:
    """Firm-events estimated with one model: ``tickers`` empty means every ticker not in another group."""

    model: str
    benchmarks: tuple[str, ...]
    tickers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``'market on SPY'``, ``'multifactor on SPY, SPY[-1]'``, ``'ff3'``: for tables and reports."""
        if self.model in ("mean", "ff3"):
            return self.model
        return f"{self.model} on {', '.join(self.benchmarks)}"


@dataclass(frozen=True)
class StudySpec:
    """Every choice of an event study (defaults: the README's study).

    Attributes:
        model: ``mean`` | ``market_adjusted`` | ``market`` | ``multifactor`` | ``ff3``.
        benchmarks: benchmark tickers (``'SPY[-1]'`` lags one grid day); the first sets the grid.
        benchmarks_by_ticker: explicit benchmarks for named tickers, e.g. ``{"9984.T": ("SPY",
            "SPY[-1]")}``; such a ticker is estimated with ``multifactor`` on them (``market`` when one
            unlagged benchmark is given), whatever ``model`` is, unless ``model`` reads no benchmark.
        lag_non_us_listings: tickers not traded on the grid's exchange (9984.T) get each benchmark plus
            its one-day lag (Dimson) when ``model`` is ``market`` or ``multifactor``.
        windows: event windows; estimation: estimation window in trading days relative to t0.
        min_obs: minimum valid estimation observations; unknown_policy: t0 of time-less announcements.
        conventions: ``textbook`` | ``estudy2``; method: ``batch`` | ``statsmodels`` | ``event_dummy``.
        mask_other_events: mask other announcements in the estimation windows (else keep and count).
        peers: tickers added to every deal as peers.
    """

    model: str = "market"
    benchmarks: tuple[str, ...] = ("SPY",)
    benchmarks_by_ticker: tuple[tuple[str, tuple[str, ...]], ...] = ()
    lag_non_us_listings: bool = True
    windows: tuple[EventWindow, ...] = DEFAULT_WINDOWS
    estimation: tuple[int, int] = (-250, -11)
    min_obs: int = 120
    unknown_policy: str = "same_day"
    #: the moment taken as the news: official | evidence | first_report | deal_row (analysis.date_basis)
    date_basis: str = "official"
    conventions: str = "textbook"
    method: str = "batch"
    mask_other_events: bool = True
    peers: tuple[str, ...] = ()
    #: where each field's value came from ("default", "carousel.toml:12", "--model"), for the report.
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """InputError naming the option when a value cannot be estimated (checked at construction)."""
        try:
            resolved = model_spec(self.model, self.benchmarks)
        except ValueError as exc:
            raise InputError(str(exc), field="model") from None
        if not resolved.reads_benchmark_returns and len(self.benchmarks) > 1:
            # These models read no benchmark returns; a second benchmark would be silently ignored.
            raise InputError(
                f"model {resolved.name!r} uses no benchmark returns: give at most one benchmark, "
                "which only sets the trading-day grid",
                field="benchmarks",
            )
        if not self.windows:
            raise InputError("at least one event window is needed", field="windows")
        if len(set(self.windows)) != len(self.windows):
            raise InputError("duplicate event windows", field="windows")
        a, b = self.estimation
        if a > b:
            raise InputError(f"estimation window [{a},{b}] ends before it starts", field="estimation")
        for w in self.windows:
            if not (w.end < a or w.start > b):
                raise InputError(
                    f"event window {w.label} overlaps the estimation window [{a},{b}]", field="windows"
                )
        if self.min_obs < 1:
            raise InputError("min_obs must be at least 1", field="min_obs")
        for name, value, allowed in (
            ("unknown_policy", self.unknown_policy, UNKNOWN_POLICIES),
            ("date_basis", self.date_basis, DATE_BASES),
            ("conventions", self.conventions, CONVENTIONS),
            ("method", self.method, METHODS),
        ):
            if value not in allowed:
                raise InputError(f"unknown {name} {value!r}; choose {' or '.join(allowed)}", field=name)
        for ticker, bench in self.benchmarks_by_ticker:
            try:
                _group_for(self.model, bench)
            except ValueError as exc:
                raise InputError(f"benchmarks for {ticker}: {exc}", field="benchmarks_by_ticker") from None

    # ------------------------------------------------------------------ derived

    @property
    def resolved_model(self) -> str:
        return model_spec(self.model, self.benchmarks).name

    def groups(self, tickers: list[str], calendars: Mapping[str, str] | None = None) -> tuple[BenchmarkGroup, ...]:
        """The estimation groups for ``tickers``: the default group first (every ticker not named in
        another), then one group per distinct (model, benchmarks), tickers sorted. Pure.

        ``calendars``: ticker -> exchange calendar (the firm-events' ``calendar``, from the ledger's
        exchanges); a ticker not in it takes :func:`market.calendars.calendar_for`'s suffix rule."""
        from market.calendars import calendar_for

        cal = dict(calendars or {})

        base = BenchmarkGroup(self.resolved_model, self.benchmarks)
        if not getattr(model_spec(self.model, self.benchmarks), "batch_engine", True):
            return (base,)  # GARCH is estimated per firm-event outside the batch engine, on one benchmark
        explicit = dict(self.benchmarks_by_ticker)
        special: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for t in sorted(set(tickers)):
            if not model_spec(base.model, base.benchmarks).reads_benchmark_returns or base.model == "market_adjusted":
                continue  # no benchmark regressor to lag or replace
            if t in explicit:
                key = _group_for(self.model, explicit[t])
            elif self.lag_non_us_listings and (cal.get(t) or calendar_for(t)) != GRID_CALENDAR:
                key = ("multifactor", dimson(self.benchmarks))
            else:
                continue
            if key != (base.model, base.benchmarks):
                special.setdefault(key, []).append(t)
        return (base, *(BenchmarkGroup(m, b, tuple(ts)) for (m, b), ts in sorted(special.items())))

    @property
    def main_window(self) -> EventWindow:
        """The window of the report's headline tables and figures: [-1,+1] when studied, else the
        first window that contains the event day (else the first window)."""
        if EventWindow(-1, 1) in self.windows:
            return EventWindow(-1, 1)
        return next((w for w in self.windows if w.contains(0)), self.windows[0])

    @property
    def day_window(self) -> EventWindow:
        """The event-day window ([0,0] when studied, else :attr:`main_window`)."""
        return EventWindow(0, 0) if EventWindow(0, 0) in self.windows else self.main_window

    def extra_tickers(self) -> list[str]:
        """Every ticker whose returns the study reads besides the deals' own: benchmarks and peers."""
        names = [*self.benchmarks, *(b for _, bs in self.benchmarks_by_ticker for b in bs)]
        return sorted({parse_benchmark(b)[0] for b in names} | set(self.peers))

    def with_(self, **changes: Any) -> StudySpec:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def parameters(self) -> list[tuple[str, str]]:
        """(parameter, value) rows for a report's parameter table, in reading order."""
        rows = [
            ("Model", self.resolved_model),
            ("Benchmarks", ", ".join(self.benchmarks) if self.resolved_model not in ("mean", "ff3") else "none (grid: "
             + self.benchmarks[0] + ")"),
        ]
        for t, b in self.benchmarks_by_ticker:
            rows.append((f"Benchmarks for {t}", ", ".join(b)))
        rows += [
            ("Non-US listings lagged (Dimson)", "yes" if self.lag_non_us_listings else "no"),
            ("Estimation window", f"[{self.estimation[0]},{self.estimation[1]}] trading days"),
            ("Event windows", ", ".join(w.label for w in sorted(self.windows, key=EventWindow.sort_key))),
            ("Minimum estimation observations", str(self.min_obs)),
            ("Unknown time of day", self.unknown_policy.replace("_", " ")),
            ("Date basis", self.date_basis.replace("_", " ")),
            ("Conventions", self.conventions),
            ("Estimator", self.method),
            ("Other announcements in estimation windows", "masked" if self.mask_other_events else "kept"),
            ("Peers", ", ".join(self.peers) if self.peers else "none"),
        ]
        return rows


def dimson(benchmarks: tuple[str, ...]) -> tuple[str, ...]:
    """Each benchmark followed by its one-day lag (``('SPY',) -> ('SPY', 'SPY[-1]')``); lagged
    benchmarks already given are kept once."""
    out: list[str] = []
    for b in benchmarks:
        ticker, lag = parse_benchmark(b)
        out.append(b)
        if lag == 0:
            out.append(f"{ticker}[-1]")
    return tuple(dict.fromkeys(out))


def _group_for(model: str, benchmarks: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(model, benchmarks) for a ticker with explicit benchmarks: one unlagged benchmark under the
    market model stays the market model, anything else is a multifactor regression. ValueError if
    the benchmarks cannot be estimated."""
    bench = tuple(benchmarks)
    if not bench:
        raise ValueError("no benchmark given")
    if len(bench) == 1 and parse_benchmark(bench[0])[1] == 0 and model_spec(model, ("SPY",)).name == "market":
        return "market", bench
    return model_spec("multifactor", bench).name, bench


DEFAULT_SPEC = StudySpec()


# ------------------------------------------------------------------------------ the second stage

CLUSTER_ALIASES = {"date": "t0", "firm": "company"}
_COVS = {"nonrobust": "nonrobust", "hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3"}


def parse_cov(text: str) -> tuple[str, tuple[str, ...]]:
    """``'hc3'`` -> ('HC3', ()); ``'cluster:date,firm'`` -> ('cluster', ('t0', 'company'))."""
    t = text.strip()
    low = t.lower()
    if low in _COVS:
        return _COVS[low], ()
    if low.startswith("cluster:"):
        names = tuple(CLUSTER_ALIASES.get(n.strip(), n.strip()) for n in t.split(":", 1)[1].split(",") if n.strip())
        if len(names) not in (1, 2):
            raise InputError(f"--cov {text!r}: cluster by one or two variables, e.g. cluster:date,firm", field="--cov")
        return "cluster", names
    raise InputError(
        f"unknown covariance {text!r}; choose nonrobust, hc0-hc3 or cluster:date[,firm]", field="--cov"
    )


WEIGHTS = ("ols", "wls")
BOOT_WEIGHTS = ("webb", "rademacher")


@dataclass(frozen=True)
class ExplainSpec:
    """Every choice of the second stage (``carousel explain`` and the main job's explain step), read from
    ``[explain]`` of ``carousel.toml`` (options on the command line override it).

    Why one object: the report's table and ``carousel explain`` must fit the same regression unless told
    otherwise, so a reader can reproduce the report's numbers with the bare command.

    Attributes:
        formula: formulaic formula over :func:`analysis.explain.explain_frame`'s columns.
        window: the CAR window regressed (it must be one of the study's windows).
        weights: ``ols`` | ``wls`` (weights 1/se(CAR)^2: CARs are estimated with unequal precision).
        covariance: one or more of nonrobust, hc0-hc3, cluster:date[,firm]. ``carousel explain`` prints
            the first; the report's table shows each one's SE and p side by side (stars from the first).
        bootstrap: wild cluster bootstrap draws per term (0: none), clustered by the first cluster variable
            of the first covariance (by date when it is not clustered); boot_weights: webb | rademacher;
            seed: of the draws.
    """

    formula: str = "car ~ log_amount + on_round_trip + C(deal_kind)"
    window: EventWindow = EventWindow(-1, 1)
    weights: str = "wls"
    covariance: tuple[str, ...] = ("hc3", "cluster:date,firm")
    bootstrap: int = 0
    boot_weights: str = "webb"
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """InputError naming the field (``formula``, ``weights``, ...) for a value that cannot be fitted."""
        lhs, tilde, rhs = self.formula.partition("~")
        if not tilde or not rhs.strip():
            raise InputError(f"formula {self.formula!r} is not 'car ~ terms'", field="formula")
        if self.weights not in WEIGHTS:
            raise InputError(f"unknown weights {self.weights!r}; choose ols or wls", field="weights")
        if not self.covariance:
            raise InputError("at least one covariance is needed", field="covariance")
        if len(set(self.covariance)) != len(self.covariance):
            raise InputError("a covariance is given twice", field="covariance")
        for c in self.covariance:
            try:
                parse_cov(c)
            except InputError as exc:
                raise InputError(str(exc).removeprefix("field '--cov': "), field="covariance") from None
        if isinstance(self.bootstrap, bool) or self.bootstrap < 0:
            raise InputError(f"bootstrap must be 0 or a positive number of draws, got {self.bootstrap}",
                             field="bootstrap")
        if self.boot_weights not in BOOT_WEIGHTS:
            raise InputError(f"unknown boot_weights {self.boot_weights!r}; choose webb or rademacher",
                             field="boot_weights")
        if self.seed < 0:
            raise InputError(f"seed must be 0 or positive, got {self.seed}", field="seed")

    def with_(self, **changes: Any) -> ExplainSpec:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    @property
    def cov(self) -> str:
        """The covariance ``carousel explain`` prints (the first)."""
        return self.covariance[0]


DEFAULT_EXPLAIN = ExplainSpec()
