"""The one vocabulary of model inputs: a batch of structures as tensors, keyed by the names below.

Structures are concatenated into one disjoint periodic graph (as PyG and NequIP do): per-atom arrays
stacked, edges offset, ``BATCH`` telling each atom's structure. Edge e goes from atom ``EDGE_INDEX[0, e]``
to ``EDGE_INDEX[1, e]`` in the image displaced by ``EDGE_SHIFT[e]`` lattice vectors (the convention of
:mod:`n2amd_driver.core.graph`). Lengths Å.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.graph import neighbour_graph

POSITIONS = "positions"  # (N, 3) Å
SPECIES = "species"  # (N,) index into the model's element list
BATCH = "batch"  # (N,) structure of each atom
CELL = "cell"  # (B, 3, 3) Å, lattice vectors as rows; zeros for isolated structures
VOLUME = "volume"  # (B,) Å³; NaN for structures that are not fully periodic
EDGE_INDEX = "edge_index"  # (2, E) message-passing edges within the model's cutoff
EDGE_SHIFT = "edge_shift"  # (E, 3) integer lattice shifts (as floats)
NUM_STRUCTURES = "num_structures"
STRAIN = "strain"  # optional (B, 3, 3) homogeneous strain ε applied to every edge vector, for stress


def graph_batch(structures, cutoff: float, species_of, dtype: torch.dtype, device=None) -> dict:
    """A batch of structures with their neighbour graph within ``cutoff`` (Å); ``species_of(numbers)``
    maps atomic numbers to the model's species indices (and refuses unknown elements)."""
    pos, spec, batch, cells, src, dst, shifts, vols = [], [], [], [], [], [], [], []
    n0 = 0
    for b, atoms in enumerate(structures):
        periodic = bool(np.any(atoms.pbc))
        cell = atoms.cell.array if periodic else np.zeros((3, 3))
        g = neighbour_graph(atoms.positions, cell, atoms.pbc, cutoff)
        pos.append(atoms.positions), spec.append(species_of(atoms.numbers))
        batch.append(np.full(len(atoms), b)), cells.append(cell)
        src.append(g.edge_index[0] + n0), dst.append(g.edge_index[1] + n0), shifts.append(g.shifts)
        vols.append(abs(np.linalg.det(cell)) if np.all(atoms.pbc) else np.nan)
        n0 += len(atoms)
    t = lambda x, dt=torch.long: torch.as_tensor(np.asarray(x), dtype=dt, device=device)
    return {POSITIONS: t(np.concatenate(pos), dtype), SPECIES: t(np.concatenate(spec)),
            BATCH: t(np.concatenate(batch)), CELL: t(np.stack(cells), dtype), VOLUME: t(vols, dtype),
            EDGE_INDEX: t(np.stack([np.concatenate(src), np.concatenate(dst)])),
            EDGE_SHIFT: t(np.concatenate(shifts), dtype), NUM_STRUCTURES: len(structures)}


def edge_vectors(d: dict, index: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """r_ij = x_j − x_i + shift·cell (Å) of the edges ``index`` (2, E), strained by ``d[STRAIN]`` if given:
    r → r (1 + ε)."""
    i, j = index
    b = d[BATCH][i]
    vec = d[POSITIONS][j] - d[POSITIONS][i] + torch.einsum("ek,ekx->ex", shift, d[CELL][b])
    if STRAIN in d:
        vec = vec + torch.einsum("ex,exy->ey", vec, d[STRAIN][b])
    return vec
