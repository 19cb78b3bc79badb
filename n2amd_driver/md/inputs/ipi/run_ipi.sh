#!/usr/bin/env bash
# Start i-PI on INPUT.xml and N n2amd drivers on its UNIX socket; clean up a stale socket first and the
# drivers at the end. Run from the folder that holds INPUT.xml and its init structure.
#   bash run_ipi.sh input_nvt.xml 1 [model.pt]       (default model: the bundled si_mlff.pt)
set -euo pipefail
input="${1:?usage: run_ipi.sh INPUT.xml [NDRIVERS] [MODEL]}"
n="${2:-1}"
model="${3:-si_mlff.pt}"
here="$(cd "$(dirname "$0")" && pwd)"
py="${N2AMD_PYTHON:-$here/../.venv/bin/python}"
[ -x "$py" ] || py=python
address="$(sed -n 's:.*<address> *\([^ <]*\) *</address>.*:\1:p' "$input" | head -1)"
# the elements of i-PI's atoms: the drivers read them from the <initialize> structure file
init="$(sed -n 's:.*<file mode="xyz"> *\([^ <]*\) *</file>.*:\1:p' "$input" | head -1)"
[ -n "$init" ] && [ -f "$init" ] || { echo "[run_ipi] no <initialize> <file mode=\"xyz\"> in $input to take the elements from" >&2; exit 2; }
sock="/tmp/ipi_${address}"
if [ -e "$sock" ]; then
    if "$py" -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$sock" 2>/dev/null; then
        echo "[run_ipi] another i-PI is listening on $sock; choose another <address>" >&2; exit 1
    fi
    echo "[run_ipi] removing stale socket $sock (left by a killed i-PI)" >&2
    rm -f "$sock"
fi
# i-PI itself, with the repair of n2amd_driver/md/ipi_server.py (a killed driver no longer hangs the run)
"$py" -m n2amd_driver.md.ipi_server "$input" > "${input%.xml}.log" 2>&1 &
ipi_pid=$!
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "$n"); do
    "$py" -m n2amd_driver.ipi --unix --address "$address" --model "$model" --structure "$init" --threads 1 &
    pids+=($!)
done
wait "$ipi_pid"
status=$?
echo "[run_ipi] i-PI finished (exit $status); log: ${input%.xml}.log" >&2
exit $status
