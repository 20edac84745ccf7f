"""Re-importing a deals file whose rows changed since they were imported.

Events are immutable, so a changed row cannot replace its DealAnnounced. Without ``record_changes`` the
import is refused (nothing written) and names the deal and the fields; with it, exactly the changed
fields are recorded as one DealCorrected per deal. A row equal to the deal's current record (announcement
plus corrections) is already present either way, so the import stays idempotent after a correction.
What the file said is the announcement plus the corrections earlier imports recorded; hand corrections
are not the file's, so an import never reverts a hand correction of a field the file did not change.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from carousel_runs import carousel_here

from carousel.db import connect
from core.errors import ConflictError
from ledger import api, log
from ledger.load import import_file

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "events"
DEALS = DATA / "deals.csv"
TODAY = dt.date(2026, 6, 1)
OPENAI_ORCL = "openai-orcl-2025-09-10"  # amount_usd_bn 300


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM ledger_log").fetchall()[0][0])


def _edited(tmp_path: Path, edits: dict[str, dict[str, str]], name: str = "deals.csv") -> Path:
    """A copy of the shipped deals file (with its companies and contracts) with ``edits[id][column]``."""
    folder = tmp_path / name.removesuffix(".csv")
    folder.mkdir(exist_ok=True)
    for f in ("companies.csv", "contracts.csv", "amount_terms.csv"):
        shutil.copy(DATA / f, folder / f)
    text = DEALS.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        r.update(edits.get(r["id"], {}))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    out = folder / "deals.csv"
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


@pytest.fixture
def con(db_path: Path) -> duckdb.DuckDBPyConnection:
    c = connect(db_path)
    import_file(c, DEALS, today=TODAY)
    return c


def _amount(con: duckdb.DuckDBPyConnection, deal_id: str) -> object:
    return api.deals(con).filter(deal_id=deal_id)["amount_usd"].item()


def test_a_changed_row_is_refused_and_nothing_is_written(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    changed = _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317"}})
    before = _count(con)
    with pytest.raises(ConflictError) as err:
        import_file(con, changed, today=TODAY)
    assert f"deal '{OPENAI_ORCL}' changed since it was imported (amount_usd)" in str(err.value)
    assert "--record-changes" in str(err.value)
    assert _count(con) == before and str(_amount(con, OPENAI_ORCL)) == "300000000000.00"


def test_record_changes_corrects_exactly_the_changed_fields_once(con: duckdb.DuckDBPyConnection,
                                                                 tmp_path: Path) -> None:
    before = _count(con)
    changed = _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317", "confidence": "memory"}})
    rep = import_file(con, changed, today=TODAY, record_changes=True)
    assert (rep.appended, rep.corrected) == (1, (OPENAI_ORCL,))
    assert _count(con) == before + 1
    last = log.read(con, streams=[f"deal-{OPENAI_ORCL}"])[-1]
    assert last.event_type == "DealCorrected"
    assert last.payload["changes"] == {"amount_usd": "317000000000.00", "confidence": "memory"}
    assert str(_amount(con, OPENAI_ORCL)) == "317000000000.00"
    assert log.verify(con).ok
    # Idempotent from here on, with or without the flag.
    for flag in (False, True):
        again = import_file(con, changed, today=TODAY, record_changes=flag)
        assert (again.appended, again.corrected) == (0, ())
    assert _count(con) == before + 1
    # Going back to the original file is a change again (the file said 317 last time), recorded as one.
    with pytest.raises(ConflictError, match=r"\(amount_usd, confidence\)"):
        import_file(con, DEALS, today=TODAY)
    back = import_file(con, DEALS, today=TODAY, record_changes=True)
    assert back.corrected == (OPENAI_ORCL,) and str(_amount(con, OPENAI_ORCL)) == "300000000000.00"
    assert _count(con) == before + 2 and log.verify(con).ok


def test_a_hand_correction_of_a_field_the_file_did_not_change_survives(con: duckdb.DuckDBPyConnection,
                                                                       tmp_path: Path) -> None:
    """Review finding: the import diffed the row against the corrected record, so a file revising the
    amount also reset a hand-corrected confidence to the file's old value."""
    stream = f"deal-{OPENAI_ORCL}"
    head = log.read(con, streams=[stream])[-1]
    from ledger.model import NewEvent, event_id_for

    log.append(con, [NewEvent(event_id_for(stream, "DealCorrected", "hand"), stream, "DealCorrected",
                              {"deal_id": OPENAI_ORCL, "changes": {"confidence": "partial"}, "reason": "hand fix"})],
               expected={stream: head.stream_version})
    rep = import_file(con, _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317"}}), today=TODAY,
                      record_changes=True)
    assert rep.corrected == (OPENAI_ORCL,)
    last = log.read(con, streams=[stream])[-1]
    assert last.payload["changes"] == {"amount_usd": "317000000000.00"} and last.payload["origin"] == "import"
    row = api.deals(con).filter(deal_id=OPENAI_ORCL).row(0, named=True)
    assert (str(row["amount_usd"]), row["confidence"]) == ("317000000000.00", "partial")
    # And the unchanged original file does not undo the hand correction either.
    assert import_file(con, DEALS, today=TODAY, record_changes=True).corrected == (OPENAI_ORCL,)
    row = api.deals(con).filter(deal_id=OPENAI_ORCL).row(0, named=True)
    assert (str(row["amount_usd"]), row["confidence"]) == ("300000000000.00", "partial")


def test_a_note_only_change_is_not_a_change(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = _count(con)
    noted = _edited(tmp_path, {OPENAI_ORCL: {"amount_note": "~$300B over ~5 years; a reworded note"}})
    # amount_terms.csv classifies the shipped row, so a reworded note does not move its kind or horizon.
    rep = import_file(con, noted, today=TODAY)
    assert (rep.appended, rep.corrected, _count(con)) == (0, (), before)


def test_a_revised_headline_reaction_is_commentary_like_the_note(con: duckdb.DuckDBPyConnection, db_path: Path,
                                                                  tmp_path: Path) -> None:
    """Review s15 ledger finding 7: a revised headline_reaction (commentary nothing reads) was refused for
    good ("no event can change it"), also in `carousel run` (origin 'shipped', record_changes)."""
    deal = "msft-openai-2019-07-22"
    shipped = next(r for r in csv.DictReader(io.StringIO(DEALS.read_text(encoding="utf-8"))) if r["id"] == deal)
    revised = _edited(tmp_path, {deal: {"headline_reaction": "MSFT +0.4% (revised)"}})
    before = _count(con)
    for origin in ("shipped", "import"):
        rep = import_file(con, revised, today=TODAY, record_changes=True, origin=origin)
        assert (rep.appended, rep.corrected) == (0, ())
    (stored,) = con.execute("SELECT payload FROM ledger_log WHERE event_type = 'DealAnnounced' AND stream_id = ?",
                            [f"deal-{deal}"]).fetchall()
    assert json.loads(stored[0])["headline_reaction"] == shipped["headline_reaction"]  # the text first imported
    assert _count(con) == before
    con.close()
    res = carousel_here("ledger", "import", revised, "--db", db_path, cwd=REPO)
    assert res.returncode == 0, res.stderr  # was exit 5
    assert "0 events appended" in res.stdout


def test_a_retracted_deal_is_left_alone_and_listed(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A retracted deal cannot be corrected; under record_changes (what `carousel run` uses) its changed
    row must not stop every later import, so it is skipped and listed instead."""
    events = log.read(con, streams=[f"deal-{OPENAI_ORCL}"])
    from ledger.model import NewEvent, event_id_for

    stream = f"deal-{OPENAI_ORCL}"
    log.append(con, [NewEvent(event_id_for(stream, "DealRetracted", "t"), stream, "DealRetracted",
                              {"deal_id": OPENAI_ORCL, "reason": "test", "effective_date": None})],
               expected={stream: events[-1].stream_version})
    before = _count(con)
    changed = _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317"},
                                 "nvda-crwv-2025-09-15": {"amount_usd_bn": "6.4"}})
    with pytest.raises(ConflictError, match=f"deal '{OPENAI_ORCL}' changed since it was imported") as refused:
        import_file(con, changed, today=TODAY)
    # The advice fits a retracted deal (`ledger correct` refuses one): review s15, ledger minor finding.
    position = next(e.position for e in log.read(con, streams=[stream]) if e.event_type == "DealRetracted")
    assert str(refused.value) == (f"{changed}: deal '{OPENAI_ORCL}' changed since it was imported (amount_usd), but "
                                  f"it was retracted (log position {position}) and a retracted deal cannot be "
                                  "corrected; with --record-changes the import leaves it as it is and lists it")
    rep = import_file(con, changed, today=TODAY, record_changes=True)
    assert (rep.corrected, rep.retracted_changed) == (("nvda-crwv-2025-09-15",), (OPENAI_ORCL,))
    assert _count(con) == before + 1 and str(_amount(con, OPENAI_ORCL)) == "300000000000.00"
    assert import_file(con, changed, today=TODAY, record_changes=True).retracted_changed == (OPENAI_ORCL,)
    assert _count(con) == before + 1


def test_several_changed_rows_are_one_atomic_batch(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = _count(con)
    two = _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317"},
                             "nvda-crwv-2025-09-15": {"amount_usd_bn": "6.4"}})
    rep = import_file(con, two, today=TODAY, record_changes=True)
    assert sorted(rep.corrected) == ["nvda-crwv-2025-09-15", OPENAI_ORCL]
    assert _count(con) == before + 2
    assert str(_amount(con, "nvda-crwv-2025-09-15")) == "6400000000.00"
    positions = con.execute("SELECT position FROM ledger_log WHERE event_type = 'DealCorrected' ORDER BY 1").fetchall()
    assert [p[0] for p in positions] == [before + 1, before + 2]


def test_cli_flag_and_message(db_path: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return carousel_here("ledger", "import", *args, "--db", db_path, cwd=REPO)

    assert run(str(DEALS)).returncode == 0
    changed = _edited(tmp_path, {OPENAI_ORCL: {"amount_usd_bn": "317"}})
    refused = run(str(changed))
    assert refused.returncode == 5 and "Traceback" not in refused.stderr
    assert f"deal '{OPENAI_ORCL}' changed since it was imported (amount_usd)" in refused.stderr
    ok = run(str(changed), "--record-changes")
    assert ok.returncode == 0, ok.stderr
    assert f"recorded DealCorrected for 1 changed row(s): {OPENAI_ORCL}" in ok.stdout
    with duckdb.connect(str(db_path), read_only=True) as c:
        payload = c.execute("SELECT payload FROM ledger_log WHERE event_type = 'DealCorrected'").fetchall()
    assert [json.loads(p[0])["changes"] for p in payload] == [{"amount_usd": "317000000000.00"}]


def test_a_changed_company_is_refused_naming_the_file_and_fields(con: duckdb.DuckDBPyConnection,
                                                                 tmp_path: Path) -> None:
    deals = _edited(tmp_path, {})
    companies = deals.parent / "companies.csv"
    rows = list(csv.DictReader(io.StringIO(companies.read_text(encoding="utf-8"))))
    target = next(r for r in rows if r["company_id"] == "coreweave")
    target["name"] = "CoreWeave Inc."
    target["tickers"] = target["tickers"] + "|CRWV2:NASDAQ:USD"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    companies.write_text(buf.getvalue(), encoding="utf-8")
    before = _count(con)
    for flag in (False, True):  # --record-changes is for deals; no event can change a company
        with pytest.raises(ConflictError) as err:
            import_file(con, deals, today=TODAY, record_changes=flag)
        assert str(err.value) == (f"{companies}: company 'coreweave' changed since it was registered (name, tickers); "
                                  "a registered company cannot be changed: register it under a new company id")
    assert _count(con) == before


def test_a_payer_share_added_later_is_recorded_as_one_correction(db_path: Path, tmp_path: Path) -> None:
    """A database imported before amount_terms.csv gave SoftBank's $30B share of the $40B round: the
    re-import names the new field, and with record_changes records exactly it; the flow follows."""
    folder = tmp_path / "old"
    folder.mkdir()
    for f in ("companies.csv", "contracts.csv"):
        shutil.copy(DATA / f, folder / f)
    lines = (DATA / "amount_terms.csv").read_text(encoding="utf-8").splitlines()
    (folder / "amount_terms.csv").write_text(
        "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", encoding="utf-8")  # without the column
    shutil.copy(DEALS, folder / "deals.csv")
    with connect(db_path) as c:
        import_file(c, folder / "deals.csv", today=TODAY)
        sb = api.flows(c).filter(deal_id="softbank-openai-2025-03-31")
        assert sb["amount_usd"].to_list() == [40e9]
        before = _count(c)
        with pytest.raises(ConflictError, match=r"softbank-openai-2025-03-31' changed since it was imported "
                           r"\(payer_amount_usd\)"):
            import_file(c, DEALS, today=TODAY)
        assert _count(c) == before
        rep = import_file(c, DEALS, today=TODAY, record_changes=True)
        assert rep.corrected == ("softbank-openai-2025-03-31",) and _count(c) == before + 1
        (corr,) = [e for e in log.read(c) if e.event_type == "DealCorrected"]
        assert corr.payload["changes"] == {"payer_amount_usd": "30000000000.00"}
        assert api.flows(c).filter(deal_id="softbank-openai-2025-03-31")["amount_usd"].to_list() == [30e9]
        assert log.verify(c).ok
        assert import_file(c, DEALS, today=TODAY).appended == 0
