"""Lifetimes from population curves.

Two estimates, both reported with their fit windows:
- exponential: P(t) = exp(−t/τ) fitted to the decaying population (log-linear least squares through the
  origin), meaningful when the decay is resolved;
- short-time linear: P(t) ≈ 1 − t/τ from the initial slope, which is what is actually measured when τ is
  far beyond the simulated time (the N2AMD paper's ns lifetimes from ps dynamics).
The uncertainty is the standard error over initial times (each initial time fitted separately).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LifetimeFit:
    tau_fs: float  # 1 / (mean over initial times of the fitted decay rates); inf if no decay
    stderr_fs: float  # standard error from the spread of the rates over initial times
    window_fs: tuple[float, float]
    kind: str  # "exponential" or "linear"

    def text(self) -> str:
        if not np.isfinite(self.tau_fs):
            return (f"no decay resolved ({self.kind} fit, window {self.window_fs[0]:.0f}–{self.window_fs[1]:.0f} fs: "
                    "run longer or with more trajectories)")
        unit, scale = _unit(self.tau_fs)
        return (f"{self.tau_fs / scale:.3g} ± {self.stderr_fs / scale:.2g} {unit} ({self.kind} fit, "
                f"window {self.window_fs[0]:.0f}–{self.window_fs[1]:.0f} fs)")


def _unit(tau_fs: float):
    for unit, scale in (("ns", 1e6), ("ps", 1e3)):
        if abs(tau_fs) >= scale:
            return unit, scale
    return "fs", 1.0


def _rate_exponential(t, p):
    ok = p > 0
    return -np.sum(t[ok] * np.log(p[ok])) / np.sum(t[ok] ** 2)  # fit log p = −t/τ through the origin


def _rate_linear(t, p):
    return np.sum(t * (1.0 - p)) / np.sum(t**2)  # fit 1 − p = t/τ through the origin


def fit_lifetime(t_fs: np.ndarray, populations: np.ndarray, kind: str = "exponential",
                 window_fs: tuple[float, float] | None = None) -> LifetimeFit:
    """Fit the decay of ``populations`` (ninit, nt) of the initially occupied state."""
    pops = np.atleast_2d(populations)
    lo, hi = window_fs if window_fs is not None else (0.0, float(t_fs[-1]))
    sel = (t_fs >= lo) & (t_fs <= hi)
    rate = _rate_exponential if kind == "exponential" else _rate_linear
    rates = np.array([rate(t_fs[sel], p[sel]) for p in pops])  # 1/fs, one per initial time
    mean = float(np.mean(rates))
    # spread over initial times, propagated to τ = 1/rate; unknown (nan) with a single initial time
    err_rate = float(np.std(rates, ddof=1) / np.sqrt(len(rates))) if len(rates) > 1 else float("nan")
    if mean <= 0:
        return LifetimeFit(float("inf"), float("nan"), (lo, hi), kind)
    return LifetimeFit(1.0 / mean, err_rate / mean**2, (lo, hi), kind)
