"""``carousel study --type volume|volatility|runup`` and ``--model garch`` on the shipped database:
the CLI's JSON equals the pure functions' numbers (themselves checked against statsmodels/arch in
test_volume, test_volatility and test_runup)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analysis.runup import runup_study
from analysis.study import load_inputs, load_prices, run_study
from analysis.volatility import variance_ratio
from analysis.volume import abnormal_volume
from carousel.cli import app
from carousel.db import connect
from core.errors import InputError
from ledger.load import import_file
from market.snapshot import load_snapshot

REPO = Path(__file__).resolve().parents[2]
STARGATE = "stargate-2025-01-21"


@pytest.fixture(scope="module")
def shipped_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("st") / "c.duckdb"
    with connect(path) as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        load_snapshot(con)
    return path


def _json(db: Path, *args: str) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    out = CliRunner().invoke(app, ["study", "--db", str(db), "--format", "json", "--deal", STARGATE, *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout), out.stderr


def _record(recs: list[dict], ticker: str, window: str) -> dict:  # type: ignore[type-arg]
    return next(r for r in recs if r["ticker"] == ticker and r["window"] == window)


def test_garch_volume_runup_volatility_from_the_cli(shipped_db: Path) -> None:
    with connect(shipped_db, read_only=True) as con:
        deals, returns = load_inputs(con, ["SPY"])
        _, prices = load_prices(con, ["^GSPC"])

    recs, _ = _json(shipped_db, "--model", "garch")
    api = run_study(deals, returns, model="garch", deal_filter=[STARGATE]).car
    want = api.filter((pl.col("ticker") == "ORCL") & (pl.col("window") == "[0,0]")).row(0, named=True)
    got = _record(recs, "ORCL", "[0,0]")
    assert (got["car"], got["se"], got["p"]) == (want["car"], want["se"], want["p"])
    assert got["bhar"] is None and len(recs) == 5 * 4

    recs, _ = _json(shipped_db, "--type", "volume")
    api = abnormal_volume(deals, prices, deal_filter=[STARGATE]).car
    want = api.filter((pl.col("ticker") == "ORCL") & (pl.col("window") == "[0,0]")).row(0, named=True)
    assert _record(recs, "ORCL", "[0,0]")["car"] == want["car"] == pytest.approx(1.7393, abs=1e-4)

    recs, _ = _json(shipped_db, "--type", "runup")
    assert {r["window"] for r in recs} == {"[-10,-1]", "[-1,-1]"}
    api = runup_study(deals, returns, deal_filter=[STARGATE]).car
    want = api.filter((pl.col("ticker") == "ORCL") & (pl.col("window") == "[-1,-1]")).row(0, named=True)
    assert _record(recs, "ORCL", "[-1,-1]")["car"] == want["car"] == pytest.approx(0.05828, abs=5e-5)

    recs, err = _json(shipped_db, "--type", "volatility", "-w", "0,0")
    vr = variance_ratio(run_study(deals, returns, deal_filter=[STARGATE], windows=((0, 0),)).panel, (0, 0))
    want = vr.frame.filter(pl.col("ticker") == "ORCL").row(0, named=True)
    got = _record(recs, "ORCL", "[0,0]")
    assert got["var_ratio"] == want["var_ratio"] and got["p"] == want["p"] and got["df2"] == 238
    assert "pooled [0,0]: N=5" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "price"], "unknown study type 'price'"),
        (["--type", "runup", "-w", "-1,1"], "run-up windows must end before t0"),
        (["--type", "volume", "--model", "ff3"], "market-volume model only"),
        (["--model", "garch", "--method", "statsmodels"], "takes no --method"),
        (["--model", "garch", "-w", "-15,0"], "overlaps the estimation window"),
    ],
)
def test_bad_study_options_are_input_errors(shipped_db: Path, args: list[str], message: str) -> None:
    # carousel.cli.main turns an InputError into exit code 2; the app itself raises it
    out = CliRunner().invoke(app, ["study", "--db", str(shipped_db), "--deal", STARGATE, *args])
    assert isinstance(out.exception, InputError), out.output
    assert message in str(out.exception)
