"""Fixtures for market tests; helpers live in market_fakes.py (made importable here)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from core.errors import CarouselError

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    """Run market commands as carousel.cli.main would (CarouselError -> message + exit code)."""

    def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        from carousel.cli.market import register

        app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        register(app)
        code = 0
        try:
            rv = app(args=args, standalone_mode=False)
            if isinstance(rv, int):
                code = rv
        except CarouselError as err:
            print(f"error: {err}", file=sys.stderr)
            code = err.exit_code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
