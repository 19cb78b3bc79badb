"""Periodic neighbour graphs.

An edge ``e`` goes from atom ``i = edge_index[0, e]`` to atom ``j = edge_index[1, e]`` in the periodic
image displaced by the integer lattice shift ``shifts[e]``; its vector (Å) is

    r_ij = x_j − x_i + shifts[e] @ cell           (cell rows are lattice vectors, Å)

The list is *full* (both i→j and j→i with the opposite shift) and contains an atom's own images
(i → i with shift ≠ 0) when they lie within the cutoff — Hamiltonian blocks need those on-site
image terms, and small cells with ~10 Å block cutoffs have many of them. Cutoffs larger than the
cell are fine. The heavy lifting is done by vesin (a linked-cell list in C++).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeighbourGraph:
    """Edges of a periodic structure within a cutoff (Å)."""

    edge_index: np.ndarray  # (2, E) int64: source i, target j
    shifts: np.ndarray  # (E, 3) int64 lattice shifts of j
    vectors: np.ndarray  # (E, 3) float64, r_ij in Å
    cutoff: float

    @property
    def distances(self) -> np.ndarray:
        """|r_ij| in Å."""
        return np.linalg.norm(self.vectors, axis=1)

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    def reverse_edges(self) -> np.ndarray:
        """Index of the reverse edge j→i (shift −S) for each edge; a full list always has one."""
        i, j = self.edge_index
        fwd = np.column_stack([i, j, self.shifts])
        bwd = np.column_stack([j, i, -self.shifts])
        _, ids = np.unique(np.concatenate([fwd, bwd]), axis=0, return_inverse=True)
        ids = ids.reshape(-1)
        E = len(fwd)
        where = np.full(ids.max() + 1 if E else 0, -1, dtype=np.int64)
        where[ids[:E]] = np.arange(E)
        rev = where[ids[E:]]
        if np.any(rev < 0):
            raise RuntimeError("neighbour list is not symmetric: some edge has no reverse")
        return rev


def neighbour_graph(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc,
    cutoff: float,
    *,
    self_images: bool = True,
) -> NeighbourGraph:
    """All pairs (i, j, S) with |r_ij| < cutoff (Å), for any cell shape and any cutoff.

    ``pbc`` is a bool or three bools. Along non-periodic directions the cell only needs to be
    non-degenerate for vesin; a zero cell with ``pbc=False`` is replaced by a bounding box.
    ``self_images=False`` drops i → i image edges (keeps ordinary i ≠ j pairs only).
    """
    import vesin

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if not pbc.any():
        # vesin ignores the box without periodicity, but wants a valid matrix
        cell = np.zeros((3, 3))
    elif abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError("periodic structure with a degenerate (zero-volume) cell")
    if len(positions) == 0:
        return NeighbourGraph(np.zeros((2, 0), np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3)), cutoff)

    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, S, D = nl.compute(positions, cell, pbc.tolist() if pbc.any() else False, quantities="ijSD")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    S = S.astype(np.int64)
    keep = np.linalg.norm(D, axis=1) < cutoff  # vesin includes |r| == cutoff within rounding
    if not self_images:
        keep &= i != j
    keep &= ~((i == j) & ~S.any(axis=1))  # an atom is never its own neighbour at zero shift
    # Deterministic order: by i, then j, then shift — makes graphs reproducible across runs.
    idx = np.flatnonzero(keep)
    order = np.lexsort((S[idx, 2], S[idx, 1], S[idx, 0], j[idx], i[idx]))
    idx = idx[order]
    return NeighbourGraph(np.stack([i[idx], j[idx]]), S[idx], np.asarray(D[idx], dtype=np.float64), float(cutoff))


def graph_from_atoms(atoms, cutoff: float, *, self_images: bool = True) -> NeighbourGraph:
    """Neighbour graph of an ASE ``Atoms`` (positions and cell in Å)."""
    return neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, self_images=self_images)


def pairs_between(atoms1, atoms2, cutoff: float):
    """Atom pairs (i, j, lattice shift n_T) with |R2_j + T − R1_i| < cutoff (Å) between two geometries of
    the same atoms (one geometry twice: the pairs of one structure, i = j at T = 0 included), and those
    vectors (Å). Candidates come from the first geometry with the cutoff widened by twice the largest
    displacement, so coincident atoms (a static trajectory) and atoms that moved are both handled; the
    cell is that of ``atoms1``."""
    N = len(atoms1)
    periodic = bool(np.all(atoms1.pbc))
    cell = atoms1.cell.array if periodic else np.zeros((3, 3))
    disp = float(np.abs(atoms2.positions - atoms1.positions).max()) if N else 0.0
    g = neighbour_graph(atoms1.positions, cell, periodic, cutoff + 2 * disp + 1e-6)
    i = np.concatenate([np.arange(N), g.edge_index[0]])
    j = np.concatenate([np.arange(N), g.edge_index[1]])
    S = np.concatenate([np.zeros((N, 3), np.int64), g.shifts])
    d = atoms2.positions[j] + S @ cell - atoms1.positions[i]
    keep = np.linalg.norm(d, axis=1) < cutoff
    return i[keep], j[keep], S[keep], d[keep]
