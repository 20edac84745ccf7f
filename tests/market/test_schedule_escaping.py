"""`carousel schedule` with awkward paths: spaces, %, quotes, $, backslashes and non-ASCII names.

cron is not installed here, so its one transformation of the command field is reproduced from
crontab(5)/cronie (`do_command.c`): an unescaped % ends the command (the rest is stdin), `\\%` becomes %;
the result is then run by the real /bin/sh. systemd's unit parser is exercised with `systemd-analyze
verify` where available, which resolves specifiers and unquotes the executable of ExecStart.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from market.schedule import render

WEIRD = ["my dir", "x%y", "it's \"q\"", "ünï€ $HOME", "back\\%slash"]


def cron_command(field: str) -> str:
    """What cron hands to /bin/sh for a command field (crontab(5); cronie do_command.c)."""
    out: list[str] = []
    escaped = False
    for ch in field:
        if escaped:
            if ch == "%":
                out[-1] = "%"  # the backslash is dropped
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            out.append(ch)
            continue
        if ch == "%":
            break  # the rest would become the command's standard input
        out.append(ch)
    return "".join(out)


def _fake_carousel(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    exe = where / "carousel"
    exe.write_text('#!/bin/sh\npwd\nfor a in "$@"; do printf "arg=%s\\n" "$a"; done\n')
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize("name", WEIRD)
def test_crontab_command_runs_with_exact_paths(tmp_path: Path, name: str) -> None:
    base = tmp_path / name
    exe = _fake_carousel(base / "bin")
    db, log = base / f"{name}.duckdb", base / f"{name}.log"
    line = render(carousel=str(exe), db=db, log=log, workdir=base).crontab.splitlines()[1]
    field = line.split(None, 5)[5]
    cmd = cron_command(field)
    assert cmd == field.replace("\\%", "%")  # no unescaped % cut the command short
    res = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert log.read_text().splitlines() == [str(base), "arg=refresh", "arg=--db", f"arg={db}"]


def test_crontab_percent_is_escaped_for_cron(tmp_path: Path) -> None:
    files = render(carousel="/usr/bin/carousel", db=Path("/tmp/my dir/x%y.duckdb"),
                   log=Path("/tmp/my dir/x%y.log"), workdir=Path("/srv/w"))
    assert files.crontab.splitlines()[1] == (
        "30 22 * * 1-5 cd /srv/w && /usr/bin/carousel refresh --db '/tmp/my dir/x''\\%y.duckdb' "
        ">> '/tmp/my dir/x''\\%y.log' 2>&1")


def test_systemd_lines_are_quoted_and_specifiers_escaped() -> None:
    files = render(carousel="/opt/my tools/carousel", db=Path("/tmp/my dir/x%y \"q\" $H.duckdb"),
                   log=Path("/tmp/my dir/x%y.log"), workdir=Path("/tmp/my dir"))
    lines = files.service.splitlines()
    assert 'ExecStart="/opt/my tools/carousel" refresh --db "/tmp/my dir/x%%y \\"q\\" $$H.duckdb"' in lines
    assert "StandardOutput=append:/tmp/my dir/x%%y.log" in lines
    assert "StandardError=append:/tmp/my dir/x%%y.log" in lines
    assert "WorkingDirectory=/tmp/my dir" in lines


def test_executable_with_a_quote_goes_through_env() -> None:
    files = render(carousel="/opt/it's/carousel", db=Path("/d.duckdb"), log=Path("/d.log"),
                   workdir=Path("/"))
    assert 'ExecStart=/usr/bin/env "/opt/it\'s/carousel" refresh --db "/d.duckdb"' in files.service.splitlines()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("exe_dir", ["bin dir/ünï€ %y $H", "it's \"q\" bin"])
def test_systemd_analyze_verify_weird_paths(tmp_path: Path, exe_dir: str) -> None:
    exe = _fake_carousel(tmp_path / exe_dir)
    work = tmp_path / "my dir" / "x%y 'q' ü"
    work.mkdir(parents=True)
    files = render(carousel=str(exe), db=work / "x%y.duckdb", log=work / "x%y.log", workdir=work)
    (tmp_path / "carousel-refresh.service").write_text(files.service)
    (tmp_path / "carousel-refresh.timer").write_text(files.timer)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "carousel-refresh.timer"),
                        str(tmp_path / "carousel-refresh.service")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_schedule_refuses_a_newline_in_the_path(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    code, out, err = run_cli(["schedule", "--db", str(tmp_path / "a\nb.duckdb")], capsys)
    assert code == 2 and out == ""
    assert "field '--db'" in err and "control character" in err
