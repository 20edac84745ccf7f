#!/bin/sh
# Install everything the test suite needs, then run lint, types and the whole test suite.
# Used verbatim by the README and by .ci/run. Needs only python3 (3.11+); Chromium for the report's
# browser test comes from Debian's packages when apt-get is available.
set -eu
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1
    } || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
python3 -m pip install -q -r requirements-dev.lock -e .
python3 -m ruff check .
python3 -m mypy
lint-imports --no-cache  # the layer contracts of pyproject.toml
python3 -m pytest -q -n 2 "$@"
