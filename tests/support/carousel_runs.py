"""Calling ``carousel`` from a test: as a separate process, or in this one through ``carousel.cli.main``.

Why one module: some twenty test modules each had their own ``subprocess.run([python, -m, carousel])``
helper, differing only in their environment, folder and timeout. A subprocess pays for a fresh interpreter
and the imports of duckdb, polars and numpy (about a second on the shared CI machine) before the command
runs; a test whose subject is the command's output, its exit code as ``main`` computes it, or what it
leaves in the database learns the same from :func:`carousel_here` at a fraction of the cost. Tests whose
subject is the process itself (its exit status as the shell sees it, a signal or kill -9, locks held by
two processes, a fresh interpreter's imports, stderr without a traceback) keep :func:`carousel`.

Both return a :class:`subprocess.CompletedProcess` (``returncode``, ``stdout``, ``stderr``), so a test can
switch between them without changing its assertions. Importable by module name from every test folder:
``tests/support`` is on pytest's ``pythonpath`` (pyproject.toml).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _environment(env: Mapping[str, str] | None, keep_db_env: bool) -> dict[str, str]:
    """The test process's environment without $CAROUSEL_DB (unless kept: a command must be told its
    database) and with ``env``'s entries on top."""
    base = {k: v for k, v in os.environ.items() if keep_db_env or k != "CAROUSEL_DB"}
    return {**base, **(env or {})}


def carousel(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 300, keep_db_env: bool = False,
             preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m carousel *args`` in a fresh process, as a user's shell runs it.

    ``env`` adds to (or overrides) this process's environment; ``$CAROUSEL_DB`` is dropped unless
    ``keep_db_env`` (the :func:`db_path` fixture sets it for in-process calls). ``preexec`` runs in the
    child before it starts (resource limits, a umask)."""
    environ = _environment(env, keep_db_env)
    # This checkout's code, whatever the folder: from another cwd `-m carousel` would otherwise import
    # wherever the package is pip-installed (editable from another worktree, say).
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "carousel", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=environ, preexec_fn=preexec)


@contextlib.contextmanager
def _within(cwd: str | os.PathLike[str] | None, environ: dict[str, str]) -> Iterator[None]:
    """This process's folder and environment as the command should see them, restored afterwards."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        yield
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        os.chdir(old_cwd)


def carousel_here(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None,
                  keep_db_env: bool = False) -> subprocess.CompletedProcess[str]:
    """``carousel *args`` through :func:`carousel.cli.main` in this process: the same error mapping and
    exit codes, stdout and stderr captured, $CAROUSEL_DB and ``env`` handled as :func:`carousel` does.

    An exception that ``main`` lets through is what a user would see as a traceback: it is returned as
    exit code 1 with the traceback on stderr (so ``"Traceback" not in res.stderr`` keeps its meaning)
    rather than raised, as the process would have printed it.
    """
    from carousel.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    argv = [str(a) for a in args]
    with _within(cwd, _environment(env, keep_db_env)), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
        except Exception:  # what escapes main is the traceback a user would see
            err.write(traceback.format_exc())
            code = 1
    return subprocess.CompletedProcess(["carousel", *argv], code, out.getvalue(), err.getvalue())
