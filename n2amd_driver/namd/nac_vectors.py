"""NAC vectors d_ij = <ψ_i|∇_R ψ_j> of the states in a band window, from a model or a reference engine.

The formula and its conventions are in :mod:`n2amd_driver.orbitals.derivative_couplings`; this module gets
the pieces from a Hamiltonian source (:mod:`.sources`):

- a trained model: ∂H by autograd through the network (:mod:`n2amd_driver.models.hamiltonian_gradients`);
- a reference engine: ∂H by central finite differences of its converged Γ-point H, ΔR = ``fd_step_ang``
  (as the N2AMD paper does for DFT), 6N single points;

and ∂S and <φ|∇φ> analytically from the basis functions in both cases, so model and engine run the same
formula. States are in the package's gauge (largest coefficient positive). Energies eV, d in Å⁻¹,
numerators in eV/Å, velocities Å/fs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..orbitals.derivative_couplings import (coupling_numerators, coupling_vectors, ket_derivative_forms,
                                             overlap_derivative_forms)
from ..orbitals.overlap import overlap_gradient
from ..orbitals.window import dense_window


@dataclass
class NACVectors:
    bands: np.ndarray  # (n,) 0-based band indices of the window states
    energies: np.ndarray  # (n,) eV
    coefficients: np.ndarray  # (norb, n), e3nn orbital order, cᵀSc = 1
    d: np.ndarray  # (n, n, N, 3) Å⁻¹; NaN on degenerate pairs
    numerators: np.ndarray  # (n, n, N, 3) eV/Å: c_iᵀ(∂H − ε_j ∂S)c_j; the diagonal is ∂ε_i/∂R
    degenerate: np.ndarray  # (n, n) bool: pairs closer than the tolerance
    method: str

    def time_derivative_couplings(self, velocities_ang_fs: np.ndarray) -> np.ndarray:
        """<ψ_i|∂_t ψ_j> = Σ_K d_ij,K · v_K (fs⁻¹), (n, n), for atom velocities (N, 3) in Å/fs."""
        return np.einsum("ijkx,kx->ij", self.d, np.asarray(velocities_ang_fs, float))


def nac_vectors(source, atoms: Atoms, bands: tuple[int, int], degenerate_tolerance_eV: float = 1e-4,
                fd_step_ang: float = 0.01, fd_atoms=None) -> NACVectors:
    """NAC vectors of bands ``lo..hi`` (0-based, inclusive) of ``atoms`` for a :class:`~.sources.ModelSource`
    (autograd) or an :class:`~.sources.EngineSource` (finite differences of H with ``fd_step_ang``; with
    ``fd_atoms`` only for those atoms, the others' entries NaN: 6 single points per atom)."""
    lo, hi = (int(b) for b in bands)
    H, S, _ = source.electronic(atoms)
    states = dense_window(H, S, lo, hi)
    C, eps = states.C, states.eps
    bf = source.basis_functions(atoms)
    offsets = bf.basis.orbital_offsets(atoms.numbers)
    G = overlap_gradient(bf, atoms)
    if hasattr(source, "model"):
        from ..models.hamiltonian_gradients import projected_hamiltonian_gradient

        h = projected_hamiltonian_gradient(source.model, atoms, C, S, G)
        method = "autograd"
    else:
        h = finite_difference_hamiltonian_gradient(source, atoms, C, fd_step_ang, fd_atoms)
        method = f"finite differences of H, ΔR = {fd_step_ang} Å"
    g = coupling_numerators(eps, h, overlap_derivative_forms(G, C, C, offsets))
    d, degenerate = coupling_vectors(eps, g, ket_derivative_forms(G, C, C, offsets), degenerate_tolerance_eV)
    return NACVectors(np.arange(lo, hi + 1), eps, C, d, g, degenerate, method)


def finite_difference_hamiltonian_gradient(source, atoms: Atoms, C: np.ndarray, step_ang: float,
                                           only_atoms=None) -> np.ndarray:
    """c_iᵀ (∂H/∂R_Kx) c_j (eV/Å) by central differences of the source's Γ-point H, (n, n, N, 3); with
    ``only_atoms`` for those atoms only (NaN elsewhere)."""
    n = C.shape[1]
    h = np.full((n, n, len(atoms), 3), np.nan)
    for k in (range(len(atoms)) if only_atoms is None else only_atoms):
        for x in range(3):
            projected = []
            for sign in (1.0, -1.0):
                moved = atoms.copy()
                moved.positions[k, x] += sign * step_ang
                projected.append(C.T @ source.electronic(moved)[0] @ C)
            h[:, :, k, x] = (projected[0] - projected[1]) / (2 * step_ang)
    return h
