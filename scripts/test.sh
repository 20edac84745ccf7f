#!/bin/sh
# Install everything the test suite needs, then run lint, types and the whole test suite.
# Used verbatim by the README and by .ci/run. Needs only python3 (3.11+); Chromium for the report's
# browser test and pdflatex for the LaTeX test come from Debian's packages when apt-get is available.
set -eu
cd "$(dirname "$0")/.."
# pdflatex (texlive) compiles every .tex table in a test; both are skipped cleanly when missing.
if { ! command -v chromium >/dev/null 2>&1 || ! command -v pdflatex >/dev/null 2>&1; } \
        && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    PKGS="chromium chromium-driver texlive-latex-base texlive-latex-recommended texlive-latex-extra"
    $SUDO apt-get install -y -q $PKGS >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q $PKGS >/dev/null 2>&1
    } || echo "warning: could not install chromium/texlive; the browser and LaTeX tests will be skipped" >&2
fi
python3 -m pip install -q -r requirements-dev.lock -e .
# Byte-compile the project once: the suite starts some hundreds of `python -m carousel` processes, and an
# editable install is not compiled by pip; where PYTHONDONTWRITEBYTECODE is set (CI images often set it)
# each of them would compile every module again (~0.15 s each). compileall writes the caches regardless.
python3 -m compileall -q -j 0 core ledger market analysis carousel >/dev/null
python3 -m ruff check .
python3 -m mypy
# The layer contracts of pyproject.toml (import-linter; called through Python so no PATH entry is needed).
python3 -c 'import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())' --no-cache
python3 -m pytest -q -n 2 "$@"
