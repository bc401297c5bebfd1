#!/usr/bin/env bash
# Run the test suite: creates .venv with the pinned development requirements on first use
# (and again whenever a requirements file changes), then runs pytest with any arguments given.
#   ./run_tests.sh                 everything
#   ./run_tests.sh -q -k telegram  a subset
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11 or newer is needed (tried '$PY'; set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv ..."
    "$PY" -m venv .venv
fi
stamp=.venv/.dev-requirements.sha256
want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing development requirements into .venv ..."
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
exec .venv/bin/python -m pytest "$@"
