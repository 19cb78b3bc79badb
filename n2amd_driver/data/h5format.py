"""The n2amd HDF5 dataset format: structures and their reference labels.

Layout (format version 1)::

    /                       attrs: format="n2amd-dataset", version=1, units (JSON), engine (JSON),
                                   basis (JSON, see Basis.to_json), orbital_order="e3nn", created_by
    /frames/00000012/       one group per structure, named by its zero-padded id
        numbers (N,) int32          atomic numbers
        positions (N, 3) float64    Å
        cell (3, 3) float64         Å, lattice vectors as rows (zeros if isolated)
        pbc (3,) bool
        energy ()                   eV
        forces (N, 3)               eV/Å                      (if the engine gives them)
        stress (3, 3)               eV/Å³, σ = (1/V) ∂E/∂ε     (periodic only)
        hamiltonian (n, n)          eV, converged H, e3nn orbital order
        overlap (n, n)              dimensionless
        orbital_energies (n,)       eV
        occupations (n,)            electrons per orbital
        kmesh (3,) int32            k-mesh of the labels (fold "bvk" only)
        attrs: status ("pending" | "done" | "failed"), source (how it was sampled),
               fold ("gamma": Γ-folded sums over periodic images; "none": isolated; "bvk": per-image blocks
               from a k-mesh), error (if failed)

Frames labelled on a k-mesh (fold "bvk") hold ``hamiltonian`` as (Nk, n, n) blocks between the cell and
the images R of its Born–von Kármán supercell (R in ``np.ndindex(kmesh)`` order), stored in float32 (it
moves band energies by < 1e-4 meV; docs/reference-data.md), and no ``overlap``: S(R) is the analytic
overlap of the basis named in the file, which readers recompute in float64
(:func:`n2amd_driver.orbitals.bvk_overlaps`); their orbital energies and occupations cover all k-points,
sorted by energy.

Frames are written one at a time and flushed, so an interrupted job loses at most the structure in
flight; ``status`` tells a resumed job what is left.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms

FORMAT = "n2amd-dataset"
VERSION = 1
UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3", "hamiltonian": "eV",
         "orbital_energies": "eV", "time": "fs", "temperature": "K"}
STRUCTURE_KEYS = ("numbers", "positions", "cell", "pbc")
LABEL_KEYS = ("energy", "forces", "stress", "hamiltonian", "overlap", "orbital_energies", "occupations", "kmesh")
_MATRIX_KEYS = ("hamiltonian", "overlap")


class DatasetError(ValueError):
    """A file that is not a usable n2amd dataset; the message names the file and the problem."""


def frame_key(i: int) -> str:
    return f"{i:08d}"


def open_dataset(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open an existing dataset file, checking it really is one (clear errors for foreign/corrupt files)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        if "unable to lock file" in str(exc):  # HDF5's lock, held by a writer such as a running `data generate`
            raise DatasetError(f"{path}: open for writing by another process (a running `n2amd data generate`?): "
                               "wait until it stops, or read a copy of the file") from None
        raise DatasetError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {exc}") from None
    fmt = f.attrs.get("format")
    if fmt != FORMAT:
        f.close()
        raise DatasetError(f"{path}: not an n2amd dataset (HDF5 file without format='{FORMAT}' attribute)")
    if int(f.attrs.get("version", -1)) > VERSION:
        v = f.attrs.get("version")
        f.close()
        raise DatasetError(f"{path}: dataset format version {v} is newer than this package reads ({VERSION})")
    if "frames" not in f:
        f.close()
        raise DatasetError(f"{path}: dataset has no /frames group (damaged file)")
    return f


def create_dataset(path: str | os.PathLike, *, engine: dict, basis_json: str | None, overwrite: bool = False) -> h5py.File:
    """Create a new, empty dataset file (refuses to clobber an existing file unless ``overwrite``)."""
    from ..core.version import __version__

    path = Path(path)
    if path.exists() and not overwrite:
        raise DatasetError(f"{path}: file exists (resume it, or pass overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    f = h5py.File(path, "w")
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["units"] = json.dumps(UNITS)
    f.attrs["engine"] = json.dumps(engine, sort_keys=True)
    f.attrs["basis"] = basis_json or ""
    f.attrs["orbital_order"] = "e3nn"
    f.attrs["created_by"] = f"n2amd_driver {__version__}"
    f.create_group("frames")
    return f


def write_structure(f: h5py.File, i: int, atoms: Atoms, source: str = "") -> h5py.Group:
    """Add frame ``i`` with its structure only (status "pending"); returns its group."""
    key = frame_key(i)
    frames = f["frames"]
    if key in frames:
        del frames[key]
    g = frames.create_group(key)
    g["numbers"] = atoms.numbers.astype(np.int32)
    g["positions"] = atoms.positions.astype(np.float64)
    g["cell"] = atoms.cell.array.astype(np.float64)
    g["pbc"] = np.asarray(atoms.pbc, dtype=bool)
    g.attrs["status"] = "pending"
    g.attrs["source"] = source
    f.flush()
    return g


def write_labels(f: h5py.File, i: int, labels: dict[str, np.ndarray], fold: str) -> None:
    """Store the labels of frame ``i`` and mark it done (flushed to disk at once)."""
    g = f["frames"][frame_key(i)]
    if fold == "bvk":  # compact form, see the module docstring
        labels = {k: (np.asarray(v, np.float32) if k == "hamiltonian" else v) for k, v in labels.items()
                  if k != "overlap"}
    for k, v in labels.items():
        if k in g:
            del g[k]
        if k in _MATRIX_KEYS:
            g.create_dataset(k, data=v, compression="lzf", shuffle=True)
        else:
            g[k] = v
    g.attrs["fold"] = fold
    g.attrs["status"] = "done"
    if "error" in g.attrs:
        del g.attrs["error"]
    f.flush()


def mark_failed(f: h5py.File, i: int, error: str) -> None:
    g = f["frames"][frame_key(i)]
    g.attrs["status"] = "failed"
    g.attrs["error"] = error
    f.flush()


def read_atoms(g: h5py.Group) -> Atoms:
    """The structure of one frame group as ASE ``Atoms``."""
    pbc = np.asarray(g["pbc"][()], dtype=bool)
    return Atoms(numbers=g["numbers"][()], positions=g["positions"][()],
                 cell=g["cell"][()] if pbc.any() else None, pbc=pbc)


def frame_ids(f: h5py.File, status: str | None = "done") -> list[int]:
    """Ids of frames with the given status (all frames if ``status`` is None), sorted."""
    out = []
    for key, g in f["frames"].items():
        if status is None or g.attrs.get("status") == status:
            out.append(int(key))
    return sorted(out)


def read_frame(g: h5py.Group, keys=None) -> dict[str, np.ndarray]:
    """Arrays of one frame (structure + requested labels that exist)."""
    keys = STRUCTURE_KEYS + LABEL_KEYS if keys is None else tuple(keys)
    return {k: g[k][()] for k in keys if k in g}
