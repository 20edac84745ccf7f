"""The layers of the house, checked: import-linter's contracts hold, and a violation of each fails.

The contracts live in pyproject.toml ([tool.importlinter]); scripts/test.sh runs `lint-imports` too. These
tests show the contracts have teeth: a copy of the packages with one deliberate bad import must fail.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "ledger", "market", "analysis", "carousel")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
         "sys.exit(c())", "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # deliberate violation\n", encoding="utf-8")


def test_the_repository_keeps_every_contract() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(
    ("file", "line", "broken"),
    [
        ("core/errors.py", "import ledger.api", "The ground floor imports nothing from the project"),
        ("ledger/api.py", "import market.api", "Layers"),  # siblings are independent
        ("market/api.py", "from analysis import window", "Layers"),  # downward only
        ("analysis/window.py", "import carousel.cli", "Layers"),  # analysis knows no shell
        ("analysis/window.py", "import analysis.results", "No import cycles"),  # results -> window
    ],
)
def test_a_deliberate_violation_fails(copy: Path, file: str, line: str, broken: str) -> None:
    _append(copy / file, line)
    res = _lint(copy)
    assert res.returncode != 0, res.stdout
    broken_lines = [ln for ln in res.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(ln.startswith(broken) for ln in broken_lines), res.stdout


def test_no_import_hides_behind_importlib() -> None:
    """`importlib.import_module("x")` is invisible to import-linter, so production code has none."""
    hidden = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in ("import_module", "__import__"):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "__import__":
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []
