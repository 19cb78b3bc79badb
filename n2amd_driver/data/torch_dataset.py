"""Datasets as torch: per-frame graphs, batching, seeded splits and streaming.

A frame becomes a dict of tensors (positions Å, energy eV, forces eV/Å, ...) with its periodic
neighbour graph; :func:`collate_frames` concatenates frames into one disjoint graph with a
``batch`` vector, as PyG/NequIP do. Hamiltonian and overlap matrices differ in size between
frames and stay a list.

The HDF5 file is opened lazily in each process (workers of a ``DataLoader`` included), so
nothing but the frame index is held in memory; :class:`StreamingFrameDataset` reads frames in
shuffled blocks for sets larger than memory.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..graph import neighbour_graph
from . import h5format

_PER_ATOM = ("numbers", "positions", "forces")
_PER_FRAME = ("cell", "pbc", "energy", "stress")
_VARIABLE = ("hamiltonian", "overlap", "orbital_energies", "occupations")


def split_indices(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> list[np.ndarray]:
    """Random disjoint splits of ``range(n)`` with the given fractions (the last takes the rest)."""
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(p) for p in np.split(perm, bounds)]


def frame_to_tensors(arrays: dict, cutoff: float, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Tensors of one frame plus its neighbour graph (edges within ``cutoff`` Å)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in arrays.items():
        t = torch.as_tensor(np.asarray(v))
        out[k] = t.to(dtype) if t.is_floating_point() else t
    out["numbers"] = out["numbers"].long()
    pbc = np.asarray(arrays["pbc"], dtype=bool)
    g = neighbour_graph(arrays["positions"], arrays["cell"], pbc, cutoff)
    out["edge_index"] = torch.from_numpy(g.edge_index)
    out["shifts"] = torch.from_numpy(g.shifts).to(dtype)
    out["num_atoms"] = torch.tensor(len(arrays["numbers"]))
    return out


def collate_frames(frames: list[dict[str, torch.Tensor]]) -> dict:
    """Concatenate frames into one batch: per-atom arrays stacked, edges offset, ``batch`` index added."""
    out: dict = {}
    n_atoms = torch.stack([f["num_atoms"] for f in frames])
    offsets = torch.cumsum(n_atoms, 0) - n_atoms
    out["batch"] = torch.repeat_interleave(torch.arange(len(frames)), n_atoms)
    out["ptr"] = torch.cat([offsets, n_atoms.sum().reshape(1)])
    out["num_atoms"] = n_atoms
    out["edge_index"] = torch.cat([f["edge_index"] + o for f, o in zip(frames, offsets)], dim=1)
    out["shifts"] = torch.cat([f["shifts"] for f in frames])
    out["edge_batch"] = torch.repeat_interleave(
        torch.arange(len(frames)), torch.tensor([f["edge_index"].shape[1] for f in frames])
    )
    for k in _PER_ATOM:
        if all(k in f for f in frames):
            out[k] = torch.cat([f[k] for f in frames])
    for k in _PER_FRAME:
        if all(k in f for f in frames):
            out[k] = torch.stack([f[k] for f in frames])
    for k in _VARIABLE:
        if all(k in f for f in frames):
            out[k] = [f[k] for f in frames]
    return out


class _LazyFile:
    """An HDF5 handle opened on first use in the current process (safe with DataLoader workers)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = None
        self._pid = None

    def get(self):
        if self._file is None or self._pid != os.getpid():
            self._file = h5format.open_dataset(self.path)
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        return {"path": self.path, "_file": None, "_pid": None}


class FrameDataset(Dataset):
    """Map-style dataset over the finished frames of an n2amd HDF5 file.

    ``keys`` picks the labels to load (default: energy, forces, stress); add ``"hamiltonian"``,
    ``"overlap"`` for Hamiltonian training. ``indices`` restricts to a subset (e.g. a split).
    """

    def __init__(self, path, cutoff: float, keys=("energy", "forces", "stress"), indices=None,
                 dtype=torch.float64):
        self._file = _LazyFile(path)
        with h5format.open_dataset(path) as f:
            self.frame_ids = h5format.frame_ids(f, "done")
        if indices is not None:
            self.frame_ids = [self.frame_ids[i] for i in indices]
        self.cutoff = float(cutoff)
        self.keys = h5format.STRUCTURE_KEYS + tuple(keys)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        g = self._file.get()["frames"][h5format.frame_key(self.frame_ids[idx])]
        return frame_to_tensors(h5format.read_frame(g, self.keys), self.cutoff, self.dtype)


class StreamingFrameDataset(IterableDataset):
    """Iterates over frames in shuffled blocks of ``block_size`` consecutive frames, holding at most
    one block in memory; each epoch (``set_epoch``) reshuffles. Workers read disjoint blocks."""

    def __init__(self, path, cutoff: float, keys=("energy", "forces", "stress"), block_size: int = 64,
                 seed: int = 0, dtype=torch.float64):
        self.map_style = FrameDataset(path, cutoff, keys, dtype=dtype)
        self.block_size = int(block_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.map_style)

    def __iter__(self):
        n = len(self.map_style)
        blocks = [np.arange(s, min(s + self.block_size, n)) for s in range(0, n, self.block_size)]
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(blocks))
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        for b in order:
            block = [self.map_style[i] for i in blocks[b]]
            for j in rng.permutation(len(block)):
                yield block[j]
