"""``n2amd demo``: the whole N2AMD pipeline with the bundled Si models (64-atom cell by default).

    1. MD     LAMMPS with the MLFF plugin (NVT equilibration, then NVE dumped every 1 fs step),
              or i-PI (``--md ipi``), or NNH forces (``--forces nnh``);
    2. NAMD couplings on N MPI ranks: NN Hamiltonian per snapshot (GFN1-xTB basis, float32), cross-time
              overlaps, phase-corrected NAC in a window of 4 valence + 4 conduction bands;
    3. dephasing (gap fluctuations) and DISH electron–hole recombination CBM → VBM (N MPI ranks);
    4. a summary table (averaged gap, dephasing time, RMS NAC, lifetime and its fit) and plots.

Every stage writes into the run folder and is skipped when its output is already there, so an interrupted
demo resumes where it stopped (each stage also checkpoints internally). Energies eV, times fs.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .models.io import BUNDLED

#: run lengths (fs) when not given: NNH forces cost seconds per MD step (an eigensolve and a backward pass)
LENGTHS_FS = {"mlff": {"nvt_fs": 500, "nve_fs": 2000, "namd_fs": 400},
              "nnh": {"nvt_fs": 50, "nve_fs": 200, "namd_fs": 200}}


#: the demo's levels: (bundled Hamiltonian, bundled MLFF, DISH run length in fs); the DFT levels run their MD on
#: the PBE force field, and their wider gaps need nanoseconds of DISH to see the recombination start
LEVELS = {"gfn1-xtb": ("si_hamiltonian.pt", "si_mlff.pt", 50000.0),
          "pbe": ("si_pbe_hamiltonian.pt", "si_pbe_mlff.pt", 1.0e7),
          "hse06": ("si_hse06_hamiltonian.pt", "si_pbe_mlff.pt", 1.0e7)}


@dataclass
class DemoSettings:
    """Defaults sized for ≤ 15 minutes on 2 cores; ``quick()`` for the tests."""

    md: str = "lammps"  # lammps | ipi
    forces: str = "mlff"  # mlff | nnh
    mlff: str = str(BUNDLED / "si_mlff.pt")
    nnh: str = str(BUNDLED / "si_nnh.pt")
    hamiltonian: str = str(BUNDLED / "si_hamiltonian.pt")
    structure: str | None = None  # any ASE-readable periodic structure; default the shipped Si64 cell
    temperature_K: float = 300.0
    nvt_fs: int | None = None  # None: LENGTHS_FS of the force route
    nve_fs: int | None = None
    md_dtype: str = "float32"  # MLFF precision in LAMMPS: the model is trained in float32; 2x faster than float64
    namd_fs: int | None = None  # length of the NVE segment the couplings are computed on (DISH reuses it head to tail)
    namd_stride: int = 1  # use every n-th dumped frame (dt = n fs)
    valence: int = 4
    conduction: int = 4
    initial_times: int = 10
    ntraj: int = 100
    namdtime_fs: float = 50000.0  # DISH run length: τ ~ 0.5 ns needs tens of ps to fit (0.3 s per ps here)
    ranks: int = 2

    @classmethod
    def at_level(cls, level: str, quick: bool = False, **kw) -> "DemoSettings":
        """Settings whose Hamiltonian and MLFF are the bundled models of ``level`` (LEVELS); an own MLFF
        (``mlff=``) replaces the level's; ``quick``: the tests' sizes."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        if kw.get("hamiltonian"):
            raise ValueError("give either a level or an own Hamiltonian model, not both")
        hamiltonian, mlff, namdtime_fs = LEVELS[level]
        kw["hamiltonian"] = str(BUNDLED / hamiltonian)
        kw.setdefault("mlff", str(BUNDLED / mlff))
        if quick:
            return cls.quick(**kw)
        return cls(**{"namdtime_fs": namdtime_fs, **kw})

    @classmethod
    def quick(cls, **kw) -> "DemoSettings":
        return cls(**{"nvt_fs": 20, "nve_fs": 40, "namd_fs": 30, "valence": 2, "conduction": 2, "initial_times": 3,
                      "ntraj": 20, "namdtime_fs": 30.0, **kw})

    def resolved(self) -> "DemoSettings":
        """A copy with the run lengths that were not given set to those of the force route."""
        if self.forces not in LENGTHS_FS:
            raise ValueError(f"forces must be one of {', '.join(LENGTHS_FS)}, not {self.forces!r}")
        return replace(self, **{k: v for k, v in LENGTHS_FS[self.forces].items() if getattr(self, k) is None})

    def system(self) -> str:
        """What the demo runs on, e.g. "Si64" (the start structure's formula)."""
        from ase.io import read

        from .md.launch import LAMMPS_INPUTS

        if self.structure:
            return read(self.structure).get_chemical_formula()
        return read(LAMMPS_INPUTS / "si64.data", format="lammps-data", atom_style="atomic",
                    Z_of_type={1: 14}).get_chemical_formula()


def _namd(args: list[str], ranks: int, cwd: Path) -> None:
    """``mpirun -n ranks python -m n2amd_driver.namd ...``; the progress bar of rank 0 shows through."""
    from .md.launch import module_command

    cmd, env = module_command(["n2amd_driver.namd", *args], ranks, threads_per_rank=1)
    r = subprocess.run(cmd, cwd=cwd, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"'{' '.join(args[:1])}' stage failed (exit {r.returncode}); re-run the demo to resume")


def _write_yaml(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_md(s: DemoSettings, folder: Path):
    from .md.launch import run_ipi, run_lammps

    model = s.nnh if s.forces == "nnh" else s.mlff
    if s.md == "lammps":
        return run_lammps(folder, model=model, nnh=s.forces == "nnh", temperature_K=s.temperature_K,
                          nvt_steps=s.nvt_fs, nve_steps=s.nve_fs, structure=s.structure,
                          threads=min(2, os.cpu_count() or 1), dtype=s.md_dtype)
    if s.md == "ipi":
        if s.structure:
            raise ValueError("the i-PI route of the demo runs the shipped Si64 cell; use --md lammps for --structure")
        return run_ipi(folder, mode="nvt", model=model, steps=s.nvt_fs + s.nve_fs, equilibration_steps=s.nvt_fs)
    raise ValueError(f"--md must be lammps or ipi, not {s.md!r}")


def run_demo(workdir: Path, settings: DemoSettings | None = None) -> dict:
    """Run (or resume) the demo in ``workdir``; returns the summary dict (also ``summary.json``)."""
    s = (settings or DemoSettings()).resolved()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    times_file = workdir / "stage_times.json"  # wall seconds of each finished stage, kept across resumes
    times: dict[str, float] = json.loads(times_file.read_text()) if times_file.exists() else {}

    def done(stage: str, t_start: float) -> None:
        """Record the wall time of a stage that ran now (a stage skipped on resume keeps its earlier time)."""
        times[stage] = time.time() - t_start
        times_file.write_text(json.dumps(times))

    system = s.system()
    print(f"[demo] N2AMD on {system} at {s.temperature_K:g} K ({s.forces} forces, {s.md}: {s.nvt_fs} fs NVT + "
          f"{s.nve_fs} fs NVE, couplings over {s.namd_fs} fs); run folder {workdir}", flush=True)
    # 1. MD
    md_dir = workdir / "md"
    traj_info = md_dir / "trajectory.json"
    t = time.time()
    if traj_info.exists():
        info = json.loads(traj_info.read_text())
        print(f"[demo] 1/3 MD: done before ({info['trajectory']})", flush=True)
    else:
        print(f"[demo] 1/3 MD ({s.md}, {s.forces} forces)", flush=True)
        run = run_md(s, md_dir)
        info = {"trajectory": str(run.trajectory), "format": run.format, "dt_fs": run.dt_fs,
                "first_frame": run.first_frame, "log": str(run.log)}
        traj_info.write_text(json.dumps(info, indent=2))
        done("md_s", t)
    # 2. couplings
    t = time.time()
    couplings = workdir / "couplings.h5"
    if not couplings.exists():
        print(f"[demo] 2/3 NAMD couplings on {s.ranks} MPI rank(s): {s.namd_fs} fs of the trajectory, "
              f"{s.valence}+{s.conduction} bands around the gap", flush=True)
        first = int(info["first_frame"])
        cfg = {"trajectory": info["trajectory"], "format": info["format"], "dt_fs": info["dt_fs"],
               "frames": {"start": first, "stop": first + s.namd_fs + 1, "step": s.namd_stride},
               "hamiltonian": {"model": s.hamiltonian, "dtype": "float32"},
               "window": {"valence": s.valence, "conduction": s.conduction}, "output": str(couplings),
               "exports": {"hefei": str(workdir / "hefei"), "pyxaid": None}, "plots": True}
        _namd(["couplings", str(_write_yaml(workdir / "couplings.yaml", cfg))], s.ranks, workdir)
        done("couplings_s", t)
    else:
        print("[demo] 2/3 couplings: done before", flush=True)
    # 3. dephasing + DISH recombination between VBM and CBM
    t = time.time()
    hop_dir = workdir / "dish"
    if not (hop_dir / "summary.txt").exists():
        print(f"[demo] 3/3 dephasing and DISH recombination CBM → VBM: {s.initial_times} initial times × "
              f"{s.ntraj} trajectories × {s.namdtime_fs:g} fs on {s.ranks} MPI rank(s)", flush=True)
        cfg = {"input": {"couplings": str(couplings)}, "states": [s.valence - 1, s.valence],  # VBM, CBM
               "method": "dish", "carrier": "electron", "temperature_K": s.temperature_K, "ntraj": s.ntraj,
               "namdtime_fs": s.namdtime_fs, "initial": {"times": s.initial_times, "state": "auto"},
               "record_every": max(1, int(s.namdtime_fs // 50000)),  # ≤ 50 000 recorded steps per run
               "plots": True, "output": str(hop_dir)}
        _namd(["hop", str(_write_yaml(workdir / "dish.yaml", cfg)), "-q"], s.ranks, workdir)
        done("dish_s", t)
    summary = _summary(workdir, info, couplings, hop_dir, s.valence - 1, times, sum(times.values()),
                       f"{system}, {level_title(s)}, {s.temperature_K:g} K")
    print(summary["table"], flush=True)
    (workdir / "summary.md").write_text(summary["table"] + "\n")
    record = {k: v for k, v in summary.items() if k != "table"}
    record.update(settings=asdict(s), cores=os.cpu_count(),
                  date_utc=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"))
    (workdir / "summary.json").write_text(json.dumps(record, indent=2))
    return summary


def _reference(model_path: str) -> str:
    """The reference method a model file was trained on (e.g. "GFN1-xTB"; an NNH file: its remainder's)."""
    from .models.io import read_model_file

    state = read_model_file(model_path)
    return (state["remainder"] if state["kind"] == "nnh" else state)["reference"]["method"]


def level_title(s: DemoSettings) -> str:
    """What the demo's models were trained on: "GFN1-xTB-trained models", or each model's level where they
    differ (a PBE Hamiltonian on MLFF trajectories at GFN1-xTB must not read as PBE NAMD throughout)."""
    forces = s.nnh if s.forces == "nnh" else s.mlff
    h, f = _reference(s.hamiltonian), _reference(forces)
    return f"{h}-trained models" if h == f else f"{h} Hamiltonian, {f} {s.forces.upper()} forces"


def _seconds(t: float | None) -> str:
    """A stage's wall time; a stage finished in a run folder from an older version has none recorded."""
    return "(not recorded)" if t is None else f"{t:.0f} s"


def _summary(workdir: Path, info: dict, couplings: Path, hop_dir: Path, iv: int, times: dict, total_s: float,
             title: str) -> dict:
    """The table of the demo's results; ``iv``: index of the VBM in the couplings window."""
    import h5py

    from .namd.couplings_file import read_couplings
    from .namd.lifetime import LifetimeFit

    c = read_couplings(couplings)
    series, vbm, cbm = c.series, c.vbm_eV, c.cbm_eV
    with h5py.File(hop_dir / "populations.h5") as f:
        tau = f["dephasing_fs"][()]
        fit, lin = (LifetimeFit(float(g.attrs["tau_fs"]), float(g.attrs["stderr_fs"]), tuple(g.attrs["window_fs"]),
                                kind) for kind, g in (("exponential", f["lifetime/exponential"]),
                                                      ("linear", f["lifetime/linear"])))
    n = series.nstates
    rms = series.rms_nac_meV()
    rows = [
        ("MD trajectory", f"{info['format']}, {Path(info['trajectory']).name}"),
        ("couplings", f"{series.energies.shape[0]} snapshots, dt = {series.dt_fs:g} fs, {n} bands"),
        ("averaged gap <CBM − VBM>", f"{np.mean(cbm - vbm):.3f} eV (σ {np.std(cbm - vbm) * 1000:.1f} meV)"),
        ("pure-dephasing time VBM–CBM", f"{tau[0, 1]:.2f} fs"),
        ("RMS NAC ħ|d| VBM–CBM", f"{rms[iv, iv + 1]:.4f} meV"),
        ("electron–hole recombination τ", fit.text()),
        ("", lin.text()),
        ("wall time", ", ".join(f"{name} {_seconds(times.get(key))}" for name, key in
                                (("MD", "md_s"), ("couplings", "couplings_s"), ("DISH", "dish_s")))
         + f", total {total_s:.0f} s"),
    ]
    plots = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*.png"))
    w = max(len(k) for k, _ in rows)
    table = "\n".join(["", f"N2AMD demo — {title}", "-" * (w + 50)]
                      + [f"{k:{w}s}  {v}" for k, v in rows] + ["-" * (w + 50), "plots: " + ", ".join(plots),
                                                                f"folder: {workdir}"])
    return {"table": table, "gap_eV": float(np.mean(cbm - vbm)), "dephasing_fs": float(tau[0, 1]),
            "rms_nac_meV": float(rms[iv, iv + 1]), "lifetime_fs": fit.tau_fs,
            "lifetime_stderr_fs": fit.stderr_fs, "lifetime_linear_fs": lin.tau_fs, "plots": plots, **times, "total_s": total_s}
