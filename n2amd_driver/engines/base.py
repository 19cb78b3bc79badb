"""What a reference engine returns, and the interface every adapter implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..orbitals.conventions import Basis
from ..orbitals.eigen import band_edges


class EngineError(RuntimeError):
    """An engine failed on a structure (no convergence, unsupported input); the message names it."""


@dataclass
class Labels:
    """Reference labels of one structure, in the package's units and orbital order.

    Matrices are in e3nn orbital order (see :mod:`n2amd_driver.orbitals.conventions`). For periodic structures
    ``hamiltonian`` and ``overlap`` are Γ-point matrices, i.e. sums of the real-space blocks over all
    periodic images (``fold == "gamma"``); for isolated ones ``fold == "none"``. From a k-mesh
    (``fold == "bvk"``) they are (Nk, n, n): the blocks between the cell and each image R of the
    Born–von Kármán supercell ``atoms.repeat(kmesh)`` (R in ``np.ndindex(kmesh)`` order), and the orbital
    energies and occupations are those of all k-points, sorted by energy.
    """

    energy: float  # eV
    forces: np.ndarray | None = None  # (N, 3) eV/Å
    stress: np.ndarray | None = None  # (3, 3) eV/Å³, ASE sign: σ = (1/V) ∂E/∂ε
    hamiltonian: np.ndarray | None = None  # (norb, norb) eV, converged (self-consistent) H
    overlap: np.ndarray | None = None  # (norb, norb)
    orbital_energies: np.ndarray | None = None  # (norb,) eV
    occupations: np.ndarray | None = None  # (norb,) electrons per orbital (0..2)
    fold: str = "none"  # "gamma" for Γ-folded periodic matrices, "bvk" for blocks per image of a k-mesh
    kmesh: tuple[int, int, int] | None = None  # with fold "bvk"
    meta: dict = field(default_factory=dict)

    def band_edges(self) -> tuple[float, float]:
        """(highest occupied, lowest unoccupied) orbital energy in eV, closed shell (2 electrons per orbital)."""
        return band_edges(self.orbital_energies, float(np.sum(self.occupations)))

    def as_dict(self) -> dict[str, np.ndarray]:
        """Array-valued labels that are present, keyed by name (for writing)."""
        out = {"energy": np.asarray(self.energy)}
        for k in ("forces", "stress", "hamiltonian", "overlap", "orbital_energies", "occupations"):
            v = getattr(self, k)
            if v is not None:
                out[k] = np.asarray(v)
        if self.kmesh is not None:
            out["kmesh"] = np.asarray(self.kmesh, dtype=np.int32)
        return out


class ReferenceEngine(ABC):
    """Structure in → labels out. Subclasses are thin adapters around one engine."""

    #: engine name as used on the command line and in dataset metadata
    name: str = ""
    #: the method (e.g. "GFN2-xTB", "PBE")
    method: str = ""

    @abstractmethod
    def basis(self, elements) -> Basis:
        """The engine's orbital basis for these chemical symbols (raises for unsupported elements)."""

    @abstractmethod
    def label(self, atoms: Atoms, name: str | None = None) -> Labels:
        """Compute the labels of one structure; raise :class:`EngineError` naming ``name`` on failure."""

    def describe(self) -> dict:
        """Settings that determine the labels (stored with every dataset)."""
        return {"engine": self.name, "method": self.method}
