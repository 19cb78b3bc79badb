"""Overlap matrices from the basis functions: equal-time S(R), cross-geometry S(R1; R2) and derivatives.

    S_ab(R1; R2) = Σ_T <φ_a(r − R1_A) | φ_b(r − R2_B − T)>,   T over lattice vectors (Γ point)

Pairs are summed while |R2_B + T − R1_A| < the pair cutoff: tblite truncates its lattice sums with
``min(sqrt(2·25/α_min), 40 bohr)`` and is reproduced only with the same rule (the default for tblite
bases); pyscf bases use a cutoff where the smallest Gaussian product falls below 1e-14.
Pairs come from a neighbour list; the integrals of all pairs of a species pair and shell pair are computed
at once by the Obara–Saika recurrence (:mod:`.integrals`), with libcint's conventions for the
primitive normalisation and the Cartesian → spherical transformation (checked against pyscf to 1e-12 in
the tests). Positions in Å; matrices in e3nn orbital order (:mod:`.conventions`).

Two evaluations of the same integrals: the radial tables of :mod:`.radial` (default for S and
cross overlaps: each shell-pair block as fitted radial functions × solid harmonics, equal to the recurrence
to ~1e-14, ~15× faster, differentiable) and the Obara–Saika recurrence itself (``method="obara-saika"``;
also the derivative integrals below).

Derivatives: ``G[x, a, b] = Σ_T <∂_x φ_a | φ_b>`` (derivative on the bra, electron coordinate); then
∂S_ab/∂R_C = G[:, a, b] (δ_CB − δ_CA) and <φ_a|∇φ_b> = −G[:, a, b].
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..core.graph import pairs_between
from ..core.units import BOHR_ANG
from .functions import BasisFunctions, shell_data
from .integrals import contracted_overlaps
from .sparse import pair_groups

_PAIR_BATCH = 2048  # atom pairs per vectorised call (bounds memory)


def pair_cutoff_ang(bf: BasisFunctions, numbers) -> float:
    """Pair cutoff (Å) for lattice sums with this basis."""
    if bf.pair_cutoff_bohr is not None:
        return bf.pair_cutoff_bohr * BOHR_ANG
    # exp(−α_min/2 · r²) < 1e-14 for the most diffuse pair
    return float(np.sqrt(2 * np.log(1e14) / bf.min_exponent(numbers))) * BOHR_ANG


def _lattice_sum(bf: BasisFunctions, atoms1: Atoms, atoms2: Atoms, derivative: bool, cutoff: float | None,
                 kpt=None) -> np.ndarray:
    """Σ_T <φ_a at R1 | φ_b at R2 + T> (or the bra derivative, 3 components), e3nn order; (ncomp, norb, norb)."""
    if len(atoms1) != len(atoms2) or np.any(atoms1.numbers != atoms2.numbers):
        raise ValueError("cross overlaps need the same atoms (in the same order) at both geometries")
    bf.basis.check_elements(atoms1.numbers)
    cutoff = pair_cutoff_ang(bf, atoms1.numbers) if cutoff is None else cutoff
    numbers = atoms1.numbers
    offs = bf.basis.orbital_offsets(numbers)
    norb = int(offs[-1])
    ncomp = 3 if derivative else 1
    i, j, S, d = pairs_between(atoms1, atoms2, cutoff)
    phase = None if kpt is None else np.exp(2j * np.pi * S @ np.asarray(kpt, float))
    flat = np.zeros((ncomp, norb * norb), dtype=float if kpt is None else complex)
    d_bohr = d / BOHR_ANG
    for za, zb, sel in pair_groups(numbers[i], numbers[j]):
        shells_a = shell_data(bf, chemical_symbols[za])
        shells_b = shell_data(bf, chemical_symbols[zb])
        for start in range(0, len(sel), _PAIR_BATCH):
            s = sel[start : start + _PAIR_BATCH]
            for la, ea, wa, oa, Ma in shells_a:
                for lb, eb, wb, ob, Mb in shells_b:
                    cart = contracted_overlaps(la, ea, wa, lb, eb, wb, d_bohr[s], derivative)
                    cart = cart.reshape(ncomp, len(s), *cart.shape[-2:])
                    blk = np.einsum("xa,cpxy,yb->cpab", Ma, cart, Mb)  # (ncomp, P, 2la+1, 2lb+1)
                    rows = offs[i[s]][:, None] + oa + np.arange(2 * la + 1)[None, :]
                    cols = offs[j[s]][:, None] + ob + np.arange(2 * lb + 1)[None, :]
                    idx = (rows[:, :, None] * norb + cols[:, None, :]).ravel()
                    for c in range(ncomp):
                        w = blk[c] if phase is None else blk[c] * phase[s][:, None, None]
                        w = w.ravel()
                        if phase is None:
                            flat[c] += np.bincount(idx, w, minlength=norb * norb)
                        else:
                            flat[c] += np.bincount(idx, w.real, norb * norb) + 1j * np.bincount(idx, w.imag,
                                                                                               norb * norb)
    return flat.reshape(ncomp, norb, norb)


def _overlaps(bf: BasisFunctions, atoms1: Atoms, atoms2: Atoms, cutoff_ang, kpt, method: str,
              sparse: bool = False):
    if sparse and method != "radial":
        raise ValueError("sparse overlaps use the radial tables (method='radial')")
    if method == "obara-saika":
        return _lattice_sum(bf, atoms1, atoms2, False, cutoff_ang, kpt)[0]
    if method != "radial":
        raise ValueError(f"overlap method must be 'radial' or 'obara-saika', not {method!r}")
    from .radial import lattice_sum

    if len(atoms1) != len(atoms2) or np.any(atoms1.numbers != atoms2.numbers):
        raise ValueError("cross overlaps need the same atoms (in the same order) at both geometries")
    bf.basis.check_elements(atoms1.numbers)
    cutoff_ang = pair_cutoff_ang(bf, atoms1.numbers) if cutoff_ang is None else cutoff_ang
    return lattice_sum(bf, atoms1, atoms2, cutoff_ang, kpt, sparse=sparse)


def overlap_matrix(bf: BasisFunctions, atoms: Atoms, cutoff_ang: float | None = None, kpt=None,
                   method: str = "radial", sparse: bool = False):
    """S(R) (Γ-folded for periodic cells), e3nn order; with ``kpt`` (fractional) the Bloch matrix S(k); with
    ``sparse`` a scipy CSR matrix at Γ, assembled from the pair blocks (:mod:`.sparse`)."""
    return _overlaps(bf, atoms, atoms, cutoff_ang, kpt, method, sparse)


def bvk_overlaps(bf: BasisFunctions, atoms: Atoms, kmesh, cutoff_ang: float | None = None) -> np.ndarray:
    """S(R) between the cell and each image R of the k-mesh's Born–von Kármán supercell, (Nk, n, n),
    e3nn order — the overlap that goes with "bvk" labels (:mod:`n2amd_driver.data.h5format`)."""
    from .eigen import bvk_kpoints, k_to_bvk

    S_k = np.array([overlap_matrix(bf, atoms, cutoff_ang, kpt=k) for k in bvk_kpoints(kmesh)])
    return k_to_bvk(S_k, kmesh)


def cross_overlap(bf: BasisFunctions, atoms1: Atoms, atoms2: Atoms, cutoff_ang: float | None = None,
                  method: str = "radial", sparse: bool = False):
    """S(R1; R2)_ab = <φ_a at R1 | φ_b at R2> (Γ-folded), for the same atoms at two geometries.

    Use *unwrapped* positions for the two geometries (an atom that crossed the cell boundary between
    them would otherwise be paired with the wrong image); the cell is that of ``atoms1``. ``sparse``: a scipy
    CSR matrix.
    """
    return _overlaps(bf, atoms1, atoms2, cutoff_ang, None, method, sparse)


def overlap_gradient(bf: BasisFunctions, atoms: Atoms, cutoff_ang: float | None = None) -> np.ndarray:
    """G[x, a, b] = Σ_T <∂_x φ_a | φ_b> in bohr⁻¹·… converted to Å⁻¹; shape (3, norb, norb)."""
    return _lattice_sum(bf, atoms, atoms, True, cutoff_ang) / BOHR_ANG


def overlap_derivative(bf: BasisFunctions, atoms: Atoms, G: np.ndarray | None = None) -> np.ndarray:
    """∂S/∂R: array (natoms, 3, norb, norb) in Å⁻¹ (memory natoms·3·norb²: for small cells and tests;
    forces contract G directly)."""
    G = overlap_gradient(bf, atoms) if G is None else G
    offs = bf.basis.orbital_offsets(atoms.numbers)
    atom_of_orb = np.repeat(np.arange(len(atoms)), np.diff(offs))
    onehot = (atom_of_orb[None, :] == np.arange(len(atoms))[:, None]).astype(float)  # (N, norb)
    return np.einsum("xab,Cb->Cxab", G, onehot) - np.einsum("xab,Ca->Cxab", G, onehot)
