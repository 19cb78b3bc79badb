"""The n2amd couplings file (HDF5): what ``namd couplings`` writes and ``namd hop``/``analyse`` read.

Layout (format "n2amd-couplings", version 1)::

    /               attrs: format, version, dt_fs, units (JSON), meta (JSON: Hamiltonian source, window, ...)
    energies        (N, n)      eV, adiabatic energies of the window states at each snapshot
    nac             (M, n, n)   1/fs, d_ij = <ψ_i|∂ψ_j/∂t> at the step midpoints (M = N − 1)
    bands           (n,)        1-based band index of each state (engine numbering)
    overlaps        (M, n, n)   <ψ_i(t)|ψ_j(t+dt)>, phase-corrected, in state-label order
    phase_signs     (N, n)      sign applied to each state's eigenvector
    state_order     (N, n)      eigen-index (within the window) of each state label
    vbm_eV, cbm_eV  (N,)        band edges at each snapshot, eV (cbm after any scissor shift)
    scissor_shift_eV (N,)       rigid shift applied to the conduction states at each snapshot, eV (with a scissor)
    time_fs         (N,)        time of each snapshot, fs

Only ``energies``, ``nac`` and the attributes are required (files of other tools written through
:func:`write_couplings` may carry just those); this module is the only one that knows the dataset names.
Files are written atomically.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..core.checkpoint import atomic_write
from .series import CouplingSeries

FORMAT = "n2amd-couplings"
VERSION = 1
_OPTIONAL = ("overlaps", "phase_signs", "state_order", "vbm_eV", "cbm_eV", "scissor_shift_eV")


@dataclass
class Couplings:
    """A couplings file's contents: the series hopping needs, and what the post-processor adds."""

    series: CouplingSeries
    overlaps: np.ndarray | None = None
    phase_signs: np.ndarray | None = None
    state_order: np.ndarray | None = None
    vbm_eV: np.ndarray | None = None
    cbm_eV: np.ndarray | None = None
    scissor_shift_eV: np.ndarray | None = None

    @property
    def time_fs(self) -> np.ndarray:
        return np.arange(self.series.energies.shape[0]) * self.series.dt_fs


def write_couplings(path, c: Couplings) -> Path:
    """Write ``c`` as a couplings file at ``path`` (atomically: a kill leaves the old file or none)."""
    s = c.series

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["dt_fs"] = s.dt_fs
            f.attrs["units"] = json.dumps({"energies": "eV", "nac": "1/fs", "dt": "fs", "vbm_eV": "eV",
                                           "cbm_eV": "eV", "scissor_shift_eV": "eV", "time_fs": "fs"})
            f.attrs["meta"] = json.dumps(s.meta, default=str)
            f["energies"] = s.energies
            f["nac"] = s.nac
            if s.bands is not None:
                f["bands"] = s.bands
            for key in _OPTIONAL:
                if getattr(c, key) is not None:
                    f[key] = getattr(c, key)
            if c.overlaps is not None:
                f["overlaps"].attrs["definition"] = "<psi_i(t)|psi_j(t+dt)>, phase-corrected, state-label order"
            f["time_fs"] = c.time_fs

    return atomic_write(path, write)


def read_couplings(path) -> Couplings:
    """A couplings file; clear errors for other files, damaged ones and newer format versions."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such couplings file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 couplings file: {exc}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not an n2amd couplings file (format attribute is not '{FORMAT}')")
        version = int(f.attrs.get("version", 1))  # files before the version attribute are version 1
        if version > VERSION:
            raise ValueError(f"{path}: couplings format version {version} is newer than this package reads "
                             f"({VERSION})")
        for key in ("energies", "nac"):
            if key not in f:
                raise ValueError(f"{path}: couplings file without '{key}' (damaged?)")
        series = CouplingSeries(f["energies"][()], f["nac"][()], float(f.attrs["dt_fs"]),
                                f["bands"][()] if "bands" in f else None, json.loads(f.attrs.get("meta", "{}")))
        return Couplings(series, **{k: (f[k][()] if k in f else None) for k in _OPTIONAL})


def read_series(path) -> CouplingSeries:
    """Just the energies and couplings of a couplings file (what surface hopping needs)."""
    return read_couplings(path).series
