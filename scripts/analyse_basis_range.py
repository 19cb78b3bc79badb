"""How far the real-space blocks H(R) of a pyscf PBE label reach, and how well conditioned S is, for GTH
bases (e.g. gth-dzvp, gth-dzvp with its diffuse exponent raised, ``gth-dzvp@0.12``, and CP2K's
condensed-phase gth-dzvp-molopt-sr): the numbers behind the basis and k-mesh of the DFT data.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/analyse_basis_range.py [--bases gth-dzvp gth-dzvp@0.12 ...] \
        [--out docs/bench/basis_range.json]

For each basis: one PBE label of the rattled cubic Si8 cell (0.03 Å, seed 0) on a 3×3×3 k-mesh, i.e. the
blocks of its 216-atom Born–von Kármán supercell (16.3 Å wide). Reported: the total energy per atom, the
smallest eigenvalue of the supercell's S, the largest |H| element per pair-distance shell, and the change
of the band edges and of the 40 states around the gap when every block beyond r_c is zeroed (S kept
whole: the models compute S exactly and predict H only within their block cutoff). Resumable per basis.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg as sl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import provenance  # noqa: E402

SHELLS = [(2.0, 2.5), (3.5, 4.0), (4.2, 4.7), (5.0, 5.5), (5.8, 6.2), (6.5, 7.0), (7.2, 7.8), (7.8, 8.2),
          (8.2, 9.0), (9.0, 20.0)]
CUTOFFS = [5.5, 7.0, 8.0, 8.2]
KMESH = (3, 3, 3)


def analyse(basis: str) -> dict:
    from ase.build import bulk

    from n2amd_driver.engines import get_engine
    from n2amd_driver.orbitals import bvk_to_supercell

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.03, seed=0)
    t0 = time.perf_counter()
    lab = get_engine("pyscf", method="PBE", basis=basis, kmesh=KMESH, forces=False, lindep=0.0).label(atoms)
    seconds = time.perf_counter() - t0
    H, S = bvk_to_supercell(lab.hamiltonian, KMESH), bvk_to_supercell(lab.overlap, KMESH)
    sc = atoms.repeat(KMESH)
    n = len(lab.hamiltonian[0]) // len(atoms)
    d = sc.get_all_distances(mic=True)
    block = np.abs(H).reshape(len(sc), n, len(sc), n).max(axis=(1, 3))
    nocc = int(round(lab.occupations.sum() / 2))
    e0 = lab.orbital_energies
    window = slice(nocc - 20, nocc + 20)
    truncation = {}
    for rc in CUTOFFS:
        mask = np.kron(d < rc, np.ones((n, n)))
        e = sl.eigh(H * mask, S, eigvals_only=True)
        truncation[f"{rc}"] = {"dVBM_meV": round(1000 * (e[nocc - 1] - e0[nocc - 1]), 2),
                               "dCBM_meV": round(1000 * (e[nocc] - e0[nocc]), 2),
                               "window_mae_meV": round(1000 * float(np.abs(e - e0)[window].mean()), 2)}
    shells = {f"{lo}-{hi}": round(1000 * float(block[(d >= lo) & (d < hi)].max()), 3) for lo, hi in SHELLS
              if ((d >= lo) & (d < hi)).any()}
    return {"basis": basis, "energy_eV_per_atom": round(lab.energy / len(atoms), 5),
            "gap_eV": round(float(e0[nocc] - e0[nocc - 1]), 4), "min_S_eigenvalue": float(np.linalg.eigvalsh(S)[0]),
            "max_abs_H_meV_by_distance_A": shells, "truncation_at_rc_A": truncation, "label_seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", nargs="+", default=["gth-dzvp", "gth-dzvp@0.09", "gth-dzvp@0.12",
                                                   "gth-dzvp-molopt-sr", "gth-dzvp-molopt-sr@0.12"])
    ap.add_argument("--out", default=str(ROOT / "docs/bench/basis_range.json"))
    args = ap.parse_args()
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {"cases": {}}
    for basis in args.bases:
        if basis in doc["cases"]:
            continue
        doc["cases"][basis] = analyse(basis)
        print(json.dumps(doc["cases"][basis]), flush=True)
        doc["provenance"] = provenance()
        out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
