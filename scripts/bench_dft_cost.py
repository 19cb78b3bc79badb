"""What a periodic pyscf PBE / HSE06 label costs on this machine: one SCF per (cell, k-mesh, functional, basis),
timed, with its size and band gap, so that the DFT reference data of issue [J] can be chosen from numbers.

    .venv/bin/python scripts/bench_dft_cost.py [--cases si8-g-pbe si8-g-hse06 ...] [--out docs/bench/dft_cost.json]

Resumable: each finished case is written to the JSON at once, and a rerun skips the cases already there
(a case killed half-way is redone). Γ-point cases time the package's own label (`get_engine("pyscf")`:
GTH-PBE pseudopotential, PBE with multigrid XC, HSE06 with Gaussian density fitting and pyscf's default
exxdiv ('ewald'), conv_tol 1e-10 Ha), k-mesh cases the package's k-mesh label (the first k-mesh cases, run
before it existed, pyscf's KRKS SCF alone with the same choices). Structures: the
cubic 8-atom Si cell (a = 5.43 Å), rattled by 0.03 Å (seed 0), and its 2×1×1 and 2×2×2 repeats. Zincblende GaAs
(a = 5.65 Å) the same way. The gap is the smallest direct or indirect gap over the k-mesh (eV).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import provenance  # noqa: E402

HARTREE_EV = 27.211386245988

# name: (repeat of the cubic Si8 cell, k-mesh, functional, basis), cheapest first
CASES = {
    "si8-g-pbe": ((1, 1, 1), (1, 1, 1), "PBE", "gth-dzvp"),
    "si8-g-hse06": ((1, 1, 1), (1, 1, 1), "HSE06", "gth-dzvp"),
    "si8-k222-pbe": ((1, 1, 1), (2, 2, 2), "PBE", "gth-dzvp"),
    "si16-g-pbe": ((2, 1, 1), (1, 1, 1), "PBE", "gth-dzvp"),
    "si8-k222-hse06": ((1, 1, 1), (2, 2, 2), "HSE06", "gth-dzvp"),
    "si16-g-hse06": ((2, 1, 1), (1, 1, 1), "HSE06", "gth-dzvp"),
    "si8-k333-pbe": ((1, 1, 1), (3, 3, 3), "PBE", "gth-dzvp"),
    "si64-g-pbe": ((2, 2, 2), (1, 1, 1), "PBE", "gth-dzvp"),
    "si64-g-hse06": ((2, 2, 2), (1, 1, 1), "HSE06", "gth-dzvp"),
    # the basis of the DFT data (docs/reference-data.md): k-mesh labels, and Γ labels with forces (MLFF data)
    "si8-k333-pbe-msr": ((1, 1, 1), (3, 3, 3), "PBE", "gth-dzvp-molopt-sr@0.12"),
    "si8-k222-pbe-msr": ((1, 1, 1), (2, 2, 2), "PBE", "gth-dzvp-molopt-sr@0.12"),
    "si8-k222-hse06-msr": ((1, 1, 1), (2, 2, 2), "HSE06", "gth-dzvp-molopt-sr@0.12"),
    "si64-g-pbe-msr-forces": ((2, 2, 2), (1, 1, 1), "PBE", "gth-dzvp-molopt-sr@0.12", True),
    "si64-g-hse06-msr": ((2, 2, 2), (1, 1, 1), "HSE06", "gth-dzvp-molopt-sr@0.12"),
    # a compound of the paper (issue [J]: label it if it fits): zincblende GaAs, Ga with its 3d shell in valence
    "gaas8-k333-pbe-msr": ((1, 1, 1), (3, 3, 3), "PBE", "gth-dzvp-molopt-sr@0.12", False, "GaAs"),
    "gaas8-k222-hse06-msr": ((1, 1, 1), (2, 2, 2), "HSE06", "gth-dzvp-molopt-sr@0.12", False, "GaAs"),
}
#: cases whose k-mesh rows time pyscf's SCF alone (measured before the package had k-mesh labels)
SCF_ONLY = {"si8-k222-pbe", "si8-k222-hse06", "si8-k333-pbe"}


def structure(repeat, formula: str = "Si"):
    from ase.build import bulk

    a = (bulk("Si", "diamond", a=5.43, cubic=True) if formula == "Si" else
         bulk("GaAs", "zincblende", a=5.65, cubic=True))
    a.rattle(0.03, seed=0)
    return a.repeat(repeat)


def run_case(repeat, kmesh, xc, basis, forces: bool = False, formula: str = "Si", scf_only: bool = False) -> dict:
    """The package's own label (SCF, H and S, or H(R) and S(R) on a k-mesh, in the package's conventions),
    with forces where asked; ``scf_only``: pyscf's KRKS SCF alone with the engine's settings."""
    atoms = structure(repeat, formula)
    t0 = time.perf_counter()
    if not scf_only:
        from n2amd_driver.engines import get_engine

        lab = get_engine("pyscf", method=xc, basis=basis, forces=forces,
                         kmesh=None if kmesh == (1, 1, 1) else kmesh).label(atoms)
        eps, occ, nao, converged = lab.orbital_energies[None, :], lab.occupations[None, :], lab.overlap.shape[-1], True
    else:
        from pyscf.pbc import dft, gto

        cell = gto.Cell()
        cell.a = atoms.cell.array
        cell.atom = [(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)]
        cell.unit, cell.basis, cell.pseudo, cell.verbose = "A", basis, "gth-pbe", 0
        cell.build()
        mf = dft.KRKS(cell, kpts=cell.make_kpts(kmesh))
        mf = mf.density_fit() if xc.upper().startswith("HSE") else mf.multigrid_numint()
        mf.xc, mf.conv_tol, mf.verbose = xc, 1e-10, 0
        mf.kernel()
        eps = np.asarray(mf.mo_energy) * HARTREE_EV
        occ, nao, converged = np.asarray(mf.mo_occ), int(cell.nao), bool(mf.converged)
    wall = time.perf_counter() - t0
    vbm, cbm = eps[occ > 0].max(), eps[occ == 0].min()
    return {"atoms": len(atoms), "formula": atoms.get_chemical_formula(), "kmesh": list(kmesh), "functional": xc,
            "basis": basis, "nao": nao,
            "converged": converged, "seconds": round(wall, 1), "gap_eV": round(float(cbm - vbm), 4),
            "what": "SCF only" if scf_only else ("label (SCF + H, S" + (" + forces)" if forces else ")")
                                                 if kmesh == (1, 1, 1) else "label (SCF + H(R), S(R))"),
            "threads": os.environ.get("OMP_NUM_THREADS")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--out", default="docs/bench/dft_cost.json")
    args = ap.parse_args()
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() else {"cases": {}}
    for name in args.cases:
        if name in res["cases"]:
            print(f"[dft-cost] {name}: done before ({res['cases'][name]['seconds']} s)", flush=True)
            continue
        print(f"[dft-cost] {name} ...", flush=True)
        res["cases"][name] = run_case(*CASES[name], scf_only=name in SCF_ONLY)
        res["provenance"] = provenance()
        res["cases"][name].update(date_utc=res["provenance"]["date_utc"], note=res["provenance"]["note"])
        out.write_text(json.dumps(res, indent=1))  # after every case: a stopped run keeps what finished
        print(f"[dft-cost] {name}: {res['cases'][name]}", flush=True)


if __name__ == "__main__":
    main()
