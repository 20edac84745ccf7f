"""`carousel study` in a fresh process: the calendar cache changes no number, and the study's path
loads neither scipy.stats, pandas nor exchange_calendars once the cache is in place.

Why: a user's first `carousel study` used to spend about 2 s importing scipy.stats and building
exchange_calendars calendars (issue 16); the p-values now come from scipy.special and the sessions from
market.session_cache. The JSON must be byte-identical to a run that builds the calendars itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from carousel.cli import main
main(sys.argv[1:])
mods = set(sys.modules)
print(json.dumps({"scipy.stats": "scipy.stats" in mods, "pandas": "pandas" in mods,
                  "exchange_calendars": "exchange_calendars" in mods}), file=sys.stderr)
"""


def _study(db: Path, cache: Path) -> tuple[str, dict[str, bool]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
    res = subprocess.run([sys.executable, "-c", PROBE, "study", "--db", str(db), "--format", "json",
                          "--deal", "amd-openai-2025-10-06"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    return res.stdout, json.loads(res.stderr.strip().splitlines()[-1])


def test_study_with_and_without_calendar_cache(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = run_out
    cache = tmp_path / "xdg"
    cold, cold_mods = _study(db, cache)  # empty cache: exchange_calendars builds the calendars
    warm, warm_mods = _study(db, cache)
    assert (cache / "carousel" / "calendars" / "XNYS.sessions").is_file()
    assert cold == warm
    assert cold_mods == {"scipy.stats": False, "pandas": True, "exchange_calendars": True}
    assert warm_mods == {"scipy.stats": False, "pandas": False, "exchange_calendars": False}
    records = json.loads(warm)
    day0 = next(r for r in records if r["window"] == "[0,0]")
    # AMD's event-day CAR, as the README quotes it (every digit is pinned by test_golden.py).
    assert (day0["event_id"], day0["t0"]) == ("amd-openai-2025-10-06:AMD", "2025-10-06")
    assert abs(day0["car"] - 0.2314) < 5e-5
