#!/usr/bin/env bash
# Set up the environment if needed, then run the test suite. Extra arguments go to pytest
# (e.g. -m "not slow" for the fast subset).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m pytest -ra "$@"
