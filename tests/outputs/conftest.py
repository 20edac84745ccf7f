"""Fixtures of the output tests: one `carousel run` per test run, shared by every module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def run_out(main_job_run: tuple[Path, Path]) -> tuple[Path, Path]:
    """`carousel run` once, as a user would call it (subprocess, fresh database; tests/conftest.py's
    ``main_job_run``, which also checks its exit code and that stderr holds no traceback). Read-only."""
    return main_job_run
