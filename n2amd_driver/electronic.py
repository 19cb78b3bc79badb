"""Electronic structure from any Hamiltonian (model or reference): eigenpairs, band edges, H(k), bands, DOS.

Real-space blocks H_ij(T) become Bloch matrices by the Fourier sum
    H_ab(k) = Σ_T H_ab(T) exp(2πi k·n_T),    k in reciprocal-lattice (fractional) coordinates,
and the same for S(k) from the basis functions. Energies in eV.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sl
from ase import Atoms


def eigh(H: np.ndarray, S: np.ndarray, window: tuple[int, int] | None = None):
    """Generalised eigenpairs H c = ε S c (dense LAPACK); ``window=(lo, hi)`` returns states lo..hi only,
    which LAPACK computes faster than the full spectrum for large matrices."""
    if window is None:
        return sl.eigh(H, S, driver="gvd")
    return sl.eigh(H, S, subset_by_index=list(window), driver="gvx")


def band_edges(eps: np.ndarray, n_electrons: float) -> tuple[float, float]:
    """(VBM, CBM) for a closed-shell system with ``n_electrons`` (2 per orbital)."""
    nocc = int(round(n_electrons / 2))
    return float(eps[nocc - 1]), float(eps[nocc])


def valence_electrons(atoms: Atoms, reference_occupations: np.ndarray | None = None) -> float:
    """Electron count from the reference occupations when given (the engine knows its valence counts)."""
    if reference_occupations is not None:
        return float(np.sum(reference_occupations))
    raise ValueError("the number of valence electrons must come from the reference engine's occupations")


def model_blocks(model, atoms: Atoms):
    """Real-space blocks of a Hamiltonian model: (on-site (N, n, n), off-site (E, n, n), edge index (2, E),
    shifts (E, 3), norb per atom, shell potential per orbital or None); tiles are padded to the largest
    atom's orbital count. The potential enters H(k) as ½(v_a + v_b) S_ab(k) (models/potential.py)."""
    import torch

    d = model.prepare([atoms])
    with torch.no_grad():
        out = model(d)
    v = out["potential"].cpu().numpy() if "potential" in out else None
    return (out["onsite"].cpu().numpy(), out["offsite"].cpu().numpy(), d["blk_index"].cpu().numpy(),
            d["blk_shift"].cpu().numpy().round().astype(int), d["norb_atom"].cpu().numpy(), v)


def bloch_hamiltonian(blocks, kpt, overlap_k: np.ndarray | None = None) -> np.ndarray:
    """H(k) from :func:`model_blocks` output; k fractional; ``overlap_k``: S(k), needed by models with
    shell potentials."""
    on, off, index, shifts, norb, v = blocks
    offs = np.concatenate([[0], np.cumsum(norb)])
    n = int(offs[-1])
    H = np.zeros((n, n), complex)
    for a, (s, m) in enumerate(zip(offs[:-1], norb)):
        H[s : s + m, s : s + m] += on[a, :m, :m]
    phase = np.exp(2j * np.pi * shifts @ np.asarray(kpt, float))
    for e, (i, j) in enumerate(index.T):
        H[offs[i] : offs[i] + norb[i], offs[j] : offs[j] + norb[j]] += phase[e] * off[e, : norb[i], : norb[j]]
    if v is not None:
        if overlap_k is None:
            raise ValueError("this model has shell potentials: H(k) needs S(k) (overlap_k)")
        H += 0.5 * (v[:, None] + v[None, :]) * overlap_k
    return H


def band_structure(model, basis_functions, atoms: Atoms, npoints: int = 60, path: str | None = None):
    """Model bands along a high-symmetry path (ASE's for the lattice): (bandpath, energies (nk, norb))."""
    from .overlap import overlap_matrix

    bp = atoms.cell.bandpath(path, npoints=npoints)
    blocks = model_blocks(model, atoms)
    energies = []
    for k in bp.kpts:
        Sk = overlap_matrix(basis_functions, atoms, kpt=k)
        Hk = bloch_hamiltonian(blocks, k, Sk)
        energies.append(sl.eigh(Hk, Sk, eigvals_only=True))
    return bp, np.array(energies)


def dos(eps: np.ndarray, grid: np.ndarray, sigma: float = 0.05) -> np.ndarray:
    """Gaussian-broadened density of states (states/eV, 2 electrons per orbital not included)."""
    return np.exp(-((grid[:, None] - eps[None, :]) ** 2) / (2 * sigma**2)).sum(1) / (sigma * np.sqrt(2 * np.pi))
