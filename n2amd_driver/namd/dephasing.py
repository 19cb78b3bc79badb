"""Pure-dephasing times from energy-gap fluctuations (second-order cumulant).

Definition used here (stated because codes differ):
    δΔE(t) = ΔE(t) − <ΔE>,   C(t) = <δΔE(t') δΔE(t'+t)>_t'   (lag 0 included, unbiased average over origins)
    g(t) = ħ⁻² ∫₀ᵗ dt' ∫₀ᵗ' dt'' C(t''),   D(t) = exp(−g(t)),
    τ from a least-squares fit of D(t) = exp(−t² / (2τ²)) over the window where D(t) > 0.01
      (or the first half of the trajectory, whichever is shorter).
Hefei-NAMD's script starts the autocorrelation at lag 1 (τ changes by up to ~1 fs); PYXAID fits
exp(−(t/τ)²), which gives a τ larger by √2; Libra also offers τ = sqrt(12/5)·ħ/σ(ΔE).
"""
from __future__ import annotations

import numpy as np

from ..core.units import HBAR_EV_FS


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Unbiased autocorrelation of a fluctuation series (mean removed), lags 0..N/2."""
    dx = np.asarray(x, float) - np.mean(x)
    n = len(dx)
    f = np.fft.rfft(dx, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n] / (n - np.arange(n))
    return acf[: n // 2]


def dephasing_function(gap_eV: np.ndarray, dt_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(t in fs, D(t)) from the gap time series by the second-order cumulant."""
    C = autocorrelation(gap_eV)
    t = np.arange(len(C)) * dt_fs
    from scipy.integrate import cumulative_trapezoid  # imported here: scipy is slow to import, and hop jobs
    # with a DEPHTIME file or FSSH never need it

    g = cumulative_trapezoid(cumulative_trapezoid(C, t, initial=0.0), t, initial=0.0) / HBAR_EV_FS**2
    return t, np.exp(-g)


def gaussian_dephasing_time(t: np.ndarray, D: np.ndarray, threshold: float = 0.01) -> float:
    """τ (fs) of exp(−t²/(2τ²)) fitted to D(t) up to where D first drops below ``threshold``."""
    below = np.nonzero(D < threshold)[0]
    end = below[0] if len(below) else len(D)
    end = max(end, 3)
    guess = t[np.argmin(np.abs(D[:end] - np.exp(-0.5)))] or t[1]
    from scipy.optimize import curve_fit

    (tau,), _ = curve_fit(lambda x, s: np.exp(-x**2 / (2 * s**2)), t[:end], D[:end], p0=[guess])
    return float(abs(tau))


def dephasing_matrix(energies: np.ndarray, dt_fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pure-dephasing times τ_ij (fs, zero diagonal) for all state pairs, plus t and D_ij(t) for plots."""
    n = energies.shape[1]
    tau = np.zeros((n, n))
    t = None
    Ds = {}
    for i in range(n):
        for j in range(i + 1, n):
            t, D = dephasing_function(energies[:, j] - energies[:, i], dt_fs)
            tau[i, j] = tau[j, i] = gaussian_dephasing_time(t, D)
            Ds[(i, j)] = D
    Dmat = np.ones((n, n, 0 if t is None else len(t)))
    for (i, j), D in Ds.items():
        Dmat[i, j] = Dmat[j, i] = D
    return tau, (np.zeros(0) if t is None else t), Dmat


def decoherence_limited_rate(nac_fs: np.ndarray, gap_eV: np.ndarray, dt_fs: float, tau_fs: float) -> float:
    """Transition rate (fs⁻¹) between two states by Fermi's golden rule with the phase memory cut at the
    pure-dephasing time τ: A(s) = ∫_s^{s+τ} d(t) e^{iφ(t)} dt with φ(t) = ∫ ΔE dt'/ħ, over every window of
    length τ along the trajectory, and rate = ⟨|A|²⟩ / τ.

    An estimate of the DISH rate straight from the couplings (DISH resets the coherence on the same time
    scale): it counts only the NAC's content near the gap frequency ΔE/ħ, not its RMS. ``nac_fs`` (M,) the
    coupling at the step midpoints, ``gap_eV`` (N,) the energy difference at the snapshots (M = N − 1 or N).
    """
    d = np.asarray(nac_fs, float)
    gap = np.asarray(gap_eV, float)
    mid = 0.5 * (gap[1:] + gap[:-1]) if len(gap) == len(d) + 1 else gap[: len(d)]
    z = d * np.exp(1j * np.cumsum(mid) * dt_fs / HBAR_EV_FS) * dt_fs  # a constant phase offset changes no |A|
    # no (finite) dephasing time: one window as long as the trajectory
    L = int(min(max(round(tau_fs / dt_fs), 1), len(d))) if np.isfinite(tau_fs) else len(d)
    c = np.concatenate([[0.0], np.cumsum(z)])
    A = c[L:] - c[:-L]
    return float(np.mean(np.abs(A) ** 2) / (L * dt_fs))
