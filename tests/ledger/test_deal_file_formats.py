"""Deal file formats: BOMs, extra columns, YAML quirks, directories, bad bytes, and
the amount_kind/horizon of the shipped rows."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file, load_registry, note_terms, parse_deals

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
DEALS = DATA / "deals.csv"
TODAY = dt.date(2026, 6, 1)


def _rows() -> list[dict[str, str]]:
    return list(csv.DictReader(DEALS.read_text(encoding="utf-8").splitlines()))


def _folder(tmp_path: Path) -> Path:
    for name in ("companies.csv", "contracts.csv"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def _write_rows(out: Path, rows: list[dict[str, str]]) -> Path:
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM ledger_log").fetchall()[0][0])


# --- CSV ---------------------------------------------------------------------------------------------


def test_excel_bom_csv_imports(tmp_path: Path, db_path: Path) -> None:
    bom = _folder(tmp_path) / "deals.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + DEALS.read_bytes())  # Excel's "CSV UTF-8"
    with connect(db_path) as c:
        rep = import_file(c, bom, today=TODAY)
        assert rep.rows == 44
        assert api.deals(c).filter(deal_id="msft-openai-2019-07-22")["payers"].to_list() == [["microsoft"]]


@pytest.mark.parametrize(("rename", "unknown"), [("amount_usd_bn", "amount_usd_bm"), (None, "comment")])
def test_unknown_csv_column_is_named(tmp_path: Path, db_path: Path, rename: str | None, unknown: str) -> None:
    rows = _rows()[:2]
    out = _folder(tmp_path) / "deals.csv"
    fields = list(rows[0])
    if rename:  # a misspelt column: its values would be lost silently
        fields[fields.index(rename)] = unknown
        rows = [{(unknown if k == rename else k): v for k, v in r.items()} for r in rows]
    else:  # an extra column
        fields.append(unknown)
        rows = [{**r, unknown: "x"} for r in rows]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    with connect(db_path) as c:
        with pytest.raises(InputError) as exc:
            import_file(c, out, today=TODAY)
        assert _count(c) == 0
    if rename:  # the misspelling also leaves a required column missing, which is named first
        assert str(exc.value).startswith(f"{out}:1, field 'amount_usd_bn': missing column(s): amount_usd_bn")
    else:
        assert str(exc.value).startswith(f"{out}:1, field '{unknown}': unknown column(s): '{unknown}'")


def test_misspelt_optional_column_beside_the_real_one_is_named(tmp_path: Path, db_path: Path) -> None:
    text = DEALS.read_text(encoding="utf-8").splitlines()
    out = _folder(tmp_path) / "deals.csv"
    out.write_text("\n".join([text[0] + ",confidance", *(ln + ",verified" for ln in text[1:3])]) + "\n", encoding="utf-8")
    with connect(db_path) as c, pytest.raises(InputError, match=r"deals.csv:1, field 'confidance': unknown column"):
        import_file(c, out, today=TODAY)


def test_directory_is_refused_not_a_traceback(tmp_path: Path, db_path: Path) -> None:
    d = tmp_path / "deals.csv"
    d.mkdir()
    with connect(db_path) as c, pytest.raises(InputError) as exc:
        import_file(c, d, today=TODAY)
    assert str(exc.value) == f"{d}: not a regular file (a directory?)"


# --- YAML --------------------------------------------------------------------------------------------


def _yaml_deal(extra: str = "", time: str = "") -> str:
    return (
        "deals:\n"
        "  - id: msft-openai-2019-07-22\n"
        "    announced_date: 2019-07-22\n"
        f"    announced_time_et: {time}\n"
        "    session: unknown\n"
        "    payer: Microsoft\n"
        "    payee: OpenAI\n"
        "    amount_usd_bn: 1.0\n"
        "    deal_type: equity_investment\n"
        f"{extra}"
        "    source_url: https://example.com/a\n"
    )


@pytest.mark.parametrize("time", ["09:30", "16:30", "'16:30'"])
def test_unquoted_yaml_times_stay_times(tmp_path: Path, time: str) -> None:
    y = _folder(tmp_path) / "deals.yaml"
    y.write_text(_yaml_deal(time=time), encoding="utf-8")
    (ev,) = parse_deals(y, load_registry(tmp_path), today=TODAY)
    # YAML 1.1 would construct 16:30 as the sexagesimal integer 990.
    assert ev.payload["announced_time_et"] == time.strip("'")
    assert ev.payload["amount_usd"] == "1000000000.00"


def test_yaml_duplicate_key_is_named(tmp_path: Path) -> None:
    y = _folder(tmp_path) / "deals.yaml"
    y.write_text(_yaml_deal(extra="    id: other-deal-2019\n"), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        parse_deals(y, load_registry(tmp_path), today=TODAY)
    assert str(exc.value) == f"{y}:10, field 'id': duplicate key 'id' (first on line 2)"


def test_yaml_list_value_is_refused(tmp_path: Path) -> None:
    y = _folder(tmp_path) / "deals.yaml"
    y.write_text(_yaml_deal(extra="    counterparty_tickers: [MSFT]\n"), encoding="utf-8")
    with pytest.raises(InputError, match=r"deals.yaml:10, field 'counterparty_tickers': expected a single value"):
        parse_deals(y, load_registry(tmp_path), today=TODAY)


def test_non_utf8_yaml_is_an_input_error(tmp_path: Path, db_path: Path) -> None:
    y = _folder(tmp_path) / "t5.yaml"
    y.write_bytes(b"- id: x\n\xff\xfe\n")
    with connect(db_path) as c, pytest.raises(InputError) as exc:
        import_file(c, y, today=TODAY)
    assert str(exc.value) == f"{y}: not UTF-8 text (invalid start byte at byte 8)"


# --- amount_kind and horizon -------------------------------------------------------------------------

#: Every shipped row: (amount_kind, horizon), as a person reads the whole amount_note (amount_terms.csv).
SHIPPED_TERMS: dict[str, tuple[str, str | None]] = {
    "msft-openai-2019-07-22": ("exact", None),
    "msft-openai-2023-01-23": ("undisclosed", None),
    "stargate-2025-01-21": ("up_to", "4y"),
    "crwv-openai-2025-03-10-stock": ("exact", None),
    "openai-crwv-2025-03-10": ("estimate", "5y"),
    "nvda-crwv-2025-03-27-ipo": ("estimate", None),
    "softbank-openai-2025-03-31": ("up_to", None),
    "orcl-nvda-2025-05-23": ("estimate", None),
    "openai-googl-2025-06-10": ("undisclosed", None),
    "meta-scale-2025-06-12": ("estimate", None),
    "orcl-cloud-contract-2025-06-30": ("undisclosed", None),
    "openai-orcl-2025-07-02": ("undisclosed", None),
    "openai-orcl-2025-07-22": ("undisclosed", None),
    "softbank-intc-2025-08-18": ("exact", None),
    "meta-googl-2025-08-21": ("estimate", "6y"),
    "anthropic-avgo-2025-09-04": ("estimate", None),
    "openai-orcl-2025-09-10": ("estimate", "5y"),
    "nvda-crwv-2025-09-15": ("exact", "through 2032"),
    "nvda-intc-2025-09-18": ("exact", None),
    "nvda-openai-2025-09-22": ("up_to", None),
    "stargate-sites-2025-09-23": ("undisclosed", None),
    "openai-crwv-2025-09-25": ("up_to", None),
    "meta-crwv-2025-09-30": ("up_to", "through 2031"),
    "amd-openai-2025-10-06": ("undisclosed", None),
    "amd-openai-2025-10-06-warrant": ("undisclosed", None),
    "openai-avgo-2025-10-13": ("undisclosed", None),
    "orcl-amd-2025-10-14": ("undisclosed", None),
    "anthropic-googl-2025-10-23": ("undisclosed", None),
    "openai-msft-2025-10-28": ("exact", None),
    "openai-amzn-2025-11-03": ("exact", "7y"),
    "softbank-nvda-2025-11-11-exit": ("exact", None),
    "anthropic-msft-2025-11-18": ("exact", None),
    "msft-anthropic-2025-11-18": ("up_to", None),
    "nvda-anthropic-2025-11-18": ("up_to", None),
    "anthropic-avgo-2025-12-11": ("exact", None),
    "nvda-crwv-2026-01-26": ("exact", None),
    "nvda-openai-2026-01-30-stall": ("undisclosed", None),
    "amzn-openai-2026-02-27": ("up_to", None),
    "nvda-openai-2026-02-27": ("exact", None),
    "openai-amzn-2026-02-27": ("exact", "8y"),
    "softbank-openai-2026-02-27": ("exact", None),
    "meta-crwv-2026-04-09": ("estimate", "through 2032"),
    "openai-crwv-2025-05-expansion": ("up_to", None),
    "softbank-nvda-stake-2025q1": ("estimate", None),
}


def test_every_shipped_row_has_the_reviewed_amount_kind_and_horizon(db_path: Path) -> None:
    with connect(db_path) as c:
        import_file(c, DEALS)
        d = api.deals(c)
    got = {r["deal_id"]: (r["amount_kind"], r["horizon"]) for r in d.iter_rows(named=True)}
    assert len(got) == 44
    assert got == SHIPPED_TERMS
    # The SoftBank-OpenAI amount is unchanged.
    sb = d.filter(deal_id="softbank-openai-2025-03-31")["amount_usd"].to_list()
    assert [str(v) for v in sb] == ["40000000000.00"]


def test_amount_terms_file_lists_exactly_the_rows_with_an_amount() -> None:
    terms = {r["deal_id"] for r in csv.DictReader((DATA / "amount_terms.csv").read_text(encoding="utf-8").splitlines())}
    assert terms == {r["id"] for r in _rows() if r["amount_usd_bn"]}


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        # context after the leading clause describes other numbers, not the amount
        ("$2B of Intel common at $23/share (~2%); about 10% of the float", ("exact", None)),
        ("7-year AWS agreement; expanded by $100B over 8 years later", ("exact", "7y")),
        ("incremental $250B commitment; IP rights through 2032", ("exact", None)),
        ("~$21B of capacity through December 2032", ("estimate", "through 2032")),
        ("up to $6.5B third expansion", ("up_to", None)),
        ("WSJ report: $300B over five years", ("estimate", "5y")),
    ],
)
def test_note_fallback_reads_the_leading_clause(note: str, expected: tuple[str, str | None]) -> None:
    t = note_terms(note, disclosed=True)
    assert (t.amount_kind, t.horizon) == expected


def test_unlisted_deal_falls_back_to_the_note(tmp_path: Path) -> None:
    y = _folder(tmp_path) / "deals.yaml"
    y.write_text(_yaml_deal().replace("msft-openai-2019-07-22", "msft-openai-2030-01-01").replace(
        "    deal_type:", "    amount_note: '~$1B, reported'\n    deal_type:"), encoding="utf-8")
    (ev,) = parse_deals(y, load_registry(tmp_path), today=TODAY)
    assert (ev.payload["amount_kind"], ev.payload["horizon"]) == ("estimate", None)


def test_bad_amount_terms_file_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "amount_terms.csv").write_text("deal_id,amount_kind,horizon\nx-y-z,guess,\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"amount_terms.csv:2, field 'amount_kind': 'guess' is not one of"):
        load_registry(folder)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amount_usd_bn", "1_0", "'1_0' is not a number (US$ billions)"),
        ("amount_usd_bn", "１４.3", "'１４.3' is not a number (US$ billions)"),  # fullwidth digits
        ("announced_time_et", "１６:30", "'１６:30'"),
        ("announced_date", "２０２５-06-10", "'２０２５-06-10'"),
    ],
)
def test_digits_must_be_ascii_and_plain(tmp_path: Path, db_path: Path, column: str, value: str, message: str) -> None:
    """Decimal() and \\d accept '1_0' (= 10) and digits of any script; in a deals file those are typos or
    paste artefacts, and '1_0' used to import as US$ 10 billion."""
    rows = _rows()[:2]
    rows[1][column] = value
    out = _write_rows(_folder(tmp_path) / "deals.csv", rows)
    with connect(db_path) as c:
        with pytest.raises(InputError) as exc:
            import_file(c, out, today=TODAY)
        assert _count(c) == 0
    assert str(exc.value).startswith(f"{out}:3, field '{column}': "), str(exc.value)
    assert message in str(exc.value)


# --- payer share of a syndicated deal (amount_terms.csv payer_share_bn) -------------------------------


def _terms_with_share(folder: Path, deal_id: str, share: str) -> None:
    lines = (DATA / "amount_terms.csv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split(",")
    col = head.index("payer_share_bn")
    assert col == len(head) - 1  # the share is the last field of every row
    out = [lines[0]] + [(line.rsplit(",", 1)[0] + "," + share) if line.startswith(deal_id + ",") else line
                        for line in lines[1:]]
    (folder / "amount_terms.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("share", "message"),
    [
        ("abc", r"amount_terms.csv:\d+, field 'payer_share_bn': 'abc' is not a number \(US\$ billions\)"),
        ("-1", r"amount_terms.csv:\d+, field 'payer_share_bn': '-1' must be a non-negative amount"),
    ],
)
def test_bad_payer_share_is_named(tmp_path: Path, share: str, message: str) -> None:
    folder = _folder(tmp_path)
    _terms_with_share(folder, "softbank-openai-2025-03-31", share)
    with pytest.raises(InputError, match=message):
        load_registry(folder)


def test_payer_share_above_the_amount_is_refused_and_nothing_is_written(tmp_path: Path, db_path: Path) -> None:
    folder = _folder(tmp_path)
    shutil.copy(DEALS, folder / "deals.csv")
    _terms_with_share(folder, "softbank-openai-2025-03-31", "41")
    line = next(i for i, r in enumerate(_rows(), start=2) if r["id"] == "softbank-openai-2025-03-31")
    with connect(db_path) as con:
        with pytest.raises(InputError, match=rf"deals.csv:{line}, field 'amount_usd_bn': amount_terms.csv says the "
                           r"payer pays US\$ 41 billion of it, more than the amount \(US\$ 40 billion\)"):
            import_file(con, folder / "deals.csv", today=TODAY)
        assert _count(con) == 0


def test_payer_share_sets_the_flow_and_only_that_announcement(tmp_path: Path, db_path: Path) -> None:
    """Rows without a share keep their canonical payload (no null key), so their event content is as before."""
    folder = _folder(tmp_path)
    shutil.copy(DEALS, folder / "deals.csv")
    _terms_with_share(folder, "softbank-openai-2025-03-31", "12.5")
    evs = parse_deals(folder / "deals.csv", load_registry(folder), today=TODAY)
    with_share = [e.payload["deal_id"] for e in evs if "payer_amount_usd" in e.payload]
    assert with_share == ["softbank-openai-2025-03-31"]
    with connect(db_path) as con:
        import_file(con, folder / "deals.csv", today=TODAY)
        f = api.flows(con).filter(deal_id="softbank-openai-2025-03-31")
        assert f["amount_usd"].to_list() == [12.5e9]
        assert str(api.deals(con).filter(deal_id="softbank-openai-2025-03-31")["amount_usd"].item()) == "40000000000.00"


def test_payer_share_on_a_multi_party_deal_is_refused(tmp_path: Path, db_path: Path) -> None:
    folder = _folder(tmp_path)
    shutil.copy(DEALS, folder / "deals.csv")
    _terms_with_share(folder, "stargate-2025-01-21", "100")
    with connect(db_path) as con:
        with pytest.raises(InputError, match=r"field 'payer': amount_terms.csv gives a payer share of US\$ 100 billion, "
                           r"but the deal has several payers or payees"):
            import_file(con, folder / "deals.csv", today=TODAY)
        assert _count(con) == 0


@pytest.mark.parametrize(
    ("day", "time_et", "session", "ok"),
    [
        ("2025-06-12", "16:05", "intraday", False), ("2025-06-12", "09:00", "intraday", False),
        ("2025-06-12", "10:00", "pre_market", False), ("2025-06-12", "12:00", "after_close", False),
        ("2025-06-12", "13:30", "after_close", False),  # a normal day closes at 16:00
        ("2025-11-28", "13:30", "after_close", True),  # the day after Thanksgiving closes at 13:00
        ("2025-12-24", "14:00", "after_close", True), ("2025-07-03", "13:00", "after_close", True),
        ("2025-06-12", "16:05", "after_close", True), ("2025-06-12", "09:29", "pre_market", True),
        ("2025-06-12", "09:30", "intraday", True), ("2025-06-12", "15:59", "intraday", True),
        ("2025-06-12", "16:00", "pre_market", False), ("2025-06-12", "03:00", "unknown", True),
        ("2025-06-12", "11:00", "non_trading", True),
    ],
)
def test_session_label_must_fit_the_time(
    tmp_path: Path, db_path: Path, day: str, time_et: str, session: str, ok: bool
) -> None:
    rows = _rows()[:2]
    rows[1]["announced_date"], rows[1]["announced_time_et"], rows[1]["session"] = day, time_et, session
    out = _write_rows(_folder(tmp_path) / "deals.csv", rows)
    with connect(db_path) as con:
        if ok:
            assert import_file(con, out, today=TODAY).appended > 0
        else:
            with pytest.raises(InputError, match=rf"deals.csv:3, field 'session': '{session}' does not fit "
                               rf"announced_time_et {time_et} on {day}"):
                import_file(con, out, today=TODAY)
            assert _count(con) == 0
