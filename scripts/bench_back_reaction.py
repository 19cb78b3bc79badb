#!/usr/bin/env python
"""Surface hopping with back-reaction against the classical path approximation, Si64 at 300 K, NNH model.

A hot electron starts at the top of a 12-state conduction window (CBM … CBM+11: two manifolds of six, the
upper ~0.35 eV above the lower in this model) and relaxes. Stages (each
resumable; re-running a finished stage only reads its results):

- ``ground``: NNH ground-state MD of Si64 (bundled si_nnh.pt): Langevin equilibration at the target temperature
  (friction 0.01 fs⁻¹), then NVE with frames every step; kept in <work>/ground.npz.
- ``cpa``: the classical path through the existing post-processor: `namd couplings` along that trajectory
  (the NNH's own Hamiltonian, window CBM..CBM+11), then `namd hop` FSSH from the same initial frames, the
  same number of trajectories, detailed-balance factors, no decoherence.
- ``br``: `namd hop-md` from the same frames (their positions and velocities), back-reaction on, plain FSSH
  (no decoherence, as the CPA side), the same number of trajectories.
- ``report``: both sides' occupations and carrier energy over time, the back-reaction run's energy
  conservation and hops, a table and a plot, into --json.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_back_reaction.py --stage ground cpa br report \\
        --work docs/bench/back_reaction --json docs/bench/back_reaction.json

The work folder holds the ground-state trajectory (npz), the CPA couplings file and populations, and the hop-md
checkpoints, all committed so that a later session continues from them; the couplings job's checkpoints stay
under runs/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import provenance  # noqa: E402

from n2amd_driver.core.checkpoint import save_npz  # noqa: E402
from n2amd_driver.core.units import AMU_A2_FS2_EV, KB_EV_K  # noqa: E402

STATES = 12


def ground(work: Path, temperature_K: float, equilibrate_fs: int, keep_fs: int, seed: int) -> Path:
    """NVE frames (positions Å, velocities Å/fs) every 1 fs after ``equilibrate_fs``; resumable."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    from n2amd_driver.models.calculator import N2AMDCalculator

    path = work / "ground.npz"
    total = equilibrate_fs + keep_fs
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    if path.exists():
        z = np.load(path)
        pos, vel, step = list(z["positions"]), list(z["velocities"]), int(z["step"])
        atoms.positions, v = z["last_positions"], z["last_velocities"]
    else:
        rng = np.random.default_rng(seed)
        atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
        m = atoms.get_masses()[:, None]
        v = rng.normal(size=atoms.positions.shape) * np.sqrt(KB_EV_K * temperature_K / (m * AMU_A2_FS2_EV))
        v -= (m * v).sum(0) / m.sum()
        pos, vel, step = [], [], 0
    if step >= total:
        return path
    atoms.set_velocities(v / units.fs)
    atoms.calc = N2AMDCalculator("si_nnh.pt", device="cpu")
    nve = VelocityVerlet(atoms, timestep=units.fs)
    # equilibration with a Langevin thermostat (the NNH lattice releases potential energy from the ideal
    # positions, so a Maxwell–Boltzmann start alone ends far above the target); a resumed equilibration
    # continues with a fresh random stream
    nvt = Langevin(atoms, timestep=units.fs, temperature_K=temperature_K, friction=0.01 / units.fs,
                   rng=np.random.default_rng([seed, step]))
    t0 = time.time()
    while step < total:
        (nvt if step < equilibrate_fs else nve).run(1)
        step += 1
        if step > equilibrate_fs:
            pos.append(atoms.positions.copy())
            vel.append(atoms.get_velocities() * units.fs)
        if step % 25 == 0 or step == total:
            save_npz(path, positions=np.array(pos), velocities=np.array(vel), step=step, cell=atoms.cell.array,
                     numbers=atoms.numbers, last_positions=atoms.positions, last_velocities=atoms.get_velocities()
                     * units.fs, equilibrate_fs=equilibrate_fs, energy_eV=atoms.get_total_energy())
            print(f"ground: step {step}/{total}, T = {atoms.get_temperature():.0f} K, "
                  f"{(time.time() - t0) / max(step, 1):.2f} s/step this run", flush=True)
    return path


def trajectory_file(work: Path, runs: Path) -> Path:
    """The ground-state frames as extended XYZ with velocities (what both jobs read)."""
    from ase import Atoms
    from ase.io import write

    out = runs / "ground.extxyz"
    if out.exists():
        return out
    z = np.load(work / "ground.npz")
    frames = []
    for p, v in zip(z["positions"], z["velocities"]):
        a = Atoms(numbers=z["numbers"], positions=p, cell=z["cell"], pbc=True)
        a.arrays["velocities_A_fs"] = v
        frames.append(a)
    runs.mkdir(parents=True, exist_ok=True)
    write(out, frames, format="extxyz")
    return out


def initial_frames(nframes: int, count: int) -> list[int]:
    """Initial frames spread over the first half of the trajectory (the CPA runs need 1 ps after each)."""
    return np.linspace(0, nframes // 2, count).round().astype(int).tolist()


def cpa(traj: Path, work: Path, runs: Path, frames: list[int], ntraj: int, time_fs: float, ranks: int) -> Path:
    """The CPA side; its couplings file and populations are kept in ``work`` (a few MB), the couplings
    checkpoints (the window states of every snapshot) under ``runs``."""
    from n2amd_driver.namd.couplings_job import load_config as couplings_config
    from n2amd_driver.namd.couplings_job import run_couplings
    from n2amd_driver.namd.hop_job import load_config as hop_config
    from n2amd_driver.namd.hop_job import run_hop

    couplings = work / "cpa_couplings.h5"
    if not couplings.exists():
        nocc = 128
        run_couplings(couplings_config(None, {
            "trajectory": str(traj), "dt_fs": 1.0, "hamiltonian": {"model": "si_nnh.pt"},
            "window": {"bands": [nocc + 1, nocc + STATES]}, "plots": False, "device": "cpu",
            "output": str(couplings), "checkpoint": str(runs / "cpa_couplings.ckpt")}))
    out = work / "cpa_hop"
    if not (out / "populations.h5").exists():
        run_hop(hop_config(None, {"input": {"couplings": str(couplings)}, "method": "fssh", "carrier": "electron",
                                  "ntraj": ntraj, "namdtime_fs": time_fs, "temperature_K": 300.0,
                                  "initial": {"times": frames, "state": STATES - 1}, "plots": False,
                                  "output": str(out)}))
    return out


def br(traj: Path, work: Path, frames: list[int], ntraj: int, time_fs: float) -> Path:
    from n2amd_driver.namd.hop_md_job import load_config, run_hop_md

    out = work / "hop_md"
    run_hop_md(load_config(None, {"model": "si_nnh.pt", "initial": {"trajectory": str(traj), "frames": frames,
                                                                    "state": "top"},
                                  "trajectories": ntraj, "states": STATES, "time_fs": time_fs,
                                  "decoherence": "none", "checkpoint_every": 10, "output": str(out)}))
    return out


def report(work: Path, out_json: Path, frames: list[int], ntraj: int) -> None:
    import h5py

    from n2amd_driver.namd.couplings_file import read_series

    res = {"system": "Si64, 300 K, si_nnh.pt", "window": f"CBM..CBM+{STATES - 1}", "initial_frames": frames}
    series = read_series(work / "cpa_couplings.h5")
    with h5py.File(work / "cpa_hop" / "populations.h5") as f:
        t_cpa, P = f["time_fs"][:], f["populations"][:]  # (initial times, time, state)
    E = series.energies - series.energies[:, :1]  # above the CBM
    steps = np.array(frames)[:, None] + np.arange(len(t_cpa))[None, :]
    carrier_cpa = np.einsum("gts,gts->t", P, E[steps % len(E)]) / len(frames)
    summary = json.loads((work / "hop_md" / "summary.json").read_text())
    z = np.load(work / "hop_md" / "results.npz")
    res["cpa"] = {"trajectories": len(frames) * ntraj, "final_occupation": P[:, -1].mean(0).tolist(),
                  "carrier_energy_eV": {"start": float(carrier_cpa[0]), "end": float(carrier_cpa[-1])},
                  "relaxation_fs": relaxation_time(t_cpa, carrier_cpa)}
    res["back_reaction"] = {**summary, "relaxation_fs": relaxation_time(z["time_fs"], z["carrier_energy_eV"].mean(0))}
    res["provenance"] = provenance()
    out_json.write_text(json.dumps(res, indent=1))
    plot(out_json.with_suffix(".png"), t_cpa, P.mean(0), carrier_cpa, z)


def relaxation_time(t: np.ndarray, e: np.ndarray) -> float | None:
    """fs until the mean carrier energy first falls below 1/e of its initial value (None: not within the run)."""
    below = np.flatnonzero(e < e[0] / np.e)
    return float(t[below[0]]) if len(below) else None


def plot(path: Path, t_cpa, P_cpa, carrier_cpa, z) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for i in range(P_cpa.shape[1]):
        ax[0].plot(t_cpa, P_cpa[:, i], color=f"C{i}", ls="--", lw=1)
        ax[0].plot(z["time_fs"], z["occupation"][:, i], color=f"C{i}", lw=1.2, label=f"CBM+{i}")
    ax[0].set_xlabel("time (fs)")
    ax[0].set_ylabel("occupation (solid: back-reaction, dashed: CPA)")
    ax[0].legend(fontsize=7)
    ax[1].plot(t_cpa, carrier_cpa, "--", label="CPA (namd couplings + hop)")
    ax[1].plot(z["time_fs"], z["carrier_energy_eV"].mean(0), label="back-reaction (namd hop-md)")
    ax[1].set_xlabel("time (fs)")
    ax[1].set_ylabel("electron energy above the CBM (eV)")
    ax[1].legend(fontsize=7)
    e = z["total_eV"]
    ax[2].plot(z["time_fs"], ((e - e[:, :1]) * 1000 / 64).T, lw=0.4)
    ax[2].set_xlabel("time (fs)")
    ax[2].set_ylabel("E_kin + E_active − E(0) (meV/atom)")
    fig.suptitle("Hot electron in Si64 at 300 K (NNH model): FSSH with back-reaction vs the classical path", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", nargs="+", default=["ground", "cpa", "br", "report"])
    p.add_argument("--work", default="docs/bench/back_reaction")
    p.add_argument("--runs", default="runs/bench/back_reaction")
    p.add_argument("--json", default="docs/bench/back_reaction.json")
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument("--equilibrate-fs", type=int, default=500)
    p.add_argument("--keep-fs", type=int, default=2000, help="ground-state frames kept (1 fs apart)")
    p.add_argument("--frames", type=int, default=10, help="initial frames")
    p.add_argument("--trajectories", type=int, default=5, help="per initial frame")
    p.add_argument("--time-fs", type=float, default=1000.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    work, runs = Path(a.work), Path(a.runs)
    work.mkdir(parents=True, exist_ok=True)
    frames = initial_frames(a.keep_fs, a.frames)
    if "ground" in a.stage:
        ground(work, a.temperature, a.equilibrate_fs, a.keep_fs, a.seed)
    if {"cpa", "br"} & set(a.stage):
        traj = trajectory_file(work, runs)
    if "cpa" in a.stage:
        cpa(traj, work, runs, frames, a.trajectories, a.time_fs, 1)
    if "br" in a.stage:
        br(traj, work, frames, a.trajectories, a.time_fs)
    if "report" in a.stage:
        report(work, Path(a.json), frames, a.trajectories)


if __name__ == "__main__":
    main()
