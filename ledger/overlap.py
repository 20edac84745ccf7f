"""One DuckDB call on a helper thread while the writer's own thread does Python work.

Why: an append alternates between DuckDB (reading the head, inserting the log rows) and Python
(canonical JSON, parsing the payloads back, building the projection rows), and DuckDB releases the GIL
while it executes, so on a machine with a second core the two can run at once. Only the calls whose
inputs are ready and whose outputs the Python work does not need are moved: the writer's thread does not
touch the connection until :meth:`Background.join` has returned, so the connection is never used by two
threads at once, and the statement runs inside the writer's transaction as before.

A thread per call (about 0.1 ms), not a pool: a pool's idle thread does not survive ``fork`` (the
figure workers' start method aside, any library may fork), and the child's first append would wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``fn()`` started on a helper thread; :meth:`join` waits for it and returns its value or re-raises
    its exception."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        # Set by the helper thread when ``fn`` has returned or raised. Waited on instead of the Thread:
        # on CPython 3.11-3.12 a KeyboardInterrupt inside ``Thread.join`` can leave the thread marked
        # stopped (``is_alive()`` False) while it still runs, so a loop on ``is_alive`` would let the
        # caller's rollback race the statement; an interrupted ``Event.wait`` leaves the event as it was.
        self._done = threading.Event()
        threading.Thread(target=self._run, name="ledger-append", daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the joining thread, which decides
            self._error = exc
        finally:
            self._done.set()

    def join(self) -> T:
        """Wait for ``fn`` (also through a Ctrl-C: the caller's rollback must not race the statement),
        then return its value or raise its exception."""
        interrupted: BaseException | None = None
        while not self._done.is_set():
            try:
                self._done.wait()
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:  # the user asked to stop: that wins, with the call's error as its cause
            raise interrupted from self._error
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set by _run when no error


class Done(Generic[T]):
    """``fn()`` run at once on the calling thread, joined like a :class:`Background` (the sequential
    route, which the overlapped one must equal)."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        try:
            self._value = fn()
        except Exception as exc:  # raised at join, where the overlapped route raises it
            self._error = exc

    def join(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error
