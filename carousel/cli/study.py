"""``carousel study``: the event study of the ledger's deals on the stored prices, from the shell.

Imperative shell: read deals and prices read-only from DuckDB, build firm-events and simple returns
(from adjusted close, via the market layer), hand them to the pure engine, print a rich table or JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from analysis.window import EventWindow
from carousel.cli.options import (
    BenchmarkOpt,
    ConfigOpt,
    ConventionsOpt,
    DateBasisOpt,
    DbOption,
    EstimationOpt,
    LagOpt,
    MaskOpt,
    MethodOpt,
    MinObsOpt,
    ModelOpt,
    PeerOpt,
    UnknownOpt,
    WindowOpt,
    build_spec,
)
from core.errors import InputError

# The study's modules (polars, numpy, duckdb under them) are imported when the command runs, not when
# it is registered: `carousel --help` must not pay for them (carousel/cli/__init__.py).
if TYPE_CHECKING:
    import polars as pl

    from analysis.results import EventStudyResult


def parse_window(text: str) -> EventWindow:
    """``'-1,1'`` (also ``'[-1,+1]'``, ``'-1:1'``) -> EventWindow(-1, 1); InputError naming the option."""
    try:
        return EventWindow.parse(text)
    except ValueError as exc:
        raise InputError(str(exc), field="--window") from None


def render_table(res: EventStudyResult, console: Console, dollars: pl.DataFrame | None = None) -> None:
    """The CAR table (one row per firm-event and window), then exclusions by reason.

    Labels, formats and alignment come from :func:`analysis.results.car_columns`, the spec every
    other rendering of the CAR table uses; rich only lays it out (bold rows: p < 0.05). ``dollars``
    (``res.car``'s rows with ``analysis.dollar_columns.DOLLAR_COLUMNS``) adds the dollar CAR in US$ bn,
    or its reason code where there is none.
    """
    title = (
        f"Event study: {res.model.name}"
        + (f" on {', '.join(res.model.benchmarks)}" if res.model.reads_benchmark_returns else "")
        + f", estimation [{res.estimation[0]},{res.estimation[1]}], {res.method}, {res.conventions.name}"
    )
    import polars as pl

    from analysis.results import car_columns
    from analysis.summary import Column
    from analysis.summary import Table as SummaryTable

    table = Table(title=title, show_lines=False)
    frame, columns = res.car, car_columns()
    if dollars is not None:
        cells = [(reason or "") if v is None else f"{v / 1e9:.1f}"
                 for v, reason in zip(dollars["dollar_car"], dollars["dollar_reason"], strict=True)]
        frame = frame.with_columns(pl.Series("_dollar_bn", cells, dtype=pl.Utf8))
        columns = (*columns, Column("_dollar_bn", "$CAR bn", align="right"))
    spec = SummaryTable(frame, columns)
    for col in spec.columns:
        table.add_column(col.header, justify=col.alignment, no_wrap=True)
    rows, _ = spec.cells()
    for cells, p in zip(rows, res.car["p"].to_list(), strict=True):
        sig = p is not None and p < 0.05
        table.add_row(*cells, style="bold" if sig else None)
    console.print(table)
    console.print(
        f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", highlight=False
    )
    if res.excluded.height:
        for r in res.excluded.sort("event_id").iter_rows(named=True):
            console.print(f"  excluded {r['event_id']}: {r['reason']}", highlight=False)


RECORD_KEYS = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar")
#: Record keys that follow the adjusted p-values (p_holm, p_bh come right after p).
AFTER_ADJUSTED = ("bhar",)


def adjusted_pvalues(res: EventStudyResult, full: EventStudyResult) -> pl.DataFrame:
    """``p_holm`` and ``p_bh`` for ``res.car``'s rows (same order), each window's family being the
    firm-events of ``full`` (the unfiltered study; ``res`` itself when nothing was filtered)."""
    from analysis.multiplicity import ADJUSTED_COLUMNS, adjusted_car_pvalues

    adj = adjusted_car_pvalues(full.car).select("event_id", "window", *ADJUSTED_COLUMNS)
    keys = res.car.select("event_id", "window")
    out = keys.join(adj, on=["event_id", "window"], how="left", maintain_order="left")
    if out.height != keys.height:
        raise AssertionError("a firm-event and window appear twice in the study's CAR frame")
    return out.select(ADJUSTED_COLUMNS)
FORMATS = ("table", "json", "csv", "parquet")

#: ``carousel study --type``: what is abnormal (docs/conventions.md, "Volume, volatility, run-up").
STUDY_TYPES = ("returns", "volume", "volatility", "runup")


def _emit_variance_ratios(res: EventStudyResult, fmt: str) -> None:
    """``--type volatility``: the squared-AR variance ratio of every firm-event and window, pooled
    per window (JSON: the per-firm-event records on stdout, the pooled lines on stderr)."""
    from analysis.volatility import variance_ratio

    results = [variance_ratio(res.panel, (w[0], w[1])) for w in res.windows]
    if fmt == "json":
        records = []
        for vr in results:
            for rec in vr.frame.select(
                "event_id", "deal_id", "ticker", "t0", "window", "var_ratio", "df1", "df2", "p"
            ).iter_rows(named=True):
                rec["t0"] = rec["t0"].isoformat() if rec["t0"] is not None else None
                records.append(rec)
        typer.echo(json.dumps(records, indent=2))
        for vr in results:
            p = vr.pooled.row(0, named=True)
            typer.echo(
                f"pooled {p['window']}: N={p['n']} mean ratio {p['mean_ratio']:.4f} "
                f"chi2({p['df']})={p['chi2']:.4f} p={p['p']:.4g}",
                err=True,
            )
        return
    for vr in results:
        typer.echo(vr.summary())


def register(app: typer.Typer) -> None:
    """Add ``carousel study`` to the shell's app."""

    @app.command("study")
    def study(
        db: DbOption = None,
        config: ConfigOpt = None,
        model: ModelOpt = None,
        study_type: Annotated[
            str,
            typer.Option(
                "--type",
                help="returns (abnormal returns) | volume (abnormal log volume on ^GSPC volume) | "
                "volatility (squared-AR variance ratio per window) | runup (leak test, default "
                "windows [-10,-1] and [-1,-1]).",
            ),
        ] = "returns",
        benchmark: BenchmarkOpt = None,
        estimation: EstimationOpt = None,
        window: WindowOpt = None,
        min_obs: MinObsOpt = None,
        deal: Annotated[
            list[str] | None, typer.Option("--deal", help="Only this deal id (repeatable).")
        ] = None,
        ticker: Annotated[
            list[str] | None, typer.Option("--ticker", help="Only this ticker (repeatable).")
        ] = None,
        peer: PeerOpt = None,
        conventions: ConventionsOpt = None,
        method: MethodOpt = None,
        mask_other_events: MaskOpt = None,
        lag_non_us: LagOpt = None,
        unknown_policy: UnknownOpt = None,
        date_basis: DateBasisOpt = None,
        fmt: Annotated[str, typer.Option("--format", help="table | json | csv | parquet (needs --out)")] = "table",
        out: Annotated[
            Path | None, typer.Option("--out", help="File for --format parquet (csv/json: stdout unless given).",
                                      dir_okay=False)
        ] = None,
    ) -> None:
        """Abnormal returns around every deal announcement (CAR, se, t, p per firm-event and window)."""
        # Imported here, as the other commands' heavy imports are: every carousel command builds the CLI.
        from analysis.date_basis import apply_date_basis
        from analysis.dollar_columns import DOLLAR_COLUMNS, load_dollar_inputs, with_dollars
        from analysis.models import benchmark_tickers
        from analysis.study import load_inputs, load_prices, run_spec
        from carousel.db import connect

        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}", field="--format")
        if fmt == "parquet" and out is None:
            raise InputError("--format parquet writes a file: give --out FILE.parquet", field="--out")
        spec = build_spec(
            config, model=model, benchmark=benchmark, estimation=estimation, window=window, min_obs=min_obs,
            conventions=conventions, method=method, unknown_policy=unknown_policy, date_basis=date_basis,
            mask_other_events=mask_other_events, lag_non_us=lag_non_us, peer=peer,
        )
        bench, wins = spec.benchmarks, spec.windows
        # Imported here: only the study type asked for pays its import.
        from analysis.runup import RUNUP_WINDOWS, runup_study
        from analysis.volume import DEFAULT_VOLUME_BENCHMARK, abnormal_volume

        if study_type not in STUDY_TYPES:
            raise InputError(
                f"unknown study type {study_type!r}; choose {' | '.join(STUDY_TYPES)}", field="--type"
            )
        options: dict[str, Any] = {
            "estimation": spec.estimation,
            "min_obs": spec.min_obs,
            "deal_filter": deal,
            "ticker_filter": ticker,
            "peers": list(spec.peers) or None,
            "conventions": spec.conventions,
            "method": spec.method,
            "mask_other_events": spec.mask_other_events,
            "unknown_policy": spec.unknown_policy,
        }
        dollars: pl.DataFrame | None = None
        if study_type == "volume":
            if spec.resolved_model != "market":
                raise InputError("--type volume uses the market-volume model only", field="--model")
            vbench = tuple(benchmark) if benchmark else (DEFAULT_VOLUME_BENCHMARK,)
            with connect(db, read_only=True) as con:
                deals, prices = load_prices(con, [*benchmark_tickers(vbench), *spec.peers])
            deals = apply_date_basis(deals, spec.date_basis)
        else:
            with connect(db, read_only=True) as con:
                deals, returns = load_inputs(con, spec.extra_tickers())
                dollar_inputs = load_dollar_inputs(con, returns["ticker"].unique().to_list())
            if study_type == "runup":
                deals = apply_date_basis(deals, spec.date_basis)

        def estimate(deal_f: list[str] | None, ticker_f: list[str] | None) -> EventStudyResult:
            opts = {**options, "deal_filter": deal_f, "ticker_filter": ticker_f}
            if study_type == "volume":
                return abnormal_volume(deals, prices, benchmarks=vbench, windows=wins, **opts)
            if study_type == "runup":
                run_wins = tuple(parse_window(w) for w in window) if window else RUNUP_WINDOWS
                return runup_study(deals, returns, model=spec.model, benchmarks=bench, windows=run_wins, **opts).study
            return run_spec(deals, returns, spec, deal_filter=deal_f, ticker_filter=ticker_f)

        res = estimate(deal, ticker)
        if study_type == "volatility":
            _emit_variance_ratios(res, fmt)
            return
        if study_type != "volume":
            # Dollar value moved (market value at t0-1 x CAR), row for row with res.car; a volume
            # or variance-ratio study has no dollar counterpart.
            dollars = with_dollars(res.car, dollar_inputs).select(DOLLAR_COLUMNS)
        if fmt != "table":
            # Holm and BH p per window over every firm-event of the study, also when --deal/--ticker
            # print a few of them (the family is the window's, not the filter's): the unfiltered study
            # is estimated for it.
            adjusted = adjusted_pvalues(res, estimate(None, None) if deal or ticker else res)
        if fmt == "table":
            console = Console(markup=False)  # deal ids and reasons are data, not rich markup
            if not console.is_terminal:
                # Piped or captured output: do not wrap deal ids at 80 columns.
                console = Console(width=200, markup=False)
            render_table(res, console, dollars)
            if study_type == "volume":
                console.print(
                    "CAR = cumulative abnormal log volume ln(V+1) on the market's, in log points "
                    "(100 % = exp(1) = 2.7x normal volume); BHAR does not apply.",
                    highlight=False,
                )
            elif res.model.name == "garch":
                console.print(
                    "GARCH(1,1): SE = sqrt(sum of one-step conditional variances), t is a z with a "
                    "normal p; BHAR does not apply.",
                    highlight=False,
                )
            return
        if fmt == "json":
            records = [{k: rec[k] for k in RECORD_KEYS} for rec in res.to_json_records()]
            for rec, adj in zip(records, adjusted.iter_rows(named=True), strict=True):
                rest = {k: rec.pop(k) for k in AFTER_ADJUSTED}
                rec.update(adj)
                rec.update(rest)
            if dollars is not None:
                for rec, extra in zip(records, dollars.iter_rows(named=True), strict=True):
                    rec.update({k: None if isinstance(v, float) and not math.isfinite(v)
                                else v.isoformat() if isinstance(v, dt.date) else v
                                for k, v in extra.items()})
            text = json.dumps(records, indent=2)
            if out is None:
                typer.echo(text)
            else:
                out.write_text(text + "\n", encoding="utf-8")
        else:
            import polars as pl  # only csv/parquet need it (the cold-start rule: no polars for --help)

            frame = pl.concat([res.car.select(RECORD_KEYS), adjusted], how="horizontal").select(
                *(k for k in RECORD_KEYS if k not in AFTER_ADJUSTED), *adjusted.columns, *AFTER_ADJUSTED)
            if dollars is not None:
                frame = pl.concat([frame, dollars], how="horizontal")
            if fmt == "csv":
                if out is None:
                    sys.stdout.write(frame.write_csv(float_precision=10))
                else:
                    frame.write_csv(out, float_precision=10)
            else:
                try:
                    frame.write_parquet(out)  # type: ignore[arg-type]
                except OSError as exc:
                    raise InputError(f"cannot write {out}: {exc.strerror or exc}", field="--out") from None
        # stdout stays pure data for scripts; what was left out (and why) goes to stderr.
        typer.echo(f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", err=True)
        for r in res.excluded.sort("event_id").iter_rows(named=True):
            typer.echo(f"  excluded {r['event_id']}: {r['reason']}", err=True)


__all__ = ["parse_window", "register", "render_table"]
