"""Options shared by every command: ``--db`` and the study specification of study, run and report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.paths import ENV_VAR


def _root_db(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """A command's ``--db``: its own when given on its command line, else the root's ``carousel --db X``
    (so ``carousel --db X ledger import F`` and ``carousel ledger import F --db X`` are the same, and
    the root's beats $CAROUSEL_DB), else $CAROUSEL_DB / the default."""
    try:
        from typer._click.core import ParameterSource
    except ImportError:  # older typer uses click itself
        from click.core import ParameterSource  # type: ignore[assignment]

    if ctx.get_parameter_source(param.name or "db") == ParameterSource.COMMANDLINE:
        return value
    given = ctx.find_root().meta.get("carousel.db")
    return given if given is not None else value


#: ``--db PATH``, falling back to ``carousel --db PATH``, $CAROUSEL_DB, then ``data/carousel.duckdb``.
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar=ENV_VAR,
        help=f"DuckDB database file (env {ENV_VAR}; default data/carousel.duckdb).",
        dir_okay=False,
        callback=_root_db,
    ),
]

# ---------------------------------------------------------------------- the study specification
# Every option defaults to None, meaning "not given": the value then comes from carousel.toml, else
# from analysis.spec.StudySpec's default. study, run and report list the same options.

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Project file (default: the nearest carousel.toml upward from here).",
                 dir_okay=False),
]
ModelOpt = Annotated[str | None, typer.Option(help="mean | market_adjusted | market | multifactor | ff3")]
BenchmarkOpt = Annotated[
    list[str] | None,
    typer.Option("--benchmark", "-b", help="Benchmark ticker (repeatable); 'SPY[-1]' lags it one trading "
                 "day. For mean and ff3 one ticker, which only sets the trading-day grid."),
]
EstimationOpt = Annotated[
    tuple[int, int] | None, typer.Option(help="Estimation window start end, trading days from t0.")
]
WindowOpt = Annotated[
    list[str] | None,
    typer.Option("--window", "-w", help="Event window 'start,end' (repeatable), e.g. -1,1."),
]
MinObsOpt = Annotated[int | None, typer.Option(help="Minimum estimation observations (default 120).")]
ConventionsOpt = Annotated[str | None, typer.Option(help="textbook | estudy2")]
MethodOpt = Annotated[str | None, typer.Option(help="batch | statsmodels | event_dummy")]
UnknownOpt = Annotated[
    str | None,
    typer.Option(help="t0 of announcements whose time of day is unknown: same_day (the US business day "
                 "of the date; next Tokyo session for 9984.T) | next_session (as if after the close)."),
]
DateBasisOpt = Annotated[
    str | None,
    typer.Option(help="The moment taken as the news: official (the announcement; its time of day from the "
                 "timing evidence where the deal row has none) | evidence (a timestamped "
                 "source's time, same date) | first_report (the first press report, which may be earlier) | deal_row (the "
                 "deal row alone, no timing evidence)."),
]
MaskOpt = Annotated[
    bool | None,
    typer.Option("--mask-other-events/--flag-other-events",
                 help="Mask other announcements in the estimation windows (default) or keep them."),
]
LagOpt = Annotated[
    bool | None,
    typer.Option("--lag-non-us/--no-lag-non-us",
                 help="Estimate non-US listings (9984.T) on each benchmark and its one-day lag (default)."),
]
PeerOpt = Annotated[
    list[str] | None, typer.Option("--peer", help="Add this ticker to every deal as a peer (repeatable).")
]


def build_spec(
    config: Path | None = None,
    *,
    model: str | None = None,
    benchmark: list[str] | None = None,
    estimation: tuple[int, int] | None = None,
    window: list[str] | None = None,
    min_obs: int | None = None,
    conventions: str | None = None,
    method: str | None = None,
    unknown_policy: str | None = None,
    date_basis: str | None = None,
    mask_other_events: bool | None = None,
    lag_non_us: bool | None = None,
    peer: list[str] | None = None,
) -> Any:
    """The :class:`analysis.spec.StudySpec` of a command: defaults < carousel.toml < command line.

    Errors name the option (``--model``) or the file, line and key of carousel.toml.
    """
    from analysis.spec import StudySpec
    from analysis.window import EventWindow
    from carousel.config import apply_config, resolve_config
    from core.errors import InputError

    spec = apply_config(StudySpec(), resolve_config(config))
    given: dict[str, Any] = {}
    if model is not None:
        given["model"] = model
    if benchmark:
        given["benchmarks"] = tuple(benchmark)
    if estimation is not None:
        given["estimation"] = (int(estimation[0]), int(estimation[1]))
    if window:
        try:
            given["windows"] = tuple(EventWindow.parse(w) for w in window)
        except ValueError as exc:
            raise InputError(str(exc), field="--window") from None
    for name, value in (("min_obs", min_obs), ("conventions", conventions), ("method", method),
                        ("unknown_policy", unknown_policy), ("date_basis", date_basis),
                        ("mask_other_events", mask_other_events),
                        ("lag_non_us_listings", lag_non_us)):
        if value is not None:
            given[name] = value
    if peer:
        given["peers"] = tuple(peer)
    if "model" in given and "benchmarks" not in given and given["model"] in ("mean", "ff3"):
        # A file's multi-benchmark list must not make `--model ff3` fail: keep only the grid ticker.
        given["benchmarks"] = spec.benchmarks[:1]
    if not given:
        return spec
    sources = dict(spec.sources)
    for name in given:
        sources[name] = "--" + name.replace("_", "-")
    try:
        return spec.with_(**given, sources=tuple(sorted(sources.items())))
    except InputError as exc:
        field = exc.field or ""
        msg = str(exc).removeprefix(f"field '{field}': ")
        option = {"benchmarks": "--benchmark", "windows": "--window", "lag_non_us_listings": "--lag-non-us",
                  "benchmarks_by_ticker": "--config"}.get(field, "--" + field.replace("_", "-"))
        raise InputError(msg, field=option) from None


def build_explain_spec(
    config: Path | None = None,
    *,
    formula: str | None = None,
    window: str | None = None,
    weights: str | None = None,
    cov: str | None = None,
    bootstrap: int | None = None,
    boot_weights: str | None = None,
    seed: int | None = None,
) -> Any:
    """The :class:`analysis.spec.ExplainSpec` of a command: defaults < ``[explain]`` of carousel.toml <
    command line (``--cov X`` replaces the file's covariance list with X). Errors name the option, or the
    file, line and key."""
    from analysis.spec import ExplainSpec
    from analysis.window import EventWindow
    from carousel.config import apply_explain_config, resolve_config
    from core.errors import InputError

    spec = apply_explain_config(ExplainSpec(), resolve_config(config))
    given: dict[str, Any] = {}
    if formula is not None:
        given["formula"] = formula
    if window is not None:
        try:
            given["window"] = EventWindow.parse(window)
        except ValueError as exc:
            raise InputError(str(exc), field="--window") from None
    if cov is not None:
        given["covariance"] = (cov,)
    for name, value in (("weights", weights), ("bootstrap", bootstrap), ("boot_weights", boot_weights),
                        ("seed", seed)):
        if value is not None:
            given[name] = value
    if not given:
        return spec
    try:
        return spec.with_(**given)
    except InputError as exc:
        field = exc.field or ""
        msg = str(exc).removeprefix(f"field '{field}': ")
        option = {"formula": "FORMULA", "covariance": "--cov"}.get(field, "--" + field.replace("_", "-"))
        raise InputError(msg, field=option) from None


# ---------------------------------------------------------------------- the main job's figures
# Not study options: they change which files `run` and `report` write and how fast, never a number.

FormatsOpt = Annotated[
    str | None,
    typer.Option("--formats", help="Figure files to write, comma-separated: pdf, svg, png (default all "
                 "three; png is always written, the report embeds it). E.g. --formats png for a quick run."),
]
JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=0, help="Worker processes that save the figures while the job goes "
                 "on (default: one per core; 0 saves them in the main process). Same files either way."),
]
