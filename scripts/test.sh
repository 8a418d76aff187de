#!/usr/bin/env bash
# The test suite: installs into .venv, lints, type-checks, then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/mypy benchmarks/quix_app.py  # a script, not a package: checked on its own
# Two processes, a test file each at a time: each starts its own broker, Redis and served world, and
# the integration tests mostly wait on them (group joins, delays), so two overlap well on two cores.
exec .venv/bin/pytest -n 2 --dist loadfile "$@"
