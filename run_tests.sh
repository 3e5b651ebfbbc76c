#!/usr/bin/env bash
# Sets up .venv (if missing or out of date) and runs the test suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k mae -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
exec .venv/bin/python -m pytest "$@"
