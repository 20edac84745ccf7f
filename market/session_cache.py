"""On-disk cache of exchange session arrays (session dates and UTC close times) for market.calendars.

Why: building an exchange_calendars calendar costs about 2 s in a fresh process (importing pandas and
exchange_calendars, then computing the holiday rules), while carousel needs only two int64 arrays per
calendar: the session dates and their close instants. ``carousel study`` for one deal used to spend
most of its time there. The arrays are written once per machine and read back in a millisecond.

Where: ``$XDG_CACHE_HOME/carousel/calendars`` (``~/.cache/carousel/calendars`` when XDG_CACHE_HOME is
unset or not absolute, as the XDG base-directory spec asks). Not ``data/``: that folder is the shipped,
version-controlled input; this is derived, per machine, and depends on the installed libraries.

Never wrong: an entry is used only if every field of its header matches what a fresh build would be
made from, and its SHA-256 (over header and arrays) matches the bytes read:

* the cache format, the calendar name and the start date;
* the installed exchange_calendars and pandas versions (holiday rules and their evaluation);
* the SHA-256 of the time-zone file the close times were converted with (a tzdata update can move a
  close instant);
* the range: the entry must reach the end a fresh build would use today (see
  :func:`default_end`); callers cut the arrays to that end, so a cached entry built further ahead gives
  exactly the fresh build's sessions.

Anything else (no file, a short or corrupt file, another version, a range that no longer reaches far
enough, an unreadable file) reads as "no entry"; the caller rebuilds and tries to store the fresh
arrays. A cache directory that cannot be created or written is not an error: the arrays are then built
in every process, as before the cache existed. Writes go to a temporary file renamed into place, so a
concurrent reader sees the old entry or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
import zoneinfo
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped whenever the layout below changes; older entries are then rebuilt.
FORMAT = 1
_MAGIC = b"carousel-sessions\n"
_ENDIAN = "<i8"  # explicit little-endian int64, so a cache file means the same on any machine


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/carousel/calendars``, or ``~/.cache/carousel/calendars``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "carousel" / "calendars"


def default_end(today: date) -> date:
    """The last date exchange_calendars' default calendar covers when built on ``today``.

    exchange_calendars ends a calendar built without ``end`` at ``now.floor('D') + DateOffset(years=1)``
    (local time): the same month and day next year, 29 February -> 28 February.
    """
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year + 1, day=28)


@cache
def _version(dist: str) -> str | None:
    # Reading a distribution's metadata parses a file (about 5 ms); the installed version does not
    # change while a process runs.
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tz_digest(key: str) -> str | None:
    """SHA-256 of the TZif file zoneinfo would load for ``key``, or None if there is none to read.

    zoneinfo searches ``zoneinfo.TZPATH`` first, then the tzdata package; so does this.
    """
    rel = Path(*key.split("/"))
    candidates = [Path(p) / rel for p in zoneinfo.TZPATH]
    try:
        import tzdata  # the fallback zoneinfo itself uses; a data-only package

        candidates.append(Path(tzdata.__file__).parent / "zoneinfo" / rel)
    except ImportError:
        pass
    for path in candidates:
        try:
            if path.is_file():
                return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return None


def fingerprint(calendar: str, start: str, tz: str) -> dict[str, Any]:
    """Everything a cached entry of ``calendar`` must have been built from to be used now."""
    return {
        "format": FORMAT,
        "calendar": calendar,
        "start": start,
        "exchange_calendars": _version("exchange_calendars"),
        "pandas": _version("pandas"),
        "tz": tz,
        "tz_sha256": tz_digest(tz),
    }


def _digest(header: dict[str, Any], payload: bytes) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    h.update(payload)
    return h.hexdigest()


def encode(fp: dict[str, Any], end: date, sessions: np.ndarray, closes: np.ndarray) -> bytes:
    """A cache entry: magic line, one JSON header line, then sessions (days since 1970) and closes
    (UTC microseconds) as little-endian int64. ``end`` is the last date the build was asked to cover."""
    days = np.ascontiguousarray(sessions.astype("datetime64[D]").astype(np.int64), dtype=_ENDIAN)
    us = np.ascontiguousarray(closes, dtype=_ENDIAN)
    if days.shape != us.shape or days.ndim != 1:
        raise ValueError("sessions and closes must be 1-d arrays of the same length")
    payload = days.tobytes() + us.tobytes()
    header = {**fp, "end": end.isoformat(), "n": int(days.size)}
    header["sha256"] = _digest(header, payload)
    return _MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def decode(blob: bytes, calendar: str, start: str, need_end: date) -> tuple[np.ndarray, np.ndarray] | None:
    """(sessions datetime64[D], closes int64 UTC us) of a valid entry reaching ``need_end``, else None.

    Valid: the header matches :func:`fingerprint` for the header's own time zone, the checksum matches,
    the arrays have the recorded length and the sessions increase strictly.
    """
    if not blob.startswith(_MAGIC):
        return None
    head, sep, payload = blob[len(_MAGIC):].partition(b"\n")
    if not sep:
        return None
    try:
        header = json.loads(head)
        if not isinstance(header, dict):
            return None
        n, tz, end = int(header["n"]), str(header["tz"]), date.fromisoformat(header["end"])
        claimed = header.pop("sha256")
    except (ValueError, KeyError, TypeError):
        return None
    expected = fingerprint(calendar, start, tz)
    if any(header.get(k) != v for k, v in expected.items()) or end < need_end:
        return None
    if n < 1 or len(payload) != 16 * n or _digest(header, payload) != claimed:
        return None
    raw = np.frombuffer(payload, dtype=_ENDIAN)
    sessions = raw[:n].astype(np.int64).astype("datetime64[D]")
    closes = raw[n:].astype(np.int64)
    if n > 1 and not (bool(np.all(np.diff(raw[:n]) > 0)) and bool(np.all(np.diff(closes) > 0))):
        return None
    return sessions, closes


def path_for(calendar: str) -> Path:
    return cache_dir() / f"{calendar}.sessions"


def load(calendar: str, start: str, need_end: date) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays of ``calendar`` if a valid entry reaches ``need_end``; None otherwise."""
    try:
        blob = path_for(calendar).read_bytes()
    except OSError:
        return None
    return decode(blob, calendar, start, need_end)


def store(calendar: str, blob: bytes) -> bool:
    """Write an entry atomically; False (and nothing raised) when the cache cannot be written."""
    target = path_for(calendar)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{calendar}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, target)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
