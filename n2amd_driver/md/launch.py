"""``n2amd md``: run LAMMPS or i-PI with the package's models on the shipped inputs, in a run folder.

LAMMPS: ``in.n2amd`` (MLFF, ``pair_style n2amd``) or ``in.n2amd_nnh`` (NNH forces, ``fix n2amd``) with
the run's settings passed as ``-var`` values: Nosé–Hoover NVT equilibration, then NVE dumped every step
(``dump custom``: id, element, unwrapped positions Å, velocities Å/ps), named after the start structure
(``si64_nve.dump``).
i-PI: ``input_{nvt,nve,pimd}.xml`` with the step count, seed and a private socket name written into a
copy, i-PI plus N drivers started by ``run_ipi.sh`` (positions Å in ``*.pos_0.xyz``).
The inputs are package data (:data:`LAMMPS_INPUTS`, :data:`IPI_CONFIGS`); the repository's top-level
``lammps_inputs/`` and ``ipi_configs/`` are links to the same files.
Both write their full logs into the run folder and raise with the engine's own error line on failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INPUTS = Path(__file__).resolve().parent / "inputs"
LAMMPS_INPUTS = INPUTS / "lammps"
IPI_CONFIGS = INPUTS / "ipi"


@dataclass
class MDRun:
    """What an MD launch produced: the trajectory for ``namd couplings`` and how to read it."""

    trajectory: Path
    format: str  # lammps-dump | ipi-xyz
    dt_fs: float
    first_frame: int  # frames before this one are equilibration
    log: Path


def executable(name: str) -> str:
    """``name`` from this interpreter's environment (the venv), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"'{name}' is not installed (run scripts/setup.sh)")
    return found


def module_command(args: list[str], ranks: int = 1, threads_per_rank: int | None = None) -> tuple[list[str], dict]:
    """``[mpirun -n ranks] python -m ARGS`` with this interpreter, and its environment: ``threads_per_rank``
    threads for OpenMP and torch in each process (default: 1 on several ranks, else as inherited)."""
    cmd = ([executable("mpirun"), "-n", str(ranks)] if ranks > 1 else []) + [sys.executable, "-m", *args]
    threads = threads_per_rank if threads_per_rank is not None else (1 if ranks > 1 else None)
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), N2AMD_THREADS=str(threads))
    return cmd, env


def _stream(cmd: list[str], cwd: Path, log: Path, keep, env=None) -> int:
    """Run ``cmd``, print the lines ``keep`` selects (progress), write everything to ``log``."""
    with open(log, "w") as f, subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               text=True, env=env) as p:
        for line in p.stdout:
            f.write(line)
            if keep(line):
                print("  " + line.rstrip(), flush=True)
    return p.returncode


def run_lammps(workdir: Path, *, model: str = "si_mlff.pt", nnh: bool = False, temperature_K: float = 300.0,
               nvt_steps: int = 1000, nve_steps: int = 2000, ranks: int = 1, seed: int = 4928459,
               data: str | None = None, structure: str | None = None, threads: int | None = None,
               dtype: str = "float64", repeat=None) -> MDRun:
    """LAMMPS MD with a package model (1 fs steps); returns the NVE trajectory (every step).

    ``dtype``: precision of the MLFF inside LAMMPS (float32: ~2× faster; the bundled MLFF is trained in
    float32 and conserves energy in float32 NVE). The start structure: ``data`` (a LAMMPS data file of Si), ``structure`` (any file ASE reads; written
    as a data file with one atom type per element, alphabetical), or the shipped 64-atom Si cell;
    ``repeat`` = (nx, ny, nz) makes a supercell of it (large cells for NAMD at size)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    elements, label = ["Si"], "si64"
    if repeat is not None and not structure:  # repeat the data file or the shipped cell
        structure = data or str(LAMMPS_INPUTS / "si64.data")
    if structure:
        start = _read(structure)
        data = str(write_data_file(start, workdir / "structure.data", repeat))
        if repeat is not None:
            start = start.repeat(tuple(int(r) for r in repeat))
        elements, label = sorted(set(start.get_chemical_symbols())), start.get_chemical_formula().lower()
    elif data:
        label = Path(data).stem
    src = LAMMPS_INPUTS / ("in.n2amd_nnh" if nnh else "in.n2amd")
    shutil.copy(src, workdir / src.name)
    model_arg = str(Path(model).resolve()) if Path(model).exists() else model  # bundled names stay names
    dump = workdir / f"{label}_{'nnh' if nnh else 'nve'}.dump"
    variables = {"model": model_arg, "data": str(Path(data).resolve()) if data else str(LAMMPS_INPUTS / "si64.data"),
                 "elements": " ".join(elements), **({} if nnh else {"dtype": dtype}),
                 "T": temperature_K, "nvt_steps": nvt_steps, "nve_steps": nve_steps, "dump": dump.name, "seed": seed}
    cmd = ([executable("mpirun"), "-n", str(ranks)] if ranks > 1 else []) + [executable("lmp"), "-in", src.name,
                                                                             "-log", "log.lammps"]
    for k, v in variables.items():
        cmd += ["-var", k, str(v)]
    env = dict(os.environ)
    if threads:
        env["N2AMD_THREADS"] = str(threads)
    (workdir / "run_lammps.sh").write_text("#!/bin/sh\n# how this run was started (from this folder)\n"
                                           + " ".join(_quote(c) for c in cmd)
                                           + "\n")
    print(f"[md] LAMMPS {'NNH' if nnh else 'MLFF'} MD of {label}: {nvt_steps} fs NVT at {temperature_K:g} K, then "
          f"{nve_steps} fs NVE dumped every step ({ranks} rank(s)); log {workdir / 'log.lammps'}", flush=True)
    thermo = re.compile(r"^\s*(Step|\d+)\s")
    rc = _stream(cmd, workdir, workdir / "lammps.out", lambda line: bool(thermo.match(line)) or "ERROR" in line)
    log = workdir / "log.lammps"
    if rc != 0:
        text = log.read_text() if log.exists() else ""
        err = [ln for ln in text.splitlines() if "ERROR" in ln]
        raise RuntimeError(f"LAMMPS failed (exit {rc}): {err[-1] if err else 'see ' + str(log)}")
    return MDRun(dump, "lammps-dump", 1.0, 0, log)


@dataclass
class ThermoTable:
    """One ``run`` of a LAMMPS thermo output: columns by header name (LAMMPS units), and the loop time."""

    columns: dict
    loop_s: float | None = None  # "Loop time of X on N procs for M steps"
    steps: int | None = None


def thermo_tables(text: str) -> list[ThermoTable]:
    """The thermo tables of a LAMMPS log or screen output, one per 'Step' header, in order. Rows are the
    numeric lines as wide as the header (warnings in between are skipped); a table ends at its loop time."""
    import numpy as np

    tables, header, rows = [], None, []

    def close(loop_s=None, steps=None):
        tables.append(ThermoTable({c: np.array([r[k] for r in rows]) for k, c in enumerate(header)}, loop_s, steps))

    for line in text.splitlines():
        w = line.split()
        if w[:1] == ["Step"]:
            if header:
                close()
            header, rows = w, []
        elif header and w[:2] == ["Loop", "time"]:
            m = re.search(r"Loop time of (\S+) on \d+ procs for (\d+) steps", line)
            close(float(m.group(1)), int(m.group(2))) if m else close()
            header = None
        elif header and len(w) == len(header):
            try:
                rows.append([float(x) for x in w])
            except ValueError:
                pass
    if header:
        close()
    return tables


def _read(path):
    import ase.io

    if str(path).endswith(".data"):  # LAMMPS data files (the shipped Si64): atomic style, metal units
        return ase.io.read(path, format="lammps-data", atom_style="atomic", units="metal")
    return ase.io.read(path)


def write_data_file(structure, out: Path, repeat=None) -> Path:
    """A LAMMPS data file (atomic, metal units, masses) of any structure ASE reads (or an Atoms), repeated
    ``repeat`` = (nx, ny, ny) times if given; types by element, A→Z."""
    import ase.io

    atoms = structure.copy() if hasattr(structure, "positions") else _read(structure)
    if repeat is not None:
        if len(repeat) != 3 or min(int(r) for r in repeat) < 1:
            raise ValueError(f"repeat must be three positive integers, not {list(repeat)}")
        atoms = atoms.repeat(tuple(int(r) for r in repeat))
    if not all(atoms.pbc):
        raise ValueError(f"{structure}: the MD inputs are for periodic cells (pbc = {atoms.pbc.tolist()})")
    ase.io.write(out, atoms, format="lammps-data", specorder=sorted(set(atoms.get_chemical_symbols())),
                 masses=True, units="metal", atom_style="atomic")
    return out


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[\w./=:+-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def run_ipi(workdir: Path, *, mode: str = "nvt", model: str = "si_mlff.pt", steps: int = 3000,
            equilibration_steps: int = 1000, drivers: int = 1, seed: int = 31415) -> MDRun:
    """i-PI MD (1 fs steps; nvt: SVR thermostat throughout, nve, or pimd) with ``drivers`` n2amd drivers."""
    if mode not in ("nvt", "nve", "pimd"):
        raise ValueError(f"i-PI mode must be nvt, nve or pimd, not {mode!r}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    xml = (IPI_CONFIGS / f"input_{mode}.xml").read_text()
    address = f"n2amd_{os.getpid()}"
    xml = re.sub(r"<total_steps>\s*\d+\s*</total_steps>", f"<total_steps> {steps} </total_steps>", xml)
    xml = re.sub(r"<seed>\s*\d+\s*</seed>", f"<seed> {seed} </seed>", xml)
    xml = re.sub(r"<address>[^<]*</address>", f"<address> {address} </address>", xml)
    (workdir / "input.xml").write_text(xml)
    for f in ("si64.xyz", "si8.xyz"):
        shutil.copy(IPI_CONFIGS / f, workdir / f)
    model_arg = str(Path(model).resolve()) if Path(model).exists() else model
    prefix = re.search(r'<output prefix="([^"]+)"', xml).group(1)
    print(f"[md] i-PI {mode.upper()} MD: {steps} fs with {drivers} n2amd driver(s); log {workdir / 'input.log'}",
          flush=True)
    env = dict(os.environ, N2AMD_PYTHON=sys.executable)
    rc = _stream(["bash", str(IPI_CONFIGS / "run_ipi.sh"), "input.xml", str(drivers), model_arg], workdir,
                 workdir / "ipi.out", lambda line: "[run_ipi]" in line or "rror" in line, env=env)
    if rc != 0:
        raise RuntimeError(f"i-PI failed (exit {rc}); see {workdir / 'input.log'} and {workdir / 'ipi.out'}")
    return MDRun(workdir / f"{prefix}.pos_0.xyz", "ipi-xyz", 1.0, equilibration_steps if mode == "nvt" else 0,
                 workdir / "input.log")
