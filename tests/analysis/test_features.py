"""Graph characteristics as known at each announcement: no look-ahead, and real values on the shipped
ledger checked by hand against data/events/deals.csv and contracts.csv."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest
from carousel_runs import carousel_here

from analysis.events import collapse_same_day, firm_events
from analysis.features import firm_event_features
from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file

DEALS_CSV = Path(__file__).resolve().parents[2] / "data" / "events" / "deals.csv"


def _events(con: object) -> pl.DataFrame:
    return collapse_same_day(firm_events(api.deals(con)))  # type: ignore[arg-type]


def _features(db: Path, **kw: object) -> pl.DataFrame:
    with connect(db, read_only=True) as con:
        return firm_event_features(con, _events(con), **kw)  # type: ignore[arg-type]


def _row(frame: pl.DataFrame, event_id: str) -> dict[str, object]:
    rows = frame.filter(pl.col("event_id") == event_id).to_dicts()
    assert len(rows) == 1, event_id
    return rows[0]


def _append_deal(db: Path, tmp: Path, deal_id: str, day: str, amount_bn: str) -> None:
    """Append one Nvidia -> OpenAI equity deal (a made-up row) through the real importer."""
    with DEALS_CSV.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        template = next(r for r in reader if r["id"] == "nvda-openai-2025-09-22")
        fields = reader.fieldnames
    assert fields is not None
    row = dict(template, id=deal_id, announced_date=day, amount_usd_bn=amount_bn, source_date=day,
               session="pre_market", announced_time_et="")
    path = tmp / f"{deal_id}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerow(row)
    with connect(db) as con:
        assert import_file(con, path).appended >= 1


@pytest.fixture(scope="module")
def shipped(seeded_ledger: Path) -> pl.DataFrame:
    return _features(seeded_ledger)


def test_oracle_2025_09_10_by_hand(shipped: pl.DataFrame) -> None:
    r = _row(shipped, "openai-orcl-2025-09-10:ORCL")
    assert r["known_on"] == dt.date(2025, 9, 10)
    assert (r["company"], r["role"], r["deal_type"], r["amount_kind"]) == (
        "oracle", "payee", "cloud_compute_purchase", "estimate")
    assert r["amount_usd"] == 300e9
    assert r["log_amount"] == pytest.approx(math.log(300e9), abs=1e-12)
    # Nvidia -> OpenAI (2025-09-22) was not known yet: the only cycle through OpenAI -> Oracle runs
    # through CoreWeave (CoreWeave's $0.35bn stock to OpenAI 03-10, Nvidia -> CoreWeave 03-27,
    # Oracle -> Nvidia 05-23), and it existed since the first report of the contract (06-30).
    assert r["round_trips"] == ["coreweave -> openai -> oracle -> nvidia -> coreweave"]
    assert r["on_round_trip"] is True and r["closes_round_trip"] is False and r["n_round_trips"] == 1
    # OpenAI's disclosed committed flows known on 2025-09-10 ($bn): Microsoft 1 (2019), CoreWeave stock
    # 0.35, OpenAI -> CoreWeave 11.9, SoftBank's own 30 of the $40bn round, OpenAI -> Oracle 300.
    assert r["openai_flows_usd"] == pytest.approx(300e9)
    assert r["openai_share"] == pytest.approx(300 / (1 + 0.35 + 11.9 + 30 + 300), abs=1e-12)
    # counterparties: OpenAI (in), Nvidia and Stargate (out)
    assert (r["degree"], r["in_degree"], r["out_degree"]) == (3, 1, 2)
    assert r["amount_to_mcap"] is None and r["amount_to_mcap_reason"] == "no_market_cap_frame"


def test_the_nvidia_openai_oracle_circle_appears_with_the_nvidia_letter(shipped: pl.DataFrame) -> None:
    r = _row(shipped, "nvda-openai-2025-09-22:NVDA")
    # the LOI is not the contract's counting report, but it stands in for it until 2026-02-27
    assert "nvidia -> openai -> oracle -> nvidia" in r["round_trips"]
    assert r["closes_round_trip"] is True and r["role"] == "payer" and r["amount_kind"] == "up_to"
    amd = _row(shipped, "amd-openai-2025-10-06:AMD")
    assert amd["round_trips"] == ["amd -> openai -> amd"] and amd["closes_round_trip"] is True
    assert amd["amount_usd"] is None and amd["log_amount"] is None and amd["amount_kind"] == "undisclosed"
    # Stargate's listed technology partners are neither payer nor payee
    assert _row(shipped, "stargate-2025-01-21:NVDA")["role"] == "bystander"
    assert _row(shipped, "stargate-2025-01-21:ORCL")["role"] == "payer"


def test_an_earlier_report_stands_in_for_the_counting_one(shipped: pl.DataFrame) -> None:
    # On 2025-07-02 only two reports of the Oracle contract were known, neither the designated one: the
    # latest counts, so OpenAI -> Oracle is a committed (undisclosed) edge and Oracle has an in-edge.
    r = _row(shipped, "openai-orcl-2025-07-02:ORCL")
    assert r["in_degree"] == 1 and r["on_round_trip"] is True and r["amount_kind"] == "undisclosed"


def test_a_deal_announced_after_t0_never_changes_t0s_characteristics(
    shipped: pl.DataFrame, ledger_db: Path, tmp_path: Path
) -> None:
    _append_deal(ledger_db, tmp_path, "nvda-openai-2025-09-11-test", "2025-09-11", "50")
    after = _features(ledger_db)
    cutoff = dt.date(2025, 9, 11)
    old = shipped.filter(pl.col("known_on") < cutoff)
    new = after.filter(pl.col("known_on") < cutoff)
    assert old.height > 20
    assert new.equals(old)
    # ... while the characteristics of later announcements do change (so the comparison can fail):
    # on 2025-09-15 Nvidia pays OpenAI as well as CoreWeave, and sits on a new cycle
    was, now = _row(shipped, "nvda-crwv-2025-09-15:NVDA"), _row(after, "nvda-crwv-2025-09-15:NVDA")
    assert (was["degree"], was["out_degree"], now["degree"], now["out_degree"]) == (2, 1, 3, 2)
    # CoreWeave's OpenAI flows on 09-25 (0.35 + 11.9 + 6.5) over OpenAI's: the 2025-09-10 total, the
    # appended 50, Nvidia's $100bn letter (standing in for its contract) and the new 6.5
    assert _row(after, "openai-crwv-2025-09-25:CRWV")["openai_share"] == pytest.approx(
        18.75 / (343.25 + 50 + 100 + 6.5), abs=1e-12)


def test_recorded_by_hides_records_made_later(shipped: pl.DataFrame, ledger_db: Path, tmp_path: Path) -> None:
    # A back-dated record (announced 2025-09-01, recorded now) is visible to the ledger as it stands,
    # but not to the ledger as recorded before it was written.
    before = dt.datetime.now(dt.UTC)
    _append_deal(ledger_db, tmp_path, "nvda-openai-2025-09-01-test", "2025-09-01", "50")
    then = _features(ledger_db, recorded_by=before)
    assert then.filter(pl.col("deal_id") != "nvda-openai-2025-09-01-test").equals(shipped)
    now = _features(ledger_db)
    orcl = _row(now, "openai-orcl-2025-09-10:ORCL")
    assert "nvidia -> openai -> oracle -> nvidia" in orcl["round_trips"]
    assert orcl["openai_share"] == pytest.approx(300 / (1 + 0.35 + 11.9 + 30 + 300 + 50), abs=1e-12)


def test_amount_relative_to_market_cap_and_reason_codes(seeded_ledger: Path, shipped: pl.DataFrame) -> None:
    sb_t0 = _row(shipped, "softbank-openai-2025-03-31:9984.T")["t0"]  # the next Tokyo session
    caps = pl.DataFrame(
        {
            "ticker": ["ORCL", "AMD", "9984.T"],
            "t0": [dt.date(2025, 9, 10), dt.date(2025, 10, 6), sb_t0],
            "mcap_usd": [650e9, 270e9, None],
            "mcap_reason": [None, None, "fx_missing"],
        }
    )
    f = _features(seeded_ledger, market_caps=caps)
    orcl = _row(f, "openai-orcl-2025-09-10:ORCL")
    assert orcl["amount_to_mcap"] == pytest.approx(300 / 650, abs=1e-15)
    assert orcl["amount_to_mcap_reason"] == "ok"
    assert _row(f, "amd-openai-2025-10-06:AMD")["amount_to_mcap_reason"] == "undisclosed_amount"
    sb = _row(f, "softbank-openai-2025-03-31:9984.T")
    assert sb["amount_to_mcap"] is None and sb["amount_to_mcap_reason"] == "fx_missing"
    assert _row(f, "meta-scale-2025-06-12:META")["amount_to_mcap_reason"] == "no_market_cap"
    with pytest.raises(InputError, match="mcap_usd"):
        _features(seeded_ledger, market_caps=caps.drop("mcap_usd"))


def test_known_ledger_is_ledger_api_per_day(seeded_ledger: Path) -> None:
    from analysis.features import ledger_as_known

    days = [dt.date(2025, 7, 1), dt.date(2025, 9, 10), dt.date(2026, 2, 27)]
    with connect(seeded_ledger, read_only=True) as con:
        for vectorised in (True, False):
            known = ledger_as_known(con, days, vectorised=vectorised)
            for d in days:
                assert known.deals.filter(pl.col("known_on") == d).drop("known_on").equals(api.deals(con, in_effect_on=d))
                assert known.flows.filter(pl.col("known_on") == d).drop("known_on").equals(api.flows(con, in_effect_on=d))


def test_known_ledger_with_an_amendment_folds_per_day(ledger_db: Path) -> None:
    """An amendment effective later must not show before its date: the per-day fold is used."""
    from analysis.features import ledger_as_known

    res = carousel_here("ledger", "amend", "openai-orcl-2025-09-10", "--set", "amount_usd=350000000000",
                        "--effective", "2025-12-01", "--db", ledger_db)
    assert res.returncode == 0, res.stderr
    days = [dt.date(2025, 11, 30), dt.date(2025, 12, 1)]
    with connect(ledger_db, read_only=True) as con:
        known = ledger_as_known(con, days)
        for d in days:
            assert known.deals.filter(pl.col("known_on") == d).drop("known_on").equals(api.deals(con, in_effect_on=d))
    amounts = known.deals.filter(pl.col("deal_id") == "openai-orcl-2025-09-10").sort("known_on")["amount_usd"]
    assert [float(a) for a in amounts] == [300e9, 350e9]


def test_naive_recorded_by_is_refused(seeded_ledger: Path) -> None:
    with pytest.raises(InputError, match="timezone"):
        _features(seeded_ledger, recorded_by=dt.datetime(2025, 9, 10))


def test_cycle_hops_are_networkx_simple_cycles_on_random_graphs() -> None:
    """The join-based cycle search finds exactly networkx's simple cycles (length-bounded) on each day."""
    import networkx as nx
    import numpy as np

    from analysis import network
    from analysis.features import cycle_hops

    rng = np.random.default_rng(7)
    rows = []
    for d in range(12):
        n = int(rng.integers(2, 9))
        for _ in range(int(rng.integers(1, 3 * n))):
            a, b = rng.integers(n, size=2)  # self-loops and 2-cycles included
            rows.append((dt.date(2025, 1, 1) + dt.timedelta(days=d), f"n{a}", f"n{b}"))
    edges = pl.DataFrame(rows, schema={"known_on": pl.Date, "payer": pl.String, "payee": pl.String}, orient="row")
    for bound in (1, 3, 6):
        got = cycle_hops(edges, bound)
        want = []
        for (day,), part in edges.partition_by("known_on", as_dict=True).items():
            g = nx.DiGraph(list(part.select("payer", "payee").iter_rows()))
            for c in nx.simple_cycles(g, length_bound=bound):
                c = network._canonical(list(c))
                name = " -> ".join([*c, c[0]])
                want += [(day, a, b, name) for a, b in zip(c, [*c[1:], c[0]], strict=True)]
        assert sorted(got.select("known_on", "payer", "payee", "cycle").iter_rows()) == sorted(want), bound
        assert len(want) > 10


def _deals_csv() -> dict[str, dict[str, str]]:
    with DEALS_CSV.open(newline="", encoding="utf-8") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def basis_db(seeded_ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped ledger with its timing evidence (the first-report dates)."""
    import shutil

    path = tmp_path_factory.mktemp("basis") / "c.duckdb"
    shutil.copy(seeded_ledger, path)
    with connect(path) as con:
        import_file(con, DEALS_CSV.parent / "timing_evidence.csv")
    return path


def _basis_features(db: Path, basis: str) -> pl.DataFrame:
    from analysis.date_basis import apply_date_basis

    with connect(db, read_only=True) as con:
        events = collapse_same_day(firm_events(apply_date_basis(api.deals(con), basis)))
        return firm_event_features(con, events)


OWN = ("role", "deal_type", "deal_kind", "amount_kind", "amount_usd", "log_amount", "on_round_trip",
       "n_round_trips", "round_trips")


def test_the_events_own_deal_describes_it_on_every_date_basis(basis_db: Path) -> None:
    """Review finding 2: on the first-report basis the 2026-02-27 round is known on 02-25 and the
    Anthropic-Google deal on 10-21, before their official dates; the event's own deals must still be in
    the state it is described on (they were bystanders with no amount before the fix)."""
    rows = _deals_csv()
    bn = {k: float(rows[k]["amount_usd_bn"]) * 1e9 for k in
          ("amzn-openai-2026-02-27", "openai-amzn-2026-02-27", "nvda-openai-2026-02-27", "softbank-openai-2026-02-27")}
    by_basis = {b: _basis_features(basis_db, b) for b in ("official", "evidence", "first_report")}
    fr = by_basis["first_report"]
    assert _row(fr, "amzn-openai-2026-02-27:AMZN")["known_on"] == dt.date(2026, 2, 25)
    assert _row(fr, "anthropic-googl-2025-10-23:GOOGL")["known_on"] == dt.date(2025, 10, 21)
    want = {
        # AMZN: $50bn equity to OpenAI and $100bn of compute from it, one announcement (its lead contract
        # is the larger, compute, where Amazon is paid); the two close amazon -> openai -> amazon
        "amzn-openai-2026-02-27:AMZN": ("payee", "cloud_compute_purchase", "compute", "up_to",
                                        bn["amzn-openai-2026-02-27"] + bn["openai-amzn-2026-02-27"], True),
        "nvda-openai-2026-02-27:NVDA": ("payer", "equity_investment", "equity", "firm",
                                        bn["nvda-openai-2026-02-27"], True),
        "softbank-openai-2026-02-27:9984.T": ("payer", "equity_investment", "equity", "firm",
                                              bn["softbank-openai-2026-02-27"], False),
        "anthropic-googl-2025-10-23:GOOGL": ("payee", "cloud_compute_purchase", "compute", "undisclosed", None, False),
    }
    for basis, f in by_basis.items():
        for event_id, (role, deal_type, kind, amount_kind, amount, cyc) in want.items():
            r = _row(f, event_id)
            assert (r["role"], r["deal_type"], r["deal_kind"], r["amount_kind"]) == (role, deal_type, kind, amount_kind), basis
            assert r["amount_usd"] == amount and r["on_round_trip"] is cyc, (basis, event_id)
            assert r["log_amount"] == (None if amount is None else pytest.approx(math.log(amount), abs=1e-12))
        assert _row(f, "amzn-openai-2026-02-27:AMZN")["round_trips"] == ["amazon -> openai -> amazon"]
        assert "nvidia -> openai -> oracle -> nvidia" in _row(f, "nvda-openai-2026-02-27:NVDA")["round_trips"]
        official = by_basis["official"]
        for event_id in want:
            assert {c: _row(f, event_id)[c] for c in OWN} == {c: _row(official, event_id)[c] for c in OWN}


def test_the_own_deal_lets_no_other_later_deal_in(basis_db: Path) -> None:
    """No look-ahead on the first-report basis: AMZN's 2026-02-27 round is known on 02-25 with its own
    two contracts, not with Nvidia's and SoftBank's of 02-27. OpenAI's disclosed counted flows known on
    2026-02-25 ($bn): Microsoft 1 + 250, CoreWeave 0.35 + 11.9 + 6.5, SoftBank 30 (2025), Oracle 300,
    Amazon 38 (Nvidia's contract stands on the undisclosed stall report of 01-30) = 637.75."""
    known = 1 + 250 + 0.35 + 11.9 + 6.5 + 30 + 300 + 38
    fr = _row(_basis_features(basis_db, "first_report"), "amzn-openai-2026-02-27:AMZN")
    assert fr["openai_share"] == pytest.approx((38 + 150) / (known + 150), abs=1e-12)
    assert fr["closes_round_trip"] is True  # amazon -> openai -> amazon did not exist on 02-24
    # official basis: known on 02-27 with the whole round (Nvidia's 30 replaces the stall, SoftBank's 30)
    off = _row(_basis_features(basis_db, "official"), "amzn-openai-2026-02-27:AMZN")
    assert off["openai_share"] == pytest.approx((38 + 150) / (known + 150 + 30 + 30), abs=1e-12)


def test_an_announcement_sums_its_contracts_as_the_dollar_section_does(shipped: pl.DataFrame, seeded_ledger: Path) -> None:
    """Review finding 5: the regression's amount is the announcement's, every contract once, as
    analysis.dollar_outputs.announcement_amounts gives the dollar section (one rule)."""
    from analysis.dollar_outputs import announcement_amounts

    rows = _deals_csv()
    amzn = _row(shipped, "amzn-openai-2026-02-27:AMZN")
    assert amzn["amount_usd"] == (float(rows["amzn-openai-2026-02-27"]["amount_usd_bn"])
                                  + float(rows["openai-amzn-2026-02-27"]["amount_usd_bn"])) * 1e9 == 150e9
    assert amzn["log_amount"] == pytest.approx(math.log(150e9), abs=1e-12)
    assert (amzn["deal_kind"], amzn["role"], amzn["amount_kind"]) == ("compute", "payee", "up_to")
    # Anthropic's 2025-11-18 three-way announcement: 30 (up to) + 5 + 10 for Microsoft's and Nvidia's events
    msft = _row(shipped, "anthropic-msft-2025-11-18:MSFT")
    assert msft["amount_usd"] == 45e9 and msft["amount_kind"] == "up_to" and msft["deal_kind"] == "compute"
    # AMD 2025-10-06: chips and warrant both undisclosed: no amount, not partial
    amd = _row(shipped, "amd-openai-2025-10-06:AMD")
    assert amd["amount_usd"] is None and amd["amount_partial"] is False
    with connect(seeded_ledger, read_only=True) as con:
        deals = api.deals(con)
    dollar = announcement_amounts(deals, firm_events(deals)).select("ticker", "t0", pl.col("amount_usd").alias("dollar_amount"))
    joined = shipped.filter(pl.col("t0").is_not_null()).join(dollar, on=["ticker", "t0"], how="left")
    assert joined.height > 40
    assert joined.filter(pl.col("amount_usd").ne_missing(pl.col("dollar_amount"))).height == 0


def test_a_firm_linked_to_openai_by_undisclosed_amounts_has_no_share(shipped: pl.DataFrame) -> None:
    """Review finding 6: AMD's 6 GW chips and warrant and Alphabet's cloud deal with OpenAI are
    undisclosed: their share of OpenAI's disclosed flows is unknown (null), not the 0 of a firm with no
    OpenAI link (Intel on 2025-09-18)."""
    for event_id in ("amd-openai-2025-10-06:AMD", "openai-googl-2025-06-10:GOOGL", "openai-avgo-2025-10-13:AVGO"):
        r = _row(shipped, event_id)
        assert r["openai_share"] is None and r["openai_flows_usd"] is None, event_id
    intc = _row(shipped, "nvda-intc-2025-09-18:INTC")
    assert intc["openai_share"] == 0.0 and intc["openai_flows_usd"] == 0.0
    # a firm with a disclosed flow keeps its share (Oracle's $300bn on 2025-09-10, by hand above)
    assert _row(shipped, "openai-orcl-2025-09-10:ORCL")["openai_share"] == pytest.approx(
        300 / (1 + 0.35 + 11.9 + 30 + 300), abs=1e-12)
