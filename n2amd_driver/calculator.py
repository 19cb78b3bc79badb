"""ASE calculator for the package's force models, so users can run ASE MD, relaxations and phonons:

    from n2amd_driver import N2AMDCalculator
    atoms.calc = N2AMDCalculator("runs/ff_si64/model.pt")        # MLFF
    atoms.calc = N2AMDCalculator("runs/nnh_si64/model.pt")       # NNH forces (band energy + remainder)

Energies in eV, forces eV/Å, stress eV/Å³ (ASE sign and Voigt order). Any object with an
``evaluate(atoms, stress=...) -> dict`` method (energy, forces, optionally energies, stress, extras)
can be wrapped as well.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress


BUNDLED = Path(__file__).parent / "assets" / "models"


def resolve_model_path(path) -> Path:
    """``path`` itself, or a bundled model of that name (``si_mlff.pt``, ``si_nnh.pt``, ...)."""
    p = Path(path)
    if p.exists():
        return p
    if (BUNDLED / p.name).exists() and p.parent == Path("."):
        return BUNDLED / p.name
    known = ", ".join(sorted(x.name for x in BUNDLED.glob("*.pt"))) if BUNDLED.exists() else "none"
    raise FileNotFoundError(f"model file not found: {path} (bundled models: {known})")


def load_model(path, device: str = "auto", dtype: str | None = None):
    """Load any n2amd force model file (``kind`` forcefield or nnh) by its path or bundled name."""
    from .training.common import read_model_file

    path = resolve_model_path(path)
    state = read_model_file(path)
    kind = state.get("kind")
    if kind == "forcefield":
        from .training.forcefield import forcefield_from_state

        return forcefield_from_state(state, device, dtype)
    if kind == "nnh":
        from .models.nnh import nnh_from_state

        return nnh_from_state(state, str(path))
    raise ValueError(f"{path}: a '{kind}' model file gives no forces (expected a forcefield or nnh model)")

class N2AMDCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "auto", dtype: str | None = None, **kwargs):
        super().__init__(**kwargs)
        is_path = isinstance(model, (str, bytes)) or hasattr(model, "__fspath__")
        self.model = load_model(model, device, dtype) if is_path else model
        self.extras: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
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
