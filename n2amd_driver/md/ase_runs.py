"""Short ASE MD runs that judge a force model: NVE energy drift and time to failure.

Both take any ASE calculator (the package's :class:`~n2amd_driver.calculator.N2AMDCalculator` or a
reference engine). Units: temperature K, time fs, energies eV.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms, units


@dataclass
class NVEResult:
    time_fs: np.ndarray
    total_eV: np.ndarray  # total energy per atom (eV/atom)
    temperature_K: np.ndarray
    drift_meV_atom_ps: float  # slope of a straight-line fit of the total energy per atom
    fluctuation_meV_atom: float  # standard deviation of the total energy per atom about that line
    stopped: str = ""  # why the run ended before its length (e.g. the temperature ran away), else ""

    def as_dict(self) -> dict:
        return {"drift_meV_atom_ps": self.drift_meV_atom_ps, "fluctuation_meV_atom": self.fluctuation_meV_atom,
                "mean_temperature_K": float(np.mean(self.temperature_K)), "duration_ps": float(self.time_fs[-1] / 1000),
                "stopped": self.stopped}


def nve_drift(atoms: Atoms, calc, temperature_K: float = 300.0, steps: int = 5000, dt_fs: float = 1.0,
              every: int = 10, seed: int = 0, progress: bool = False, checkpoint: str | Path | None = None,
              checkpoint_every: int = 100, max_temperature_K: float | None = None,
              observe: Callable[[Atoms, int], None] | None = None) -> NVEResult:
    """Velocity-Verlet NVE from Maxwell–Boltzmann velocities at ``temperature_K`` (zero total momentum).

    ``checkpoint``: an .npz file written every ``checkpoint_every`` steps (positions Å, momenta, step, the
    energies recorded so far); a run started again with the same file and settings carries on from it and
    gives the trajectory of an uninterrupted run (velocity Verlet needs only positions and momenta).
    ``max_temperature_K``: stop early (``stopped`` says why) when the temperature exceeds it — energy can
    be conserved while a model's surface runs downhill into unphysical structures. ``observe(atoms, step)``
    is called at every record (after a resume: from the resumed step on)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet
    from tqdm.auto import tqdm

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    md = VelocityVerlet(atoms, dt_fs * units.fs)
    n = len(atoms)
    t, e, T = [], [], []
    settings = np.array([n, temperature_K, dt_fs, every, seed], float)

    def record():
        t.append(md.nsteps * dt_fs)
        e.append(atoms.get_total_energy() / n)
        T.append(atoms.get_temperature())
        if observe is not None:
            observe(atoms, md.nsteps)

    def save():
        tmp = Path(f"{checkpoint}.tmp.npz")
        np.savez(tmp, settings=settings, numbers=atoms.numbers, cell=atoms.cell[:], positions=atoms.positions,
                 momenta=atoms.get_momenta(), nsteps=md.nsteps, t=t, e=e, T=T)
        os.replace(tmp, checkpoint)  # never a half-written checkpoint

    if checkpoint is not None and Path(checkpoint).exists():
        with np.load(checkpoint) as c:
            if not (np.array_equal(c["settings"], settings) and np.array_equal(c["numbers"], atoms.numbers)
                    and np.allclose(c["cell"], atoms.cell[:])):
                raise ValueError(f"checkpoint {checkpoint} belongs to another NVE run (atoms, cell, temperature, "
                                 "dt, record interval or seed differ); remove it to start afresh")
            atoms.positions, md.nsteps = c["positions"], int(c["nsteps"])
            atoms.set_momenta(c["momenta"])
            t, e, T = list(c["t"]), list(c["e"]), list(c["T"])
    else:
        record()
    bar = tqdm(total=steps, initial=md.nsteps, desc="NVE", unit="step", disable=not progress)
    stopped = ""
    while md.nsteps < steps and not stopped:
        md.run(min(every, steps - md.nsteps))
        record()
        bar.update(md.nsteps - bar.n)
        if not np.isfinite(e[-1]):
            stopped = f"non-finite energy at {t[-1]:g} fs"
        elif max_temperature_K is not None and T[-1] > max_temperature_K:
            stopped = f"temperature {T[-1]:.0f} K > {max_temperature_K:g} K at {t[-1]:g} fs"
        if checkpoint is not None and (md.nsteps % checkpoint_every < every or md.nsteps >= steps or stopped):
            save()
    bar.close()
    t, e = np.array(t), np.array(e)
    slope, icpt = np.polyfit(t / 1000, e, 1)
    return NVEResult(t, e, np.array(T), 1000 * float(slope), 1000 * float(np.std(e - (slope * t / 1000 + icpt))),
                     stopped)


@dataclass
class FailureResult:
    time_fs: float  # time of failure, or the run length if none
    failed: bool
    reason: str = ""
    log: list = field(default_factory=list)


def time_to_failure(atoms: Atoms, calc, temperature_K: float, max_fs: float = 5000.0, dt_fs: float = 1.0,
                    friction_per_fs: float = 0.01, min_distance_A: float = 1.8, temperature_tolerance: float = 0.5,
                    window_fs: float = 100.0, seed: int = 0) -> FailureResult:
    """Langevin MD at ``temperature_K`` until the model fails (the Allegro-Legato stability test):
    two atoms closer than ``min_distance_A``, a window-averaged temperature off by more than
    ``temperature_tolerance`` × T0 (the thermostat cannot hold unphysical forces), or non-finite forces."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.neighborlist import neighbor_list

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    md = Langevin(atoms, dt_fs * units.fs, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                  fixcm=False,
                  rng=np.random.default_rng(seed + 1))
    every = max(1, int(round(window_fs / dt_fs / 10)))
    temps: list[float] = []
    log = []
    while md.nsteps * dt_fs < max_fs:
        try:
            md.run(every)
        except FloatingPointError as exc:
            return FailureResult(md.nsteps * dt_fs, True, f"non-finite forces: {exc}", log)
        temps.append(atoms.get_temperature())
        i, d = neighbor_list("id", atoms, min_distance_A)
        now = md.nsteps * dt_fs
        Tw = float(np.mean(temps[-10:]))
        log.append((now, Tw))
        if len(i):
            return FailureResult(now, True, f"atoms closer than {min_distance_A} Å ({d.min():.2f} Å)", log)
        if len(temps) >= 10 and abs(Tw - temperature_K) > temperature_tolerance * temperature_K:
            return FailureResult(now, True, f"temperature {Tw:.0f} K over {window_fs:.0f} fs vs {temperature_K:.0f} K",
                                 log)
    return FailureResult(md.nsteps * dt_fs, False, "", log)
