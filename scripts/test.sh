#!/usr/bin/env bash
# The test suite: installs into .venv, lints, type-checks, then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
