#!/bin/sh
# localstack/setup.sh: see localstack/README.md. A thin wrapper; the logic is in ctl.py (standard library only,
# so any Python 3.9+ runs it). Extra arguments go to ctl.py, e.g. `localstack/start.sh --port 4567`.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
    echo "localstack: no python3 on PATH to run ctl.py" >&2
    exit 1
fi
exec "$python" "$here/ctl.py" setup "$@"
