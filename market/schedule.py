"""Print a crontab line and a systemd service + timer that run ``carousel refresh`` after the US close.

The NYSE closes at 16:00 America/New_York (20:00 or 21:00 UTC depending on DST); 22:30 UTC is after the
close all year and leaves Yahoo time to settle the day's volume. systemd can schedule in the exchange's
own zone (``OnCalendar=Mon..Fri 17:30 America/New_York``), which is DST-proof; cron uses the host's zone,
so the crontab line sets ``CRON_TZ=UTC``. Half days and holidays need no special case: the refresh is
incremental and a run that finds nothing new appends nothing.

Paths are quoted for each consumer, so spaces, quotes, ``%``, ``$`` and non-ASCII names survive:

* crontab: each argument is ``shlex.quote``d for ``/bin/sh``, then every ``%`` becomes ``''\\%``. cron
  turns an unescaped ``%`` into a newline (the rest of the line becomes the command's stdin) and strips
  the backslash of ``\\%``; the ``''`` (an empty sh string) keeps a backslash that belongs to the path
  from sitting right before the ``\\%`` and escaping the escape instead (crontab(5)).
* systemd ``ExecStart=``: each argument in double quotes with C-style escapes for ``\\`` and ``"``,
  ``%`` doubled (``%y`` is a unit specifier) and ``$`` doubled (``$X`` is variable expansion)
  (systemd.service(5), "Command lines"). The executable itself is not variable-expanded, and systemd
  refuses quotes and backslashes in it: such an executable path is passed to ``/usr/bin/env``. ``WorkingDirectory=`` and ``StandardOutput=append:`` take the
  rest of the line as one path without quoting; there only ``%`` is doubled.

A path with a newline or another control character cannot be written into either file and is refused
(InputError naming the option). systemd strips blanks off the end of a value and continues a line that
ends in a backslash: a working directory ending so gets a trailing ``/``; such a log file is refused.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError

CRON_SCHEDULE = "30 22 * * 1-5"
ON_CALENDAR = "Mon..Fri 17:30 America/New_York"


@dataclass(frozen=True)
class ScheduleFiles:
    crontab: str
    service: str
    timer: str


def _check_path(value: str, option: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InputError(f"path {value!r} contains a control character (a newline?); a crontab line or "
                         "a systemd unit cannot hold it", field=option)
    return value


def cron_arg(value: str) -> str:
    """One argument of a crontab command: quoted for /bin/sh, then ``%`` escaped for cron."""
    return shlex.quote(value).replace("%", "''\\%")


def systemd_arg(value: str) -> str:
    """One argument of a systemd ``ExecStart=`` line: double-quoted, escapes, ``%%`` and ``$$``."""
    inner = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{inner}"'


#: Characters systemd refuses in an executable path (``string_is_safe``), quoted or not.
_SYSTEMD_UNSAFE_EXE = set("\\\"'")


def systemd_exec(executable: str) -> str:
    """The executable of an ``ExecStart=`` line. It is not variable-expanded (so ``$`` stays single); one
    whose path holds a quote or backslash, which systemd refuses there, is run through /usr/bin/env."""
    if _SYSTEMD_UNSAFE_EXE & set(executable):
        return f"/usr/bin/env {systemd_arg(executable)}"
    return '"' + executable.replace("%", "%%") + '"'


def systemd_path(value: str) -> str:
    """A path setting (``WorkingDirectory=``, ``StandardOutput=append:``): only specifiers escaped."""
    return value.replace("%", "%%")


def _ends_badly(value: str) -> bool:
    # systemd's unit parser strips trailing whitespace off every value and reads a line ending in a
    # backslash as continued on the next line (which then swallows the next setting); an unquoted path
    # setting cannot escape either.
    return value != value.rstrip() or value.endswith("\\")


def systemd_dir(value: str) -> str:
    """``WorkingDirectory=``: a directory ending in a blank or a backslash gets a trailing ``/`` (the same
    directory), which systemd keeps from stripping the blank or continuing the line."""
    return systemd_path(value + "/" if _ends_badly(value) else value)


def _check_log(value: str) -> str:
    if _ends_badly(value):
        raise InputError(f"log file {value!r} ends in a blank or a backslash, which a systemd "
                         "StandardOutput= line cannot hold", field="--log")
    return value


def render(*, carousel: str, db: Path, log: Path, workdir: Path) -> ScheduleFiles:
    exe = _check_path(carousel, "carousel executable")
    db_s = _check_path(str(db), "--db")
    log_s = _check_log(_check_path(str(log), "--log"))
    wd = _check_path(str(workdir), "working directory")
    cmd = f"{cron_arg(exe)} refresh --db {cron_arg(db_s)}"
    crontab = (
        f"CRON_TZ=UTC\n{CRON_SCHEDULE} cd {cron_arg(wd)} && {cmd} >> {cron_arg(log_s)} 2>&1\n"
    )
    service = (
        "[Unit]\n"
        "Description=carousel: refresh daily prices after the US close\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={systemd_dir(wd)}\n"
        f"ExecStart={systemd_exec(exe)} refresh --db {systemd_arg(db_s)}\n"
        f"StandardOutput=append:{systemd_path(log_s)}\n"
        f"StandardError=append:{systemd_path(log_s)}\n"
        # 1 = partial refresh: the committed tickers are kept; don't mark the unit failed for it.
        "SuccessExitStatus=1\n"
    )
    timer = (
        "[Unit]\n"
        "Description=carousel: daily price refresh, Monday to Friday after the NYSE close\n\n"
        "[Timer]\n"
        f"OnCalendar={ON_CALENDAR}\n"
        "Persistent=true\n"
        "Unit=carousel-refresh.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return ScheduleFiles(crontab, service, timer)


def install_text(files: ScheduleFiles) -> str:
    return (
        "# --- crontab (install: crontab -e, paste) ---\n"
        f"{files.crontab}\n"
        "# --- ~/.config/systemd/user/carousel-refresh.service ---\n"
        f"{files.service}\n"
        "# --- ~/.config/systemd/user/carousel-refresh.timer ---\n"
        f"{files.timer}\n"
        "# enable: systemctl --user daemon-reload && "
        "systemctl --user enable --now carousel-refresh.timer\n"
    )
