"""Surface-hopping throughput: trajectory-steps per second for 2, 10 and 20 states, FSSH and DISH,
1 and 2 MPI ranks, plus the headline DISH run (2 states × 20 initial times × 200 trajectories × 100 ps).

    .venv/bin/python scripts/bench_hop.py [--quick] [--out bench_hop.json]

Runs the real job (`python -m n2amd_driver.namd hop`) on synthetic couplings (phonon-like energy
fluctuations, random antisymmetric couplings; dt = 1 fs, NELM = 10) and reads the cost the job reports
(propagation only, after set-up), and the wall time of the whole command. Writes JSON and prints a
markdown table (pasted into docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from n2amd_driver.namd.couplings_file import Couplings, write_couplings  # noqa: E402
from n2amd_driver.namd.series import CouplingSeries  # noqa: E402
from benchlib import provenance  # noqa: E402

BIN = Path(sys.executable).parent


def synthetic(n: int, N: int = 2001, seed: int = 0) -> CouplingSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(N, dtype=float)
    E = np.zeros((N, n))
    for s in range(n):
        E[:, s] = (0.0 if s == 0 else 1.2 + 0.05 * s) + sum(
            0.02 * np.cos(2 * np.pi * t / p + rng.uniform(0, 6.3)) for p in rng.uniform(40, 300, 5))
    D = rng.normal(scale=0.004, size=(N - 1, n, n))
    return CouplingSeries(E, D - np.transpose(D, (0, 2, 1)), 1.0)


def run_job(folder: Path, n: int, method: str, ranks: int, ninit: int, ntraj: int, time_fs: float) -> dict:
    series_path = folder / f"c{n}.h5"
    if not series_path.exists():
        write_couplings(series_path, Couplings(synthetic(n)))
    cfg = {"input": {"couplings": str(series_path)}, "method": method, "ntraj": ntraj, "namdtime_fs": time_fs,
           "initial": {"times": ninit}, "checkpoint_every_fs": time_fs, "record_every": 10,
           "output": str(folder / f"out_{n}_{method}_{ranks}_{ninit}x{ntraj}x{time_fs:g}")}
    path = folder / "hop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "n2amd_driver.namd", "hop", str(path), "-q"]
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if r.returncode:
        raise RuntimeError(r.stderr)
    m = re.search(r"cost\s+([\d.]+) s on (\d+) rank\(s\): ([\d.e+]+) trajectory-steps/s", r.stdout)
    return {"states": n, "method": method, "ranks": ranks, "initial_times": ninit, "ntraj": ntraj,
            "time_fs": time_fs, "propagation_s": float(m.group(1)), "traj_steps_per_s": float(m.group(3)),
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs (for a smoke test)")
    ap.add_argument("--out", default="bench_hop.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in (2, 10, 20):
            for method in ("fssh", "dish"):
                for ranks in (1, 2):
                    t_fs = 500.0 if args.quick else (4000.0 if n < 20 else 2000.0)
                    rows.append(run_job(tmp, n, method, ranks, ninit=4, ntraj=100, time_fs=t_fs))
                    print(json.dumps(rows[-1]), flush=True)
        headline = run_job(tmp, 2, "dish", 2, ninit=20, ntraj=200, time_fs=2000.0 if args.quick else 100_000.0)
    Path(args.out).write_text(json.dumps({"rows": rows, "headline": headline, "provenance": provenance()}, indent=1))
    print("\n| states | method | ranks | trajectory-steps/s | propagation (s) | wall (s) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['states']} | {r['method'].upper()} | {r['ranks']} | {r['traj_steps_per_s']:.3g} | "
              f"{r['propagation_s']:.1f} | {r['wall_s']:.1f} |")
    h = headline
    print(f"\nDISH, 2 states × {h['initial_times']} initial times × {h['ntraj']} trajectories × "
          f"{h['time_fs'] / 1000:g} ps on {h['ranks']} ranks: {h['wall_s']:.0f} s wall "
          f"({h['propagation_s']:.0f} s propagation, {h['traj_steps_per_s']:.3g} trajectory-steps/s)")


if __name__ == "__main__":
    main()
