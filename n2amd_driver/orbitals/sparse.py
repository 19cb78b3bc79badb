"""Sparse Γ matrices assembled straight from atom-pair blocks, for cells of thousands of atoms.

A Γ matrix X_ab = Σ_T X_ab(T) has one non-zero block per pair of atoms within the block (or overlap)
cutoff, so its memory grows linearly with the atom count, where the dense n_orb² matrix grows
quadratically (GFN1-xTB Si: 1.9 GB dense at 1728 atoms). The blocks of every lattice image T of a pair
are summed into the same places, as in the dense Γ fold. Matrices are ``scipy.sparse`` CSR, e3nn order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def pair_groups(kind_i: np.ndarray, kind_j: np.ndarray):
    """(a, b, sel) for every combination of kinds (elements, species) present among the pairs, with ``sel`` the
    indices of the pairs whose first atom is of kind a and second of kind b: blocks have one shape per group."""
    kinds = np.unique(np.concatenate([kind_i, kind_j]))
    for a in kinds:
        for b in kinds:
            sel = np.flatnonzero((kind_i == a) & (kind_j == b))
            if len(sel):
                yield a, b, sel


def blocks_to_csr(blocks: np.ndarray, i: np.ndarray, j: np.ndarray, row_offsets: np.ndarray,
                  col_offsets: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Σ over pairs p of ``blocks[p]`` (P, na, nb) placed at rows ``row_offsets[i[p]] + (0..na)`` and columns
    ``col_offsets[j[p]] + (0..nb)``; blocks that land on the same place (lattice images) are summed."""
    blocks = np.asarray(blocks)
    P, na, nb = blocks.shape
    rows = (np.asarray(row_offsets)[i][:, None, None] + np.arange(na)[None, :, None]).astype(np.int64)
    cols = (np.asarray(col_offsets)[j][:, None, None] + np.arange(nb)[None, None, :]).astype(np.int64)
    rows, cols = np.broadcast_to(rows, blocks.shape).ravel(), np.broadcast_to(cols, blocks.shape).ravel()
    return sp.coo_matrix((blocks.ravel(), (rows, cols)), shape=shape).tocsr()  # duplicates are summed


def drop_small(X: sp.csr_matrix, tol: float) -> sp.csr_matrix:
    """X without the stored entries of magnitude ≤ ``tol`` (the explicit drop tolerance; 0 keeps all)."""
    if tol <= 0:
        return X
    X = X.copy()
    X.data[np.abs(X.data) <= tol] = 0.0
    X.eliminate_zeros()
    return X


def memory_bytes(X: sp.csr_matrix) -> int:
    """Bytes held by a CSR matrix (values and both index arrays)."""
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def block_pattern(atoms, orbital_offsets: np.ndarray, cutoff_ang: float) -> sp.csr_matrix:
    """The non-zero pattern (ones) of a Γ matrix with a block for every pair of atoms closer than ``cutoff_ang``
    (any lattice image): what S, H and H − σS hold, known before any of them is computed."""
    from ..core.graph import pairs_between

    i, j, _, _ = pairs_between(atoms, atoms, cutoff_ang)
    pairs = np.unique(np.stack([i, j], axis=1), axis=0)
    offs = np.asarray(orbital_offsets)
    norb = np.diff(offs)
    rows, cols = [], []
    for a, b in ((x, y) for x in np.unique(norb) for y in np.unique(norb)):
        sel = pairs[(norb[pairs[:, 0]] == a) & (norb[pairs[:, 1]] == b)]
        r = offs[sel[:, 0]][:, None, None] + np.arange(a)[None, :, None]
        c = offs[sel[:, 1]][:, None, None] + np.arange(b)[None, None, :]
        rows.append(np.broadcast_to(r, (len(sel), a, b)).ravel())
        cols.append(np.broadcast_to(c, (len(sel), a, b)).ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n = int(offs[-1])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
