#!/usr/bin/env bash
# Run the whole test suite of the template (it bakes projects and runs their own suites too).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
