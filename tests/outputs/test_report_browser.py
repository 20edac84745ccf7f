"""The HTML report in real headless Chromium (Playwright driving the system Chromium): it loads with no
console error, hovering a flow edge shows its amount, and clicking a column header sorts the rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")


def _numbers(texts: list[str]) -> list[float]:
    return [float(t.rstrip("*").replace(",", "")) for t in texts if t.strip()]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_report_hover_and_sort_in_chromium(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    report = run_out[1] / "report.html"
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(tmp_path / "first_screen.png"))
        assert errors == []
        assert "Headline numbers" in page.inner_text("h2")
        # hovering the Oracle -> Nvidia edge ($40bn) shows its amount in the tooltip
        edge = page.locator("svg.flows path.edge[data-info^='Oracle -> Nvidia']")
        edge.scroll_into_view_if_needed()
        # the mouse goes to the middle of the curve itself (a bent edge's bounding-box centre is off it)
        x, y = edge.evaluate("e => { const p = e.getPointAtLength(e.getTotalLength() / 2);"
                             " const m = e.getScreenCTM(); return [p.x * m.a + p.y * m.c + m.e,"
                             " p.x * m.b + p.y * m.d + m.f]; }")
        page.mouse.move(x, y)
        tip = page.locator("#flowtip")
        assert tip.is_visible() and "US$40.0bn" in tip.inner_text()
        # sorting the per-event CAR table by its CAR % column
        table = page.locator("table.sortable").filter(has=page.locator("th", has_text="CAR %")).first
        col = [h.strip() for h in table.locator("th").all_inner_texts()].index("CAR %")
        before = _numbers(table.locator(f"tbody tr td:nth-child({col + 1})").all_inner_texts())
        table.locator("th").nth(col).click()
        asc = _numbers(table.locator(f"tbody tr td:nth-child({col + 1})").all_inner_texts())
        table.locator("th").nth(col).click()
        desc = _numbers(table.locator(f"tbody tr td:nth-child({col + 1})").all_inner_texts())
        assert asc == sorted(before) and desc == sorted(before, reverse=True) and asc != before
        page.screenshot(path=str(tmp_path / "sorted.png"), full_page=False)
        browser.close()
    assert errors == []
