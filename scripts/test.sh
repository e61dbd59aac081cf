#!/usr/bin/env bash
# Run the whole test suite from a fresh clone: installs everything it needs, then lint, types and pytest.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -m unit    # extra arguments go to pytest
#   ORCH_TEST_WORKERS=0 bash scripts/test.sh   # pytest in one process (default: 4 pytest-xdist workers)
#
# The installs overlap: LocalStack's venv (its own Python, ~2 min of mostly downloading) is built in the background
# from the start, and Chromium is installed in the background while ruff and mypy run. pytest then spreads the
# tests over pytest-xdist workers (tests/plugins/parallel.py says how); 4 workers on 2 cores, because most tests
# spend their time waiting on servers, agents and emulators rather than computing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WORKERS=${ORCH_TEST_WORKERS:-4}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/orch-test-setup.XXXXXX")
declare -A PIDS=()
cleanup() {
  # a failed step ends the script: stop the installs still running in the background (each is its own process
  # group, so pip and the downloads it started stop too)
  local pid
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap cleanup EXIT

step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }  # the time: where CI's minutes go

# start NAME COMMAND...: run COMMAND in the background, its output to a log; `finish NAME` waits and prints it.
start() {
  local name=$1
  shift
  # setsid: its own process group (a background child is no group leader, so setsid runs it under the same pid)
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS[$name]=$!
}
finish() {
  local name=$1 status=0
  wait "${PIDS[$name]}" || status=$?
  unset "PIDS[$name]"
  step "$name (ran in the background)"
  cat "$LOGS/$name.log"
  if [ "$status" -ne 0 ]; then
    echo "$name failed with exit code $status" >&2
    exit "$status"
  fi
}

if [ -f localstack/setup.sh ]; then
  # its own venv and interpreter: nothing it does touches .venv
  start "preparing LocalStack (own venv, offline-safe)" bash localstack/setup.sh
fi

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
step "installing orch with its test and infrastructure tools"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[dev,infra]'

if [ -f scripts/install-browser.sh ]; then
  # after the pip install above: it checks for (and could install) playwright in .venv
  start "installing headless Chromium for the UI tests" bash scripts/install-browser.sh
fi

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
step "mypy"
.venv/bin/python scripts/typecheck.py

if [ -f localstack/setup.sh ]; then
  finish "preparing LocalStack (own venv, offline-safe)"
  # LocalStack is set up: a test that needs it must fail, not skip, if it cannot start.
  export ORCH_TEST_REQUIRE_LOCALSTACK=1
fi
if [ -f scripts/install-browser.sh ]; then
  finish "installing headless Chromium for the UI tests"
  # The browser is installed: a UI test must fail, not skip, if it cannot start it.
  export ORCH_TEST_REQUIRE_BROWSER=1
fi

step "pytest ($WORKERS workers)"
# --dist loadfile: one test file is one unit of work (not loadgroup: broken with pytest 9.2, pytest-xdist#1386);
# -n 0 runs everything in this one process
.venv/bin/python -m pytest -n "$WORKERS" --dist loadfile "$@"
