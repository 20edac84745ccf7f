"""`carousel ledger` commands with bad input, retries and retracted deals, driven through the real CLI.

Each bad-input case asserts the one-line message, the exit code, that no traceback reaches the user and
that the log is unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import carousel_runs
import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "data" / "events"
DEALS = EVENTS / "deals.csv"
N_COMPANIES = len((EVENTS / "companies.csv").read_text().splitlines()) - 1
MSFT = "msft-openai-2019-07-22"


def carousel(*args: str) -> subprocess.CompletedProcess[str]:
    """The command through ``carousel.cli.main`` in this process (its exit code, stdout and stderr: the
    subject here); :func:`carousel_process` where the separate process itself matters."""
    return carousel_runs.carousel_here(*args, cwd=REPO, env={"COLUMNS": "80"}, keep_db_env=True)


def carousel_process(*args: str) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, cwd=REPO, env={"COLUMNS": "80"}, keep_db_env=True)


def log_rows(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT position, event_id, event_type, payload FROM ledger_log ORDER BY position").fetchall()


@pytest.fixture
def db(ledger_db: Path) -> Path:
    return ledger_db


def _refused(res: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"error: {message}"]


# --- bad values: one line, exit 2, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retract", MSFT, "--effective", "notadate"], "field '--effective': 'notadate' is not a date YYYY-MM-DD"),
        (["amend", MSFT, "--effective", "2020-02-30", "--set", "title=x"],
         "field '--effective': '2020-02-30' is not a real calendar date"),
        (["amend", MSFT, "--effective", "2020-01-01", "--set", "amount_usd=NaN"],
         "field 'amount_usd': 'NaN' must be a non-negative amount in US dollars"),
        (["amend", MSFT, "--effective", "2020-01-01", "--set", "amount_usd=Infinity"],
         "field 'amount_usd': 'Infinity' must be a non-negative amount in US dollars"),
        (["amend", MSFT, "--effective", "2020-01-01", "--set", "amount_usd=1e40"],
         "field 'amount_usd': '1e40' US dollars is implausibly large (limit US$ 100000 billion)"),
        (["amend", MSFT, "--effective", "2020-01-01", "--set", "deal_type="],
         "field 'deal_type': required value is empty"),
        (["amend", MSFT, "--effective", "2020-01-01", "--set", "deal_type=garbage"],
         "field 'deal_type': unknown deal type 'garbage'"),
        (["correct", MSFT, "--set", "payers=nobody"],
         "field 'payers': unknown company 'nobody' (add it to companies.csv)"),
        (["correct", MSFT, "--set", "tickers=../../etc/passwd"],
         "field 'tickers': '../../etc/passwd' is not a ticker symbol"),
        (["correct", MSFT, "--set", "tickers=ZZZZ"],
         "field 'tickers': unknown ticker 'ZZZZ' (not listed for any company in companies.csv)"),
        (["correct", MSFT, "--set", "amount_kind=lol"],
         "field 'amount_kind': 'lol' is not one of exact, up_to, estimate, undisclosed"),
        (["correct", MSFT, "--set", "session=whenever"],
         "field 'session': 'whenever' is not one of pre_market, intraday, after_close, non_trading, unknown, weekend"),
        (["correct", MSFT, "--set", "sources=foo"], "field 'sources': 'foo' is not an http(s) URL"),
        (["correct", MSFT, "--set", "announced_date=2099-01-01"], "is in the future"),
        (["correct", MSFT, "--set", "horizon=forever"],
         "field 'horizon': 'forever' is not a horizon like '5y' or 'through 2032'"),
    ],
)
def test_bad_change_is_one_line_exit_2_and_writes_nothing(db: Path, args: list[str], message: str) -> None:
    before = log_rows(db)
    res = carousel("ledger", *args, "--db", str(db))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert log_rows(db) == before


def test_valid_changes_use_the_import_forms(db: Path) -> None:
    res = carousel("ledger", "correct", MSFT, "--set", "payers=Microsoft", "--set", "tickers=MSFT",
                   "--set", "sources=https://example.com/a;https://example.com/b", "--db", str(db))
    assert res.returncode == 0, res.stderr
    payload = json.loads(str(log_rows(db)[-1][3]))
    assert payload["changes"] == {
        "payers": ["microsoft"], "tickers": ["MSFT"],
        "sources": [{"publisher": None, "title": None, "url": "https://example.com/a", "date": None},
                    {"publisher": None, "title": None, "url": "https://example.com/b", "date": None}],
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: file not found"),
        ("{}", "{path}, field 'position': missing or not a non-negative integer"),
        ("nope", "{path}:1: not JSON (Expecting value)"),
        ('{"position": 3, "hash": "abc"}', "{path}, field 'hash': missing or not a 64-character hex SHA-256"),
    ],
)
def test_bad_anchor_is_an_input_error(db: Path, tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "anchor.json"
    if content is not None:
        path.write_text(content)
    res = carousel("ledger", "verify", "--anchor", str(path), "--db", str(db))
    _refused(res, 2, message.format(path=path))


def test_import_of_a_directory_is_an_input_error(db: Path, tmp_path: Path) -> None:
    d = tmp_path / "deals.csv"
    d.mkdir()
    _refused(carousel("ledger", "import", str(d), "--db", str(db)), 2, f"{d}: not a regular file (a directory?)")


# --- retries and retracted deals -------------------------------------------------------------------


def test_identical_retry_writes_nothing_and_a_b_a_records_three(db: Path) -> None:
    n0 = len(log_rows(db))
    amend = ["ledger", "amend", MSFT, "--effective", "2020-01-01", "--db", str(db)]
    first = carousel(*amend, "--set", "amount_usd=2000000000", "--reason", "A")
    assert first.returncode == 0 and f"recorded for {MSFT} at position {n0 + 1}" in first.stdout
    retry = carousel(*amend, "--set", "amount_usd=2000000000", "--reason", "A")
    assert retry.returncode == 0, retry.stderr
    assert f"already recorded at position {n0 + 1}" in retry.stdout
    assert len(log_rows(db)) == n0 + 1
    assert carousel(*amend, "--set", "amount_usd=3000000000", "--reason", "B").returncode == 0
    # A again after B is a real change (the id follows B), so it is recorded.
    again = carousel(*amend, "--set", "amount_usd=2000000000", "--reason", "A")
    assert again.returncode == 0 and f"at position {n0 + 3}" in again.stdout
    rows = log_rows(db)
    assert len(rows) == n0 + 3 and len({r[1] for r in rows}) == n0 + 3
    assert rows[-1][3] == rows[-3][3]  # same content as the first A, different event id


def test_retry_with_expected_version_is_recognised_and_a_stale_change_conflicts(db: Path) -> None:
    n0 = len(log_rows(db))
    cmd = ["ledger", "correct", MSFT, "--expected-version", "1", "--db", str(db)]
    assert carousel(*cmd, "--set", "title=Fixed").returncode == 0
    retry = carousel(*cmd, "--set", "title=Fixed")
    assert retry.returncode == 0 and f"already recorded at position {n0 + 1}" in retry.stdout
    _refused(carousel(*cmd, "--set", "title=Other"), 5, f"stream deal-{MSFT} is at version 2, expected 1")
    assert len(log_rows(db)) == n0 + 1


def test_retracted_deal_cannot_be_retracted_again_or_changed(db: Path) -> None:
    n0 = len(log_rows(db))
    assert carousel("ledger", "retract", MSFT, "--reason", "gone", "--db", str(db)).returncode == 0
    retry = carousel("ledger", "retract", MSFT, "--reason", "gone", "--db", str(db))
    assert retry.returncode == 0 and f"already recorded at position {n0 + 1}" in retry.stdout
    msg = (f"deal '{MSFT}' was retracted (position {n0 + 1}); a retracted deal cannot be amended, corrected "
           "or retracted again")
    _refused(carousel("ledger", "retract", MSFT, "--reason", "other", "--db", str(db)), 5, msg)
    _refused(carousel("ledger", "amend", MSFT, "--effective", "2020-01-01", "--set", "title=x", "--db", str(db)), 5, msg)
    _refused(carousel("ledger", "correct", MSFT, "--set", "title=x", "--db", str(db)), 5, msg)
    assert len(log_rows(db)) == n0 + 1


def test_help_documents_the_retry_rule() -> None:
    res = carousel_process("ledger", "amend", "--help")
    text = " ".join(res.stdout.split())
    assert "Retrying the identical command writes nothing" in text
    assert "A, then B, then A again records three events" in text


# --- output and add ----------------------------------------------------------------------------------


def test_asof_keeps_whole_deal_ids_when_piped(db: Path) -> None:
    res = carousel_process("ledger", "asof", "--db", str(db))
    assert res.returncode == 0, res.stderr
    for deal_id in ("nvda-crwv-2026-01-26", "crwv-openai-2025-03-10-stock", "amd-openai-2025-10-06-warrant"):
        assert deal_id in res.stdout
    assert "…" not in res.stdout
    assert "44 rows" in res.stdout


def test_add_on_a_fresh_db_registers_companies_like_import(tmp_path: Path) -> None:
    new = tmp_path / "deals.csv"
    lines = DEALS.read_text(encoding="utf-8").splitlines()
    new.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # one deal; companies come from data/events
    db = tmp_path / "fresh.duckdb"
    res = carousel("ledger", "add", str(new), "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert f"added 1 deal(s), {N_COMPANIES} company registration(s)" in res.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM companies").fetchall()[0][0] == N_COMPANIES
        assert con.execute("SELECT payers FROM deals").fetchall() == [(["microsoft"],)]
    again = carousel("ledger", "add", str(new), "--db", str(db))
    assert again.returncode == 0 and "added 0 deal(s), 0 company registration(s)" in again.stdout
