#!/usr/bin/env bash
# Set up orch in .venv and run the whole system locally: server + UI on :4200, an agent, and the example flow.
#   bash scripts/quickstart.sh            # keeps running until Ctrl-C
#   bash scripts/quickstart.sh --exit     # stops once the example run has finished
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv" >&2
  "$PY" -m venv .venv
fi
echo "==> installing orch" >&2
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e . 2> >(grep -v -e '^WARNING: Location' >&2)
exec .venv/bin/orch quickstart "$@"
