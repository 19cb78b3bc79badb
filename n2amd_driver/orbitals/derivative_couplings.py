"""Nonadiabatic coupling vectors in a non-orthogonal atomic-orbital basis (pure functions).

States ψ_i = Σ_a c_ai φ_a solve H c = ε S c with cᵀ S c = 1, real at Γ. For a nuclear coordinate R_Kx
(atom K, direction x) the coupling vector is

    d_ij = <ψ_i | ∂ψ_j/∂R_Kx>
         = c_iᵀ (∂H − ε_j ∂S) c_j / (ε_j − ε_i)  +  c_iᵀ A c_j,        i ≠ j,
    A_ab = <φ_a | ∂φ_b/∂R_Kx>,   ∂S = A + Aᵀ,

the first term from differentiating H c_j = ε_j S c_j and projecting on c_i, the second because the basis
functions move with their atoms (the N2AMD paper's eqs. 9–13). d_ii = 0 for real normalised states, and
d_ij + d_ji = 0. Units: 1/Å for d, eV/Å for the numerator g_ij = c_iᵀ(∂H − ε_j ∂S)c_j, eV for ε.

Sign convention: d_ij changes sign with the sign of either eigenvector; the states carry whatever gauge
the caller gave them (the package's eigensolvers fix the largest coefficient positive,
:func:`~n2amd_driver.orbitals.window.fixed_signs`). Along a trajectory, <ψ_i(t)|∂_t ψ_j(t)> = Σ_K d_ij·Ṙ_K is
the time-derivative coupling that the Hammes-Schiffer–Tully formula estimates from step overlaps.

The basis-motion forms come from the bra derivative G[x, a, b] = Σ_T <∂_x φ_a | φ_b> (Å⁻¹,
:func:`~n2amd_driver.orbitals.overlap.overlap_gradient`): <φ_a|∂φ_b/∂R_K> = G[x, a, b] for b on atom K.
"""
from __future__ import annotations

import numpy as np


def ket_derivative_forms(G: np.ndarray, U: np.ndarray, V: np.ndarray, orbital_offsets: np.ndarray) -> np.ndarray:
    """F[i, j, K, x] = Σ_a Σ_{b on atom K} U_ai <φ_a|∂φ_b/∂R_Kx> V_bj, shape (nu, nv, N, 3) (Å⁻¹ times the units
    of U and V).

    ``G``: (3, norb, norb) bra derivatives; ``U`` (norb, nu), ``V`` (norb, nv) coefficient columns;
    ``orbital_offsets``: (N + 1,) first orbital of each atom (orbitals of an atom are contiguous)."""
    T = np.einsum("ai,xab->ixb", U, G)  # (nu, 3, norb)
    per_orbital = T[:, None, :, :] * V.T[None, :, None, :]  # (nu, nv, 3, norb)
    per_atom = np.add.reduceat(per_orbital, np.asarray(orbital_offsets[:-1]), axis=3)  # (nu, nv, 3, N)
    return np.moveaxis(per_atom, 2, 3)


def overlap_derivative_forms(G: np.ndarray, U: np.ndarray, V: np.ndarray, orbital_offsets: np.ndarray) -> np.ndarray:
    """u_iᵀ (∂S/∂R_Kx) v_j = F(U, V)[i, j] + F(V, U)[j, i] (∂S = A + Aᵀ), shape (nu, nv, N, 3)."""
    return ket_derivative_forms(G, U, V, orbital_offsets) + np.swapaxes(
        ket_derivative_forms(G, V, U, orbital_offsets), 0, 1)


def degenerate_pairs(energies: np.ndarray, tolerance_eV: float) -> np.ndarray:
    """Boolean (n, n) mask of distinct pairs closer in energy than ``tolerance_eV``."""
    e = np.asarray(energies, float)
    close = np.abs(e[:, None] - e[None, :]) < tolerance_eV
    np.fill_diagonal(close, False)
    return close


def coupling_numerators(energies: np.ndarray, h_grad: np.ndarray, s_grad: np.ndarray) -> np.ndarray:
    """g_ij = c_iᵀ(∂H − ε_j ∂S)c_j (eV/Å), from h_grad[i, j] = c_iᵀ ∂H c_j and s_grad[i, j] = c_iᵀ ∂S c_j,
    each (n, n, N, 3). The diagonal g_ii = ∂ε_i/∂R is the (negative) force of state i's energy."""
    return h_grad - np.asarray(energies, float)[None, :, None, None] * s_grad


def coupling_vectors(energies: np.ndarray, numerators: np.ndarray, ket_forms: np.ndarray,
                     degenerate_tolerance_eV: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(d, degenerate): d_ij = g_ij / (ε_j − ε_i) + F_ij (Å⁻¹, zero diagonal) and the mask of pairs closer than
    the tolerance, whose d is NaN (the ratio is not defined there; their numerators stay usable)."""
    e = np.asarray(energies, float)
    degenerate = degenerate_pairs(e, degenerate_tolerance_eV)
    gap = e[None, :] - e[:, None]
    safe = np.where(degenerate | np.eye(len(e), dtype=bool), 1.0, gap)
    d = numerators / safe[:, :, None, None] + ket_forms
    d[np.arange(len(e)), np.arange(len(e))] = 0.0
    d[degenerate] = np.nan
    return d, degenerate
