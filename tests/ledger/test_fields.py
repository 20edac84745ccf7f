"""The one field table (ledger.fields.FIELDS) and NYSE hours from exchange_calendars."""

from __future__ import annotations

import datetime as dt
import warnings

import exchange_calendars as xcals
import pytest

from core.errors import InputError
from core.paths import DATA_DIR
from ledger.fields import FIELDS, parse_change, session_time_problem
from ledger.model import MUTABLE_FIELDS, REGISTRY
from ledger.registry import load_registry


def test_every_mutable_field_has_one_rule_and_import_columns_are_distinct() -> None:
    assert set(FIELDS) == MUTABLE_FIELDS
    cols = [f.column for f in FIELDS.values() if f.column]
    assert len(cols) == len(set(cols))


def test_set_and_import_give_the_same_stored_value() -> None:
    reg = load_registry(DATA_DIR / "events")
    today = dt.date(2026, 12, 1)
    assert parse_change("payers", "Nvidia; OpenAI", reg, today=today) == ["nvidia", "openai"]
    assert parse_change("amount_usd", "1500000000", reg, today=today) == "1500000000.00"
    with pytest.raises(InputError, match="not one of"):
        parse_change("session", "lunch", reg, today=today)


@pytest.mark.parametrize("day", ["2025-11-28", "2025-12-24", "2025-07-03", "2025-11-26", "2025-07-02", "2024-12-24"])
def test_after_close_on_half_days_follows_the_exchange_calendar(day: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XNYS", start="2024-01-01")
    close = cal.session_close(day).tz_convert("America/New_York")
    half = (close.hour, close.minute) == (13, 0)
    verdict = session_time_problem("after_close", "13:30", day)
    assert (verdict is None) == half
    assert session_time_problem("intraday", "15:59", day) is None  # intraday keeps the regular hours


def test_event_types_come_from_one_registry() -> None:
    assert set(REGISTRY) == {"CompanyRegistered", "DealAnnounced", "DealAmended", "DealCorrected", "DealRetracted",
                             "DealTimingEvidenced"}
    assert REGISTRY["DealAnnounced"].schema_version == 2 and 1 in REGISTRY["DealAnnounced"].upcasters
