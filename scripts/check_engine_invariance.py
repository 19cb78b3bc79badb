"""Measure how the reference engines' converged H responds to rotations and translations.

    .venv/bin/python scripts/check_engine_invariance.py

Prints, for rattled GaAs8 (tblite GFN1/GFN2): max |ΔH| (eV) after a translation that re-wraps atoms,
after a lattice-vector translation, and after a rotation (compared with D·H·Dᵀ). Figures quoted in
docs/reference-data.md come from this script.
"""
import numpy as np
from ase.build import bulk

from n2amd_driver.orbitals.conventions import Basis
from n2amd_driver.engines import get_engine
from n2amd_driver.core.structure import rotate_atoms


def main():
    atoms = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    atoms.rattle(0.05, seed=4)
    q, r = np.linalg.qr(np.random.default_rng(11).normal(size=(3, 3)))
    Q = q * np.sign(np.diag(r))
    if np.linalg.det(Q) < 0:
        Q[:, 0] *= -1
    print(f"{'method':10s} {'accuracy':>9s} {'re-wrap dH':>11s} {'re-wrap dE':>11s} {'lattice dH':>11s} {'rotation dH':>12s}")
    for method in ("GFN1-xTB", "GFN2-xTB"):
        for acc in (1e-2, 1e-6):
            e = get_engine("tblite", method=method, accuracy=acc)
            ref = e.label(atoms)
            moved = e.label(rotate_atoms(atoms, np.eye(3), (0.3, -1.1, 2.0)))
            lat = e.label(rotate_atoms(atoms, np.eye(3), atoms.cell.array[0] - 2 * atoms.cell.array[2]))
            rot = e.label(rotate_atoms(atoms, Q))
            D = Basis.from_json(ref.meta["basis"]).rotation_matrix(atoms.numbers, Q)
            print(f"{method:10s} {acc:9.0e} {np.abs(moved.hamiltonian - ref.hamiltonian).max():11.2e} "
                  f"{abs(moved.energy - ref.energy):11.2e} {np.abs(lat.hamiltonian - ref.hamiltonian).max():11.2e} "
                  f"{np.abs(rot.hamiltonian - D @ ref.hamiltonian @ D.T).max():12.2e}")


if __name__ == "__main__":
    main()
