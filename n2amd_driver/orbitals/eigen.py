"""Electronic structure from any Hamiltonian (model or reference): eigenpairs, band edges, H(k), DOS, how
localised a state is.

Real-space blocks H_ij(T) become Bloch matrices by the Fourier sum
    H_ab(k) = Σ_T H_ab(T) exp(2πi k·n_T),    k in reciprocal-lattice (fractional) coordinates,
and the same for S(k) from the basis functions. Energies in eV.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sl


def bvk_images(kmesh) -> np.ndarray:
    """The images R of a k-mesh's Born–von Kármán supercell, (Nk, 3) integers in ``np.ndindex`` order —
    the order of ``atoms.repeat(kmesh)`` and of "bvk" labels."""
    return np.array(list(np.ndindex(*(int(k) for k in kmesh))), dtype=np.int64)


def bvk_kpoints(kmesh) -> np.ndarray:
    """The Γ-centred k-mesh in fractional coordinates, (Nk, 3), in ``np.ndindex`` order."""
    return bvk_images(kmesh) / np.asarray(kmesh, float)


def bvk_to_k(X_R: np.ndarray, kmesh, kpts: np.ndarray | None = None) -> np.ndarray:
    """Bloch matrices X(k) = Σ_R X(R) exp(2πi k·R) from per-image blocks (Nk, n, n); ``kpts`` fractional,
    the mesh's own k-points by default."""
    R = bvk_images(kmesh)
    kpts = bvk_kpoints(kmesh) if kpts is None else np.atleast_2d(kpts)
    return np.einsum("kr,rab->kab", np.exp(2j * np.pi * kpts @ R.T), X_R)


def k_to_bvk(X_k: np.ndarray, kmesh, kpts: np.ndarray | None = None, imag_tol: float | None = None) -> np.ndarray:
    """Inverse of :func:`bvk_to_k` on the mesh's k-points (``kpts`` fractional, the mesh's own by default, in
    any order): X(R) = (1/Nk) Σ_k X(k) exp(−2πi k·R), real. With ``imag_tol``, an imaginary part larger than
    that (a mesh that is not Γ-centred and time-reversal symmetric) raises ValueError."""
    R = bvk_images(kmesh)
    k = bvk_kpoints(kmesh) if kpts is None else np.atleast_2d(kpts)
    X_R = np.einsum("rk,kab->rab", np.exp(-2j * np.pi * R @ k.T), np.asarray(X_k)) / len(k)
    if imag_tol is not None and np.abs(X_R.imag).max() > imag_tol:
        raise ValueError(f"real-space blocks from the k-mesh are not real (|Im| {np.abs(X_R.imag).max():.1e})")
    return X_R.real


def bvk_to_supercell(X_R: np.ndarray, kmesh) -> np.ndarray:
    """The Γ matrix of the supercell ``atoms.repeat(kmesh)`` from per-image blocks (Nk, n, n): block
    (r, q) is X(R_q − R_r modulo the mesh)."""
    R, m = bvk_images(kmesh), np.asarray(kmesh)
    n = X_R.shape[1]
    idx = np.ravel_multi_index(((R[None, :, :] - R[:, None, :]) % m).transpose(2, 0, 1), tuple(m))
    return X_R[idx].transpose(0, 2, 1, 3).reshape(len(R) * n, len(R) * n)


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


def bloch_hamiltonian(blocks, kpt, overlap_k: np.ndarray | None = None) -> np.ndarray:
    """H(k) from real-space blocks (on-site (N, n, n), off-site (E, n, n), edge index (2, E), lattice shifts
    (E, 3), orbitals per atom, shell potential per orbital or None; tiles padded to n); k fractional;
    ``overlap_k``: S(k), needed when there are shell potentials (they enter as ½(v_a + v_b) S_ab(k))."""
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


def dos(eps: np.ndarray, grid: np.ndarray, sigma: float = 0.05) -> np.ndarray:
    """Gaussian-broadened density of states (states/eV, 2 electrons per orbital not included)."""
    return np.exp(-((grid[:, None] - eps[None, :]) ** 2) / (2 * sigma**2)).sum(1) / (sigma * np.sqrt(2 * np.pi))


def atom_populations(C: np.ndarray, S, offsets: np.ndarray) -> np.ndarray:
    """Mulliken populations of states on atoms, (n_atoms, n_states): q_A = Σ_{μ∈A} c_μ (S c)_μ, summing to 1
    per S-normalised state. ``C`` (n_orb, n_states), ``S`` dense or sparse, ``offsets`` the first orbital of
    each atom and the orbital count (n_atoms + 1)."""
    q = C * (S @ C)
    return np.add.reduceat(q, np.asarray(offsets[:-1], int), axis=0)


def participation_ratio(q: np.ndarray) -> np.ndarray:
    """1 / (N Σ_A q_A²) per state from atom populations ``q`` (n_atoms, n_states): 1 for a state spread evenly
    over the N atoms, 1/N for one on a single atom."""
    return 1.0 / (q.shape[0] * np.sum(q**2, axis=0))
