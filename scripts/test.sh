#!/usr/bin/env bash
# The test command: ruff, then the default (non-slow) pytest suite on 2 workers.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m slow` for model-level checks).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check nnc tests tools
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
exec .venv/bin/python -m pytest -n 2 -q "$@"
