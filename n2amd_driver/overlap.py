"""Overlap matrices from the basis functions: equal-time S(R), cross-geometry S(R1; R2) and derivatives.

    S_ab(R1; R2) = Σ_T <φ_a(r − R1_A) | φ_b(r − R2_B − T)>,   T over lattice vectors (Γ point)

Pairs are summed while |R2_B + T − R1_A| < the pair cutoff: tblite truncates its lattice sums with
``min(sqrt(2·25/α_min), 40 bohr)`` and is reproduced only with the same rule (the default for tblite
bases); pyscf bases use a cutoff where the smallest Gaussian product falls below 1e-14.
Integrals come from pyscf's integral engine (libcint) on molecules made of the home atoms and their
periodic images. Positions in Å; matrices in e3nn orbital order (:mod:`n2amd_driver.basis`).

Derivatives: ``G[x, a, b] = Σ_T <∂_x φ_a | φ_b>`` (derivative on the bra, electron coordinate); then
∂S_ab/∂R_C = G[:, a, b] (δ_CB − δ_CA) and <φ_a|∇φ_b> = −G[:, a, b].
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .graph import neighbour_graph
from .orbitals import BasisFunctions
from .units import BOHR_ANG

_SHIFT_BATCH = 48  # periodic images per integral call (bounds memory: norb × batch·norb doubles)


def _mol(bf: BasisFunctions, numbers, positions_ang):
    import pyscf.gto.mole as mole
    from pyscf import gto

    mol = gto.Mole()
    mol.atom = [[chemical_symbols[z], tuple(p)] for z, p in zip(numbers, positions_ang)]
    mol.unit = "A"
    mol.basis = bf.pyscf_basis_dict()
    mol.cart = False
    mol.verbose = 0
    mol.spin = int(np.sum(numbers)) % 2
    saved = mole.NORMALIZE_GTO
    mole.NORMALIZE_GTO = False  # keep the engine's contraction exactly (tblite does not renormalise)
    try:
        mol.build(dump_input=False, parse_arg=False)
    finally:
        mole.NORMALIZE_GTO = saved
    return mol


def pair_cutoff_ang(bf: BasisFunctions, numbers) -> float:
    """Pair cutoff (Å) for lattice sums with this basis."""
    if bf.pair_cutoff_bohr is not None:
        return bf.pair_cutoff_bohr * BOHR_ANG
    # exp(−α_min/2 · r²) < 1e-14 for the most diffuse pair
    return float(np.sqrt(2 * np.log(1e14) / bf.min_exponent(numbers))) * BOHR_ANG


def _shifts(atoms1: Atoms, atoms2: Atoms, cutoff: float) -> np.ndarray:
    """Lattice shifts T for which some pair |R2_j + T − R1_i| < cutoff (Å)."""
    if not np.all(atoms1.pbc):
        return np.zeros((1, 3), dtype=np.int64)
    disp = np.abs(atoms2.positions - atoms1.positions).max()
    pos = np.concatenate([atoms1.positions, atoms2.positions])
    g = neighbour_graph(pos, atoms1.cell.array, True, cutoff + 2 * disp + 1e-6)
    return np.unique(np.concatenate([np.zeros((1, 3), np.int64), g.shifts]), axis=0)


def _lattice_sum(bf: BasisFunctions, atoms1: Atoms, atoms2: Atoms, intor: str, ncomp: int, cutoff: float | None,
                 kpt=None):
    from pyscf import gto

    if len(atoms1) != len(atoms2) or np.any(atoms1.numbers != atoms2.numbers):
        raise ValueError("cross overlaps need the same atoms (in the same order) at both geometries")
    bf.basis.check_elements(atoms1.numbers)
    cutoff = pair_cutoff_ang(bf, atoms1.numbers) if cutoff is None else cutoff
    numbers = atoms1.numbers
    offs = bf.basis.orbital_offsets(numbers)
    norb = int(offs[-1])
    atom_of_orb = np.repeat(np.arange(len(numbers)), np.diff(offs))
    mol1 = _mol(bf, numbers, atoms1.positions)
    shifts = _shifts(atoms1, atoms2, cutoff)
    cell = atoms1.cell.array if np.all(atoms1.pbc) else np.zeros((3, 3))
    out = np.zeros((ncomp, norb, norb), dtype=float if kpt is None else complex)
    for start in range(0, len(shifts), _SHIFT_BATCH):
        n_T = shifts[start : start + _SHIFT_BATCH]
        T = n_T @ cell  # (nT, 3) Å
        img = (atoms2.positions[None, :, :] + T[:, None, :]).reshape(-1, 3)
        mol2 = _mol(bf, np.tile(numbers, len(T)), img)
        blk = np.asarray(gto.intor_cross(intor, mol1, mol2)).reshape(ncomp, norb, len(T), norb)
        d = np.linalg.norm(img.reshape(len(T), -1, 3)[:, None, :, :] - atoms1.positions[None, :, None, :], axis=-1)
        near = d < cutoff  # (nT, N1, N2) atom pairs within the cutoff
        mask = near[:, atom_of_orb][:, :, atom_of_orb]  # (nT, norb, norb)
        if kpt is not None:  # Bloch sum: phase exp(2πi k·n_T) per image
            mask = mask * np.exp(2j * np.pi * n_T @ np.asarray(kpt, float))[:, None, None]
        out += np.einsum("caTb,Tab->cab", blk, mask)
    perm = _from_pyscf_order(bf, numbers)
    out = out[:, perm][:, :, perm]
    T_e3nn = bf.basis.engine_transform(numbers, "pyscf")
    return np.einsum("ia,cab,bj->cij", T_e3nn.T, out, T_e3nn)


def _from_pyscf_order(bf: BasisFunctions, numbers) -> np.ndarray:
    """perm with M_ours = M_pyscf[perm][:, perm]: pyscf lays out each atom's shells sorted by l (stably),
    the package keeps the engine's shell order (tblite puts Ti 3d before 4s)."""
    perm = []
    start = 0
    for z in numbers:
        ls = [sh.l for sh in bf.shells[chemical_symbols[z]]]
        order = sorted(range(len(ls)), key=lambda k: ls[k])  # pyscf's shell order on this atom
        first = {}
        pos = start
        for k in order:
            first[k] = pos
            pos += 2 * ls[k] + 1
        for k, l in enumerate(ls):
            perm.extend(range(first[k], first[k] + 2 * l + 1))
        start = pos
    return np.asarray(perm)


def overlap_matrix(bf: BasisFunctions, atoms: Atoms, cutoff_ang: float | None = None, kpt=None) -> np.ndarray:
    """S(R) (Γ-folded for periodic cells), e3nn order; with ``kpt`` (fractional) the Bloch matrix S(k)."""
    return _lattice_sum(bf, atoms, atoms, "int1e_ovlp", 1, cutoff_ang, kpt)[0]


def cross_overlap(bf: BasisFunctions, atoms1: Atoms, atoms2: Atoms, cutoff_ang: float | None = None) -> np.ndarray:
    """S(R1; R2)_ab = <φ_a at R1 | φ_b at R2> (Γ-folded), for the same atoms at two geometries.

    Use *unwrapped* positions for the two geometries (an atom that crossed the cell boundary between
    them would otherwise be paired with the wrong image); the cell is that of ``atoms1``.
    """
    return _lattice_sum(bf, atoms1, atoms2, "int1e_ovlp", 1, cutoff_ang)[0]


def overlap_gradient(bf: BasisFunctions, atoms: Atoms, cutoff_ang: float | None = None) -> np.ndarray:
    """G[x, a, b] = Σ_T <∂_x φ_a | φ_b> in bohr⁻¹·… converted to Å⁻¹; shape (3, norb, norb)."""
    return _lattice_sum(bf, atoms, atoms, "int1e_ipovlp", 3, cutoff_ang) / BOHR_ANG


def overlap_derivative(bf: BasisFunctions, atoms: Atoms, G: np.ndarray | None = None) -> np.ndarray:
    """∂S/∂R: array (natoms, 3, norb, norb) in Å⁻¹ (memory natoms·3·norb²: for small cells and tests;
    forces contract G directly)."""
    G = overlap_gradient(bf, atoms) if G is None else G
    offs = bf.basis.orbital_offsets(atoms.numbers)
    atom_of_orb = np.repeat(np.arange(len(atoms)), np.diff(offs))
    onehot = (atom_of_orb[None, :] == np.arange(len(atoms))[:, None]).astype(float)  # (N, norb)
    return np.einsum("xab,Cb->Cxab", G, onehot) - np.einsum("xab,Ca->Cxab", G, onehot)
