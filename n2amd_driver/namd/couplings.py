"""Overlaps between MD steps, state tracking, phase correction and nonadiabatic couplings (pure functions).

Conventions (shared with :mod:`.series`):
- states at snapshot k: real Γ-point eigenvectors ``C[k]`` (norb × n) of H c = ε S c, in a fixed band window;
- raw overlaps ``O[k]_ij = <ψ_i(t_k)|ψ_j(t_k+1)> = C[k]ᵀ S(t_k; t_k+1) C[k+1]`` with the cross-time basis
  overlap S(t; t+dt) (never S(t) alone);
- <ψ_i(t+dt)|ψ_j(t)> = (O[k]ᵀ)_ij for real orbitals, so the Hammes-Schiffer–Tully coupling at the step
  midpoint is d_ij = (O_ij − O_ji) / (2 dt), antisymmetric, in fs⁻¹;
- eigenvector signs are arbitrary: the sign of <ψ_j(t)|ψ_j(t+dt)> is accumulated along the trajectory and
  applied to every later snapshot (so diagonal overlaps are positive and d has no random sign flips);
- optional state tracking: the state labels follow the orbital character through (near-)trivial crossings by
  a maximum-overlap assignment (Hungarian algorithm on |O_ij|²); it is off by default because it changes
  what "state i" means (energies are then no longer sorted).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def state_overlaps(C1: np.ndarray, S12, C2: np.ndarray) -> np.ndarray:
    """<ψ_i(1)|ψ_j(2)> = C1ᵀ S(1; 2) C2 for real coefficient columns; S12 dense or sparse (a thin product)."""
    return np.asarray(C1.T @ (S12 @ C2))


def tracking_permutations(overlaps: np.ndarray) -> np.ndarray:
    """perm[k, i]: eigen-index at snapshot k of the state labelled i (labels = eigen order at k = 0),
    chosen to maximise Σ_i |<i(t_k)|perm(i)(t_k+1)>|² step by step."""
    from scipy.optimize import linear_sum_assignment

    M, n, _ = overlaps.shape
    perm = np.empty((M + 1, n), dtype=np.int64)
    perm[0] = np.arange(n)
    for k in range(M):
        w = np.abs(overlaps[k][perm[k], :]) ** 2  # rows: labelled states at k; columns: eigen-index at k+1
        rows, cols = linear_sum_assignment(-w)
        perm[k + 1, rows] = cols
    return perm


def phase_signs(overlaps: np.ndarray) -> np.ndarray:
    """signs[k, i] = ±1 to multiply the eigenvector of state i at snapshot k so that every
    <ψ_i(t_k)|ψ_i(t_k+1)> is positive (accumulated product of diagonal signs; signs[0] = +1)."""
    M, n, _ = overlaps.shape
    diag = np.diagonal(overlaps, axis1=1, axis2=2)
    step = np.where(diag < 0, -1.0, 1.0)
    return np.concatenate([np.ones((1, n)), np.cumprod(step, axis=0)])


def nac_from_overlaps(overlaps: np.ndarray, dt_fs: float) -> np.ndarray:
    """d_ij(t + dt/2) = (O_ij − O_ji) / (2 dt) in fs⁻¹ (overlaps already phase-corrected)."""
    return (overlaps - np.swapaxes(overlaps, -1, -2)) / (2.0 * dt_fs)


@dataclass
class CorrectedCouplings:
    energies: np.ndarray  # (N, n) eV, in state-label order
    overlaps: np.ndarray  # (N−1, n, n) phase-corrected <ψ_i(t)|ψ_j(t+dt)>
    nac: np.ndarray  # (N−1, n, n) fs⁻¹
    signs: np.ndarray  # (N, n) accumulated sign applied to each state's eigenvector
    order: np.ndarray  # (N, n) eigen-index (within the window) of each state label
    reorderings: int  # number of steps where tracking changed the assignment


def correct(energies_raw: np.ndarray, overlaps_raw: np.ndarray, dt_fs: float, track: bool = False) -> CorrectedCouplings:
    """From per-snapshot eigen-ordered energies and raw step overlaps to tracked, phase-corrected couplings."""
    N, n = energies_raw.shape
    if overlaps_raw.shape != (N - 1, n, n):
        raise ValueError(f"overlaps of shape {overlaps_raw.shape} do not match {N} snapshots of {n} states")
    if track:
        perm = tracking_permutations(overlaps_raw)
    else:
        perm = np.tile(np.arange(n), (N, 1))
    k = np.arange(N - 1)[:, None, None]
    O = overlaps_raw[k, perm[:-1, :, None], perm[1:, None, :]]
    signs = phase_signs(O)
    O = signs[:-1, :, None] * O * signs[1:, None, :]
    E = np.take_along_axis(energies_raw, perm, axis=1)
    reorder = int(np.sum(np.any(perm[1:] != perm[:-1], axis=1)))
    return CorrectedCouplings(E, O, nac_from_overlaps(O, dt_fs), signs, perm, reorder)


def window_bands(n_electrons: float, norb: int, valence: int | None = None, conduction: int | None = None,
                 bands: list[int] | None = None) -> tuple[int, int]:
    """0-based inclusive (lo, hi) band range: ``valence`` states up to the VBM and ``conduction`` from the CBM,
    or ``bands`` = [first, last] in 1-based engine numbering (as VASP/Hefei-NAMD's BMIN/BMAX)."""
    if bands is not None:
        lo, hi = int(bands[0]) - 1, int(bands[1]) - 1
    else:
        nocc = int(round(n_electrons / 2))
        lo, hi = nocc - int(valence), nocc + int(conduction) - 1
    if not (0 <= lo <= hi < norb):
        raise ValueError(f"band window {lo + 1}..{hi + 1} (1-based) is outside the {norb} bands of this system")
    return lo, hi
