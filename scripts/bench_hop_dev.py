"""Surface hopping side by side with Hefei-NAMD-DEV: the same Hefei folders (inp, EIGTXT, NATXT, DEPHTIME,
INICON) run by DEV's serial build and by `n2amd namd hop` on 1 and 2 MPI ranks, whole process, one core a rank.

    .venv/bin/python scripts/bench_hop_dev.py --dev /path/to/hfnamd [--repeats 3] [--out hop_dev.json]

DEV is not part of this package: build it from its source in a scratch folder (serial, gfortran -O3 -cpp
-DENABLEMKL, linked to OpenBLAS; docs/namd.md has the commands, `--dev-build` what is recorded). The cases:

- ``dish2``: the analytic two-level system (0.3 eV gap, d = 0.01 fs⁻¹, τ = 9.5 fs; lifetime ≈ 9.05 ps),
  20 ps, 2000 trajectories;
- ``dish10``: 10 states with phonon-like energy fluctuations and random couplings, 10 ps, 1000 trajectories;
- ``fssh20``: 20 such states, FSSH, 1 ps, 20000 trajectories;
- ``dish10_20t``, ``fssh20_20t``: ``dish10`` and ``fssh20`` from 20 initial conditions, here only (1 and 2
  ranks): runs long enough for the fixed start-up not to hide the parallel speed-up, and with initial times
  to share (an initial time's FSSH coefficients are propagated in sequence, by every rank that holds some
  of its trajectories).

The first three use one initial condition (NSAMPLE = 1); all NSW = 2000 snapshots of 1 fs, NELM = 10, 300 K. Times are
the median of ``--repeats`` runs, taken in interleaved rounds (DEV, 1 rank, 2 ranks, ...); memory is the
peak resident set of the whole process (the largest rank for 2 ranks). The physics is compared too: the
initial state's population at the end of the run, DEV against here, with its binomial error.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from n2amd_driver.namd.hefei import write_hefei  # noqa: E402
from n2amd_driver.namd.series import CouplingSeries  # noqa: E402
from benchlib import provenance  # noqa: E402

BIN = Path(sys.executable).parent
NSW = 2000
CASES = {  # nsample: initial conditions; dev: also run DEV (the scaling case runs only here, 1 and 2 ranks)
    "dish2": dict(states=2, algo="DISH", time_fs=20000, ntraj=2000, nsample=1, dev=True),
    "dish10": dict(states=10, algo="DISH", time_fs=10000, ntraj=1000, nsample=1, dev=True),
    "fssh20": dict(states=20, algo="FSSH", time_fs=1000, ntraj=20000, nsample=1, dev=True),
    "dish10_20t": dict(states=10, algo="DISH", time_fs=10000, ntraj=1000, nsample=20, dev=False),
    "fssh20_20t": dict(states=20, algo="FSSH", time_fs=1000, ntraj=20000, nsample=20, dev=False),
}


def series_for(n: int, seed: int = 0) -> tuple[CouplingSeries, np.ndarray]:
    """Couplings with one coupling per snapshot (DEV reads NSW lines of NATXT) and the DEPHTIME matrix (fs)."""
    if n == 2:  # the analytic two-level case of docs/namd.md
        E = np.tile([0.0, 0.3], (NSW, 1))
        D = np.zeros((NSW, 2, 2))
        D[:, 0, 1], D[:, 1, 0] = 0.01, -0.01
        tau = np.array([[0.0, 9.5], [9.5, 0.0]])
        return CouplingSeries(E, D, 1.0), tau
    rng = np.random.default_rng(seed)
    t = np.arange(NSW, dtype=float)
    E = np.zeros((NSW, n))
    for s in range(n):
        E[:, s] = 0.05 * s + sum(0.02 * np.cos(2 * np.pi * t / p + rng.uniform(0, 6.3)) for p in rng.uniform(40, 300, 5))
    D = rng.normal(scale=0.004, size=(NSW, n, n))
    gap = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    tau = np.where(gap > 0, 8.0 + 2.0 * gap, 0.0)
    return CouplingSeries(E, D - np.transpose(D, (0, 2, 1)), 1.0), tau


def make_folder(path: Path, case: dict) -> None:
    s, tau = series_for(case["states"])
    n = case["states"]
    inicon = [(2 + 97 * k, n) for k in range(case["nsample"])]
    write_hefei(path, s, bmin=1, inicon=inicon, extra_inp={
        "NTRAJ": case["ntraj"], "NAMDTIME": case["time_fs"] + 1, "NELM": 10, "TEMP": 300.0, "ALGO": case["algo"],
        "LHOLE": False})
    np.savetxt(path / "DEPHTIME", tau, fmt="%.6f")


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Wall time (s) and output of a command, one thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{(r.stdout + r.stderr)[-3000:]}")
    return wall, r.stdout


def run_dev(dev: Path, folder: Path) -> tuple[float, np.ndarray]:
    """(wall s, populations (rows, states) of SHPROP.2)."""
    for f in folder.glob("SHPROP.*"):
        f.unlink()
    wall, _ = timed([str(dev)], folder)
    return wall, np.loadtxt(folder / "SHPROP.2")[:, 2:]


def run_here(folder: Path, ranks: int, tag: str) -> tuple[float, np.ndarray, float]:
    """(wall s, populations (rows, states) of SHPROP.2, propagation s as the job reports it)."""
    out = folder.parent / f"{folder.name}_{tag}"
    cfg = {"input": {"hefei": str(folder)}, "output": str(out), "plots": False, "shprop": True,
           "checkpoint_every_fs": 1.0e9}
    cfg_path = folder.parent / f"{folder.name}_{tag}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [str(BIN / "n2amd"), "namd", "hop", str(cfg_path), "-q"]
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-n", str(ranks)] + cmd
    wall, stdout = timed(cmd, folder.parent)
    propagation = float(re.search(r"cost\s+([\d.]+) s on", stdout).group(1))
    return wall, np.loadtxt(out / "SHPROP.2")[:, 2:], propagation


def rss_of(cmd_runner) -> float:
    """Peak RSS (MiB) of one run, measured in a fresh child process so earlier runs do not mask it."""
    r = subprocess.run([sys.executable, "-c", cmd_runner], capture_output=True, text=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True, help="Hefei-NAMD-DEV executable (serial build)")
    ap.add_argument("--dev-build", default="commit 308d694, gfortran 12 -O3 -cpp -DENABLEMKL, OpenBLAS, no MPI",
                    help="how DEV was built (recorded; docs/namd.md has the commands)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--work", default="runs/bench_hop_dev", help="scratch folder")
    ap.add_argument("--out", default="hop_dev.json")
    args = ap.parse_args()
    dev = Path(args.dev).resolve()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.cases:
        case = CASES[name]
        folder = work / name
        make_folder(folder, case)
        times = {"dev": [], "here_1": [], "here_2": []}
        propagation = {"here_1": [], "here_2": []}
        final = {}
        if not case["dev"]:
            del times["dev"]
        for _ in range(args.repeats):  # interleaved rounds
            if case["dev"]:
                w, final["dev"] = run_dev(dev, folder)
                times["dev"].append(w)
            for ranks in (1, 2):
                w, final[f"here_{ranks}"], p = run_here(folder, ranks, f"r{ranks}")
                times[f"here_{ranks}"].append(w)
                propagation[f"here_{ranks}"].append(p)
        mem = {k: _peak_mib(dev, folder, k) for k in times}
        med = {k: statistics.median(v) for k, v in times.items()}
        n0 = case["states"] - 1  # the initial state (the top of the window)
        row = {"case": name, **case, "nsw": NSW, "nelm": 10, "wall_s": times, "median_s": med, "peak_rss_mib": mem,
               "dev_over_here_1": med["dev"] / med["here_1"] if case["dev"] else None,
               "dev_over_here_2": med["dev"] / med["here_2"] if case["dev"] else None,
               "here_1_over_2": med["here_1"] / med["here_2"], "propagation_s": propagation,
               "propagation_1_over_2": statistics.median(propagation["here_1"]) / statistics.median(propagation["here_2"]),
               "final_population_initial_state": {k: float(v[-1, n0]) for k, v in final.items()},
               "binomial_error": float(np.sqrt(max(final["here_1"][-1, n0] * (1 - final["here_1"][-1, n0]), 1e-12)
                                               / case["ntraj"])),
               # the whole curve of the initial state: DEV's rows and these are the same records (t = 0 first)
               "max_abs_difference_initial_state": (float(np.abs(final["dev"][:, n0] - final["here_1"][:, n0]).max())
                                                    if case["dev"] else None),
               "binomial_error_at_half": 0.5 / float(np.sqrt(case["ntraj"]))}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("case", "median_s", "peak_rss_mib", "dev_over_here_1",
                                              "dev_over_here_2", "here_1_over_2", "propagation_1_over_2",
                                              "final_population_initial_state")}),
              flush=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "dev_build": args.dev_build, "provenance": provenance()},
                                         indent=1))


def _peak_mib(dev: Path, folder: Path, which: str) -> float:
    """Peak resident set (MiB) of one more run of ``which``, in a child that waits for it alone."""
    if which == "dev":
        cmd, cwd = [str(dev)], folder
    else:
        ranks = int(which.split("_")[1])
        cfg_path = folder.parent / f"{folder.name}_r{ranks}.yaml"
        cmd = [str(BIN / "n2amd"), "namd", "hop", str(cfg_path), "-q"]
        if ranks > 1:
            cmd = [str(BIN / "mpirun"), "-n", str(ranks)] + cmd
        cwd = folder.parent
        import shutil

        shutil.rmtree(folder.parent / f"{folder.name}_r{ranks}", ignore_errors=True)
    probe = ("import os, resource, subprocess, sys\n"
             f"env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')\n"
             f"subprocess.run({cmd!r}, cwd={str(cwd)!r}, env=env, stdout=subprocess.DEVNULL, check=True)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)\n")
    return rss_of(probe)


if __name__ == "__main__":
    main()
