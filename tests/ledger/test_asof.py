"""As-of at many times in one pass equals one as-of query per time (ledger.api)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from carousel.db import connect
from core.paths import DATA_DIR
from ledger import api, commands, log
from ledger.load import import_file


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    db = tmp_path_factory.mktemp("asof") / "a.duckdb"
    with connect(db) as c:
        import_file(c, DATA_DIR / "events" / "deals.csv")
        commands.amend(c, "amd-openai-2025-10-06", effective="2026-01-01", changes=["amount_usd=5000000000", "amount_kind=estimate"],
                       reason="test", expected_version=None)
        commands.correct(c, "nvda-openai-2025-09-22", changes=["title=corrected"], reason="test")
        commands.retract(c, "openai-orcl-2025-07-02", reason="test")
        yield c


def _times(con) -> list[dt.datetime]:  # type: ignore[no-untyped-def]
    us = [e.recorded_at_us for e in log.read(con)]
    pick = [us[0] - 1, us[0], us[10], us[-4], us[-3], us[-2], us[-1], us[-1] + 10**9]
    return [dt.datetime.fromtimestamp(u / 1e6, dt.UTC) for u in pick]


def test_deals_at_many_times_equal_one_query_per_time(con) -> None:  # type: ignore[no-untyped-def]
    times = _times(con)
    many = api.deals_as_known_at_many(con, times)
    assert many.columns[0] == "as_known_at"
    for t in times:
        one = api.deals(con, as_known_at=t)
        got = many.filter(pl.col("as_known_at") == t).drop("as_known_at")
        assert got.equals(one), t
    # the last time sees the amendment, the retraction and the correction
    last = many.filter(pl.col("as_known_at") == times[-1])
    assert last.filter(deal_id="openai-orcl-2025-07-02")["status"].item() == "retracted"
    assert last.filter(deal_id="nvda-openai-2025-09-22")["title"].item() == "corrected"
    assert many.filter(pl.col("as_known_at") == times[0]).height == 0


def test_flows_at_many_times_equal_one_query_per_time(con) -> None:  # type: ignore[no-untyped-def]
    times = _times(con)
    many = api.flows_as_known_at_many(con, times)
    for t in times:
        one = api.flows(con, as_known_at=t)
        got = many.filter(pl.col("as_known_at") == t).drop("as_known_at")
        assert got.equals(one), t


def test_naive_times_are_refused(con) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="timezone-aware"):
        api.deals_as_known_at_many(con, [dt.datetime(2026, 1, 1)])
