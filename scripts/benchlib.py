"""What every benchmark script records next to its figures: the command, when, how long, on what."""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone

_T0 = time.time()


def provenance() -> dict:
    """Command line (as typed, from the repository root), UTC date, wall time so far, machine, and
    ``$N2AMD_BENCH_NOTE`` (what else ran on the machine, say) when set."""
    return {"command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable)] + sys.argv),
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "wall_s": round(time.time() - _T0, 1), "cores": os.cpu_count(), "machine": platform.machine(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "note": os.environ.get("N2AMD_BENCH_NOTE")}
