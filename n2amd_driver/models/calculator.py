"""ASE calculator for the package's force models, so users can run ASE MD, relaxations and phonons:

    from n2amd_driver import N2AMDCalculator
    atoms.calc = N2AMDCalculator("runs/ff_si64/model.pt")        # MLFF
    atoms.calc = N2AMDCalculator("runs/nnh_si64/model.pt")       # NNH forces (band energy + remainder)

Energies in eV, forces eV/Å, stress eV/Å³ (ASE sign and Voigt order). Any object with an
``evaluate(atoms, stress=...) -> dict`` method (energy, forces, optionally energies, stress, extras)
can be wrapped as well.
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .domain import DomainWatch
from .io import load_force_model


class N2AMDCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "auto", dtype: str | None = None, close_atoms: str = "refuse",
                 **kwargs):
        """``close_atoms``: refuse | warn | off for structures with atoms closer than 0.6 × the sum of their
        covalent radii (:func:`n2amd_driver.core.structure.check_close_atoms`). Structures outside the
        model's training domain (:mod:`n2amd_driver.models.domain`) are warned about once, unless ``off``."""
        super().__init__(**kwargs)
        from ..core.structure import CLOSE_POLICIES

        if close_atoms not in CLOSE_POLICIES:
            raise ValueError(f"close_atoms must be one of {', '.join(CLOSE_POLICIES)}, not {close_atoms!r}")
        is_path = isinstance(model, (str, bytes)) or hasattr(model, "__fspath__")
        self.model = load_force_model(model, device, dtype) if is_path else model
        self.close_atoms = close_atoms
        self.domain = DomainWatch(self.model, "N2AMDCalculator")
        self.extras: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ..core.structure import check_close_atoms

        super().calculate(atoms, properties, system_changes)
        check_close_atoms(self.atoms, self.close_atoms)
        if self.close_atoms != "off":
            self.domain.check(self.atoms)
        want_stress = "stress" in properties and bool(np.all(self.atoms.pbc))
        if "stress" in properties and not want_stress:
            raise ValueError("stress needs a fully periodic cell")
        out = self.model.evaluate(self.atoms, stress=want_stress)
        if not np.all(np.isfinite(out["forces"])) or not np.isfinite(out["energy"]):
            raise FloatingPointError("the model returned non-finite energy or forces (structure outside the "
                                     "training domain, or atoms on top of each other?)")
        self.results["energy"] = self.results["free_energy"] = float(out["energy"])
        self.results["forces"] = np.asarray(out["forces"], float)
        if "energies" in out:
            self.results["energies"] = np.asarray(out["energies"], float)
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(out["stress"], float))
        self.extras = dict(out.get("extras", {}))
