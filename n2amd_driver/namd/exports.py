"""PYXAID input: one pair of text matrices per MD step (Hefei-NAMD files are in :mod:`.hefei`).

PYXAID reads ``Ham_<t>_re`` and ``Ham_<t>_im``, the vibronic Hamiltonian of step t in Rydberg:
    H_ij = ½ (E_i(t) + E_i(t+dt)) δ_ij − i ħ d_ij(t + dt/2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.units import HARTREE_EV, HBAR_EV_FS
from .series import CouplingSeries

RYDBERG_EV = HARTREE_EV / 2


def pyxaid_hamiltonians(series: CouplingSeries) -> tuple[np.ndarray, np.ndarray]:
    """(re, im) of the vibronic Hamiltonian per step, (M, n, n) in Rydberg."""
    E = series.energies
    M = series.nsteps
    E_mid = 0.5 * (E[:M] + E[np.minimum(np.arange(M) + 1, len(E) - 1)])
    re = np.zeros((M, series.nstates, series.nstates))
    idx = np.arange(series.nstates)
    re[:, idx, idx] = E_mid / RYDBERG_EV
    im = -HBAR_EV_FS * series.nac / RYDBERG_EV
    return re, im


def write_pyxaid(folder, series: CouplingSeries, prefix: str = "Ham_") -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    re, im = pyxaid_hamiltonians(series)
    for t in range(series.nsteps):
        np.savetxt(folder / f"{prefix}{t}_re", re[t], fmt="%.10e")
        np.savetxt(folder / f"{prefix}{t}_im", im[t], fmt="%.10e")
