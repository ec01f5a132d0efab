#!/usr/bin/env bash
# The test command: sets the machine up (tools/bootstrap.sh --tests), checks the
# style, then runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh --tests
export PATH=$PATH:/usr/sbin:/sbin
.venv/bin/ruff check imagepipe tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
