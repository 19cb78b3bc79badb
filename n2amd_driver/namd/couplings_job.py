"""``python -m n2amd_driver.namd couplings config.yaml``: energies, overlaps and NAC along an MD trajectory.

Per snapshot: H (model or reference engine) and S at Γ → generalised eigenpairs in the band window.
Per step: raw overlaps C(t)ᵀ S(t; t+dt) C(t+dt) with the cross-time basis overlap. Then (rank 0) state
tracking (optional), phase correction and Hammes-Schiffer–Tully NAC (:mod:`.couplings`).

Parallel under ``mpirun -n N``: each rank takes a contiguous chunk of snapshots; every snapshot's eigenpairs
and every step's overlaps are checkpointed as their own small files (``<output>.ckpt/``), written atomically,
so the step across a chunk boundary is computed from the neighbour's checkpoint, a killed run resumes where it
stopped (with any number of ranks), and results do not depend on the number of ranks. Rank 0 assembles
the output HDF5 (format "n2amd-couplings", readable by ``namd hop``) and the optional exports and plots.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..core.checkpoint import save_npz
from ..core.parallel import chunk, world

#: Documented defaults of a couplings config (YAML).
DEFAULTS: dict = {
    "trajectory": None,  # LAMMPS dump (custom), i-PI xyz, extxyz
    "format": None,  # lammps-dump | ipi-xyz | extxyz | any ASE format; guessed when null
    "type_map": None,  # elements of LAMMPS atom types 1, 2, ... when the dump has no 'element' column
    "frames": {"start": 0, "stop": None, "step": 1},  # which stored frames to use
    "dt_fs": None,  # time between the stored frames (before 'step'), fs
    # a model file (dtype: evaluate it in float32/float64; null = as trained), or engine: tblite + method
    "hamiltonian": {"model": None, "dtype": None, "engine": None, "method": None},
    "window": {"valence": 4, "conduction": 4, "bands": None},  # states around the gap, or bands: [first, last] (1-based)
    "track_states": False,  # follow orbital character through crossings (maximum overlap)
    "remove_drift": True,  # remove centre-of-mass motion (a rigid translation must not couple states)
    "device": "auto",
    "output": "couplings.h5",
    "checkpoint": None,  # folder for per-snapshot checkpoints; default <output>.ckpt
    "keep_checkpoint": False,
    "exports": {"hefei": None, "pyxaid": None},  # folders to write Hefei-NAMD / PYXAID inputs into
    "plots": True,  # PNGs next to the output: band energies, NAC time series, NAC heat map
}


def load_config(path=None, overrides: dict | None = None) -> dict:
    from ..core.config import load_config as _load

    cfg = _load(DEFAULTS, path, overrides, relative_paths=("trajectory", "hamiltonian.model"))
    if not cfg["trajectory"]:
        raise ValueError("couplings: 'trajectory' is required")
    if not cfg["dt_fs"] or float(cfg["dt_fs"]) <= 0:
        raise ValueError("couplings: 'dt_fs' (time between stored frames, fs) is required and must be positive")
    return cfg


def load_frames(cfg: dict):
    from ..data.trajectory import read_trajectory, remove_drift, unwrap

    frames = read_trajectory(cfg["trajectory"], cfg["format"], cfg["type_map"])
    fr = cfg["frames"]
    frames = frames[int(fr["start"]) : fr["stop"] : int(fr["step"])]
    if len(frames) < 2:
        raise ValueError(f"{cfg['trajectory']}: need at least 2 frames for couplings, selected {len(frames)}")
    frames = unwrap(frames)
    if cfg["remove_drift"]:
        frames = remove_drift(frames)
    return frames, float(cfg["dt_fs"]) * int(fr["step"])


def _key(cfg: dict, frames) -> str:
    """Checkpoints belong to one (trajectory, Hamiltonian, window): anything else starts afresh."""
    h = hashlib.sha256(json.dumps({k: cfg[k] for k in ("hamiltonian", "window", "frames", "dt_fs", "remove_drift")},
                                  sort_keys=True, default=str).encode())
    for a in frames:
        h.update(a.positions.tobytes())
    model = cfg["hamiltonian"].get("model")
    if model:
        h.update(Path(model).read_bytes())
    return h.hexdigest()[:16]


def snapshot(source, atoms, window_cfg: dict):
    """Eigenpairs of one snapshot in the band window: (eps (n,), C (norb, n), (lo, hi), n_electrons, vbm, cbm)."""
    from ..orbitals.eigen import eigh
    from .couplings import window_bands

    H, S, nel = source.electronic(atoms)
    lo, hi = window_bands(nel, len(H), window_cfg.get("valence"), window_cfg.get("conduction"), window_cfg.get("bands"))
    nocc = int(round(nel / 2))
    need_lo, need_hi = min(lo, nocc - 1), max(hi, nocc)  # band edges are recorded too
    eps, C = eigh(H, S, (need_lo, need_hi))
    sel = slice(lo - need_lo, hi - need_lo + 1)
    return eps[sel], C[:, sel], (lo, hi), nel, eps[nocc - 1 - need_lo], eps[nocc - need_lo]


def run_couplings(cfg: dict, progress: bool = True) -> dict | None:
    """Run (or resume) a couplings job; rank 0 returns a summary dict, other ranks None."""
    from ..orbitals.overlap import cross_overlap
    from .couplings import state_overlaps
    from .sources import make_source

    ranks = world()
    out = Path(cfg["output"])
    ckdir = Path(cfg["checkpoint"] or str(out) + ".ckpt")
    t0 = time.time()
    with ranks.stop_all_on_error("namd couplings", f"finished snapshots are kept in {ckdir}; re-run the same "
                                                   "command to resume"):
        frames, dt = load_frames(cfg)
        N = len(frames)
        key = _key(cfg, frames)
        if ranks.rank == 0:
            ckdir.mkdir(parents=True, exist_ok=True)
            stamp = ckdir / "key"
            if stamp.exists() and stamp.read_text() != key:  # another job's checkpoints: set them aside
                for f in ckdir.glob("*.npz"):
                    f.unlink()
            stamp.write_text(key)
        ranks.barrier()
        source = make_source(cfg["hamiltonian"], device=cfg["device"])
        mine = chunk(N, ranks.rank, ranks.size)
        bar = _bar(progress and ranks.rank == 0, 2 * N, "couplings")
        timings = []
        for k in mine:  # eigenpairs of my snapshots
            f = ckdir / f"snap_{k:06d}.npz"
            if not f.exists():
                ts = time.perf_counter()
                try:
                    eps, C, (lo, hi), nel, vbm, cbm = snapshot(source, frames[k], cfg["window"])
                except Exception as exc:
                    raise RuntimeError(f"snapshot {k}: {type(exc).__name__}: {exc}") from exc
                save_npz(f, eps=eps, C=C, lo=lo, hi=hi, nel=nel, vbm=vbm, cbm=cbm)
                timings.append(time.perf_counter() - ts)
            if bar is not None:
                bar.update(ranks.size)
        ranks.barrier()
        for k in mine:  # overlaps of my steps k → k+1 (the last one reads the next rank's snapshot)
            if k == N - 1:
                continue
            f = ckdir / f"ovl_{k:06d}.npz"
            if not f.exists():
                ts = time.perf_counter()
                a, b = np.load(ckdir / f"snap_{k:06d}.npz"), np.load(ckdir / f"snap_{k + 1:06d}.npz")
                S12 = cross_overlap(source.basis_functions(frames[k]), frames[k], frames[k + 1])
                save_npz(f, O=state_overlaps(a["C"], S12, b["C"]))
                timings.append(time.perf_counter() - ts)
            if bar is not None:
                bar.update(ranks.size)
        if bar is not None:
            bar.close()
    all_t = ranks.gather(timings)
    ranks.barrier()
    if ranks.rank != 0:
        return None
    return _assemble(cfg, source, frames, dt, ckdir, out, ranks.size, time.time() - t0, [t for ts in all_t for t in ts])


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", file=sys.stderr)


def _assemble(cfg, source, frames, dt, ckdir, out, nranks, elapsed, timings) -> dict:
    from .couplings import correct
    from .couplings_file import Couplings, write_couplings
    from .series import CouplingSeries

    N = len(frames)
    snaps = [np.load(ckdir / f"snap_{k:06d}.npz") for k in range(N)]
    eps = np.array([s["eps"] for s in snaps])
    O_raw = np.array([np.load(ckdir / f"ovl_{k:06d}.npz")["O"] for k in range(N - 1)])
    lo, hi, nel = int(snaps[0]["lo"]), int(snaps[0]["hi"]), float(snaps[0]["nel"])
    res = correct(eps, O_raw, dt, track=bool(cfg["track_states"]))
    vbm = np.array([float(s["vbm"]) for s in snaps])
    cbm = np.array([float(s["cbm"]) for s in snaps])
    bands = np.arange(lo, hi + 1) + 1  # 1-based engine numbering
    meta = {"hamiltonian": source.describe(), "trajectory": str(cfg["trajectory"]), "frames": cfg["frames"],
            "window": cfg["window"], "bands_1based": [int(lo + 1), int(hi + 1)], "n_electrons": nel,
            "vbm_band_1based": int(round(nel / 2)), "track_states": bool(cfg["track_states"]),
            "reorderings": res.reorderings, "nranks": nranks}
    series = CouplingSeries(res.energies, res.nac, dt, bands, meta)
    write_couplings(out, Couplings(series, overlaps=res.overlaps, phase_signs=res.signs, state_order=res.order,
                                   vbm_eV=vbm, cbm_eV=cbm))
    summary = {"output": str(out), "snapshots": N, "states": len(bands), "bands_1based": [int(lo + 1), int(hi + 1)],
               "dt_fs": dt, "average_gap_eV": float(np.mean(cbm - vbm)), "reorderings": res.reorderings,
               "ranks": nranks, "wall_s": round(elapsed, 2),
               "seconds_per_task": float(np.mean(timings)) if timings else None}
    if cfg["exports"].get("hefei"):
        from .hefei import write_hefei

        write_hefei(cfg["exports"]["hefei"], series, bmin=lo + 1)
    if cfg["exports"].get("pyxaid"):
        from .exports import write_pyxaid

        write_pyxaid(cfg["exports"]["pyxaid"], series)
    if cfg["plots"]:
        from .plots import plot_couplings

        plot_couplings(out.with_suffix(""), series, vbm, cbm)
    if not cfg["keep_checkpoint"]:
        for f in list(ckdir.glob("*.npz")) + [ckdir / "key"]:
            f.unlink(missing_ok=True)
        try:
            ckdir.rmdir()
        except OSError:
            pass
    (out.with_suffix(".summary.json")).write_text(json.dumps(summary, indent=2))
    return summary
