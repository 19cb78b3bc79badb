"""Energies and couplings along one MD trajectory: what surface hopping consumes.

Conventions (the same as the couplings post-processor writes; the file is :mod:`.couplings_file`):

- ``energies[k, i]``: adiabatic energy of state i at snapshot k (time k·dt), eV;
- ``nac[k, i, j]``: nonadiabatic coupling d_ij = <ψ_i|∂ψ_j/∂t> at the midpoint t_k + dt/2 of step k, in fs⁻¹,
  real and antisymmetric (Γ point, real orbitals). From overlaps (Hammes-Schiffer–Tully):
  d_ij(t+dt/2) = (<ψ_i(t)|ψ_j(t+dt)> − <ψ_i(t+dt)|ψ_j(t)>) / (2 dt);
- ``dt_fs``: time between snapshots; there are ``nsteps = len(nac)`` steps, either N−1 for N snapshots
  or N when the source (Hefei-NAMD) lists one coupling per snapshot. When dynamics is longer than the
  trajectory, steps are reused head to tail.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.units import HBAR_EV_FS


@dataclass
class CouplingSeries:
    energies: np.ndarray  # (N, n) eV
    nac: np.ndarray  # (M, n, n) fs⁻¹, M = N−1 or N
    dt_fs: float
    bands: np.ndarray | None = None  # (n,) band index of each state (engine numbering), for reports
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.energies = np.asarray(self.energies, dtype=float)
        self.nac = np.asarray(self.nac, dtype=float)
        N, n = self.energies.shape
        if self.nac.shape[1:] != (n, n) or self.nac.shape[0] not in (N - 1, N):
            raise ValueError(f"couplings of shape {self.nac.shape} do not match energies of shape {self.energies.shape} "
                             "(need (N−1 or N, n, n))")
        if not (np.all(np.isfinite(self.energies)) and np.all(np.isfinite(self.nac))):
            raise ValueError("energies or couplings contain NaN/inf")
        if self.dt_fs <= 0:
            raise ValueError(f"time step must be positive, got {self.dt_fs} fs")

    @property
    def nstates(self) -> int:
        return self.energies.shape[1]

    @property
    def nsteps(self) -> int:
        """Steps in one pass over the trajectory (the period of head-to-tail reuse)."""
        return self.nac.shape[0]

    def select(self, states) -> "CouplingSeries":
        """A sub-window of states (indices into the current states)."""
        s = np.asarray(states)
        return CouplingSeries(self.energies[:, s], self.nac[:, s][:, :, s], self.dt_fs,
                              None if self.bands is None else self.bands[s], dict(self.meta))

    def rms_nac_meV(self) -> np.ndarray:
        """Root-mean-square coupling |ħ d_ij| over the trajectory, meV (the N2AMD paper's measure)."""
        return 1000 * HBAR_EV_FS * np.sqrt(np.mean(self.nac**2, axis=0))
