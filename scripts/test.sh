#!/usr/bin/env bash
# Runs the test suite (sets itself up first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One worker per core, at most four (each imports torch), a test file per worker (a file's
# module-scoped fixtures are built once); MODELC_TEST_WORKERS=0 runs in this process.
workers=${MODELC_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')}
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
