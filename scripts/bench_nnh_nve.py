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
A surface can conserve energy and still run downhill into unphysical structures: the run stops when the
temperature exceeds ``--max-temperature``, and every ``--reference-every`` fs the frame is labelled with
the reference engine (tblite, the model's method), so the JSON shows where model and reference part.
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
    p.add_argument("--max-temperature", type=float, default=900.0,
                   help="stop when the temperature exceeds this (K): the surface is running downhill")
    p.add_argument("--reference-every", type=int, default=50,
                   help="every this many fs, label the frame with the reference engine and keep its energy beside "
                   "the model's band and remainder parts (0: never)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/nnh_nve.json")
    p.add_argument("--checkpoint", help="state saved every 100 steps; a rerun with the same settings carries on "
                   "from it (default: runs/bench/nnh_nve_<first 10 hex digits of the model file's SHA-256>.npz)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from n2amd_driver.models.calculator import N2AMDCalculator
    from n2amd_driver.models.io import load_model, resolve_model_path
    from n2amd_driver.engines import get_engine
    from n2amd_driver.md.ase_runs import nve_drift

    if a.checkpoint is None:  # named after the model's bytes: another model never resumes this run
        digest = hashlib.sha256(resolve_model_path(a.model).read_bytes()).hexdigest()[:10]
        a.checkpoint = f"runs/bench/nnh_nve_{digest}.npz"
    Path(a.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    resumed_at = 0
    if Path(a.checkpoint).exists():
        with np.load(a.checkpoint) as c:
            resumed_at = int(c["nsteps"])
        print(f"resuming from step {resumed_at} ({a.checkpoint})")

    nnh = load_model(a.model)
    engine = get_engine("tblite", method=nnh.method)
    along: list[dict] = []  # model vs reference on frames of the model's own trajectory

    def compare(atoms, step):
        if not a.reference_every or step % a.reference_every:
            return
        band, rem = nnh.band_terms(atoms), nnh.remainder.evaluate(atoms)
        rep = nnh.prior.evaluate(atoms)["energy"] if nnh.prior is not None else 0.0
        ref = engine.label(atoms)
        n = len(atoms)
        along.append({"step": step, "temperature_K": atoms.get_temperature(),
                      "reference_eV_atom": ref.energy / n, "model_eV_atom": (band["energy"] + rep + rem["energy"]) / n,
                      "band_eV_atom": band["energy"] / n, "repulsion_eV_atom": rep / n,
                      "remainder_eV_atom": rem["energy"] / n,
                      "model_gap_eV": band["extras"]["cbm_eV"] - band["extras"]["vbm_eV"]})
        print(f"[{step} fs] T {along[-1]['temperature_K']:.0f} K, model − reference "
              f"{1000 * (along[-1]['model_eV_atom'] - along[-1]['reference_eV_atom']):+.1f} meV/atom", flush=True)

    steps = int(round(a.ps * 1000))
    t0 = time.perf_counter()
    r = nve_drift(si_cell(2), N2AMDCalculator(nnh), a.temperature, steps, 1.0, every=5, progress=True,
                  checkpoint=a.checkpoint, max_temperature_K=a.max_temperature, observe=compare)
    wall = time.perf_counter() - t0
    done = int(round(r.time_fs[-1]))
    res = {"model": a.model, "atoms": 64, "steps": steps, "dt_fs": 1.0, "threads": a.threads,
           "max_temperature_K": a.max_temperature, "s_per_step": wall / max(done - resumed_at, 1),
           "resumed_at_step": resumed_at, "prior": nnh.prior.state() if nnh.prior is not None else None,
           **r.as_dict(), "time_fs": r.time_fs.tolist(),
           "total_eV_atom": r.total_eV.tolist(), "temperature_K": r.temperature_K.tolist(),
           "reference_along": along, "reference": engine.describe(),
           "provenance": provenance()}
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"NNH NVE {r.time_fs[-1] / 1000:g} of {a.ps:g} ps" + (f" (stopped: {r.stopped})" if r.stopped else "")
          + f": drift {r.drift_meV_atom_ps:+.4f} meV/atom/ps, fluctuation {r.fluctuation_meV_atom:.4f} meV/atom, "
          f"{res['s_per_step']:.2f} s/step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
