"""Reference electronic-structure engines behind one interface: structure in → :class:`Labels` out.

>>> from n2amd_driver.engines import get_engine
>>> labels = get_engine("tblite", method="GFN2-xTB").label(atoms)

Available: ``tblite`` (GFN1-xTB, GFN2-xTB; periodic at Γ and molecular) and ``pyscf``
(Kohn–Sham DFT with any pyscf functional, e.g. PBE, HSE06; periodic at Γ with GTH
pseudopotentials, or molecular).
"""
from __future__ import annotations

from .base import EngineError, Labels, ReferenceEngine


def get_engine(name: str, **options) -> ReferenceEngine:
    """Instantiate a reference engine by name (``"tblite"`` or ``"pyscf"``) with its options."""
    name = name.lower()
    if name == "tblite":
        from .tblite_engine import TBLiteEngine

        return TBLiteEngine(**options)
    if name == "pyscf":
        from .pyscf_engine import PySCFEngine

        return PySCFEngine(**options)
    raise ValueError(f"unknown engine '{name}' (available: tblite, pyscf)")


__all__ = ["EngineError", "Labels", "ReferenceEngine", "get_engine"]
