"""Errors that the CLI turns into a clear message and a non-zero exit code.

Every error a user can cause derives from :class:`CarouselError`; the CLI prints ``str(err)`` (never a
traceback) and exits with ``err.exit_code``. Exit codes are part of the public interface:

=====  ==========================================================
code   meaning
=====  ==========================================================
1      generic failure / partial success (``carousel refresh``)
2      bad input (file, line, field named) or total failure
3      the database is locked by another process
4      the database is missing, corrupt or not a carousel database
5      optimistic-concurrency conflict or integrity violation
6      another ``carousel refresh`` is already running (``market.refresh.RefreshRunning``)
=====  ==========================================================
"""

from __future__ import annotations

from pathlib import Path


class CarouselError(Exception):
    """Base class: a message meant for the user and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(CarouselError):
    """Bad user input. Names the file, the line and the field where known."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        where = []
        if self.file is not None:
            where.append(self.file if line is None else f"{self.file}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class DatabaseLockedError(CarouselError):
    exit_code = 3


class DatabaseError(CarouselError):
    """Missing, corrupt, truncated or foreign database file."""

    exit_code = 4


class ConflictError(CarouselError):
    """Expected-version conflict, idempotency violation or integrity failure."""

    exit_code = 5
