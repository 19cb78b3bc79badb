#!/usr/bin/env python
"""NNH-MD in LAMMPS with the bundled NNH model: the shipped ``lammps_inputs/in.n2amd_nnh`` on 64-atom Si.

    python scripts/bench_nnh_lammps.py [--model si_nnh.pt] [--nvt-steps 10] [--nve-steps 50]
                                       [--workdir runs/bench/nnh_lammps] [--out nnh_lammps.json]

What it checks and measures, in one run:
- step 0: LAMMPS potential energy (``fix n2amd`` gathering the cell on rank 0) against the same model
  called directly from Python on the same structure (relative difference);
- NVE after a short Nosé–Hoover equilibration at 300 K: total-energy drift (linear fit, meV/atom/ps)
  and fluctuation (meV/atom) from the thermo output, against the 1 meV/atom/ps bound;
- cost: seconds per MD step (LAMMPS loop time) and the band edges the fix writes on the fly.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from benchlib import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="si_nnh.pt")
    ap.add_argument("--nvt-steps", type=int, default=10)
    ap.add_argument("--nve-steps", type=int, default=50)
    ap.add_argument("--workdir", default="runs/bench/nnh_lammps")
    ap.add_argument("--out", default="nnh_lammps.json")
    args = ap.parse_args()

    from ase.io import read

    from n2amd_driver.models.io import load_model
    from n2amd_driver.md.launch import LAMMPS_INPUTS, run_lammps, thermo_tables

    wd = Path(args.workdir)
    run = run_lammps(wd, model=args.model, nnh=True, nvt_steps=args.nvt_steps, nve_steps=args.nve_steps)
    nvt, nve = thermo_tables(run.log.read_text())[-2:]
    atoms = read(LAMMPS_INPUTS / "si64.data", format="lammps-data", atom_style="atomic", units="metal")
    atoms.set_chemical_symbols(["Si"] * len(atoms))
    e_direct = load_model(args.model).evaluate(atoms)["energy"]
    e_lmp = float(nvt.columns["PotEng"][0])
    n = len(atoms)
    t_ps = nve.columns["Time"] - nve.columns["Time"][0]
    etot = nve.columns["TotEng"] / n * 1000  # meV/atom
    slope = float(np.polyfit(t_ps, etot, 1)[0])
    edges = [json.loads(ln) for ln in (wd / "nnh_electronic.jsonl").read_text().splitlines() if ln.strip()]
    res = {
        "model": args.model, "atoms": n, "nvt_steps": args.nvt_steps, "nve_steps": args.nve_steps,
        "step0_pe_lammps_eV": e_lmp, "step0_pe_direct_eV": e_direct,
        "step0_rel_diff": abs(e_lmp - e_direct) / abs(e_direct),
        "nve_drift_meV_atom_ps": slope, "nve_fluctuation_meV_atom": float(np.std(etot)),
        "nve_max_dev_meV_atom": float(np.max(np.abs(etot - etot[0]))),
        "mean_temperature_K": float(np.mean(nve.columns["Temp"])),
        "s_per_step_nvt": nvt.loop_s / nvt.steps, "s_per_step_nve": nve.loop_s / nve.steps,
        "electronic_records": len(edges),
        "mean_gap_eV": float(np.mean([e["gap_eV"] for e in edges])) if edges else None,
        "provenance": provenance(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"step 0: LAMMPS pe {e_lmp:.8f} eV, direct {e_direct:.8f} eV (rel. diff {res['step0_rel_diff']:.1e})")
    print(f"NVE {args.nve_steps} fs: drift {slope:+.4f} meV/atom/ps, fluctuation {res['nve_fluctuation_meV_atom']:.4f}"
          f" meV/atom, <T> {res['mean_temperature_K']:.0f} K; {res['s_per_step_nve']:.2f} s/step")


if __name__ == "__main__":
    main()
