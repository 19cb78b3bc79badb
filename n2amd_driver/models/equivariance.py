"""One symmetry check for every model kind: what E(3) and relabelling do to a structure, and what the
model's outputs must do in response.

Cases (:func:`symmetry_cases`): a random proper rotation, a random improper rotation (rotation then
inversion), a random translation (atoms wrapped back into the cell), a random permutation of the atoms,
and the same crystal in another setting (cell vectors replaced by unimodular integer combinations of
themselves, atoms wrapped into the new cell). Run them on any input, triclinic cells included.

What must hold (:func:`assert_equivariant`):

- Hamiltonian models: H' = P D(Q) H D(Q)ᵀ Pᵀ (D the orbitals' Wigner matrices, P the orbital
  permutation), with S from the basis; and the generalised eigenvalues of (H, S) are unchanged;
- force models (MLFF, NNH): E' = E, F' = F Qᵀ (permuted), σ' = Q σ Qᵀ.

Tolerances are per dtype (:data:`TOLERANCES`): float64 allows 1e-10 relative on H, and on eigenvalues
1e-8 eV plus the eigensolver's own error bound, 4 ε_mach cond(S) |ε| (it matters only for the
near-linear-dependency states of a poorly conditioned S, whose eigenvalues reach 10⁴ eV: the same
matrices rotated exactly and solved again move those by ~4e-9 eV).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

#: per dtype: H (relative to max |H|), eigenvalues (eV + relative), energy (relative), forces (relative to
#: max |F|), stress (relative to max |σ|)
TOLERANCES = {
    torch.float64: {"H": 1e-10, "eig_eV": 1e-8, "energy": 1e-10, "forces": 1e-9, "stress": 1e-9},
    torch.float32: {"H": 1e-5, "eig_eV": 1e-4, "energy": 1e-6, "forces": 1e-4, "stress": 1e-4},
}


@dataclass
class Case:
    name: str
    atoms: Atoms
    rotation: np.ndarray  # Q: x' = Q x (identity for translations, permutations and settings)
    permutation: np.ndarray  # atom k of the new structure is atom permutation[k] of the old one


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def symmetry_cases(atoms: Atoms, seed: int = 0) -> list[Case]:
    """The transformed copies of ``atoms`` that every model must answer consistently."""
    rng = np.random.default_rng(seed)
    n, eye = len(atoms), np.eye(3)
    out = []
    for name, Q in (("proper rotation", _random_rotation(rng)), ("improper rotation", -_random_rotation(rng))):
        a = atoms.copy()
        a.positions = atoms.positions @ Q.T
        a.set_cell(atoms.cell.array @ Q.T, scale_atoms=False)
        out.append(Case(name, a, Q, np.arange(n)))
    a = atoms.copy()
    a.positions += rng.normal(scale=3.0, size=3)
    a.wrap()
    out.append(Case("translation", a, eye, np.arange(n)))
    perm = rng.permutation(n)
    out.append(Case("permutation", atoms[perm], eye, perm))
    if np.all(atoms.pbc):
        M = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]])  # det 1: the same lattice in other cell vectors
        a = atoms.copy()
        a.set_cell(M @ atoms.cell.array, scale_atoms=False)
        a.wrap()
        out.append(Case("cell setting", a, eye, np.arange(n)))
    return out


def _orbital_permutation(offsets: np.ndarray, perm: np.ndarray) -> np.ndarray:
    return np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in perm])


def _hamiltonian_errors(model, atoms: Atoms, case: Case, ref, tol: dict) -> dict:
    import scipy.linalg as sl

    H0, S0, e0, solver_rel = ref
    D = model.basis.rotation_matrix(atoms.numbers, case.rotation)
    idx = _orbital_permutation(model.basis.orbital_offsets(atoms.numbers), case.permutation)
    S1 = model.overlap(case.atoms)
    H1 = model.hamiltonian(case.atoms, S1)
    expect = (D @ H0 @ D.T)[np.ix_(idx, idx)]
    e1 = sl.eigh(H1, S1, eigvals_only=True)
    return {"H_rel": float(np.abs(H1 - expect).max() / np.abs(H0).max()),
            "eig_eV": float(np.max(np.abs(e1 - e0) - solver_rel * np.abs(e0)))}


def _force_errors(model, atoms: Atoms, case: Case, ref, tol: dict) -> dict:
    E0, F0, s0 = ref
    out = model.evaluate(case.atoms, stress=s0 is not None)
    Q, perm = case.rotation, case.permutation
    errs = {"energy_rel": abs(out["energy"] - E0) / max(abs(E0), 1.0),
            "forces_rel": float(np.abs(out["forces"] - (F0 @ Q.T)[perm]).max() / max(np.abs(F0).max(), 1e-12))}
    if s0 is not None:
        errs["stress_rel"] = float(np.abs(out["stress"] - Q @ s0 @ Q.T).max() / max(np.abs(s0).max(), 1e-12))
    return errs


def _dtype(model) -> torch.dtype:
    if hasattr(model, "parameters"):
        return next(model.parameters()).dtype
    return next(model.h.parameters()).dtype  # NNH: the Hamiltonian's precision


def equivariance_errors(model, atoms: Atoms, seed: int = 0) -> dict[str, dict]:
    """Per case, the deviations from exact equivariance (see :data:`TOLERANCES`): relative ones, and for
    Hamiltonian models ``eig_eV``, the largest eigenvalue change beyond the relative allowance (eV)."""
    tol = TOLERANCES[_dtype(model)]
    if hasattr(model, "hamiltonian"):
        import scipy.linalg as sl

        S0 = model.overlap(atoms)
        H0 = model.hamiltonian(atoms, S0)
        s = np.linalg.eigvalsh(S0)
        solver_rel = 4 * np.finfo(H0.dtype).eps * s[-1] / s[0]
        ref, errors = (H0, S0, sl.eigh(H0, S0, eigvals_only=True), solver_rel), _hamiltonian_errors
    else:
        periodic = bool(np.all(atoms.pbc))
        out = model.evaluate(atoms, stress=periodic)
        ref, errors = (out["energy"], out["forces"], out.get("stress") if periodic else None), _force_errors
    return {case.name: errors(model, atoms, case, ref, tol) for case in symmetry_cases(atoms, seed)}


def assert_equivariant(model, atoms: Atoms, seed: int = 0) -> dict[str, dict]:
    """Raise AssertionError naming the case and the quantity if ``model`` is not equivariant on ``atoms``
    within the tolerances of its dtype; returns the deviations."""
    report = equivariance_errors(model, atoms, seed)
    tol = TOLERANCES[_dtype(model)]
    limits = {"H_rel": tol["H"], "eig_eV": tol["eig_eV"], "energy_rel": tol["energy"], "forces_rel": tol["forces"],
              "stress_rel": tol["stress"]}
    bad = [f"{case}: {key} = {value:.3g} > {limits[key]:.3g}" for case, errs in report.items()
           for key, value in errs.items() if not value <= limits[key]]
    if bad:
        raise AssertionError(f"not equivariant on {atoms.get_chemical_formula()}: " + "; ".join(bad))
    return report
