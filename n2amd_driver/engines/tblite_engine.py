"""tblite adapter: GFN1-xTB / GFN2-xTB labels at Γ (periodic) or for molecules.

tblite works in atomic units; everything returned here is in eV, Å and e3nn orbital order.
The Hamiltonian is the **converged** (self-consistent) one, rebuilt as F = S C diag(ε) Cᵀ S from
tblite's orbital coefficients and energies: tblite's own ``hamiltonian-matrix`` is the core H0.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ..core.structure import StructureError, check_structure, describe
from ..core.units import BOHR_ANG, HARTREE_EV, KB_EV_K
from ..orbitals.conventions import Basis
from .base import EngineError, Labels, ReferenceEngine

METHODS = ("GFN1-xTB", "GFN2-xTB")


class TBLiteEngine(ReferenceEngine):
    """GFN-xTB reference labels through tblite's Python API.

    Parameters
    ----------
    method: "GFN1-xTB" or "GFN2-xTB".
    accuracy: tblite's SCC accuracy (smaller is tighter; tblite's default is 1.0).
    electronic_temperature: Fermi smearing temperature in K (tblite's default ≈ 300 K).
    max_iter: maximum SCC iterations before the structure is reported as not converged.
    charge: total charge (e).
    """

    name = "tblite"

    def __init__(self, method: str = "GFN2-xTB", accuracy: float = 0.01, electronic_temperature: float = 300.0,
                 max_iter: int = 250, charge: float = 0.0):
        if method not in METHODS:
            raise ValueError(f"tblite method must be one of {', '.join(METHODS)}, got '{method}'")
        self.method = method
        self.accuracy = float(accuracy)
        self.electronic_temperature = float(electronic_temperature)
        self.max_iter = int(max_iter)
        self.charge = float(charge)
        self._basis_cache: dict[str, tuple[int, ...]] = {}

    def describe(self) -> dict:
        return {"engine": self.name, "method": self.method, "accuracy": self.accuracy,
                "electronic_temperature_K": self.electronic_temperature, "max_iter": self.max_iter,
                "charge": self.charge}

    # ---- basis -------------------------------------------------------------------------------
    def basis(self, elements) -> Basis:
        from tblite.interface import Calculator

        for el in sorted(set(elements)):
            if el in self._basis_cache:
                continue
            z = atomic_numbers.get(el)
            if z is None or z > 86:
                raise StructureError(f"element {el} is not parametrised in {self.method} (tblite covers H–Rn)")
            # a free atom with one unpaired electron where the count is odd; only the basis is read
            calc = Calculator(self.method, np.array([z]), np.zeros((1, 3)), uhf=z % 2)
            self._basis_cache[el] = tuple(int(l) for l in calc.get("angular-momenta"))
        shells = {el: self._basis_cache[el] for el in set(elements)}
        return Basis(shells=shells, name=f"tblite:{self.method}", engine_order="tblite")

    # ---- labels ------------------------------------------------------------------------------
    def _calculator(self, atoms: Atoms):
        from tblite.interface import Calculator

        periodic = bool(np.all(atoms.pbc))
        kwargs = dict(charge=self.charge)
        if periodic:
            kwargs.update(lattice=atoms.cell.array / BOHR_ANG, periodic=np.array([True, True, True]))
        calc = Calculator(self.method, atoms.numbers, atoms.positions / BOHR_ANG, **kwargs)
        calc.set("verbosity", 0)
        calc.set("accuracy", self.accuracy)
        calc.set("max-iter", self.max_iter)
        calc.set("temperature", self.electronic_temperature * KB_EV_K / HARTREE_EV)
        calc.set("save-integrals", 1)
        return calc

    def label(self, atoms: Atoms, name: str | None = None) -> Labels:
        from tblite.exceptions import TBLiteRuntimeError, TBLiteValueError

        label = describe(atoms, name)
        check_structure(atoms, name=name)
        basis = self.basis(set(atoms.get_chemical_symbols()))
        try:
            res = self._calculator(atoms).singlepoint()
        except (TBLiteRuntimeError, TBLiteValueError) as exc:
            raise EngineError(f"{label}: tblite {self.method} failed: {exc}") from None
        return self._labels_from_result(res, atoms, basis)

    def _labels_from_result(self, res, atoms: Atoms, basis: Basis) -> Labels:
        periodic = bool(np.all(atoms.pbc))
        S = res.get("overlap-matrix")
        C = res.get("orbital-coefficients")
        eps = res.get("orbital-energies")  # hartree
        H = (S @ C) * eps @ (S @ C).T  # F = S C diag(ε) Cᵀ S, hartree
        H = 0.5 * (H + H.T)
        T = basis.engine_transform(atoms.numbers)
        stress = None
        if periodic:
            stress = res.get("virial") * HARTREE_EV / atoms.cell.volume
        return Labels(
            energy=float(res.get("energy")) * HARTREE_EV,
            forces=-res.get("gradient") * (HARTREE_EV / BOHR_ANG),
            stress=stress,
            hamiltonian=T.T @ H @ T * HARTREE_EV,
            overlap=T.T @ S @ T,
            orbital_energies=eps * HARTREE_EV,
            occupations=res.get("orbital-occupations"),
            fold="gamma" if periodic else "none",
            meta={"basis": basis.to_json()},
        )
