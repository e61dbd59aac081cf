#!/usr/bin/env bash
# Headless Chromium for the UI's browser tests (tests/ui, marker e2e): Debian's chromium package, driven by
# Playwright for Python (its own browser download does not work here; the tests launch /usr/bin/chromium).
# Idempotent and quick when everything is there already (no apt-get update, no pip resolve).
#   bash scripts/install-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_SPEC=${PLAYWRIGHT_SPEC:-"playwright>=1.50,<2"}

if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
else
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "chromium is missing and this user cannot install packages; the browser tests will be skipped" >&2
    exit 0
  fi
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing Debian's chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
fi

PY=.venv/bin/python
[ -x "$PY" ] || PY=${PYTHON:-python3}
if "$PY" -c "import playwright" >/dev/null 2>&1; then
  echo "playwright (python): $("$PY" -m pip show playwright 2>/dev/null | sed -n 's/^Version: //p')"
else
  echo "installing playwright for Python ($PLAYWRIGHT_SPEC)"
  "$PY" -m pip install -q "$PLAYWRIGHT_SPEC"
fi
