"""Print a crontab line and a systemd service + timer that run ``carousel refresh`` after the US close.

The NYSE closes at 16:00 America/New_York (20:00 or 21:00 UTC depending on DST); 22:30 UTC is after the
close all year and leaves Yahoo time to settle the day's volume. systemd can schedule in the exchange's
own zone (``OnCalendar=Mon..Fri 17:30 America/New_York``), which is DST-proof; cron uses the host's zone,
so the crontab line sets ``CRON_TZ=UTC``. Half days and holidays need no special case: the refresh is
incremental and a run that finds nothing new appends nothing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

CRON_SCHEDULE = "30 22 * * 1-5"
ON_CALENDAR = "Mon..Fri 17:30 America/New_York"


@dataclass(frozen=True)
class ScheduleFiles:
    crontab: str
    service: str
    timer: str


def render(*, carousel: str, db: Path, log: Path, workdir: Path) -> ScheduleFiles:
    cmd = f"{shlex.quote(carousel)} refresh --db {shlex.quote(str(db))}"
    crontab = (
        f"CRON_TZ=UTC\n{CRON_SCHEDULE} cd {shlex.quote(str(workdir))} && {cmd} "
        f">> {shlex.quote(str(log))} 2>&1\n"
    )
    service = (
        "[Unit]\n"
        "Description=carousel: refresh daily prices after the US close\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={workdir}\n"
        f"ExecStart={carousel} refresh --db {db}\n"
        f"StandardOutput=append:{log}\n"
        f"StandardError=append:{log}\n"
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
