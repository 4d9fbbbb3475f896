#!/usr/bin/env bash
# The serving tests: creates the venv with Triton's clients (scripts/setup_serve_venv.sh), then
# runs tests/serve/test_serve.py with it against `parnet serve`.
# Usage: serve_test.sh <parnet binary> <source dir>
set -euo pipefail
PARNET_BIN=$(realpath "$1") PARNET_SOURCE=$(realpath "$2")
export PARNET_BIN PARNET_SOURCE
VENV=$PARNET_SOURCE/.venv-serve
"$PARNET_SOURCE/scripts/setup_serve_venv.sh"
export SERVE_VENV=$VENV
cd "$PARNET_SOURCE/tests/serve"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$PARNET_SOURCE/tests/serve" "${@:3}"
