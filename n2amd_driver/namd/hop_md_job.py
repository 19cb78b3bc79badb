"""``python -m n2amd_driver.namd hop-md config.yaml``: surface hopping with back-reaction (:mod:`.back_reaction`)
from the frames of a ground-state MD trajectory.

Every (initial frame, trajectory) pair is one unit of work with its own random generator, seeded from
(seed, frame, trajectory), so results do not depend on the number of MPI ranks; units are dealt to the
ranks in contiguous shares. Each unit is checkpointed every ``checkpoint_every`` steps into
``<output>/trajectories/`` (its state and everything it has recorded); re-running the same command
resumes from there, also with another number of ranks. Rank 0 writes ``results.npz`` (per trajectory
and step: active state, energies, populations), ``summary.json`` and ``hop_md.png``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..core.checkpoint import atomic_write, save_npz
from ..core.parallel import chunk, world
from .back_reaction import HoppingTrajectory, Settings, SurfaceHopping


def _schema():
    from typing import Literal

    from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

    from ..core.config import section_base

    Section = section_base()

    class Initial(Section):
        trajectory: str | None = Field(None, description="ground-state MD with velocities (extxyz, LAMMPS dump, i-PI "
                                                         "xyz): its frames are the initial conditions (required)")
        format: str | None = Field(None, description="trajectory format (null: guessed)")
        frames: PositiveInt | list[NonNegativeInt] = Field(
            10, description="number of initial frames spread evenly over the trajectory, or a list of frame indices")
        state: Literal["top", "bottom"] | NonNegativeInt = Field(
            "top", description="initial window state: top (highest in the carrier's sense), bottom, or an index")

    class HopMD(Section):
        model: str | None = Field(None, description="an NNH model file (path or bundled name, e.g. si_nnh.pt; "
                                                    "required)")
        initial: Initial = Field(default_factory=Initial)
        trajectories: PositiveInt = Field(5, description="stochastic trajectories per initial frame")
        carrier: Literal["electron", "hole"] = Field(
            "electron", description="electron: window CBM..CBM+n−1, hole at the VBM; hole: window VBM−n+1..VBM, "
                                    "electron at the CBM")
        states: PositiveInt = Field(6, description="window states")
        dt_fs: PositiveFloat = Field(1.0, description="fs, MD time step")
        time_fs: PositiveFloat = Field(1000.0, description="fs of dynamics per trajectory")
        nelm: PositiveInt = Field(10, description="electronic sub-steps per MD step")
        hopping: bool = Field(True, description="false: the nuclei stay on the initial surface (NNH MD + TDKS)")
        back_reaction: bool = Field(
            True, description="false: the nuclei move on the ground-state surface (classical path approximation); "
                              "hops then use the Boltzmann factor and leave the velocities alone")
        decoherence: Literal["edc", "none"] = Field(
            "edc", description="edc: energy-based decoherence correction (Granucci-Persico, C = 0.1 hartree); none")
        temperature_K: PositiveFloat = Field(300.0, description="K, of the Boltzmann factors (back_reaction: false "
                                                                "only)")
        seed: int = Field(0, description="random seed (results do not depend on the number of ranks)")
        threads: PositiveInt = Field(1, description="torch threads per rank")
        checkpoint_every: PositiveInt = Field(20, description="MD steps between checkpoints of a trajectory")
        plots: bool = Field(True, description="write hop_md.png (populations, carrier energy, total energy)")
        output: str = Field("hop_md", description="output folder")

    return HopMD


SCHEMA = _schema()
DEFAULTS: dict = SCHEMA().model_dump()
#: keys that do not change the dynamics (a checkpoint stays valid when they change)
_NOT_PHYSICS = ("output", "plots", "threads", "checkpoint_every", "trajectories", "time_fs")


def load_config(path=None, overrides: dict | None = None) -> dict:
    from ..core.config import load_validated

    return load_validated(SCHEMA, path, overrides, relative_paths=("initial.trajectory",))


def settings_of(cfg: dict) -> Settings:
    return Settings(carrier=cfg["carrier"], nstates=cfg["states"], dt_fs=cfg["dt_fs"], nelm=cfg["nelm"],
                    hopping=cfg["hopping"], back_reaction=cfg["back_reaction"], decoherence=cfg["decoherence"],
                    temperature_K=cfg["temperature_K"])


def _fingerprint(cfg: dict, model_path: str) -> str:
    physics = {k: v for k, v in cfg.items() if k not in _NOT_PHYSICS}
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
    return hashlib.sha256(json.dumps([physics, digest], sort_keys=True).encode()).hexdigest()[:16]


def initial_frames(cfg: dict):
    """The initial frames (positions Å, velocities Å/fs) and their indices in the trajectory."""
    from ..data.trajectory import VELOCITY_KEY, read_trajectory, unwrap

    src = cfg["initial"]["trajectory"]
    if not src:
        raise ValueError("initial.trajectory is required: a ground-state MD trajectory with velocities")
    frames = unwrap(read_trajectory(src, cfg["initial"]["format"]))
    if any(VELOCITY_KEY not in f.arrays for f in frames):
        raise ValueError(f"{src}: the trajectory has no velocities; the initial conditions need them")
    sel = cfg["initial"]["frames"]
    idx = (np.linspace(0, len(frames) - 1, sel).round().astype(int) if isinstance(sel, int)
           else np.asarray(sel, int))
    if np.any(idx >= len(frames)):
        raise ValueError(f"initial.frames {idx.tolist()} outside the {len(frames)} frames of {src}")
    return idx, [frames[i] for i in idx]


def _initial_state(cfg: dict) -> int:
    st, n = cfg["initial"]["state"], cfg["states"]
    top = n - 1 if cfg["carrier"] == "electron" else 0
    if st == "top":
        return top
    if st == "bottom":
        return n - 1 - top
    if st >= n:
        raise ValueError(f"initial.state {st} outside the {n}-state window")
    return int(st)


# ---- one trajectory ------------------------------------------------------------------------------
_RECORDS = ("active", "total_eV", "kinetic_eV", "potential_eV", "populations", "energies")


def _record(sh: SurfaceHopping, tr: HoppingTrajectory, rec: dict) -> None:
    rec["active"].append(tr.active)
    rec["kinetic_eV"].append(sh.kinetic_eV(tr.velocities))
    rec["potential_eV"].append(tr.potential_eV)
    rec["total_eV"].append(rec["kinetic_eV"][-1] + tr.potential_eV)
    rec["populations"].append(np.abs(tr.c) ** 2)
    rec["energies"].append(tr.energies.copy())


def _save(path: Path, tr: HoppingTrajectory, rec: dict, fingerprint: str, nsteps: int) -> None:
    save_npz(path, positions=tr.positions, velocities=tr.velocities, forces=tr.forces, potential=tr.potential_eV,
             c=tr.c, active=tr.active, energies=tr.energies, states=tr.states, step=tr.step,
             rng=json.dumps(tr.rng.bit_generator.state), hops=json.dumps(tr.hops), frustrated=tr.frustrated,
             coupling=np.zeros((0, 0)) if tr.coupling is None else tr.coupling, fingerprint=fingerprint, nsteps=nsteps,
             **{f"rec_{k}": np.asarray(v) for k, v in rec.items()})


def _load(path: Path, fingerprint: str) -> tuple[HoppingTrajectory, dict] | None:
    z = np.load(path)
    if str(z["fingerprint"]) != fingerprint:
        raise ValueError(f"{path} was written with other settings or another model; remove "
                         f"{path.parent} to start again, or give another output folder")
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(str(z["rng"]))
    tr = HoppingTrajectory(z["positions"], z["velocities"], z["forces"], float(z["potential"]), z["c"],
                           int(z["active"]), z["energies"], z["states"], rng, int(z["step"]),
                           json.loads(str(z["hops"])), int(z["frustrated"]),
                           z["coupling"] if z["coupling"].size else None)
    rec = {k: list(z[f"rec_{k}"]) for k in _RECORDS}
    return tr, rec


def run_unit(sh: SurfaceHopping, frame, active: int, seed, nsteps: int, path: Path, fingerprint: str,
             checkpoint_every: int, bar=None) -> None:
    """Run (or resume) one trajectory to ``nsteps`` steps, checkpointing into ``path`` (a longer ``time_fs``
    continues finished trajectories)."""
    from ..data.trajectory import VELOCITY_KEY

    if path.exists():
        tr, rec = _load(path, fingerprint)
    else:
        tr = sh.start(frame.positions, frame.arrays[VELOCITY_KEY], active, seed)
        rec = {k: [] for k in _RECORDS}
        _record(sh, tr, rec)
    if bar is not None:
        bar.update(tr.step)
    while tr.step < nsteps:
        sh.step(tr)
        _record(sh, tr, rec)
        if bar is not None:
            bar.update(1)
        if tr.step % checkpoint_every == 0 or tr.step == nsteps:
            _save(path, tr, rec, fingerprint, nsteps)


# ---- the job -------------------------------------------------------------------------------------
def run_hop_md(cfg: dict, progress: bool = True) -> dict | None:
    """Run (or resume) the job; rank 0 returns the summary, other ranks None."""
    import torch

    from ..models.io import load_force_model, resolve_model_path
    from ..models.nnh import NNHModel

    ranks = world()
    out = Path(cfg["output"])
    tdir = out / "trajectories"
    torch.set_num_threads(cfg["threads"])
    t0 = time.time()

    def kept():
        n = len(list(tdir.glob("*.npz"))) if tdir.is_dir() else 0
        return f"{n} trajectory checkpoint(s) are kept in {tdir}; re-run the same command to resume" if n else None

    with ranks.stop_all_on_error("namd hop-md", kept):
        if not cfg["model"]:
            raise ValueError("model is required: an NNH model file (e.g. si_nnh.pt)")
        model_path = str(resolve_model_path(cfg["model"]))
        model = load_force_model(model_path, "cpu", None)
        if not isinstance(model, NNHModel):
            raise ValueError(f"{cfg['model']}: surface hopping with back-reaction needs an NNH model (forces from "
                             "the Hamiltonian), not an MLFF")
        settings = settings_of(cfg)
        idx, frames = initial_frames(cfg)
        active = _initial_state(cfg)
        nsteps = int(round(cfg["time_fs"] / cfg["dt_fs"]))
        fingerprint = _fingerprint(cfg, model_path)
        units = [(f, k) for f in range(len(frames)) for k in range(cfg["trajectories"])]
        mine = chunk(len(units), ranks.rank, ranks.size)
        sh = SurfaceHopping(model, frames[0], settings)
        bar = _bar(progress and ranks.rank == 0, len(mine) * nsteps)
        for u in mine:
            f, k = units[u]
            path = tdir / f"frame{idx[f]:05d}_traj{k:03d}.npz"
            run_unit(sh, frames[f], active, [cfg["seed"], int(idx[f]), k], nsteps, path, fingerprint,
                     cfg["checkpoint_every"], bar)
        if bar is not None:
            bar.close()
        ranks.barrier()
        if ranks.rank != 0:
            return None
        files = [tdir / f"frame{idx[f]:05d}_traj{k:03d}.npz" for f, k in units]
        return summarise(cfg, files, len(frames[0]), time.time() - t0, ranks.size)


def _bar(on: bool, total: int):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="hop-md", unit="step")


def summarise(cfg: dict, files: list[Path], natoms: int, wall_s: float, nranks: int) -> dict:
    """results.npz, summary.json and the plot from the finished trajectories."""
    recs = [np.load(f) for f in files]
    hops = [json.loads(str(z["hops"])) for z in recs]
    dt = cfg["dt_fs"]
    t = np.arange(len(recs[0]["rec_active"])) * dt
    active = np.array([z["rec_active"] for z in recs])
    total = np.array([z["rec_total_eV"] for z in recs])
    pops = np.array([z["rec_populations"] for z in recs])
    energies = np.array([z["rec_energies"] for z in recs])
    n = pops.shape[-1]
    occupation = np.stack([(active == i).mean(0) for i in range(n)], axis=1)  # (steps, n): surface-hopping
    edge = energies[:, :, 0] if cfg["carrier"] == "electron" else energies[:, :, -1]
    carrier = np.take_along_axis(energies, active[:, :, None], 2)[:, :, 0] - edge
    if cfg["carrier"] == "hole":
        carrier = -carrier
    drift = np.array([np.polyfit(t / 1000.0, (e - e[0]) * 1000.0 / natoms, 1)[0] for e in total])  # meV/atom/ps
    accepted = [h for hs in hops for h in hs if h.get("accepted")]
    with_vector = [h for h in accepted if "nac_dot_v_fs" in h] + [h for hs in hops for h in hs
                                                                   if not h.get("accepted") and "nac_dot_v_fs" in h]
    dv = np.array([[h["nac_dot_v_fs"], h["hst_end_fs"]] for h in with_vector]) if with_vector else np.zeros((0, 2))
    summary = {
        "trajectories": len(files), "steps": int(len(t) - 1), "dt_fs": dt, "atoms": natoms,
        "settings": {k: cfg[k] for k in ("carrier", "states", "nelm", "hopping", "back_reaction", "decoherence")},
        "model": cfg["model"],
        "energy_drift_meV_atom_ps": {"mean": float(drift.mean()), "mean_abs": float(np.abs(drift).mean()),
                                     "max_abs": float(np.abs(drift).max())},
        "hops": {"accepted": len(accepted), "frustrated": int(sum(int(z["frustrated"]) for z in recs)),
                 "max_abs_energy_change_eV": float(max((abs(h["energy_change_eV"]) for h in accepted
                                                        if "energy_change_eV" in h), default=0.0)),
                 "nac_dot_v_vs_hst_median_rel": (float(np.median(np.abs(dv[:, 0] - dv[:, 1]) / np.abs(dv[:, 1])))
                                                 if len(dv) else None)},
        "carrier_energy_eV": {"start": float(carrier[:, 0].mean()), "end": float(carrier[:, -1].mean())},
        "final_occupation": occupation[-1].tolist(),
        "wall_s": round(wall_s, 1), "ranks": nranks, "output": cfg["output"],
    }
    out = Path(cfg["output"])
    save_npz(out / "results.npz", time_fs=t, active=active, total_eV=total, populations=pops, energies=energies,
             occupation=occupation, carrier_energy_eV=carrier)
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=1)))
    if cfg["plots"]:
        plot(out / "hop_md.png", t, occupation, pops.mean(0), carrier.mean(0), (total - total[:, :1]) * 1000 / natoms,
             cfg)
    return summary


def plot(path: Path, t, occupation, populations, carrier, total_meV_atom, cfg) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for i in range(occupation.shape[1]):
        ax[0].plot(t, occupation[:, i], color=f"C{i}", label=f"state {i}")
        ax[0].plot(t, populations[:, i], color=f"C{i}", ls=":", lw=0.8)
    ax[0].set_xlabel("time (fs)")
    ax[0].set_ylabel("population (solid: active state; dotted: |c|²)")
    ax[0].legend(fontsize=7)
    ax[1].plot(t, carrier)
    ax[1].set_xlabel("time (fs)")
    ax[1].set_ylabel(f"{cfg['carrier']} energy above the band edge (eV)")
    for e in total_meV_atom:
        ax[2].plot(t, e, lw=0.5)
    ax[2].set_xlabel("time (fs)")
    ax[2].set_ylabel("E_kin + E_active − E(0) (meV/atom)")
    mode = "back-reaction" if cfg["back_reaction"] else "classical path"
    fig.suptitle(f"surface hopping ({mode}, decoherence {cfg['decoherence']}), {occupation.shape[1]} states",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
