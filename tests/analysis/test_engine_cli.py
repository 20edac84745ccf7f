"""``carousel study``: options, rich table and JSON records, on the shipped prices.

Until the ledger/market layers exist the DB read (``load_inputs``) is replaced by the shipped CSVs and a
weekday calendar; the end-to-end test against a real database runs once they do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import importlib.util
import json
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

import analysis.events as events_mod
import analysis.study as study
import carousel.cli.study as cli
from core.errors import InputError

D = dt.date
DATA = Path(__file__).resolve().parents[2] / "data"
SNAPSHOT_NAMES = {"GSPC": "^GSPC", "IXIC": "^IXIC"}
HAVE_LAYERS = all(
    importlib.util.find_spec(m) is not None
    for m in ("ledger.api", "market.api", "market.returns", "market.calendars")
)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, so that `study` is a subcommand as in carousel
        pass

    cli.register(app)
    return app


def _weekday_align(
    frame: pl.DataFrame, calendar: str, unknown_policy: str = "same_day"
) -> pl.DataFrame:
    def t0(d: dt.date, session: str) -> dt.date:
        if session == "after_close":
            d += dt.timedelta(days=1)
        while d.weekday() >= 5:
            d += dt.timedelta(days=1)
        return d

    return frame.with_columns(
        pl.Series(
            "t0",
            [t0(d, s) for d, s in zip(frame["announced_date"], frame["session"], strict=True)],
            dtype=pl.Date,
        ),
        pl.lit("weekday").alias("t0_rule"),
    )


def _shipped_returns() -> pl.DataFrame:
    """Simple returns of data/prices/*.csv read directly with Polars.

    With the market layer present, its pure ``compute_returns`` (adj_close when both days have it,
    else close) is used, so the numbers are the ones ``carousel study`` sees; without it, a per-file
    fallback: adj_close when the file has it, else close.
    """
    frames = []
    for f in sorted((DATA / "prices").glob("*.csv")):
        ticker = SNAPSHOT_NAMES.get(f.stem, f.stem)
        d = pl.read_csv(
            f, try_parse_dates=True, schema_overrides={"adj_close": pl.Float64, "close": pl.Float64}
        )
        frames.append(
            d.sort("date").select(pl.lit(ticker).alias("ticker"), "date", "close", "adj_close")
        )
    prices = pl.concat(frames)
    if importlib.util.find_spec("market.returns") is not None:
        market_returns = importlib.import_module("market.returns")
        return market_returns.compute_returns(prices).select("ticker", "date", "ret")
    px = pl.coalesce("adj_close", "close")
    return (
        prices.with_columns((px / px.shift(1).over("ticker") - 1).alias("ret"))
        .drop_nulls("ret")
        .select("ticker", "date", "ret")
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    deals = pl.DataFrame(
        {
            "deal_id": ["amd-openai-2025-10-06", "orcl-amd-2025-10-14", "undated"],
            "status": ["active", "active", "active"],
            "announced_date": [D(2025, 10, 6), D(2025, 10, 14), None],
            "announced_time_et": [None, None, None],
            "session": ["pre_market", "pre_market", "unknown"],
            "tickers": [["AMD"], ["AMD", "ORCL"], ["MSFT"]],
        }
    )
    returns = _shipped_returns()
    # The command imports these when it runs (cold start), so they are replaced where they live.
    monkeypatch.setattr(study, "load_inputs", lambda con, extra: (deals, returns))
    monkeypatch.setattr("carousel.db.connect", lambda db, read_only: contextlib.nullcontext(None))
    # The dollar columns' inputs, from the shipped share counts and closes instead of the database.
    import analysis.dollar_columns as dollar_columns
    from analysis.dollar_columns import DollarInputs
    from market.shares_sources import read_shares_csv

    closes = pl.concat([pl.read_csv(f, try_parse_dates=True, columns=["date", "close"]).select(
        pl.lit(SNAPSHOT_NAMES.get(f.stem, f.stem)).alias("ticker"), "date", pl.col("close").cast(pl.Float64))
        for f in sorted((DATA / "prices").glob("*.csv"))])
    monkeypatch.setattr(dollar_columns, "load_dollar_inputs",
                        lambda con, tickers: DollarInputs(read_shares_csv(), closes))
    monkeypatch.setattr(
        events_mod,
        "firm_events",
        partial(events_mod.firm_events, calendar_for=lambda t: "XNYS", align_t0=_weekday_align),
    )


def test_study_json_and_table_offline(offline: None) -> None:
    _run_checks()


def _run_checks() -> None:
    runner = CliRunner()
    out = runner.invoke(
        _app(),
        [
            "study",
            "--format",
            "json",
            "--deal",
            "amd-openai-2025-10-06",
            "--window",
            "0,0",
            "--window=-1,1",
        ],
    )
    assert out.exit_code == 0, out.output
    recs = json.loads(out.stdout)
    assert [r["window"] for r in recs] == ["[0,0]", "[-1,+1]"]
    r0 = recs[0]
    assert (
        r0["ticker"] == "AMD"
        and r0["t0"] == "2025-10-06"
        and r0["deal_id"] == "amd-openai-2025-10-06"
    )
    assert 0.228 < r0["car"] < 0.234 and r0["t"] > 5
    assert r0["se"] == pytest.approx(r0["car"] / r0["t"])
    table = runner.invoke(_app(), ["study", "--ticker", "AMD", "--estimation", "-250", "-11"])
    assert table.exit_code == 0, table.output
    assert "amd-openai-2025-10-06" in table.stdout and "23.1" in table.stdout
    assert "orcl-amd-2025-10-14" in table.stdout
    peers = runner.invoke(
        _app(),
        [
            "study",
            "--format",
            "json",
            "--deal",
            "amd-openai-2025-10-06",
            "--peer",
            "NVDA",
            "-w",
            "0,0",
        ],
    )
    assert peers.exit_code == 0, peers.output
    assert sorted(r["ticker"] for r in json.loads(peers.stdout)) == ["AMD", "NVDA"]
    bad = runner.invoke(_app(), ["study", "--window", "1"])
    assert bad.exit_code != 0


def test_parse_window() -> None:
    assert cli.parse_window("-1,1") == (-1, 1)
    assert cli.parse_window("[-5,+5]") == (-5, 5)
    assert cli.parse_window("0:10") == (0, 10)
    with pytest.raises(InputError):
        cli.parse_window("3,1")
    with pytest.raises(InputError):
        cli.parse_window("x")


def test_run_study_excludes_undated_and_rejects_unknown_deal(offline: None) -> None:
    deals, returns = study.load_inputs(None, ["SPY"])  # type: ignore[arg-type]
    res = study.run_study(deals, returns, windows=((0, 0),))
    assert dict(res.excluded.select("event_id", "reason").iter_rows()) == {
        "undated:MSFT": "no_t0", "orcl-amd-2025-10-14:AMD": "overlaps_earlier_event"}
    assert res.nobs == 2
    with pytest.raises(InputError, match="unknown deal"):
        study.run_study(deals, returns, deal_filter=["nope"])
    with pytest.raises(InputError, match="benchmark"):
        study.run_study(deals, returns, benchmarks=("NOPE",))


@pytest.fixture
def shipped_db(db_path: Path) -> Path:
    """A database holding the shipped deals and price snapshot."""
    from carousel.db import connect

    importer = importlib.import_module("ledger.load")
    snapshot = importlib.import_module("market.snapshot")
    con = connect(db_path)
    try:
        importer.import_file(con, DATA / "events" / "deals.csv")
        snapshot.load_snapshot(con)
    finally:
        con.close()
    return db_path


@pytest.mark.skipif(not HAVE_LAYERS, reason="ledger/market layers not built yet")
def test_study_end_to_end_on_shipped_database(shipped_db: Path) -> None:
    db_path = shipped_db
    runner = CliRunner()
    out = runner.invoke(
        _app(),
        ["study", "--db", str(db_path), "--format", "json", "--deal", "amd-openai-2025-10-06"],
    )
    assert out.exit_code == 0, out.output
    recs = [r for r in json.loads(out.stdout) if r["ticker"] == "AMD"]
    r0 = next(r for r in recs if r["window"] == "[0,0]")
    assert r0["t0"] == "2025-10-06"
    assert 0.228 < r0["car"] < 0.234 and r0["t"] > 5
    table = runner.invoke(_app(), ["study", "--db", str(db_path), "--ticker", "AMD"])
    assert table.exit_code == 0, table.output
    assert "amd-openai-2025-10-06" in table.stdout


@pytest.mark.skipif(not HAVE_LAYERS, reason="ledger/market layers not built yet")
def test_filters_report_the_full_run_numbers_and_reject_unknown_tickers(shipped_db: Path) -> None:
    db_path = shipped_db
    runner = CliRunner()
    base = ["study", "--db", str(db_path), "--format", "json"]
    full = runner.invoke(_app(), base)
    assert full.exit_code == 0, full.output
    # stdout is pure JSON; the exclusion summary goes to stderr
    assert "40 firm-events estimated, 17 excluded" in full.stderr
    # overlaps openai-crwv-2025-09-25 (3 sessions earlier): checked before the estimation data
    assert "excluded meta-crwv-2025-09-30:CRWV: overlaps_earlier_event" in full.stderr
    want = [r for r in json.loads(full.stdout) if r["event_id"] == "openai-orcl-2025-09-10:ORCL"]
    # ORCL's 2025-07-22 announcement lies in this event's estimation window; a --deal filter must
    # still mask it, so the filtered record is the full run's (CAR 35.53%, se 2.126%, t 16.71)
    filtered = runner.invoke(_app(), [*base, "--deal", "openai-orcl-2025-09-10"])
    assert filtered.exit_code == 0, filtered.output
    got = [r for r in json.loads(filtered.stdout) if r["ticker"] == "ORCL"]
    _same_records(got, want)
    r0 = next(r for r in got if r["window"] == "[0,0]")
    assert r0["car"] == pytest.approx(0.355286, abs=1e-6)
    assert r0["se"] == pytest.approx(0.0212576, abs=1e-7)
    assert r0["t"] == pytest.approx(16.7134, abs=1e-4)
    by_ticker = runner.invoke(_app(), [*base, "--ticker", "ORCL"])
    _same_records([r for r in json.loads(by_ticker.stdout) if r["event_id"] == want[0]["event_id"]], want)
    # a deal that is not the representative of its collapsed same-day group still selects the group
    warrant = runner.invoke(_app(), [*base, "--deal", "amd-openai-2025-10-06-warrant"])
    assert warrant.exit_code == 0, warrant.output
    ids = {r["event_id"] for r in json.loads(warrant.stdout)}
    assert ids == {"amd-openai-2025-10-06:AMD"}
    unknown = runner.invoke(_app(), ["study", "--db", str(db_path), "--ticker", "NOPE"])
    assert unknown.exit_code != 0
    assert isinstance(unknown.exception, InputError)
    assert "NOPE" in str(unknown.exception) and unknown.exception.field == "--ticker"


def _same_records(got: list[dict[str, object]], want: list[dict[str, object]]) -> None:
    """Same records; floats equal up to summation order (batch shapes differ, so the last bit may)."""
    assert [(r["event_id"], r["window"]) for r in got] == [(r["event_id"], r["window"]) for r in want]
    for g, w in zip(got, want, strict=True):
        for k, v in w.items():
            if isinstance(v, float):
                assert g[k] == pytest.approx(v, rel=1e-12, abs=1e-300), (w["window"], k)
            else:
                assert g[k] == v


@pytest.mark.skipif(not HAVE_LAYERS, reason="ledger/market layers not built yet")
def test_lagged_benchmark_from_the_shell(shipped_db: Path) -> None:
    # The README's 9984.T example: the lagged SPY is read from the database like any benchmark.
    base = ["study", "--db", str(shipped_db), "--ticker", "9984.T", "-w", "0,0", "--format", "json"]
    runner = CliRunner()
    same_day = runner.invoke(_app(), [*base, "--no-lag-non-us"])
    dimson = runner.invoke(_app(), [*base, "--model", "multifactor", "-b", "SPY", "-b", "SPY[-1]"])
    default = runner.invoke(_app(), base)
    assert same_day.exit_code == 0 and dimson.exit_code == 0 and default.exit_code == 0, dimson.output
    a = {r["event_id"]: r for r in json.loads(same_day.stdout)}
    b = {r["event_id"]: r for r in json.loads(dimson.stdout)}
    assert set(a) == set(b) and len(b) == 6
    # 9984.T's default is the README's Dimson regression: the same records, bit for bit, except the
    # Holm and BH p-values, which adjust over every firm-event of the window in the *full* study: with
    # `--model multifactor -b SPY -b SPY[-1]` every ticker is on the Dimson model, by default only 9984.T.
    family = ("p_holm", "p_bh")

    def own(records: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k not in family} for r in records]

    d_default, d_dimson = json.loads(default.stdout), json.loads(dimson.stdout)
    assert own(d_default) == own(d_dimson)
    assert [r["p_holm"] <= 1.0 and r["p_bh"] >= r["p"] for r in d_default] == [True] * 6
    # the lagged market explains more of SoftBank's variance: smaller standard errors throughout
    assert all(b[k]["se"] < a[k]["se"] for k in a)
    stargate = b["stargate-2025-01-21:9984.T"]
    assert stargate["car"] == pytest.approx(0.0861, abs=0.0005) and stargate["t"] > 2.5


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        (["--model", "ff3", "-b", "SPY", "-b", "SOXX"], "--benchmark", "uses no benchmark returns"),
        (["--model", "mean", "-b", "SPY", "-b", "QQQ"], "--benchmark", "uses no benchmark returns"),
        (["--model", "market", "-b", "SPY", "-b", "SOXX"], "--model", "exactly one benchmark"),
        (["--model", "nope"], "--model", "unknown model"),
    ],
)
def test_benchmarks_a_model_would_ignore_are_refused(
    shipped_db: Path, args: list[str], field: str, message: str
) -> None:
    res = CliRunner().invoke(_app(), ["study", "--db", str(shipped_db), *args])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    assert res.exception.field == field and message in str(res.exception)


@pytest.mark.skipif(not HAVE_LAYERS, reason="ledger/market layers not built yet")
def test_unknown_policy_moves_only_unknown_time_events(shipped_db: Path) -> None:
    """SoftBank-OpenAI 2025-03-31 has no time of day: same_day puts MSFT's t0 on 03-31, next_session on
    04-01 (the row calls it a US-evening announcement). AMD 2025-10-06 is pre-market: unmoved. 9984.T is
    on the next Tokyo session under either policy."""
    runner = CliRunner()
    base = ["study", "--db", str(shipped_db), "--format", "json", "--window=0,0"]
    t0 = {}
    for policy in ("same_day", "next_session"):
        out = runner.invoke(_app(), [*base, "--unknown-policy", policy])
        assert out.exit_code == 0, out.output
        t0[policy] = {r["event_id"]: r["t0"] for r in json.loads(out.stdout)}
    sb = "softbank-openai-2025-03-31"
    assert (t0["same_day"][f"{sb}:MSFT"], t0["next_session"][f"{sb}:MSFT"]) == ("2025-03-31", "2025-04-01")
    assert t0["same_day"][f"{sb}:9984.T"] == t0["next_session"][f"{sb}:9984.T"] == "2025-04-01"
    assert t0["same_day"]["amd-openai-2025-10-06:AMD"] == t0["next_session"]["amd-openai-2025-10-06:AMD"] == "2025-10-06"
    moved = sum(t0["same_day"].get(k) != v for k, v in t0["next_session"].items())
    assert 0 < moved < len(t0["next_session"])
    bad = runner.invoke(_app(), [*base, "--unknown-policy", "later"])
    assert isinstance(bad.exception, InputError) and bad.exception.exit_code == 2
    assert "choose same_day or next_session" in str(bad.exception)
