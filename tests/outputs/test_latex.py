"""Every .tex table of `carousel run` compiles with pdflatex in a minimal document, with no overfull
box and no float too large; the main table is one page. Skipped when pdflatex is not installed
(scripts/test.sh installs texlive where apt-get is available)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PDFLATEX = shutil.which("pdflatex")
DOC = r"""\documentclass{article}
\usepackage[T1]{fontenc}
\usepackage{booktabs,longtable}
\begin{document}
\input{%s}
\end{document}
"""


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed")
def test_every_table_compiles_without_overfull_boxes(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    tables = sorted((run_out[1] / "tables").glob("*.tex"))
    assert {p.stem for p in tables} >= {"main_results", "event_study_car", "dollar_tests", "dollar_movers",
                                        "dollar_by_deal", "dollar_by_cycle", "clustered_joint",
                                        "clustered_calendar_time", "clustered_caar", "robustness_event_day",
                                        "explain_second_stage", "activity_runup", "activity_volume",
                                        "activity_variance_ratio", "timeline_carousel"}
    for tex in tables:
        shutil.copy(tex, tmp_path / tex.name)
        doc = tmp_path / f"doc_{tex.stem}.tex"
        doc.write_text(DOC % tex.stem, encoding="utf-8")
        res = subprocess.run([str(PDFLATEX), "-interaction=nonstopmode", "-halt-on-error", doc.name],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        log = (tmp_path / f"doc_{tex.stem}.log").read_text(encoding="latin-1")
        assert res.returncode == 0, log[-2000:]
        assert "Overfull" not in log and "Float too large" not in log, (tex.name, re.findall(r"Overfull.*", log))
        pages = int(re.search(r"Output written on .*\((\d+) pages?", log).group(1))  # type: ignore[union-attr]
        if tex.stem == "main_results":
            assert pages == 1
