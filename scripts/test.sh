#!/usr/bin/env bash
# The test suite: installs into .venv, lints, type-checks, then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/mypy benchmarks/quix_app.py  # a script, not a package: checked on its own
exec .venv/bin/pytest "$@"
