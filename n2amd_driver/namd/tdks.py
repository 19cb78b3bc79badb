"""Electronic propagation: the TDKS equation in the adiabatic basis along a fixed nuclear path.

    iħ dc/dt = (diag(E) − iħ D) c ≡ H_eff c,     H_eff Hermitian (D real antisymmetric)

Each MD step (length dt) is split into ``nelm`` sub-steps of length h = dt/nelm. On sub-step j the
energies are interpolated linearly between the two snapshots, and the coupling piecewise-linearly
through its midpoint values d(t_k − dt/2), d(t_k + dt/2), d(t_k + 3dt/2) (held constant beyond the ends
of the trajectory); the sub-step propagator is the exact exponential exp(−i h H_eff/ħ), computed by
diagonalising H_eff, so the norm of c is conserved to machine precision.

In the classical path approximation the propagators do not depend on the trajectory, so the product
over sub-steps of each step is computed once for all steps of one pass over the trajectory and reused
by every initial time and every stochastic trajectory.
"""
from __future__ import annotations

import numpy as np

from ..core.units import HBAR_EV_FS
from .series import CouplingSeries


def substep_hamiltonians(series: CouplingSeries, nelm: int, steps=None, coupling: str = "linear") -> np.ndarray:
    """H_eff (eV) at the middle of each sub-step of ``steps`` (default: all): complex (len(steps), nelm, n, n).
    ``coupling="step"`` holds each step's coupling over the whole step instead of interpolating it (what
    on-the-fly dynamics can do, :mod:`.back_reaction`)."""
    E, d = series.energies, series.nac
    M, N = series.nsteps, E.shape[0]
    k = np.arange(M) if steps is None else np.asarray(steps, int)
    f = (np.arange(nelm) + 0.5) / nelm  # position of each sub-step midpoint inside the step
    E0, E1 = E[k], E[(k + 1) % N]  # the last step of a Hefei-style series wraps to snapshot 0
    Es = E0[:, None, :] + (E1 - E0)[:, None, :] * f[None, :, None]  # (M, nelm, n)
    d_prev, d_next = d[np.maximum(k - 1, 0)], d[np.minimum(k + 1, M - 1)]
    first = f < 0.5
    w = np.where(first, f + 0.5, f - 0.5)[None, :, None, None]
    lo = np.where(first[None, :, None, None], d_prev[:, None], d[k][:, None])
    hi = np.where(first[None, :, None, None], d[k][:, None], d_next[:, None])
    ds = lo + (hi - lo) * w  # (M, nelm, n, n)
    if coupling == "step":
        ds = np.broadcast_to(d[k][:, None], ds.shape)
    elif coupling != "linear":
        raise ValueError(f"coupling must be 'linear' or 'step', not {coupling!r}")
    H = -1j * HBAR_EV_FS * ds
    idx = np.arange(E.shape[1])
    H[..., idx, idx] += Es
    return H


def expm_hermitian(H: np.ndarray, t_fs: float) -> np.ndarray:
    """exp(−i t H/ħ) for a stack of Hermitian matrices H (eV)."""
    w, V = np.linalg.eigh(H)
    phase = np.exp(-1j * t_fs / HBAR_EV_FS * w)
    return (V * phase[..., None, :]) @ np.conj(np.swapaxes(V, -1, -2))


def substep_propagators(series: CouplingSeries, nelm: int, steps=None) -> np.ndarray:
    """exp(−i h H_eff/ħ) for every sub-step of ``steps`` (default: all): (len(steps), nelm, n, n) complex."""
    return expm_hermitian(substep_hamiltonians(series, nelm, steps), series.dt_fs / nelm)


def step_propagators(series: CouplingSeries, nelm: int, substeps: np.ndarray | None = None, steps=None) -> np.ndarray:
    """U_k = Π_j exp(−i h H_j/ħ) (later sub-steps on the left) for ``steps`` (default: all): (len, n, n) complex."""
    X = substep_propagators(series, nelm, steps) if substeps is None else substeps
    U = X[:, 0]
    for j in range(1, X.shape[1]):
        U = X[:, j] @ U
    return U


def propagate(c0: np.ndarray, U: np.ndarray, start: int, nsteps: int) -> np.ndarray:
    """Coefficients after each of ``nsteps`` steps starting at step ``start`` (head-to-tail reuse):
    returns (nsteps + 1, n) with the initial vector first."""
    out = np.empty((nsteps + 1, len(c0)), dtype=complex)
    out[0] = c0
    M = len(U)
    for s in range(nsteps):
        out[s + 1] = U[(start + s) % M] @ out[s]
    return out
