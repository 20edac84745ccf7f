"""The joint-inference modules keep scipy.stats and statsmodels out of a cold start."""

from __future__ import annotations

import subprocess
import sys


def test_no_scipy_stats_or_statsmodels_at_import() -> None:
    code = ("import sys; import analysis.mvrm, analysis.calendar_time, analysis.resampling, "
            "analysis.multiplicity, analysis.size_simulation; "
            "print(sorted(m for m in ('scipy.stats', 'statsmodels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]"
