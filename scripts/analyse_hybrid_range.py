"""How far the HSE06 − PBE difference of the real-space blocks reaches, and what the exchange k-mesh does
to it: the numbers behind the route to HSE06-level models (issue [J]).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/analyse_hybrid_range.py [--out docs/bench/hybrid_range.json]

One rattled cubic Si8 cell (0.03 Å, seed 0), basis gth-dzvp@0.12, labelled with PBE and HSE06 on a 2×2×2
k-mesh (64-atom Born–von Kármán supercell, 10.9 Å wide: pairs closer than 5.43 Å have their own block).
Reported: for H_PBE and ΔH = H_HSE06 − H_PBE, the largest |element| per pair-distance shell, and the
change of the HSE06 band edges when the blocks of ΔH beyond r_c are zeroed (PBE blocks kept whole). The
labels are kept in ``runs/hybrid_range/`` (resumable: a finished label is not recomputed).
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

KMESH = (2, 2, 2)
BASIS = "gth-dzvp@0.12"
SHELLS = [(2.0, 2.6), (3.6, 4.0), (4.2, 4.7), (5.0, 5.5)]
CUTOFFS = [2.6, 4.0, 4.7, 5.5]


def label(method: str, store: Path) -> dict:
    path = store / f"si8_k222_{method.lower()}.npz"
    if path.exists():
        return dict(np.load(path))
    from ase.build import bulk

    from n2amd_driver.engines import get_engine

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.03, seed=0)
    t0 = time.perf_counter()
    lab = get_engine("pyscf", method=method, basis=BASIS, kmesh=KMESH, forces=False).label(atoms)
    out = {"H": lab.hamiltonian, "S": lab.overlap, "eps": lab.orbital_energies, "occ": lab.occupations,
           "positions": atoms.positions, "cell": atoms.cell.array, "seconds": time.perf_counter() - t0}
    store.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs/bench/hybrid_range.json"))
    ap.add_argument("--store", default=str(ROOT / "runs/hybrid_range"))
    args = ap.parse_args()
    from ase import Atoms

    from n2amd_driver.orbitals import bvk_to_supercell

    pbe, hse = label("PBE", Path(args.store)), label("HSE06", Path(args.store))
    H_p, H_h, S = (bvk_to_supercell(x, KMESH) for x in (pbe["H"], hse["H"], pbe["S"]))
    sc = Atoms("Si8", positions=pbe["positions"], cell=pbe["cell"], pbc=True).repeat(KMESH)
    n = len(H_p) // len(sc)
    d = sc.get_all_distances(mic=True)
    big = lambda X: np.abs(X).reshape(len(sc), n, len(sc), n).max(axis=(1, 3))
    bp, bd = big(H_p), big(H_h - H_p)
    shells = {f"{lo}-{hi}": {"max_abs_H_PBE_meV": round(1000 * float(bp[(d >= lo) & (d < hi)].max()), 2),
                             "max_abs_dH_meV": round(1000 * float(bd[(d >= lo) & (d < hi)].max()), 2)}
              for lo, hi in SHELLS if ((d >= lo) & (d < hi)).any()}
    nocc = int(round(hse["occ"].sum() / 2))
    e0 = hse["eps"]
    truncation = {}
    for rc in CUTOFFS:
        mask = np.kron(d < rc, np.ones((n, n)))
        e = sl.eigh(H_p + (H_h - H_p) * mask, S, eigvals_only=True)
        truncation[f"{rc}"] = {"dVBM_meV": round(1000 * (e[nocc - 1] - e0[nocc - 1]), 2),
                               "dCBM_meV": round(1000 * (e[nocc] - e0[nocc]), 2)}
    gap = lambda x: float(x["eps"][nocc] - x["eps"][nocc - 1])
    res = {"kmesh": list(KMESH), "basis": BASIS, "gap_PBE_eV": round(gap(pbe), 4), "gap_HSE06_eV": round(gap(hse), 4),
           "label_seconds": {"PBE": round(float(pbe["seconds"]), 1), "HSE06": round(float(hse["seconds"]), 1)},
           "by_distance_A": shells, "dH_truncated_at_rc_A": truncation, "provenance": provenance()}
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
