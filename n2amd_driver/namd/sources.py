"""Where the Γ-point Hamiltonian of a snapshot comes from: a trained model or a reference engine.

Both give (H, S, n_electrons) in eV, e3nn orbital order, and the basis functions that the cross-time
overlaps S(t; t+dt) are computed from, so the couplings code path is the same for both.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from ..orbitals.functions import BasisFunctions, basis_functions


class ModelSource:
    """H from a trained Hamiltonian model; S from the basis functions of the model's basis (tblite's STO-nG
    or any pyscf Gaussian basis)."""

    def __init__(self, path, device: str = "auto", dtype: str | None = None):
        from ..models.io import load_hamiltonian_model

        self.path = str(path)
        self.dtype = dtype
        self.model = load_hamiltonian_model(path, device=device, dtype=dtype)
        self.reference = self.model.info["reference"]
        kind = self.model.basis.name.split(":", 1)[0]
        if kind not in ("tblite", "pyscf"):
            raise ValueError(f"{path}: couplings need basis functions the package can evaluate (tblite:METHOD or "
                             f"pyscf:BASIS); this model's basis is '{self.model.basis.name}'")

    def basis_functions(self, atoms: Atoms) -> BasisFunctions:
        return self.model.basis_functions(atoms)

    def n_orbitals(self, atoms: Atoms) -> int:
        self.model.species(atoms.numbers)  # an element the model does not know is named as such
        return int(self.model.basis.orbital_offsets(atoms.numbers)[-1])

    def electronic(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, float]:
        from ..orbitals.overlap import overlap_matrix

        S = overlap_matrix(self.basis_functions(atoms), atoms)
        H = np.asarray(self.model.hamiltonian(atoms, S), dtype=float)
        if not np.all(np.isfinite(H)):
            raise ValueError("the model Hamiltonian contains NaN/inf")
        return H, S, self.model.n_electrons(atoms)

    def electronic_sparse(self, atoms: Atoms, cutoff_ang: float | None = None):
        """(H, S, n_electrons) as CSR matrices assembled from pair blocks (no dense n_orb² matrix); S and
        the shell-potential term of H within ``cutoff_ang`` (Å; none: the basis's own, exact to 1e-14)."""
        from ..orbitals.overlap import overlap_matrix

        S = overlap_matrix(self.basis_functions(atoms), atoms, cutoff_ang=cutoff_ang, sparse=True)
        H = self.model.sparse_hamiltonian(atoms, S)
        if not np.all(np.isfinite(H.data)):
            raise ValueError("the model Hamiltonian contains NaN/inf")
        return H, S, self.model.n_electrons(atoms)

    def describe(self) -> dict:
        return {"source": "model", "model": self.path, "reference": self.reference,
                "dtype": self.dtype or "as trained"}


class EngineSource:
    """H and S from a reference engine's converged Γ-point calculation (tblite, or pyscf DFT with a GTH basis);
    cross overlaps from the same basis, so a model and its reference run through the same code path."""

    def __init__(self, engine: str = "tblite", **options):
        from ..engines import get_engine

        if engine not in ("tblite", "pyscf"):
            raise ValueError(f"reference couplings need the tblite or pyscf engine, not '{engine}'")
        if engine == "pyscf":  # couplings need H and S only; pyscf's k-point gradients take minutes per frame
            options = {"forces": False, **options}
        self.engine = get_engine(engine, **options)

    def basis_functions(self, atoms: Atoms) -> BasisFunctions:
        elements = atoms.get_chemical_symbols()
        periodic = bool(np.all(atoms.pbc))
        return basis_functions(self.engine.basis(set(elements)).name, elements, periodic=periodic)

    def n_orbitals(self, atoms: Atoms) -> int:
        return int(self.basis_functions(atoms).basis.orbital_offsets(atoms.numbers)[-1])

    def electronic(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, float]:
        """Γ-point H, S and electrons of ``atoms``. An engine on a k-mesh m labels the cell of which
        ``atoms`` is the m-fold repeat (``cell.repeat(m)``, as the snapshots of a trajectory repeated for
        the couplings are) and returns its Born–von Kármán supercell's Γ matrices, i.e. ``atoms``'."""
        kmesh = getattr(self.engine, "kmesh", None)
        if kmesh is None:
            lab = self.engine.label(atoms)
            return lab.hamiltonian, lab.overlap, float(np.sum(lab.occupations))
        from ..orbitals.eigen import bvk_to_supercell

        lab = self.engine.label(repeated_cell(atoms, kmesh))
        return (bvk_to_supercell(lab.hamiltonian, kmesh), bvk_to_supercell(lab.overlap, kmesh),
                float(np.sum(lab.occupations)))

    def electronic_sparse(self, atoms: Atoms, cutoff_ang: float | None = None):
        """The engine's dense matrices as CSR (the engines run only where their dense matrices fit)."""
        import scipy.sparse as sp

        H, S, nel = self.electronic(atoms)
        return sp.csr_matrix(H), sp.csr_matrix(S), nel

    def describe(self) -> dict:
        return {"source": "engine", **self.engine.describe()}


def repeated_cell(atoms: Atoms, repeat) -> Atoms:
    """The cell c with ``c.repeat(repeat) == atoms`` (positions to 1e-6 Å, modulo the lattice); raises a
    ValueError saying so when ``atoms`` is not such a repeat."""
    m = np.asarray(repeat, int)
    nk = int(np.prod(m))
    if len(atoms) % nk:
        raise ValueError(f"{len(atoms)} atoms are not a {'x'.join(map(str, m))} repeat of a cell")
    cell = atoms[: len(atoms) // nk].copy()
    cell.set_cell(atoms.cell.array / m[:, None], scale_atoms=False)
    rebuilt = cell.repeat(tuple(m))
    d = rebuilt.get_scaled_positions(wrap=False) - atoms.get_scaled_positions(wrap=False)
    d -= np.round(d)
    if np.any(rebuilt.numbers != atoms.numbers) or np.abs(d @ atoms.cell.array).max() > 1e-6:
        raise ValueError(f"the structure is not a {'x'.join(map(str, m))} repeat of its first "
                         f"{len(cell)} atoms (atoms.repeat order); an engine on a k-mesh labels that cell")
    return cell


def make_source(spec: dict, device: str = "auto"):
    """``{model: file.pt[, dtype: float32]}`` or ``{engine: tblite, method: GFN1-xTB, ...engine options}`` or
    ``{engine: pyscf, method: PBE, basis: gth-dzvp, ...}``."""
    spec = dict(spec)
    if spec.get("model"):
        return ModelSource(spec["model"], device=device, dtype=spec.get("dtype"))
    if spec.get("engine"):
        engine = spec.pop("engine")
        options = {k: v for k, v in spec.items() if k not in ("model", "dtype") and v is not None}
        extra = sorted(set(options) - {"method"}) if engine == "tblite" else []
        if extra:
            raise ValueError(f"hamiltonian: {', '.join(extra)} apply to the pyscf engine only, not tblite")
        return EngineSource(engine, **options)
    raise ValueError("hamiltonian: give either 'model: FILE.pt' or 'engine: tblite' (method: GFN1-xTB/GFN2-xTB) or "
                     "'engine: pyscf' (method: PBE/HSE06, basis: gth-...)")
