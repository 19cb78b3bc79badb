#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install the package into it.
# Idempotent: re-running does nothing when setup.cfg has not changed since the last successful install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${N2AMD_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
venv="$root/.venv"
stamp="$venv/.n2amd-installed"
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv ($("$PY" --version))"
    "$PY" -m venv "$venv"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[setup] environment up to date ($venv)"
else
    echo "[setup] installing n2amd_driver and its pinned dependencies (a few minutes the first time)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
    # torch first and pinned: it comes from the local CPU wheel, never the multi-GB CUDA build.
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -e ".[test]"
    echo "$want" > "$stamp"
fi
# Compiled parts (the LAMMPS plugin) are (re)built by the package itself when their inputs change.
"$venv/bin/python" -m n2amd_driver.setup_hooks
echo "[setup] done: activate with 'source .venv/bin/activate' or call .venv/bin/n2amd"
