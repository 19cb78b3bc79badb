"""Start structures of a generation job: a file or a bulk prototype, repeated, and strained cells."""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import read


def build_system(system: dict) -> Atoms:
    """The reference cell: from a file (any ASE format) or a bulk prototype, repeated ``supercell`` times."""
    if system.get("structure"):
        atoms = read(system["structure"])
    else:
        elements = system["elements"]
        name = "".join(elements)
        atoms = bulk(name, system.get("prototype", "diamond"), a=float(system["lattice_constant"]),
                     cubic=bool(system.get("cubic", True)))
    return atoms.repeat(tuple(system.get("supercell", (1, 1, 1))))


def strain_cell(atoms: Atoms, linear_strain: float, shear_std: float, rng: np.random.Generator) -> Atoms:
    """Isotropic linear strain plus a random symmetric shear (standard deviation ``shear_std``)."""
    eps = np.eye(3) * linear_strain
    if shear_std > 0:
        a = rng.normal(scale=shear_std, size=(3, 3))
        eps = eps + 0.5 * (a + a.T)
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out
