#!/usr/bin/env bash
# Run the whole test suite from a fresh clone: installs everything it needs, then lint, types and pytest.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -m unit    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
step "installing orch with its test and infrastructure tools"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[dev,infra]'

if [ -f localstack/setup.sh ]; then
  step "preparing LocalStack (own venv, offline-safe)"
  bash localstack/setup.sh
  # LocalStack is set up: a test that needs it must fail, not skip, if it cannot start.
  export ORCH_TEST_REQUIRE_LOCALSTACK=1
fi

if [ -f scripts/install-browser.sh ]; then
  step "installing headless Chromium for the UI tests"
  bash scripts/install-browser.sh
  # The browser is installed: a UI test must fail, not skip, if it cannot start it.
  export ORCH_TEST_REQUIRE_BROWSER=1
fi

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
step "mypy"
.venv/bin/python scripts/typecheck.py
step "pytest"
.venv/bin/python -m pytest "$@"
