"""``carousel explain``: regress a window's CARs on the deals' graph characteristics as known at t0.

Imperative shell around :mod:`analysis.explain`: open the database read-only, run the study every
command runs, build the characteristics from the ledger as known at each announcement, fit, print.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from carousel.cli.options import (
    BenchmarkOpt,
    ConfigOpt,
    DateBasisOpt,
    DbOption,
    EstimationOpt,
    LagOpt,
    ModelOpt,
    UnknownOpt,
    build_explain_spec,
    build_spec,
)
from core.errors import InputError

# analysis.explain and carousel.db (polars, duckdb...) are imported inside the commands: `carousel
# --help` must not pay for them (carousel/cli/__init__.py).

_FORMATS = ("table", "json", "csv", "latex")


def register(app: typer.Typer) -> None:
    """Add ``carousel explain`` to the shell's app."""

    @app.command("explain")
    def explain_cmd(
        formula: Annotated[
            str | None,
            typer.Argument(help="e.g. 'car ~ log_amount + on_round_trip + C(deal_type)' (default: [explain] "
                           "formula of carousel.toml, else 'car ~ log_amount + on_round_trip + C(deal_kind)')"),
        ] = None,
        db: DbOption = None,
        config: ConfigOpt = None,
        window: Annotated[
            str | None, typer.Option("--window", "-w", help="CAR window 'start,end' (default -1,1).")
        ] = None,
        weights: Annotated[str | None, typer.Option(help="ols | wls (weights 1/se(CAR)^2; default wls)")] = None,
        cov: Annotated[
            str | None,
            typer.Option(help="nonrobust | hc0 | hc1 | hc2 | hc3 | cluster:date | cluster:date,firm "
                         "(default: the first [explain] covariance, hc3)"),
        ] = None,
        bootstrap: Annotated[
            int | None, typer.Option(help="Wild cluster bootstrap draws per term (0: none, the default); "
                                     "clustered by the first cluster variable, by date when --cov is not "
                                     "clustered.")
        ] = None,
        boot_weights: Annotated[str | None, typer.Option(help="webb | rademacher")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of the bootstrap draws (default 0).")] = None,
        model: ModelOpt = None,
        benchmark: BenchmarkOpt = None,
        estimation: EstimationOpt = None,
        unknown_policy: UnknownOpt = None,
        date_basis: DateBasisOpt = None,
        lag_non_us: LagOpt = None,
        common_shock: Annotated[
            str | None,
            typer.Option(
                "--common-shock",
                help="Deal id of a one-day shock to many firms (e.g. nvda-openai-2026-01-30-stall): "
                "the formula's right-hand side (e.g. '~ openai_share') over every listed firm, "
                "Sefcik-Thompson portfolios, exposures as known the day before.",
            ),
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="table | json | csv | latex")] = "table",
    ) -> None:
        """Which characteristics of a deal (size, round-trip, kind, exposure to OpenAI) go with larger CARs?

        The formula, window, weights, covariance and bootstrap come from the [explain] section of
        carousel.toml, the CARs from the study its [study] section defines (the CARs of `carousel study`,
        `run` and `report`, 9984.T on its lagged benchmark); options given here override both.

        Columns: car, se, t0, ticker, company, role, deal_type, deal_kind, amount_kind, amount_usd,
        amount_partial, log_amount, on_round_trip, closes_round_trip, n_round_trips, openai_share,
        openai_flows_usd, degree, in_degree, out_degree, betweenness (each as known on the announcement
        date; an announcement's amount sums its contracts; openai_share is missing for a firm linked to
        OpenAI only by undisclosed amounts). Rows with a missing value are dropped and named.
        """
        from analysis.explain import explain, study_frame
        from carousel.db import connect

        if fmt not in _FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose {', '.join(_FORMATS)}", field="--format")
        study = build_spec(config, model=model, benchmark=benchmark, estimation=estimation,
                           unknown_policy=unknown_policy, date_basis=date_basis, lag_non_us=lag_non_us)
        if common_shock is not None:
            if formula is None:
                raise InputError("the common-shock test needs its formula, e.g. '~ openai_share'", field="FORMULA")
            _common_shock(db, common_shock, formula, study, fmt)
            return
        spec = build_explain_spec(config, formula=formula, window=window, weights=weights, cov=cov,
                                  bootstrap=bootstrap, boot_weights=boot_weights, seed=seed)
        with connect(db, read_only=True) as con:
            frame = study_frame(con, spec.window, study)
        res = explain(
            frame, spec.formula, weights=spec.weights, cov=spec.cov, bootstrap=spec.bootstrap,
            boot_weights=spec.boot_weights, seed=spec.seed, window=spec.window.label,
        )
        if fmt == "json":
            typer.echo(res.to_json())
        elif fmt == "csv":
            typer.echo(res.to_frame().write_csv(float_precision=None), nl=False)
        elif fmt == "latex":
            typer.echo(res.to_latex(), nl=False)
        else:
            typer.echo(res.summary())


def _common_shock(db: object, deal_id: str, formula: str, study: Any, fmt: str) -> None:
    """The Sefcik-Thompson test of one shock on the study's model, benchmark and estimation window."""
    from analysis.shock_exposure import common_shock_exposure, primary_tickers
    from analysis.study import load_inputs
    from carousel.db import connect
    from ledger import api as ledger_api

    if len(study.benchmarks) > 1:
        raise InputError("the common-shock test takes one benchmark", field="--benchmark")
    if study.model not in ("market", "mean"):
        raise InputError(f"the common-shock test takes --model market or mean, not {study.model!r}",
                         field="--model")
    bench = study.benchmarks[0]
    model, estimation, unknown_policy = study.model, study.estimation, study.unknown_policy
    with connect(db, read_only=True) as con:  # type: ignore[arg-type]
        tickers = primary_tickers(ledger_api.companies(con))["ticker"].to_list()
        _deals, returns = load_inputs(con, [*tickers, bench])
        res, exposures = common_shock_exposure(
            con, returns, deal_id, formula=formula, benchmark=bench, model=model,
            estimation=(int(estimation[0]), int(estimation[1])), unknown_policy=unknown_policy,
            date_basis=study.date_basis,
        )
    if fmt == "json":
        doc = {
            "deal_id": deal_id,
            "event_date": res.event_date.isoformat(),
            "formula": res.formula,
            "firms": list(res.firms),
            "dropped": res.dropped,
            "df": res.df_resid,
            "coefficients": res.to_frame().to_dicts(),
            "exposures": exposures.to_dicts(),
        }
        typer.echo(json.dumps(doc, indent=2))
    elif fmt == "csv":
        typer.echo(res.to_frame().write_csv(float_precision=None), nl=False)
    elif fmt == "latex":
        typer.echo(res.to_latex(), nl=False)
    else:
        typer.echo(res.summary())


__all__ = ["register"]
