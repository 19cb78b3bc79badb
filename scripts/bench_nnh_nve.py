#!/usr/bin/env python
"""Energy conservation of NNH forces over picoseconds: ASE velocity-Verlet NVE of 64 Si atoms.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_nnh_nve.py --model si_nnh.pt --ps 5 \
        --out docs/bench/nnh_nve.json

Same set-up as the MLFF's NVE check in ``bench_forcefield.py`` (the 64-atom cubic cell rattled by 0.05 Å,
Maxwell–Boltzmann velocities at 300 K, 1 fs steps): the drift of the total energy (meV/atom/ps, linear
fit; bound 1), its fluctuation about the fit, the mean temperature and the seconds per MD step. The total
energy per atom is kept every 5 steps in the JSON. NNH steps cost about a second on one core, so 5 ps take
hours: the run is its own benchmark stage (``benchmarks.sh nnh_nve``), checkpointed every 100 steps so
that a stopped run carries on where it was (s_per_step then counts the steps of the last session only).
"""
from __future__ import annotations

import argparse
import json
import time
import hashlib
from pathlib import Path

import numpy as np
import torch
from bench_forcefield import si_cell
from benchlib import provenance


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="si_nnh.pt", help="NNH model file or bundled name")
    p.add_argument("--ps", type=float, default=5.0, help="NVE length (ps) at 1 fs")
    p.add_argument("--temperature", type=float, default=300.0, help="initial velocities (K)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/nnh_nve.json")
    p.add_argument("--checkpoint", help="state saved every 100 steps; a rerun with the same settings carries on "
                   "from it (default: runs/bench/nnh_nve_<first 10 hex digits of the model file's SHA-256>.npz)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from n2amd_driver.calculator import N2AMDCalculator
    from n2amd_driver.md.ase_runs import nve_drift

    steps = int(round(a.ps * 1000))
    t0 = time.perf_counter()
    from n2amd_driver.calculator import resolve_model_path

    if a.checkpoint is None:  # named after the model's bytes: another model never resumes this run
        digest = hashlib.sha256(resolve_model_path(a.model).read_bytes()).hexdigest()[:10]
        a.checkpoint = f"runs/bench/nnh_nve_{digest}.npz"
    Path(a.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    resumed_at = 0
    if Path(a.checkpoint).exists():
        with np.load(a.checkpoint) as c:
            resumed_at = int(c["nsteps"])
        print(f"resuming from step {resumed_at} ({a.checkpoint})")
    r = nve_drift(si_cell(2), N2AMDCalculator(a.model), a.temperature, steps, 1.0, every=5, progress=True,
                  checkpoint=a.checkpoint)
    wall = time.perf_counter() - t0
    res = {"model": a.model, "atoms": 64, "steps": steps, "dt_fs": 1.0, "threads": a.threads,
           "s_per_step": wall / max(steps - resumed_at, 1), "resumed_at_step": resumed_at, **r.as_dict(), "time_fs": r.time_fs.tolist(),
           "total_eV_atom": r.total_eV.tolist(), "provenance": provenance()}
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"NNH NVE {a.ps:g} ps: drift {r.drift_meV_atom_ps:+.4f} meV/atom/ps, fluctuation "
          f"{r.fluctuation_meV_atom:.4f} meV/atom, {wall / steps:.2f} s/step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
