"""What every benchmark script records next to its figures: the command, when, how long, on what."""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone

_T0 = time.time()


def provenance() -> dict:
    """Command line (as typed, from the repository root), UTC date, wall time so far, machine, and
    ``$N2AMD_BENCH_NOTE`` (what else ran on the machine, say) when set."""
    return {"command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable)] + sys.argv),
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "wall_s": round(time.time() - _T0, 1), "cores": os.cpu_count(), "machine": platform.machine(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "note": os.environ.get("N2AMD_BENCH_NOTE")}


def stamp(res: dict, before: dict, computed: bool, key: str = "provenance") -> None:
    """Set ``res[key]`` to this run's provenance, unless this run computed nothing and only re-derived figures
    from stored results: then the run that computed them (``before[key]``) stays on record, and this one goes
    under ``analysis_`` + key."""
    if not computed and key in before:
        res[key], res[f"analysis_{key}"] = before[key], provenance()
    else:
        res[key] = provenance()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: DISH settings of the NAMD benchmarks (the demo's): 10 initial times × 100 trajectories × 50 ps
DISH = {"initial": {"times": 10, "state": "auto"}, "ntraj": 100, "namdtime_fs": 50000.0}
#: the same over 10 ns per run, populations kept every ps: lifetimes of nanoseconds and more (wider gaps, larger
#: cells) show only their first percent of decay within 50 ps
DISH_LONG = {**DISH, "namdtime_fs": 1.0e7, "record_every": 1000}


def run_package(cmd: list[str], log, ranks: int = 1) -> None:
    """A package module (``["n2amd_driver.namd", "couplings", ...]``) on ``ranks`` MPI ranks, its output appended
    to ``log``; stops the script on failure, naming the log (every job resumes when the script is re-run)."""
    import subprocess

    sys.path.insert(0, ROOT)
    from n2amd_driver.md.launch import module_command

    full, env = module_command(cmd, ranks)
    with open(log, "a") as fh:
        r = subprocess.run(full, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed (exit {r.returncode}); see {log}; rerun to resume")


def dish_populations(h5, valence: int, log, ranks: int = 2, dish: dict | None = None):
    """DISH electron–hole recombination CBM → VBM (``dish``, default :data:`DISH`) on a couplings file whose
    window has ``valence`` valence states; returns the populations file (skipped when it exists, after checking
    that it was run with these settings: a folder from other DISH settings stops the script, naming them)."""
    import json
    from pathlib import Path

    import h5py
    import yaml

    folder = Path(h5).with_suffix("")
    cfg = {"input": {"couplings": str(h5)}, "states": [valence - 1, valence], "method": "dish",
           "carrier": "electron", "temperature_K": 300.0, **(dish or DISH), "plots": True, "output": str(folder)}
    if (folder / "populations.h5").exists():
        with h5py.File(folder / "populations.h5") as f:
            ran = json.loads(f.attrs["config"])
        wrong = {k: (ran.get(k), v) for k, v in cfg.items()
                 if k not in ("input", "plots", "output") and ran.get(k) != v}
        if wrong:
            raise SystemExit(f"{folder}: populations from other DISH settings ({wrong}, as run → wanted); "
                             "move the folder away to rerun")
    else:
        path = folder.with_suffix(".dish.yaml")
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        run_package(["n2amd_driver.namd", "hop", str(path), "-q"], log, ranks=ranks)
    return folder / "populations.h5"


def correlation_time_fs(x, dt_fs: float) -> float:
    """∫ C(t) dt up to C's first zero, C the normalised autocorrelation of the fluctuation of ``x`` (fs): short
    against ħ/σ, the fluctuations average out and the pure dephasing is slow (motional narrowing)."""
    import numpy as np

    d = np.asarray(x, float) - np.mean(x)
    n = len(d)
    acf = np.correlate(d, d, "full")[n - 1:] / np.arange(n, 0, -1)
    acf = acf / acf[0]
    first_zero = int(np.argmax(acf < 0)) if np.any(acf < 0) else n
    return float(np.trapezoid(acf[:first_zero], dx=dt_fs))


def namd_figures(h5, pops, valence: int) -> dict:
    """⟨gap⟩ (eV), its spread (meV) and correlation time (fs), VBM–CBM pure-dephasing time (fs), RMS NAC (meV) of
    VBM−1/VBM, VBM/CBM and CBM/CBM+1 and pooled across the gap (with block standard errors), the DISH lifetime
    (ns) with its standard error over the initial times, and the VBM–CBM decoherence-limited golden-rule
    lifetime (ns), the estimate of the DISH one straight from the couplings."""
    import h5py
    import numpy as np

    from n2amd_driver.core.units import HBAR_EV_FS
    from n2amd_driver.namd.couplings_file import read_couplings
    from n2amd_driver.namd.dephasing import decoherence_limited_rate

    c = read_couplings(h5)
    rms = c.series.rms_nac_meV()
    iv = valence - 1
    with h5py.File(pops) as f:
        tau = float(f["dephasing_fs"][()][0, 1])
        g = f["lifetime/exponential"]
        life, err = float(g.attrs["tau_fs"]), float(g.attrs["stderr_fs"])
    gap = c.cbm_eV - c.vbm_eV
    return {"snapshots": int(c.series.energies.shape[0]), "gap_eV": float(np.mean(gap)),
            "gap_std_meV": 1000 * float(np.std(gap)), "gap_correlation_fs": correlation_time_fs(gap, c.series.dt_fs),
            "dephasing_fs": tau,
            "rms_nac_meV": {"VBM-1/VBM": float(rms[iv - 1, iv]), "VBM/CBM": float(rms[iv, iv + 1]),
                            "CBM/CBM+1": float(rms[iv + 1, iv + 2])},
            # the band edges are members of thermally split near-degenerate manifolds, so one pair's RMS
            # depends on how the members mix; the root sum of squares over every valence × conduction pair
            # of the window does not
            "rms_nac_across_gap_meV": float(np.sqrt((rms[:valence, valence:] ** 2).sum())),
            "edge_splitting_meV": {"VBM-1/VBM": 1000 * float(np.mean(np.diff(c.series.energies[:, iv - 1 : iv + 1]))),
                                   "CBM/CBM+1": 1000 * float(np.mean(np.diff(c.series.energies[:, iv + 1 : iv + 3])))},
            # standard errors from 10 consecutive blocks of the trajectory: its length, not the model, limits
            # how well a few hundred fs pin down a fluctuation's size
            "gap_std_stderr_meV": 1000 * block_stderr(((gap - gap.mean()) ** 2), np.sqrt),
            "rms_nac_across_gap_stderr_meV": 1000 * HBAR_EV_FS * block_stderr(
                (c.series.nac[:, :valence, valence:] ** 2).sum((1, 2)), np.sqrt),
            "lifetime_ns": life / 1e6, "lifetime_stderr_ns": err / 1e6,
            "golden_rule_lifetime_ns": 1e-6 / decoherence_limited_rate(
                c.series.nac[:, iv, iv + 1], c.series.energies[:, iv + 1] - c.series.energies[:, iv],
                c.series.dt_fs, tau)}


def block_stderr(x, of=lambda m: m, blocks: int = 10) -> float:
    """Standard error of ``of(mean(x))`` from the spread of its value over ``blocks`` consecutive blocks of the
    series ``x`` (blocks longer than its correlation time make them independent)."""
    import numpy as np

    per = np.array([of(np.mean(b)) for b in np.array_split(np.asarray(x, float), blocks)])
    return float(np.std(per, ddof=1) / np.sqrt(blocks))
