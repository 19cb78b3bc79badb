"""Lifetimes from population curves.

Two estimates, both reported with their fit windows:
- exponential (the headline): P(t) = exp(−t/τ) fitted to the decaying population over the whole run
  (log-linear least squares through the origin);
- short-time linear: P(t) ≈ 1 − t/τ from the initial slope, fitted only while the mean population is above
  ``LINEAR_UNTIL`` (the first 10 % of the decay; the whole run when it decays less). That is what is
  actually measured when τ is far beyond the simulated time (the N2AMD paper's ns lifetimes from ps
  dynamics); fitted over a long decay it overestimates τ (1 − e^{−x} < x).
:func:`levels_off` tells when the population settles at a plateau within the run (equilibrium among close
states, a bottleneck): no single-exponential lifetime describes that, and the summary says so.
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
        error = (f"± {self.stderr_fs / scale:.2g} {unit}" if np.isfinite(self.stderr_fs) else
                 f"{unit}, no error bar (one initial time)")
        return (f"{self.tau_fs / scale:.3g} {error} ({self.kind} fit, "
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


#: the short-time linear fit stops where the mean population first falls below this
LINEAR_UNTIL = 0.9


def linear_window(t_fs: np.ndarray, populations: np.ndarray) -> tuple[float, float]:
    """(0, t) with t the first time the mean population is below LINEAR_UNTIL (at least 5 points), or the run."""
    mean = np.atleast_2d(populations).mean(axis=0)
    below = np.flatnonzero(mean < LINEAR_UNTIL)
    if not len(below):
        return 0.0, float(t_fs[-1])
    return 0.0, float(t_fs[min(max(below[0], 5), len(t_fs) - 1)])


def fit_lifetime(t_fs: np.ndarray, populations: np.ndarray, kind: str = "exponential",
                 window_fs: tuple[float, float] | None = None) -> LifetimeFit:
    """Fit the decay of ``populations`` (ninit, nt) of the initially occupied state; default windows: the
    run (exponential), :func:`linear_window` (linear)."""
    pops = np.atleast_2d(populations)
    if window_fs is None:
        window_fs = linear_window(t_fs, pops) if kind == "linear" else (0.0, float(t_fs[-1]))
    lo, hi = window_fs
    sel = (t_fs >= lo) & (t_fs <= hi)
    rate = _rate_exponential if kind == "exponential" else _rate_linear
    rates = np.array([rate(t_fs[sel], p[sel]) for p in pops])  # 1/fs, one per initial time
    mean = float(np.mean(rates))
    # spread over initial times, propagated to τ = 1/rate; unknown (nan) with a single initial time
    err_rate = float(np.std(rates, ddof=1) / np.sqrt(len(rates))) if len(rates) > 1 else float("nan")
    if mean <= 0:
        return LifetimeFit(float("inf"), float("nan"), (lo, hi), kind)
    return LifetimeFit(1.0 / mean, err_rate / mean**2, (lo, hi), kind)


#: a decay "levels off" when, over the last TAIL of the run, it is slower than PLATEAU_RATIO × the fitted rate
TAIL, PLATEAU_RATIO = 0.3, 0.25


def levels_off(t_fs: np.ndarray, populations: np.ndarray, fit: LifetimeFit) -> float | None:
    """The plateau (mean population over the last 30 % of the run) when the population has decayed (below
    0.9) but not away (above 0.05) and its decay over that tail is under a quarter of the fitted exponential
    rate; else None. A single exponential keeps its rate to the end."""
    mean = np.atleast_2d(populations).mean(axis=0)
    tail = t_fs >= t_fs[0] + (1 - TAIL) * (t_fs[-1] - t_fs[0])
    if not np.isfinite(fit.tau_fs) or fit.tau_fs <= 0 or tail.sum() < 3:
        return None
    level = float(mean[tail].mean())
    if not 0.05 < level < 0.9:
        return None
    slope = np.polyfit(t_fs[tail], np.log(np.clip(mean[tail], 1e-12, None)), 1)[0]  # d ln p/dt, 1/fs
    return level if -slope < PLATEAU_RATIO / fit.tau_fs else None
