"""PNG plots of hopping results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_populations(path, t_fs, pops, series, fit=None) -> None:
    """Mean populations of every state vs time (ps), with the exponential lifetime fit of the initial state."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    E = series.energies.mean(axis=0)
    for s in range(pops.shape[1]):
        ax.plot(t_fs / 1000, pops[:, s], label=f"state {s} (<E> = {E[s]:.2f} eV)")
    if fit is not None and np.isfinite(fit.tau_fs):
        ax.plot(t_fs / 1000, np.exp(-t_fs / fit.tau_fs), "k--", lw=1, label=f"exp(−t/τ), τ = {fit.text().split(' (')[0]}")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("population")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("carrier populations")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_energy(path, t_fs, energy) -> None:
    """Carrier energy relaxation (mean over initial times, band for the spread)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    m, s = energy.mean(0), energy.std(0)
    ax.plot(t_fs / 1000, m, color="C3")
    ax.fill_between(t_fs / 1000, m - s, m + s, color="C3", alpha=0.2, lw=0)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("carrier energy (eV)")
    ax.set_title("energy relaxation (mean ± spread over initial times)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_dephasing(path, t_fs, D, tau) -> None:
    """Dephasing functions D_ij(t) with their Gaussian fits exp(−t²/2τ²)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    n = D.shape[0]
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            if k >= 10:
                break
            ax.plot(t_fs, D[i, j], color=f"C{k}", label=f"{i}–{j}: τ = {tau[i, j]:.1f} fs")
            ax.plot(t_fs, np.exp(-t_fs**2 / (2 * tau[i, j] ** 2)), color=f"C{k}", ls="--", lw=1)
            k += 1
    tmax = min(t_fs[-1], 6 * np.max(tau[np.triu_indices(n, 1)])) if n > 1 else t_fs[-1]
    ax.set_xlim(0, tmax)
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("dephasing function D(t)")
    ax.legend(fontsize=7)
    ax.set_title("pure dephasing (second-order cumulant; dashed: Gaussian fit)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_couplings(prefix, series, vbm=None, cbm=None) -> list[str]:
    """Band energies vs time, |NAC| vs time for neighbouring states, and the RMS-NAC heat map (meV):
    ``<prefix>_energies.png``, ``<prefix>_nac.png``, ``<prefix>_nac_map.png``."""
    from ..core.units import HBAR_EV_FS

    plt = _plt()
    prefix = str(prefix)
    t = np.arange(series.energies.shape[0]) * series.dt_fs
    labels = series.bands if series.bands is not None else np.arange(series.nstates)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for s in range(series.nstates):
        ax.plot(t, series.energies[:, s], lw=0.8)
    if vbm is not None:
        ax.plot(t, vbm, "k--", lw=0.8, label="VBM")
        ax.plot(t, cbm, "k:", lw=0.8, label="CBM")
        ax.legend(fontsize=7)
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("energy (eV)")
    ax.set_title(f"band energies (bands {labels[0]}–{labels[-1]})")
    fig.tight_layout()
    fig.savefig(prefix + "_energies.png")
    plt.close(fig)

    tm = (np.arange(series.nsteps) + 0.5) * series.dt_fs
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for s in range(series.nstates - 1):
        ax.plot(tm, 1000 * HBAR_EV_FS * np.abs(series.nac[:, s, s + 1]), lw=0.7, label=f"{labels[s]}–{labels[s + 1]}")
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("|ħ d| (meV)")
    ax.set_yscale("log")
    ax.set_title("nonadiabatic couplings between neighbouring states")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(prefix + "_nac.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.0, 4.2), dpi=120)
    im = ax.imshow(series.rms_nac_meV(), cmap="viridis", origin="lower")
    ticks = np.arange(series.nstates)
    ax.set_xticks(ticks, [str(b) for b in labels], fontsize=6)
    ax.set_yticks(ticks, [str(b) for b in labels], fontsize=6)
    ax.set_xlabel("band")
    ax.set_ylabel("band")
    fig.colorbar(im, ax=ax, label="RMS |ħ d| (meV)")
    ax.set_title("RMS nonadiabatic coupling")
    fig.tight_layout()
    fig.savefig(prefix + "_nac_map.png")
    plt.close(fig)
    return [prefix + s for s in ("_energies.png", "_nac.png", "_nac_map.png")]
