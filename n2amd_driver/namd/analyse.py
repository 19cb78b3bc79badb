"""``python -m n2amd_driver.namd analyse couplings.h5``: what a couplings file says, as numbers and plots.

Canonically averaged gap (CBM − VBM, and between every pair of window states), pure-dephasing times from
the gap fluctuations (second-order cumulant, :mod:`.dephasing`), RMS NAC ħ|d| in meV, the headline pair's
decoherence-limited golden-rule rate (an estimate of its DISH lifetime), written as a text table, a JSON file
and PNGs (band energies, NAC time series, NAC heat map, dephasing functions).
Energies eV, times fs. Reads n2amd couplings files and Hefei-NAMD folders (EIGTXT/NATXT).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .series import CouplingSeries


def load(path) -> tuple[CouplingSeries, np.ndarray | None, np.ndarray | None]:
    """The series and, for n2amd files, the band edges per snapshot (eV; None for Hefei-NAMD folders,
    which do not have them)."""
    p = Path(path)
    if p.is_dir():
        from .hefei import read_hefei

        series, _ = read_hefei(p)
        return series, None, None
    from .couplings_file import read_couplings

    c = read_couplings(p)
    return c.series, c.vbm_eV, c.cbm_eV


def analyse(path, out_prefix=None, pair: tuple[int, int] | None = None) -> dict:
    """Numbers and plots of a couplings file; ``pair``: the two window states of the headline (default
    VBM and CBM when known, else the lowest and highest)."""
    from .dephasing import decoherence_limited_rate, dephasing_matrix
    from .plots import plot_couplings, plot_dephasing

    series, vbm, cbm = load(path)
    n = series.nstates
    if pair is None:
        known = series.bands is not None and "vbm_band_1based" in series.meta
        iv = int(series.meta["vbm_band_1based"]) - int(series.bands[0]) if known else -1
        pair = (iv, iv + 1) if 0 <= iv < n - 1 else (0, n - 1)
    i, j = pair
    if not (0 <= i < n and 0 <= j < n) or i == j:
        raise ValueError(f"--pair {i} {j}: two different window states of the {n} in {path} (0..{n - 1})")
    tau, t, D = dephasing_matrix(series.energies, series.dt_fs)
    rms = series.rms_nac_meV()
    gap = series.energies[:, j] - series.energies[:, i]
    rate = decoherence_limited_rate(series.nac[:, i, j], gap, series.dt_fs, tau[i, j])
    out = Path(out_prefix) if out_prefix else Path(str(path).rstrip("/")).with_suffix("")
    plots = plot_couplings(out, series, vbm, cbm)
    plot_dephasing(out.with_name(out.name + "_dephasing.png"), t, D, tau)
    plots.append(str(out.with_name(out.name + "_dephasing.png")))
    res = {"file": str(path), "snapshots": int(series.energies.shape[0]), "dt_fs": series.dt_fs,
           "bands_1based": [int(b) for b in series.bands] if series.bands is not None else list(range(1, n + 1)), "pair": [int(i), int(j)],
           "average_gap_eV": float(gap.mean()), "gap_std_meV": float(gap.std() * 1000),
           "dephasing_fs": float(tau[i, j]), "rms_nac_meV": float(rms[i, j]),
           "golden_rule_lifetime_fs": 1 / rate if rate > 0 else None,  # None: the pair never couples
           "dephasing_matrix_fs": tau.tolist(), "rms_nac_matrix_meV": rms.tolist(), "plots": plots}
    if vbm is not None and cbm is not None:
        res["average_band_gap_eV"] = float(np.mean(cbm - vbm))
    res["text"] = "\n".join([
        f"{path}: {res['snapshots']} snapshots, dt = {series.dt_fs:g} fs, bands {res['bands_1based'][0]}–"
        f"{res['bands_1based'][-1]} (1-based); headline pair: window states {i} and {j}",
        f"  {'averaged gap':32s} {res['average_gap_eV']:.4f} eV (σ {res['gap_std_meV']:.1f} meV)",
        f"  {'pure-dephasing time':32s} {res['dephasing_fs']:.2f} fs",
        f"  {'RMS NAC ħ|d|':32s} {res['rms_nac_meV']:.4f} meV",
        f"  {'golden-rule lifetime estimate':32s} "
        + (f"{res['golden_rule_lifetime_fs'] / 1000:.4g} ps" if res["golden_rule_lifetime_fs"] else "none (no coupling)")
        + " (decoherence-limited; DISH computes the lifetime)",
        "  RMS NAC matrix (meV):",
        *("    " + " ".join(f"{x:8.3f}" for x in row) for row in rms),
        "  plots: " + ", ".join(plots)])
    out.with_name(out.name + "_analysis.json").write_text(json.dumps({k: v for k, v in res.items() if k != "text"},
                                                                     indent=2))
    return res
