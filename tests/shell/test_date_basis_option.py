"""``--date-basis`` (official | evidence | first_report) on study/run/report and ``date_basis`` in
carousel.toml: the shipped Anthropic-Google deal (announced 2025-10-23, first reported 2025-10-21 after
the close, officially without a time of day, evidenced after the close) gets t0 2025-10-24 on the official
basis and 2025-10-22 on the first-report basis; a bad value names the option or the file's key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from carousel_runs import carousel_here

from analysis import date_basis, spec
from carousel.cli.options import build_spec
from core.errors import InputError

DATA = Path(__file__).resolve().parents[2] / "data"
EVENT = "anthropic-googl-2025-10-23:GOOGL"


@pytest.fixture
def db(evidenced_db: Path) -> Path:
    """The shipped deals, timing evidence and prices (conftest's ``evidenced_db``; read only here)."""
    return evidenced_db


def _t0(db: Path, *extra: str) -> dict[str, str]:
    res = carousel_here("study", "--db", db, "--format", "json", "--window=0,0", *extra)
    assert res.returncode == 0, res.stderr
    return {r["event_id"]: r["t0"] for r in json.loads(res.stdout)}


def test_first_report_basis_moves_anthropic_google_to_the_first_report(db: Path) -> None:
    official = _t0(db)
    first = _t0(db, "--date-basis", "first_report")
    assert official[EVENT] == "2025-10-24"  # no official time: the same-date evidence (after the close)
    assert first[EVENT] == "2025-10-22"
    # Only deals with an earlier first report move; AMD-OpenAI was first reported at its announcement.
    assert first["amd-openai-2025-10-06:AMD"] == official["amd-openai-2025-10-06:AMD"] == "2025-10-06"
    assert 0 < sum(first.get(k) != v for k, v in official.items()) < len(official)


def test_a_bad_date_basis_names_the_option(db: Path) -> None:
    res = carousel_here("study", "--db", db, "--date-basis", "rumour")
    assert res.returncode == 2 and "--date-basis" in res.stderr and "first_report" in res.stderr, res.stderr


def test_carousel_toml_sets_the_basis_and_the_command_line_overrides_it(tmp_path: Path) -> None:
    (tmp_path / "carousel.toml").write_text('version = 1\n[study]\ndate_basis = "evidence"\n', encoding="utf-8")
    assert build_spec(tmp_path / "carousel.toml").date_basis == "evidence"
    assert build_spec(tmp_path / "carousel.toml", date_basis="first_report").date_basis == "first_report"
    assert ("Date basis", "evidence") in build_spec(tmp_path / "carousel.toml").parameters()
    (tmp_path / "bad.toml").write_text('version = 1\n[study]\ndate_basis = "rumour"\n', encoding="utf-8")
    with pytest.raises(InputError, match="date_basis"):
        build_spec(tmp_path / "bad.toml")


def test_the_spec_accepts_exactly_the_bases_the_frame_code_knows() -> None:
    assert spec.DATE_BASES == date_basis.DATE_BASES
