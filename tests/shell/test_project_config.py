"""carousel.toml: found upward from the working directory or given with --config, validated with errors
naming file, line and key, overridden by command-line options; study, run and report read the same spec."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import carousel_runs
import polars as pl
import pytest

from analysis.spec import StudySpec
from analysis.window import EventWindow
from carousel.cli.options import build_spec
from carousel.config import find_config, load_config
from core.errors import InputError

REPO = Path(__file__).resolve().parents[2]

PAPER = """\
# a paper's specification
version = 1

[study]
model = "ff3"
windows = ["-1,1", "0,0"]
estimation = [-200, -11]
min_obs = 100

[study.benchmarks_by_ticker]
"9984.T" = ["SPY[-1]"]
"""


def _write(folder: Path, text: str) -> Path:
    path = folder / "carousel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_paper_file_sets_the_spec_and_options_override_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, PAPER)
    sub = tmp_path / "paper" / "code"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert find_config() == tmp_path / "carousel.toml"
    spec = build_spec()
    assert (spec.model, spec.windows, spec.estimation, spec.min_obs) == (
        "ff3", (EventWindow(-1, 1), EventWindow(0, 0)), (-200, -11), 100)
    assert spec.benchmarks_by_ticker == (("9984.T", ("SPY[-1]",)),)
    assert dict(spec.sources)["model"] == f"{tmp_path / 'carousel.toml'}:5"
    over = build_spec(model="market", window=["0,0"])
    assert (over.model, over.windows, over.min_obs) == ("market", (EventWindow(0, 0),), 100)
    assert dict(over.sources)["model"] == "--model"
    # no file anywhere above: the defaults
    monkeypatch.chdir(tmp_path.parent)
    if find_config() is None:
        assert build_spec() == StudySpec()


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("[study]\nmodel = 'market'\n", 1, "version", "version = 1"),
        ("version = 2\n", 1, "version", "not supported"),
        ("version = 1\n[study]\nmodle = 'ff3'\n", 3, "study.modle", "unknown key 'modle'"),
        ("version = 1\n[study]\nmin_obs = '120'\n", 3, "study.min_obs", "must be an integer"),
        ("version = 1\n\n[study]\nwindows = ['-1;1']\n", 4, "study.windows", "is not 'start,end'"),
        ("version = 1\n[study]\nwindows = ['-20,0']\n", 3, "study.windows", "overlaps the estimation window"),
        ("version = 1\n[study]\nbenchmarks = ['SPY', 'QQQ']\n", 3, "study.benchmarks", "exactly one benchmark"),
        ("version = 1\n[study]\n[study.benchmarks_by_ticker]\n'9984.T' = 'SPY'\n", 4,
         "study.benchmarks_by_ticker.9984.T", "non-empty list"),
        ("version = 1\n[study\n", 2, None, "not valid TOML"),
        ("version = 1\n[output]\n", 2, "output", "unknown section"),
    ],
)
def test_bad_files_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str | None, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=message) as err:
        load_config(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, key)


def test_explicit_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as err:
        build_spec(tmp_path / "nope.toml")
    assert err.value.field == "--config"


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, cwd=cwd, env=env, timeout=600)


# session scope: conftest.py starts the slowest tests first, so this module's tests need not run together
@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the shipped deals and prices, made with `--db` before the subcommand."""
    folder = tmp_path_factory.mktemp("cfg")
    db = folder / "c.duckdb"
    for args in (("--db", str(db), "ledger", "import", str(REPO / "data" / "events" / "deals.csv")),
                 ("--db", str(db), "market", "load-snapshot")):
        res = _cli(*args, cwd=folder)
        assert res.returncode == 0, res.stderr
    return db


def test_db_before_or_after_the_subcommand_and_over_the_environment(shipped: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    sql = "SELECT count(*) AS n FROM deals"
    before = _cli("--db", str(shipped), "sql", sql, "--format", "json", cwd=tmp_path,
                  env={"CAROUSEL_DB": str(other)})
    after = _cli("sql", sql, "--format", "json", "--db", str(shipped), cwd=tmp_path)
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) == [{"n": 44}]
    assert not other.exists()


def test_study_formats_and_config(shipped: Path, tmp_path: Path) -> None:
    as_json = _cli("study", "--db", str(shipped), "--format", "json", "-w", "0,0", cwd=tmp_path)
    as_csv = _cli("study", "--db", str(shipped), "--format", "csv", "-w", "0,0", cwd=tmp_path)
    pq = tmp_path / "car.parquet"
    as_pq = _cli("study", "--db", str(shipped), "--format", "parquet", "--out", str(pq), "-w", "0,0", cwd=tmp_path)
    assert as_json.returncode == as_csv.returncode == as_pq.returncode == 0, as_pq.stderr
    records = json.loads(as_json.stdout)
    frame = pl.read_csv(as_csv.stdout.encode(), try_parse_dates=True)
    parquet = pl.read_parquet(pq)
    assert frame.height == parquet.height == len(records) == 40
    amd = "amd-openai-2025-10-06:AMD"
    want = next(r["car"] for r in records if r["event_id"] == amd)
    assert want == pytest.approx(0.2314, abs=5e-5)
    assert frame.filter(event_id=amd)["car"].item() == pytest.approx(want, rel=1e-9)
    assert parquet.filter(event_id=amd)["car"].item() == want
    no_out = _cli("study", "--db", str(shipped), "--format", "parquet", cwd=tmp_path)
    assert no_out.returncode == 2 and "--out" in no_out.stderr
    # a carousel.toml in the working directory is read by study; an option overrides it
    _write(tmp_path, 'version = 1\n[study]\nmodel = "mean"\nwindows = ["0,0"]\n')
    mean = _cli("study", "--db", str(shipped), "--format", "json", cwd=tmp_path)
    market = _cli("study", "--db", str(shipped), "--format", "json", "--model", "market", cwd=tmp_path)
    got_mean = next(r["car"] for r in json.loads(mean.stdout) if r["event_id"] == amd)
    got_market = next(r["car"] for r in json.loads(market.stdout) if r["event_id"] == amd)
    assert got_market == want and got_mean != want
    _write(tmp_path, 'version = 1\n[study]\nmodel = "nope"\n')
    bad = _cli("study", "--db", str(shipped), cwd=tmp_path)
    assert bad.returncode == 2 and f"{tmp_path / 'carousel.toml'}:3, field 'study.model'" in bad.stderr
