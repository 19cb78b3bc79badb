"""Sampling configurations the way the field does: snapshots of finite-temperature MD of strained
cells, driven by a cheap classical potential shipped with LAMMPS (Tersoff for Si, BOP for GaAs) or by
one of the package's models (LAMMPS for MLFFs, ASE for whole-system models such as NNH forces: active
learning), plain random displacements where no potential fits, or the frames of another dataset (to
label the same structures at another level of theory).

All settings live in the ``system`` and ``sampling`` sections of a generation config
(:data:`n2amd_driver.reference_data.DEFAULTS` documents them). Sampling is deterministic for a
given seed.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..data.structures import build_system, strain_cell

@dataclass
class Sample:
    atoms: Atoms
    source: str  # how it was made, stored with the frame


def md_schedule(sampling: dict) -> tuple[float, int, int]:
    """Time step (fs), equilibration and snapshot interval (steps) of a sampling MD run."""
    dt_fs = float(sampling.get("timestep_fs", 1.0))
    return (dt_fs, int(round(float(sampling.get("equilibration_fs", 2000)) / dt_fs)),
            int(round(float(sampling.get("interval_fs", 200)) / dt_fs)))


def md_samples(base: Atoms, temperature: float, strain: float, n_frames: int, sampling: dict,
               seed: int) -> list[Sample]:
    """``n_frames`` snapshots of Langevin MD at ``temperature`` (K) of the strained ``base`` cell."""
    from .lammps_library import atoms_from_lammps, load_atoms, open_lammps, potential_commands

    rng = np.random.default_rng(seed)
    cell = strain_cell(base, strain, float(sampling.get("shear_std", 0.0)), rng)
    elements = sorted(set(cell.get_chemical_symbols()), key=cell.get_chemical_symbols().index)
    dt_fs, equil, interval = md_schedule(sampling)
    lmp = open_lammps()
    out = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            load_atoms(lmp, cell, elements, tmp)
        for c in potential_commands(elements, sampling.get("potential", "auto")):
            lmp.command(c)
        lmp_seed = int(rng.integers(1, 900_000_000))  # Marsaglia RNG needs seeds < 900 000 000
        lmp.command(f"timestep {dt_fs / 1000.0}")  # metal units: ps
        lmp.command(f"velocity all create {temperature} {lmp_seed} mom yes rot no dist gaussian")
        lmp.command("fix nve all nve")
        lmp.command(f"fix bath all langevin {temperature} {temperature} 0.1 {lmp_seed + 1} zero yes")
        lmp.command(f"run {equil}")
        for k in range(n_frames):
            lmp.command(f"run {interval}")
            atoms = atoms_from_lammps(lmp, elements)
            out.append(Sample(atoms, f"md T={temperature:g}K strain={strain:+.4f} step={equil + (k + 1) * interval} "
                                     f"seed={seed}"))
    finally:
        lmp.close()
    return out


def ase_md_samples(base: Atoms, temperature: float, strain: float, n_frames: int, sampling: dict,
                   seed: int) -> list[Sample]:
    """Like :func:`md_samples`, but Langevin MD in ASE with one of the package's own models
    (``potential: {model: FILE}``): whole-system models such as NNH forces, which LAMMPS pair styles
    cannot host. Same friction as the LAMMPS runs (damping time 100 fs)."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from ..models.calculator import N2AMDCalculator

    potential = sampling.get("potential")
    if not (isinstance(potential, dict) and "model" in potential):
        raise ValueError("sampling.method: ase-md needs sampling.potential: {model: FILE} (an n2amd model file)")
    rng = np.random.default_rng(seed)
    atoms = strain_cell(base, strain, float(sampling.get("shear_std", 0.0)), rng)
    atoms.calc = N2AMDCalculator(potential["model"])
    dt_fs, equil, interval = md_schedule(sampling)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())  # the centre of mass stays put, as LAMMPS' 'zero yes' keeps it
    dyn = Langevin(atoms, dt_fs * units.fs, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False,
                   rng=np.random.default_rng(int(rng.integers(1 << 31))))
    dyn.run(equil)
    out = []
    for k in range(n_frames):
        dyn.run(interval)
        snap = atoms.copy()
        snap.calc = None
        snap.set_constraint()
        snap.wrap()
        out.append(Sample(snap, f"ase-md T={temperature:g}K strain={strain:+.4f} step={equil + (k + 1) * interval} "
                                f"seed={seed} model={Path(str(potential['model'])).name}"))
    return out


def rattle_samples(base: Atoms, temperature: float, strain: float, n_frames: int, sampling: dict,
                   seed: int) -> list[Sample]:
    """Random Gaussian displacements (``rattle_std`` Å, scaled by sqrt(T/300 K)) of the strained cell."""
    rng = np.random.default_rng(seed)
    out = []
    std = float(sampling.get("rattle_std", 0.08)) * np.sqrt(max(temperature, 1.0) / 300.0)
    for k in range(n_frames):
        atoms = strain_cell(base, strain, float(sampling.get("shear_std", 0.0)), rng)
        atoms.positions += rng.normal(scale=std, size=atoms.positions.shape)
        atoms.wrap()
        out.append(Sample(atoms, f"rattle T={temperature:g}K strain={strain:+.4f} std={std:.3f}A seed={seed} k={k}"))
    return out


def sample_configurations(system: dict, sampling: dict, progress: bool = True, workers: int = 1) -> list[Sample]:
    """All configurations of a generation job: for each temperature × strain, ``frames_per_condition``.
    Each condition has its own seed, so ``workers`` > 1 (``ase-md`` only: one process per condition, one
    torch thread each; NNH steps take ~1 s) gives the same configurations as one."""
    from tqdm.auto import tqdm

    method = sampling.get("method", "md")
    if method == "dataset":
        return dataset_samples(sampling.get("dataset"))
    base = build_system(system)
    sampler = {"md": md_samples, "ase-md": ase_md_samples, "rattle": rattle_samples}.get(method)
    if sampler is None:
        raise ValueError(f"sampling.method must be 'md', 'ase-md', 'rattle' or 'dataset', got '{method}'")
    conditions = [(float(T), float(s)) for T in sampling["temperatures"] for s in sampling["strains"]]
    seed0 = int(sampling.get("seed", 0))
    jobs = [(sampler, base, T, s, int(sampling["frames_per_condition"]), sampling, seed0 * 1000 + c)
            for c, (T, s) in enumerate(conditions)]
    bar = dict(desc=f"sampling ({method})", unit="cond", total=len(jobs), disable=not progress)
    if workers <= 1 or len(jobs) == 1 or method != "ase-md":  # LAMMPS runs and rattling are quick
        per_condition = [_run_sampler(job) for job in tqdm(jobs, **bar)]
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                                 initializer=_one_thread) as pool:
            per_condition = list(tqdm(pool.map(_run_sampler, jobs), **bar))  # map keeps the order
    return [sample for samples in per_condition for sample in samples]


def dataset_samples(path) -> list[Sample]:
    """The structures of every frame of an n2amd dataset, in frame order (labelled or not): the same
    frames labelled at another level of theory."""
    from ..data import h5format

    if not path:
        raise ValueError("sampling.method 'dataset' needs sampling.dataset: the n2amd dataset to take frames from")
    with h5format.open_dataset(path) as f:
        ids = h5format.frame_ids(f, None)
        if not ids:
            raise ValueError(f"{path}: the dataset has no frames to take")
        return [Sample(h5format.read_atoms(f["frames"][h5format.frame_key(i)]), f"{Path(path).name} frame {i}")
                for i in ids]


def _run_sampler(job) -> list[Sample]:
    sampler, *args = job
    return sampler(*args)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
