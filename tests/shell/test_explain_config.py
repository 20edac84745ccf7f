"""The [explain] section of carousel.toml: `carousel explain` and the main job's second stage take the
formula, window, weights, covariance and bootstrap from it; command-line options override it; a bad
value names the file, the line and the key. Fits checked against statsmodels to 1e-8."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.formula.api as smf
from typer.testing import CliRunner

from analysis.spec import DEFAULT_EXPLAIN, ExplainSpec
from analysis.window import EventWindow
from carousel.cli import app
from carousel.cli.options import build_explain_spec
from carousel.config import load_config
from carousel.db import connect
from core.errors import InputError

DATA = Path(__file__).resolve().parents[2] / "data"
PAPER = """\
version = 1

[study]
windows = ["0,0", "-1,1"]

[explain]
formula = "car ~ log_amount + on_round_trip"
window = "0,0"
weights = "ols"
covariance = ["hc1", "cluster:date"]
bootstrap = 99
boot_weights = "rademacher"
seed = 7
"""


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "carousel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_sets_the_spec_and_options_override_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, PAPER)
    monkeypatch.chdir(tmp_path)
    spec = build_explain_spec()
    assert spec == ExplainSpec("car ~ log_amount + on_round_trip", EventWindow(0, 0), "ols", ("hc1", "cluster:date"),
                               99, "rademacher", 7)
    assert spec.cov == "hc1"
    over = build_explain_spec(window="-1,1", weights="wls", cov="cluster:date,firm", bootstrap=0)
    assert (over.window, over.weights, over.covariance, over.bootstrap, over.seed) == (
        EventWindow(-1, 1), "wls", ("cluster:date,firm",), 0, 7)
    assert build_explain_spec(path, formula="car ~ degree").formula == "car ~ degree"
    # one covariance may be a plain string
    one = _write(tmp_path / "one", 'version = 1\n[explain]\ncovariance = "hc3"\n')
    assert build_explain_spec(one) == DEFAULT_EXPLAIN.with_(covariance=("hc3",))
    # no [explain]: the README's second stage
    assert build_explain_spec(_write(tmp_path / "none", "version = 1\n")) == DEFAULT_EXPLAIN
    assert (DEFAULT_EXPLAIN.weights, DEFAULT_EXPLAIN.covariance) == ("wls", ("hc3", "cluster:date,firm"))


@pytest.mark.parametrize(
    ("body", "line", "key", "message"),
    [
        ("formul = 'car ~ x'", 3, "explain.formul", "unknown key 'formul'"),
        ("formula = 'car'", 3, "explain.formula", "is not 'car ~ terms'"),
        ("window = '-1;1'", 3, "explain.window", "is not 'start,end'"),
        ("window = [-1, 1]", 3, "explain.window", "must be a string"),
        ("weights = 'gls'", 3, "explain.weights", "unknown weights 'gls'"),
        ("covariance = ['hc3', 'hc9']", 3, "explain.covariance", "unknown covariance 'hc9'"),
        ("covariance = []", 3, "explain.covariance", "a string or a list of strings"),
        ("covariance = ['hc3', 'hc3']", 3, "explain.covariance", "given twice"),
        ("covariance = 'cluster:date,firm,deal'", 3, "explain.covariance", "one or two variables"),
        ("bootstrap = -5", 3, "explain.bootstrap", "0 or a positive number"),
        ("bootstrap = '999'", 3, "explain.bootstrap", "must be an integer"),
        ("boot_weights = 'mammen'", 3, "explain.boot_weights", "choose webb or rademacher"),
        ("seed = -1", 3, "explain.seed", "0 or positive"),
    ],
)
def test_bad_values_name_file_line_and_key(tmp_path: Path, body: str, line: int, key: str, message: str) -> None:
    path = _write(tmp_path, f"version = 1\n[explain]\n{body}\n")
    with pytest.raises(InputError, match=message) as err:
        load_config(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, key)


def test_bad_options_name_the_option() -> None:
    for kwargs, option in (({"weights": "gls"}, "--weights"), ({"cov": "hc7"}, "--cov"),
                           ({"bootstrap": -1}, "--bootstrap"), ({"window": "1"}, "--window")):
        with pytest.raises(InputError) as err:
            build_explain_spec(**kwargs)  # type: ignore[arg-type]
        assert err.value.field == option


def _reference(frame: pl.DataFrame, formula: str, *, wls: bool, cov: str, groups: list[str]) -> object:
    needed = ["car", "se", "log_amount", "on_round_trip", *groups]
    c = frame.drop_nulls(["car", "log_amount"]).select(needed).with_columns(
        pl.col("on_round_trip").cast(pl.Int64)).to_pandas()
    kw = {"groups": pd.factorize(c[groups[0]])[0]} if groups else None
    model = smf.wls(formula, c, weights=1.0 / c["se"] ** 2) if wls else smf.ols(formula, c)
    return model.fit(cov_type=cov, cov_kwds=kw, use_t=True)


def _close(got: dict[str, dict[str, float]], ref: object, se: str = "se", *, rtol: float = 1e-8,
           atol: float = 1e-14) -> None:
    for term in ref.params.index:  # type: ignore[attr-defined]
        np.testing.assert_allclose(got[term]["coef"], ref.params[term], rtol=rtol, atol=atol)  # type: ignore[attr-defined]
        np.testing.assert_allclose(got[term][se], ref.bse[term], rtol=rtol, atol=atol)  # type: ignore[attr-defined]


def test_explain_command_takes_the_file_and_options_override_it(shipped_db: Path, tmp_path: Path) -> None:
    from analysis.explain import study_frame

    cfg = _write(tmp_path, PAPER.replace("bootstrap = 99", "bootstrap = 0"))
    with connect(shipped_db, read_only=True) as con:
        day0 = study_frame(con, "0,0")
        win = study_frame(con, "-1,1")
    run = CliRunner().invoke(app, ["explain", "--db", str(shipped_db), "--config", str(cfg), "--format", "json"])
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert (doc["window"], doc["formula"], doc["method"], doc["cov_type"]) == (
        "[0,0]", "car ~ log_amount + on_round_trip", "OLS", "HC1")
    ref = _reference(day0, "car ~ log_amount + on_round_trip", wls=False, cov="HC1", groups=[])
    _close({r["term"]: r for r in doc["coefficients"]}, ref)
    # options win over the file
    run = CliRunner().invoke(app, ["explain", "--db", str(shipped_db), "--config", str(cfg), "--format", "json",
                                   "-w", "-1,1", "--weights", "wls", "--cov", "cluster:date"])
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert (doc["window"], doc["method"], doc["cluster"]) == ("[-1,+1]", "WLS (w = 1/se^2)", ["t0"])
    ref = _reference(win, "car ~ log_amount + on_round_trip", wls=True, cov="cluster", groups=["t0"])
    _close({r["term"]: r for r in doc["coefficients"]}, ref)
    # a bad file: exit 2, file:line and key, no traceback
    bad = _write(tmp_path / "bad", "version = 1\n\n[explain]\nweights = 'gls'\n")
    proc = subprocess.run([sys.executable, "-m", "carousel", "explain", "--db", str(shipped_db), "--config", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert f"{bad}:4" in proc.stderr and "explain.weights" in proc.stderr and "Traceback" not in proc.stderr


def test_main_job_second_stage_follows_the_file(shipped_db: Path, tmp_path: Path) -> None:
    """`carousel report --config`: the table holds the file's fit (OLS, [0,0], HC1 and date clusters,
    a seeded bootstrap) on the run's own CARs, equal to statsmodels on the frame the job regresses."""
    from analysis.date_basis import apply_date_basis
    from analysis.events import collapse_same_day, firm_events
    from analysis.explain import explain_frame, market_caps_at_t0
    from analysis.features import firm_event_features
    from analysis.spec import StudySpec
    from analysis.study import load_inputs, run_spec

    db = tmp_path / "r.duckdb"
    db.write_bytes(shipped_db.read_bytes())
    cfg = _write(tmp_path / "paper", PAPER)
    run = CliRunner().invoke(app, ["report", "--db", str(db), "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    table = pl.read_csv(tmp_path / "out" / "tables" / "explain_second_stage.csv")
    assert table.columns == ["term", "coef", "se_hc1", "p_hc1", "se_cl_date", "p_cl_date", "boot_p"]
    md = (tmp_path / "out" / "tables" / "explain_second_stage.md").read_text(encoding="utf-8")
    assert "What explains CAR[0,0]: car ~ log_amount + on_round_trip (OLS" in md
    assert "99 draws, rademacher weights, seed 7" in md
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "the CARs of the [0,0] window regressed on the characteristics in the table's title" in page

    spec = StudySpec(windows=(EventWindow(0, 0), EventWindow(-1, 1)))
    with connect(db, read_only=True) as con:
        inputs = load_inputs(con, spec.extra_tickers())
        res = run_spec(inputs[0], inputs[1], spec)
        events = collapse_same_day(firm_events(apply_date_basis(inputs[0], spec.date_basis),
                                               unknown_policy=spec.unknown_policy))
        feats = firm_event_features(con, events, market_caps=market_caps_at_t0(con, events))
    frame = explain_frame(res, feats, "0,0")
    got = {r["term"]: r for r in table.to_dicts()}
    # the table's CSV holds six decimals: equal to statsmodels within their rounding
    hc1 = _reference(frame, "car ~ log_amount + on_round_trip", wls=False, cov="HC1", groups=[])
    _close(got, hc1, "se_hc1", rtol=0, atol=5e-7)
    cl = _reference(frame, "car ~ log_amount + on_round_trip", wls=False, cov="cluster", groups=["t0"])
    _close(got, cl, "se_cl_date", rtol=0, atol=5e-7)
    assert got["Intercept"]["boot_p"] is None and 0 < got["on_round_trip"]["boot_p"] <= 1


def test_readme_example_file_reads_and_states_the_defaults(tmp_path: Path) -> None:
    """The README's carousel.toml parses, and its [explain] block is exactly the built-in default."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", readme, flags=re.S)
    assert block is not None
    cfg = load_config(_write(tmp_path, block.group(1)))
    assert ExplainSpec(**cfg.explain) == DEFAULT_EXPLAIN and set(cfg.explain) == {
        "formula", "window", "weights", "covariance", "bootstrap", "boot_weights", "seed"}
