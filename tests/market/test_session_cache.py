"""The on-disk session cache behind market.calendars: same arrays as exchange_calendars, never wrong.

The independent route is exchange_calendars itself, built exactly as market.calendars built it before
the cache existed (``get_calendar(name, start=CALENDAR_START)``, default end). A cached entry must give
identical sessions and close instants; a stale, corrupt, foreign or unwritable cache must be rebuilt
(or bypassed) silently with the same result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market import calendars, session_cache

REPO = Path(__file__).resolve().parents[2]


def _fresh(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays the pre-cache code computed: the default exchange_calendars calendar."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        cal = xcals.get_calendar(name, start=calendars.CALENDAR_START)
    sessions = cal.sessions.to_numpy().astype("datetime64[D]")
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    return sessions, closes


@pytest.fixture(scope="module")
def fresh() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: _fresh(name) for name in ("XNYS", "XTKS")}


@pytest.fixture(scope="module")
def built() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """What market.calendars builds for the cache (a year further ahead), once per module."""
    end = session_cache.default_end(date.today()) + calendars._CACHE_AHEAD
    return {name: calendars._build(name, end) for name in ("XNYS", "XTKS")}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG cache; the in-process lru caches are emptied before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    calendars._arrays.cache_clear()
    yield tmp_path / "xdg" / "carousel" / "calendars"
    calendars._arrays.cache_clear()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, built: dict[str, tuple[np.ndarray, np.ndarray, str]]
           ) -> list[str]:
    """Counts calls of market.calendars._build (answered from the module's real build)."""
    calls: list[str] = []
    end = session_cache.default_end(date.today()) + calendars._CACHE_AHEAD

    def fake(name: str, until: date) -> tuple[np.ndarray, np.ndarray, str]:
        assert until == end
        calls.append(name)
        return built[name]

    monkeypatch.setattr(calendars, "_build", fake)
    return calls


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    assert a[0].dtype == np.dtype("datetime64[D]") and a[1].dtype == np.int64
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cache_gives_the_arrays_of_a_fresh_exchange_calendars_build(
    cache: Path, fresh: dict[str, tuple[np.ndarray, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("XNYS", "XTKS"):
        built_now = calendars._arrays(name)  # empty cache: built by exchange_calendars and stored
        assert (cache / f"{name}.sessions").is_file()
        _same(built_now, fresh[name])
        assert len(fresh[name][0]) > 4000  # 2010-01-04 .. a year ahead
    calendars._arrays.cache_clear()

    def no_build(name: str, end: date) -> Any:
        raise AssertionError(f"{name} rebuilt although the cache is valid")

    monkeypatch.setattr(calendars, "_build", no_build)
    for name in ("XNYS", "XTKS"):
        _same(calendars._arrays(name), fresh[name])
    # The public helpers agree with exchange_calendars on the cached arrays (a half day, a holiday).
    assert calendars.close_time_utc("XNYS", date(2025, 7, 3)).isoformat() == "2025-07-03T17:00:00+00:00"
    assert calendars.close_time_utc("XTKS", date(2025, 10, 14)).isoformat() == "2025-10-14T06:30:00+00:00"
    with pytest.raises(KeyError):
        calendars.close_time_utc("XNYS", date(2025, 7, 4))
    last = fresh["XNYS"][0][-1].astype(object)
    assert calendars.calendar_bounds("XNYS") == (date(2010, 1, 4), last)


def test_default_end_is_exchange_calendars_default() -> None:
    import pandas as pd
    from exchange_calendars.exchange_calendar import GLOBAL_DEFAULT_END

    days = [date(2024, 2, 29), date(2025, 2, 28), date(2023, 12, 31), date(2026, 1, 1), date(2027, 3, 1)]
    days += [date(2024, 1, 1) + timedelta(days=k) for k in range(0, 800, 7)]
    for d in days:
        assert session_cache.default_end(d) == (pd.Timestamp(d) + pd.DateOffset(years=1)).date(), d
    # exchange_calendars fixed its default end when imported (this test session): today + 1 year.
    assert session_cache.default_end(date.today()) == GLOBAL_DEFAULT_END.date()


def test_entry_round_trip_and_layout(built: dict[str, tuple[np.ndarray, np.ndarray, str]]) -> None:
    s, c, tz = built["XTKS"]
    fp = session_cache.fingerprint("XTKS", calendars.CALENDAR_START, tz)
    assert fp["tz"] == "Asia/Tokyo" and fp["exchange_calendars"] and fp["tz_sha256"]
    end = date(2030, 1, 1)
    blob = session_cache.encode(fp, end, s, c)
    got = session_cache.decode(blob, "XTKS", calendars.CALENDAR_START, end)
    assert got is not None
    _same(got, (s, c))
    header = json.loads(blob.split(b"\n")[1])
    assert header["n"] == len(s) and header["end"] == "2030-01-01" and header["calendar"] == "XTKS"
    assert len(blob) == blob.index(b"\n", len(b"carousel-sessions\n")) + 1 + 16 * len(s)
    # Asked for a range beyond the entry's end: no entry.
    assert session_cache.decode(blob, "XTKS", calendars.CALENDAR_START, end + timedelta(days=1)) is None


def _entry(built: dict[str, tuple[np.ndarray, np.ndarray, str]], name: str = "XNYS",
           end: date | None = None, **override: Any) -> bytes:
    s, c, tz = built[name]
    fp = {**session_cache.fingerprint(name, calendars.CALENDAR_START, tz), **override}
    need = session_cache.default_end(date.today())
    return session_cache.encode(fp, end or need + calendars._CACHE_AHEAD, s, c)


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1:]


def _tamper(blob: bytes, **fields: Any) -> bytes:
    """The entry with header fields changed but the recorded checksum kept."""
    magic, head, payload = blob.split(b"\n", 2)
    header = {**json.loads(head), **fields}
    return magic + b"\n" + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


BAD_ENTRIES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "payload byte flipped": lambda b: _flip(_entry(b), len(_entry(b)) - 100),
    "header range extended": lambda b: _tamper(_entry(b), end="2999-01-01"),
    "header count changed": lambda b: _tamper(_entry(b), n=100),
    "truncated": lambda b: _entry(b)[:-8],
    "empty file": lambda b: b"",
    "not an entry": lambda b: b"garbage\n{}\n" + b"\0" * 64,
    "header not JSON": lambda b: b"carousel-sessions\n{not json\n" + b"\0" * 32,
    "another exchange_calendars": lambda b: _entry(b, exchange_calendars="0.0.1"),
    "another pandas": lambda b: _entry(b, pandas="0.1"),
    "another time-zone file": lambda b: _entry(b, tz_sha256="0" * 64),
    "older format": lambda b: _entry(b, format=0),
    "another start": lambda b: _entry(b, start="2015-01-02"),
    "range no longer reaches": lambda b: _entry(b, end=session_cache.default_end(date.today())
                                                - timedelta(days=1)),
    "another calendar's entry": lambda b: _entry(b, "XTKS"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_stale_or_corrupt_entry_is_rebuilt(
    case: str, cache: Path, builds: list[str], fresh: dict[str, tuple[np.ndarray, np.ndarray]],
    built: dict[str, tuple[np.ndarray, np.ndarray, str]],
) -> None:
    cache.mkdir(parents=True)
    (cache / "XNYS.sessions").write_bytes(BAD_ENTRIES[case](built))
    _same(calendars._arrays("XNYS"), fresh["XNYS"])
    assert builds == ["XNYS"]
    # The rebuilt entry replaced the bad one and is used from now on.
    assert session_cache.load("XNYS", calendars.CALENDAR_START, session_cache.default_end(date.today()))
    calendars._arrays.cache_clear()
    _same(calendars._arrays("XNYS"), fresh["XNYS"])
    assert builds == ["XNYS"]
    assert sorted(p.name for p in cache.iterdir()) == ["XNYS.sessions"]  # no temporary files left


def test_valid_entry_is_used(cache: Path, builds: list[str], fresh: dict[str, tuple[np.ndarray, np.ndarray]],
                             built: dict[str, tuple[np.ndarray, np.ndarray, str]]) -> None:
    cache.mkdir(parents=True)
    (cache / "XNYS.sessions").write_bytes(_entry(built))
    _same(calendars._arrays("XNYS"), fresh["XNYS"])
    assert builds == []


def test_unwritable_cache_is_bypassed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builds: list[str],
                                      fresh: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    # A regular file where the cache folder should be: nothing can be created below it (even as root).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    calendars._arrays.cache_clear()
    try:
        _same(calendars._arrays("XNYS"), fresh["XNYS"])
        calendars._arrays.cache_clear()
        _same(calendars._arrays("XNYS"), fresh["XNYS"])
    finally:
        calendars._arrays.cache_clear()
    assert builds == ["XNYS", "XNYS"]  # built in every process (here: every lru generation)
    assert blocker.read_text() == "x"
    assert session_cache.store("XNYS", b"entry") is False


def test_cache_dir_honours_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert session_cache.cache_dir() == tmp_path / "carousel" / "calendars"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/path"):  # the XDG spec: unset, empty or relative -> ~/.cache
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert session_cache.cache_dir() == tmp_path / "home" / ".cache" / "carousel" / "calendars"


def test_cache_hit_needs_neither_pandas_nor_exchange_calendars(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    code = ("import sys, json; from datetime import date; from market.calendars import sessions, close_time_utc;"
            "n = len(sessions('XNYS', date(2025, 1, 1), date(2025, 12, 31))) + len(sessions('XTKS', "
            "date(2025, 1, 1), date(2025, 12, 31)));"
            "print(json.dumps([n, str(close_time_utc('XNYS', date(2025, 11, 28))), "
            "sorted(m for m in ('pandas', 'exchange_calendars') if m in sys.modules)]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True, cwd=tmp_path).stdout) for _ in range(2)]
    assert runs[0] == [250 + 243, "2025-11-28 18:00:00+00:00", ["exchange_calendars", "pandas"]]  # built
    assert runs[1] == [250 + 243, "2025-11-28 18:00:00+00:00", []]  # read from the cache
