#!/usr/bin/env bash
# The demo on the embedded stack: installs into .venv, then runs `driftline demo` (arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/driftline demo "$@"
