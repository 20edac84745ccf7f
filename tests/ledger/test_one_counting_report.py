"""Only one report of a contract counts toward flow totals (review s15, ledger finding 4).

`ledger correct --set counts_toward_total=true` on the Nvidia LOI made Nvidia -> OpenAI committed flows
$130bn instead of $30bn. Commands and imports now refuse a change that leaves two counting reports with
amounts in one contract, naming both deals; the swap (one stops counting, then the other counts) works.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from carousel_runs import carousel_here

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "data" / "events"
LOI, EQUITY, MSFT = "nvda-openai-2025-09-22", "nvda-openai-2026-02-27", "msft-openai-2019-07-22"
CONTRACT = "nvidia-openai-equity"


def _shipped() -> dict[str, dict[str, str]]:
    with (EVENTS / "deals.csv").open(encoding="utf-8", newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def _bn(deal: str) -> Decimal:
    return Decimal(_shipped()[deal]["amount_usd_bn"])


def carousel(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``carousel *args --db db`` through ``carousel.cli.main`` in this process (exit code and messages as
    the process gives them, :mod:`carousel_runs`)."""
    return carousel_here(*args, "--db", db, cwd=REPO)


def _nvidia_openai_bn(db: Path) -> Decimal:
    with duckdb.connect(str(db), read_only=True) as con:
        (bn,) = con.execute("SELECT sum(amount_usd) / 1e9 FROM flows WHERE counts_toward_total "
                            "AND payer = 'nvidia' AND payee = 'openai'").fetchall()[0]
    return Decimal(str(bn))


def _events(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM ledger_log").fetchall()[0][0])


def _refused(res: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    for p in parts:
        assert p in res.stderr, res.stderr


@pytest.fixture
def db(ledger_db: Path) -> Path:
    return ledger_db


def test_correct_refuses_a_second_counting_report_and_the_swap_works(db: Path) -> None:
    assert _nvidia_openai_bn(db) == _bn(EQUITY) == 30  # only the $30bn equity counts
    n = _events(db)
    res = carousel(db, "ledger", "correct", LOI, "--set", "counts_toward_total=true", "--reason", "x")
    _refused(res, 2, "field 'counts_toward_total': after this change "
             f"{LOI} (US$ 100000000000.00) and {EQUITY} (US$ 30000000000.00) would both count toward flow "
             f"totals in contract '{CONTRACT}'")
    assert _events(db) == n and _nvidia_openai_bn(db) == 30  # was 130
    # The swap, one step at a time: the equity stops counting, then the LOI counts.
    assert carousel(db, "ledger", "correct", EQUITY, "--set", "counts_toward_total=false", "--reason", "s").returncode == 0
    ok = carousel(db, "ledger", "correct", LOI, "--set", "counts_toward_total=true", "--reason", "s")
    assert ok.returncode == 0, ok.stderr
    assert _nvidia_openai_bn(db) == _bn(LOI) == 100


def test_moving_a_counting_report_into_the_contract_is_refused(db: Path) -> None:
    res = carousel(db, "ledger", "amend", MSFT, "--effective", "2024-01-01", "--set", f"contract_id={CONTRACT}",
                   "--reason", "x")
    _refused(res, 2, "field 'contract_id': after this change", f"{MSFT} (US$ 1000000000.00) and {EQUITY} "
             f"(US$ 30000000000.00) would both count", "from 2024-01-01")


def _folder(tmp_path: Path, contracts: list[dict[str, str]], deals: list[dict[str, str]]) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir(parents=True)
    shutil.copy(EVENTS / "companies.csv", folder / "companies.csv")
    with (folder / "contracts.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["deal_id", "contract_id", "counts_toward_total", "note"])
        w.writeheader()
        w.writerows(contracts)
    with (folder / "deals.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(deals[0]))
        w.writeheader()
        w.writerows(deals)
    return folder / "deals.csv"


def test_contracts_file_with_two_counting_reports_is_refused(db: Path, tmp_path: Path) -> None:
    rows = list(_shipped().values())
    with (EVENTS / "contracts.csv").open(encoding="utf-8", newline="") as f:
        contracts = list(csv.DictReader(f))
    for c in contracts:
        if c["deal_id"] == LOI:
            c["counts_toward_total"] = "true"
    line = 2 + next(i for i, c in enumerate(contracts) if c["deal_id"] == EQUITY)
    deals = _folder(tmp_path, contracts, rows)
    res = carousel(db, "ledger", "import", str(deals), "--record-changes")
    _refused(res, 2, f"{deals.parent / 'contracts.csv'}:{line}, field 'counts_toward_total': {EQUITY} and {LOI} "
             f"(line {line - 2}) both count toward totals in contract '{CONTRACT}'")
    assert _nvidia_openai_bn(db) == 30


def test_import_of_a_new_counting_report_into_a_counted_contract_is_refused(db: Path, tmp_path: Path) -> None:
    new = {**_shipped()[EQUITY], "id": "nvda-openai-2026-03-01-report", "announced_date": "2026-03-01",
           "source_date": "2026-03-01"}
    deals = _folder(tmp_path, [{"deal_id": new["id"], "contract_id": CONTRACT, "counts_toward_total": "true",
                                "note": "another report"}], [new])
    n = _events(db)
    res = carousel(db, "ledger", "import", str(deals))
    _refused(res, 5, f"{deals}: after this import {EQUITY} (US$ 30000000000.00) and {new['id']} "
             f"(US$ 30000000000.00) would all count toward flow totals in contract '{CONTRACT}'")
    assert _events(db) == n and _nvidia_openai_bn(db) == 30
    # Marked as not counting, it is imported and the total stays the contract's $30bn.
    ok_deals = _folder(tmp_path / "ok", [{"deal_id": new["id"], "contract_id": CONTRACT,
                                          "counts_toward_total": "false", "note": ""}], [new])
    ok = carousel(db, "ledger", "import", str(ok_deals))
    assert ok.returncode == 0, ok.stderr
    assert _events(db) == n + 1 and _nvidia_openai_bn(db) == 30


def test_a_contracts_swap_in_a_reimport_is_recorded(db: Path, tmp_path: Path) -> None:
    with (EVENTS / "contracts.csv").open(encoding="utf-8", newline="") as f:
        contracts = list(csv.DictReader(f))
    for c in contracts:
        if c["deal_id"] in (LOI, EQUITY):
            c["counts_toward_total"] = "true" if c["deal_id"] == LOI else "false"
    deals = _folder(tmp_path, contracts, list(_shipped().values()))
    shutil.copy(EVENTS / "amount_terms.csv", deals.parent / "amount_terms.csv")
    res = carousel(db, "ledger", "import", str(deals), "--record-changes")
    assert res.returncode == 0, res.stderr
    assert f"recorded DealCorrected for 2 changed row(s): {LOI}, {EQUITY}" in res.stdout
    assert _nvidia_openai_bn(db) == 100
