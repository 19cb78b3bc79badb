"""``python -m n2amd_driver.namd couplings config.yaml``: energies, overlaps and NAC along an MD trajectory.

Per snapshot: H (model or reference engine) and S at Γ → generalised eigenpairs in the band window.
Per step: raw overlaps C(t)ᵀ S(t; t+dt) C(t+dt) with the cross-time basis overlap. Then (rank 0) state
tracking (optional), phase correction and Hammes-Schiffer–Tully NAC (:mod:`.couplings`).

Parallel under ``mpirun -n N``: each rank takes a contiguous chunk of snapshots; every snapshot's eigenpairs
and every step's overlaps are checkpointed as their own small files (``<output>.ckpt/``), written atomically,
so the step across a chunk boundary is computed from the neighbour's checkpoint, a killed run resumes where it
stopped (with any number of ranks), and results do not depend on the number of ranks. A step inside a rank's
chunk is computed as soon as both its snapshots are; with ``compact_checkpoint`` a snapshot's states
(n_orb × m) then leave its checkpoint, which keeps checkpoints of large cells to a few kB per snapshot.
Rank 0 assembles the output HDF5 (format "n2amd-couplings", readable by ``namd hop``) and the optional
exports and plots.
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

#: the size (orbitals) from which ``window.solver: auto`` takes the sparse path: there a dense windowed eigh
#: costs more than the sparse factorisation and the dense matrices approach a GB (docs/benchmarks.md)
SPARSE_FROM_ORBITALS = 4000


def _schema():
    """The couplings config: every key with its type, allowed values, range and unit (checked when loaded)."""
    from typing import Literal

    from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

    from ..core.config import section_base

    Section = section_base()

    class Frames(Section):
        start: NonNegativeInt = Field(0, description="first stored frame used")
        stop: NonNegativeInt | None = Field(None, description="stored frame to stop before (null: the end)")
        step: PositiveInt = Field(1, description="use every step-th stored frame")
        timestep_spacing: PositiveInt | None = Field(
            None, description="keep only frames this many MD steps apart (their TIMESTEP), for files whose frames "
                              "are not evenly spaced; dt_fs is then the time between those")

    class Hamiltonian(Section):
        model: str | None = Field(None, description="a Hamiltonian model file, or a bundled name")
        dtype: Literal["float32", "float64"] | None = Field(None, description="evaluate the model in this precision "
                                                                              "(null: as trained)")
        engine: Literal["tblite", "pyscf"] | None = Field(None, description="or the reference engine itself")
        method: str | None = Field(None, description="the engine's method (tblite: GFN1-xTB, GFN2-xTB; pyscf: PBE, "
                                                     "HSE06, ...)")
        basis: str | None = Field(None, description="pyscf only: the GTH basis (e.g. gth-dzvp; default gth-szv)")
        pseudo: str | None = Field(None, description="pyscf only: the pseudopotential (default gth-pbe)")
        kmesh: list[PositiveInt] | None = Field(None, min_length=3, max_length=3,
                                                description="pyscf only: label the cell that each snapshot repeats "
                                                            "kmesh times, on that k-mesh (its supercell's states)")

    class Window(Section):
        valence: NonNegativeInt = Field(4, description="states up to the VBM")
        conduction: NonNegativeInt = Field(4, description="states from the CBM")
        bands: list[PositiveInt] | None = Field(None, min_length=2, max_length=2,
                                                description="or [first, last] band (1-based, as BMIN/BMAX)")
        buffer: NonNegativeInt = Field(0, description="extra states on each side of the window: computed, "
                                       "overlapped and tracked, not written; a window state that exchanges "
                                       "character with one of them is reported")
        solver: Literal["auto", "dense", "sparse"] = Field(
            "auto", description="dense: LAPACK on n_orb² matrices; sparse: sparse H, S and S(t; t+dt) and the "
            f"shift-invert window eigensolver, warm-started from the previous snapshot; auto: sparse from "
            f"{SPARSE_FROM_ORBITALS} orbitals")
        overlap_cutoff_ang: PositiveFloat | None = Field(
            None, description="Å, sparse only: pair cutoff of S, S(t; t+dt) and the model's S-dependent terms "
                              "(null: the basis's own, where overlaps fall below 1e-14)")

    class Scissor(Section):
        gap_eV: PositiveFloat | None = Field(
            None, description="eV: shift the conduction states rigidly so that the gap averaged over the snapshots "
                              "is this (its fluctuations are kept)")
        hamiltonian: Hamiltonian | None = Field(
            None, description="or: shift them at each snapshot to the gap of this Hamiltonian (model: FILE, or "
                              "engine/method) there, e.g. an HSE06 model under a PBE one")

    class Exports(Section):
        hefei: str | None = Field(None, description="folder to write Hefei-NAMD EIGTXT/NATXT/inp into")
        pyxaid: str | None = Field(None, description="folder to write PYXAID Ham_* files into")

    class Couplings(Section):
        trajectory: str | None = Field(None, description="LAMMPS dump (custom), i-PI xyz, extxyz (required)")
        format: Literal["lammps-dump", "ipi-xyz", "extxyz", "auto"] | str | None = Field(
            None, description="lammps-dump | ipi-xyz | extxyz | any ASE format; guessed when null")
        type_map: list[str] | dict[int, str] | None = Field(
            None, description="elements of LAMMPS atom types 1, 2, ... when the dump has no 'element' column")
        frames: Frames = Field(default_factory=Frames)
        dt_fs: PositiveFloat | None = Field(None, description="fs between the stored frames, before 'step' (required)")
        hamiltonian: Hamiltonian = Field(default_factory=Hamiltonian)
        window: Window = Field(default_factory=Window)
        scissor: Scissor = Field(default_factory=Scissor)
        track_states: bool = Field(False, description="follow orbital character through crossings (maximum overlap)")
        remove_drift: bool = Field(True, description="remove the centre-of-mass motion (a rigid translation must "
                                                     "not couple states)")
        close_atoms: Literal["refuse", "warn", "off"] = Field(
            "refuse", description="atoms closer than 0.6 × their covalent radii in any frame; off also "
            "silences the warning about frames outside the model's training domain")
        device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs")
        output: str = Field("couplings.h5", description="the couplings HDF5 file to write")
        checkpoint: str | None = Field(None, description="folder for per-snapshot checkpoints; default <output>.ckpt")
        keep_checkpoint: bool = Field(True, description="keep them after the output is written: a rerun with more "
                                                        "frames then computes only the new snapshots")
        compact_checkpoint: bool = Field(False, description="drop a snapshot's states (n_orb × window doubles) from "
                                         "its checkpoint once the overlaps of both its steps are written: a few kB "
                                         "per snapshot at any cell size (those states can then not be reused)")
        exports: Exports = Field(default_factory=Exports)
        plots: bool = Field(True, description="PNGs next to the output: band energies, NAC time series, NAC heat map")

    return Couplings


SCHEMA = _schema()
#: Documented defaults of a couplings config (YAML): what :data:`SCHEMA` gives when a key is not set.
DEFAULTS: dict = SCHEMA().model_dump()


def load_config(path=None, overrides: dict | None = None) -> dict:
    """The couplings settings from a YAML file and overrides, checked against :data:`SCHEMA` before any work."""
    from ..core.config import load_validated

    cfg = load_validated(SCHEMA, path, overrides,
                         relative_paths=("trajectory", "hamiltonian.model", "scissor.hamiltonian.model"))
    if not cfg["trajectory"]:
        raise ValueError("couplings: 'trajectory' is required")
    if not cfg["dt_fs"] or float(cfg["dt_fs"]) <= 0:
        raise ValueError("couplings: 'dt_fs' (time between stored frames, fs) is required and must be positive")
    if Path(cfg["output"]).is_dir():
        raise ValueError(f"couplings: output {cfg['output']} is a folder; give the HDF5 file to write")
    sc = cfg["scissor"]
    if sc["gap_eV"] is not None and sc["hamiltonian"] is not None:
        raise ValueError("couplings: scissor takes gap_eV or hamiltonian, not both")
    return cfg


def load_frames(cfg: dict):
    """The selected frames (unwrapped, drift removed if asked) and the time between them (fs); refuses
    trajectories with uneven MD steps, a changing cell or changing atoms, naming the frames."""
    from ..data.trajectory import (TrajectoryError, check_fixed_cell, check_spacing, read_trajectory, remove_drift,
                                   unwrap)

    fr = cfg["frames"]
    start, stop, step = int(fr["start"]), fr["stop"], int(fr["step"])
    spacing = fr.get("timestep_spacing")
    # a truncated file's complete frames before 'stop' are usable
    frames = read_trajectory(cfg["trajectory"], cfg["format"], cfg["type_map"],
                             max_frames=int(stop) if stop is not None and spacing is None else None)
    where = f"{cfg['trajectory']}"
    if spacing is not None:
        steps = [a.info.get("timestep") for a in frames]
        if any(t is None for t in steps):
            raise TrajectoryError(f"{where}: frames.timestep_spacing needs the MD step of every frame (TIMESTEP); "
                                  "this file does not record it")
        frames = [a for a, t in zip(frames, steps) if (t - steps[0]) % int(spacing) == 0]
    frames = frames[start:stop:step]
    if len(frames) < 2:
        raise ValueError(f"{where}: need at least 2 frames for couplings, selected {len(frames)}")
    check_spacing(frames, where + " (selected frames)")
    check_fixed_cell(frames, where)
    from ..core.structure import check_close_atoms

    for k, a in enumerate(frames):
        check_close_atoms(a, cfg["close_atoms"], f"{where}: selected frame {k}")
    frames = unwrap(frames)
    if cfg["remove_drift"]:
        frames = remove_drift(frames)
    return frames, float(cfg["dt_fs"]) * step


#: the settings a snapshot's checkpoint depends on (frames.stop is not one: more frames extend a job)
_SETTINGS = ("hamiltonian", "window", "dt_fs", "remove_drift", "format", "type_map")


def job_settings(cfg: dict) -> dict:
    """What the checkpoints of a couplings job were computed with; a rerun must agree on all of it. The solver
    is not part of it (both give the same states), nor are a zero buffer and the exact overlap cutoff, which
    were all there was before those keys existed."""
    out = {k: cfg[k] for k in _SETTINGS}
    out["window"] = {k: v for k, v in cfg["window"].items()
                     if k != "solver" and not (k == "buffer" and v == 0) and not (k == "overlap_cutoff_ang" and v is None)}
    out["frames"] = {k: cfg["frames"].get(k) for k in ("start", "step", "timestep_spacing")}
    out["trajectory"] = str(Path(cfg["trajectory"]).resolve())
    model = cfg["hamiltonian"].get("model")
    if model:
        out["model_sha256"] = _model_sha256(model)
    return json.loads(json.dumps(out, default=str))


def _model_sha256(model: str) -> str:
    from ..models.io import resolve_model_path

    return hashlib.sha256(resolve_model_path(model).read_bytes()).hexdigest()


def frame_hashes(frames) -> list[str]:
    """One short hash per frame (positions and elements): which frames a checkpoint folder was made from."""
    return [hashlib.sha256(a.positions.tobytes() + a.numbers.tobytes()).hexdigest()[:16] for a in frames]


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix}{k}: {a!r} → {b!r}")
    return diffs


def check_checkpoints(ckdir: Path, settings: dict, hashes: list[str]) -> int:
    """Refuse a checkpoint folder made with other settings or from other frames (nothing is deleted); returns
    how many of this job's frames the folder already knew. A folder without checkpoints is set up for it."""
    stamp, known = ckdir / "settings.json", ckdir / "frames.json"
    remedy = f"nothing was deleted; remove {ckdir} (or set 'checkpoint:' to another folder) to start over"
    if (ckdir / "key").exists() and not stamp.exists():
        raise ValueError(f"{ckdir}: checkpoints of an earlier version of the couplings job, which cannot be checked "
                         f"against this run's settings; {remedy}")
    n_known = 0
    if stamp.exists():
        diffs = _differences(json.loads(stamp.read_text()), settings)
        if diffs:
            raise ValueError(f"{ckdir}: checkpoints of a run with other settings ({'; '.join(diffs)}); {remedy}")
        old = json.loads(known.read_text())
        for k, (a, b) in enumerate(zip(old, hashes)):
            if a != b:
                raise ValueError(f"{ckdir}: frame {k} of the trajectory is not the one its checkpoint was computed "
                                 f"from (the file changed?); {remedy}")
        n_known = min(len(old), len(hashes))
        hashes = hashes if len(hashes) > len(old) else old
    else:
        ckdir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(settings, indent=1))
    known.write_text(json.dumps(hashes))
    return n_known


def use_sparse(window_cfg: dict, n_orbitals: int) -> bool:
    """Whether a snapshot of ``n_orbitals`` goes through the sparse window solver."""
    solver = window_cfg.get("solver") or "auto"
    return solver == "sparse" or (solver == "auto" and n_orbitals >= SPARSE_FROM_ORBITALS)


def snapshot(source, atoms, window_cfg: dict, start=None) -> dict:
    """Eigenpairs of one snapshot in the band window plus ``buffer`` states on each side: a dict with eps (m,),
    C (n_orb, m) of bands first..first + m − 1 (0-based), the window (lo, hi), n_electrons, vbm, cbm, the
    solver's record, and ``states`` (a :class:`~n2amd_driver.orbitals.window.WindowStates`, the next
    snapshot's warm start). ``start``: the previous snapshot's ``states`` (sparse solver only)."""
    from ..orbitals.window import dense_window, window_eigh
    from .couplings import window_bands

    buffer = int(window_cfg.get("buffer") or 0)
    n_orb = source.n_orbitals(atoms)
    sparse = use_sparse(window_cfg, n_orb)
    t = time.perf_counter()
    if sparse:
        H, S, nel = source.electronic_sparse(atoms, window_cfg.get("overlap_cutoff_ang"))
    else:
        H, S, nel = source.electronic(atoms)
    t_h = time.perf_counter() - t
    lo, hi = window_bands(nel, n_orb, window_cfg.get("valence"), window_cfg.get("conduction"), window_cfg.get("bands"))
    nocc = int(round(nel / 2))
    need_lo, need_hi = min(lo, nocc - 1), max(hi, nocc)  # band edges are recorded too
    t = time.perf_counter()
    if sparse:
        st = window_eigh(H, S, need_lo, need_hi, buffer=buffer, start=start)
    else:
        st = dense_window(H, S, max(need_lo - buffer, 0), min(need_hi + buffer, n_orb - 1))
    t_eig = time.perf_counter() - t
    first, last = max(lo - buffer, 0), min(hi + buffer, n_orb - 1)
    eps, C = st.select(first, last)
    vbm, cbm = st.select(nocc - 1, nocc)[0]
    record = {"solver": "sparse" if sparse else "dense", "hamiltonian_s": t_h, "eigen_s": t_eig,
              "factorizations": st.factorizations, "warm": st.warm, "residual_eV": st.residual}
    return {"eps": eps, "C": C, "first": first, "window": (lo, hi), "nel": nel, "vbm": float(vbm), "cbm": float(cbm),
            "record": record, "states": st}


def stored_states(path: Path):
    """A snapshot checkpoint's states as a warm start (bands first..first + m − 1)."""
    from ..orbitals.window import WindowStates

    z = np.load(path)
    if "C" not in z:  # a compacted checkpoint: no warm start from it
        return None
    first = int(z["first"]) if "first" in z else int(z["lo"])
    return WindowStates(z["eps"], z["C"], first)


def step_overlap(cfg: dict, source, frames, ckdir: Path, k: int, C: dict) -> None:
    """The raw state overlaps of step k → k+1, C(k)ᵀ S(k; k+1) C(k+1), into ``ovl_k.npz``; ``C``: states at
    hand by snapshot index (the others are read from their checkpoints). Then the two snapshots' states are
    dropped from their checkpoints if ``compact_checkpoint`` asks and both their steps are done."""
    from ..orbitals.overlap import cross_overlap
    from .couplings import state_overlaps

    a, b = (C[j] if j in C else np.load(ckdir / f"snap_{j:06d}.npz")["C"] for j in (k, k + 1))
    sparse = use_sparse(cfg["window"], a.shape[0])
    S12 = cross_overlap(source.basis_functions(frames[k]), frames[k], frames[k + 1], sparse=sparse,
                        cutoff_ang=cfg["window"].get("overlap_cutoff_ang") if sparse else None)
    save_npz(ckdir / f"ovl_{k:06d}.npz", O=state_overlaps(a, S12, b))
    if cfg["compact_checkpoint"]:
        for j in (k, k + 1):
            compact(ckdir, j)


def compact(ckdir: Path, k: int) -> None:
    """Snapshot k's checkpoint without its states, once the overlaps of its steps k − 1 → k and k → k + 1 exist
    (the last snapshot keeps them: a rerun with more frames starts from them); rewritten atomically, so a rank
    that reads it meanwhile sees either version."""
    done = all((ckdir / f"ovl_{j:06d}.npz").exists() for j in (k - 1, k) if j >= 0)
    f = ckdir / f"snap_{k:06d}.npz"
    if not done or not f.exists():
        return
    with np.load(f) as z:
        if "C" not in z.files:
            return
        kept = {name: z[name] for name in z.files if name != "C"}
    save_npz(f, **kept)


def snapshot_memory(source, atoms, window_cfg: dict) -> dict:
    """Estimated bytes one snapshot needs, by part. Dense: H, S, the eigensolver's copy and workspace (~5 n_orb²
    doubles). Sparse: the CSR matrices (H, S, S(t; t+dt) and their assembly, ~6 copies of the pattern of H: pairs
    within the overlap cutoff or the model's block cutoff), the LDLᵀ factorisation (Pardiso's symbolic analysis
    of that pattern) and, for a model, its off-site head (the blocks, and one pass of BLOCK_CHUNK pairs at
    ~40 kB each: measured for the bundled architecture, docs/couplings.md)."""
    from ..orbitals.overlap import pair_cutoff_ang
    from ..orbitals.sparse import block_pattern
    from ..orbitals.window import factorisation_memory

    n = source.n_orbitals(atoms)
    if not use_sparse(window_cfg, n):
        return {"dense matrices and eigensolver": 5 * 8 * n * n}
    bf = source.basis_functions(atoms)
    offsets = bf.basis.orbital_offsets(atoms.numbers)
    cutoff = window_cfg.get("overlap_cutoff_ang") or pair_cutoff_ang(bf, atoms.numbers)
    model = getattr(source, "model", None)
    if model is not None:  # H has the model's blocks out to r_block as well
        cutoff = max(cutoff, model.config.r_block)
    pattern = block_pattern(atoms, offsets, cutoff)
    parts = {"sparse matrices": 6 * (12 * pattern.nnz + 4 * (n + 1)),
             "factorisation": factorisation_memory(pattern)[0]}
    if model is not None:
        from ..core.graph import pairs_between
        from ..models.hamiltonian import BLOCK_CHUNK

        pairs = len(pairs_between(atoms, atoms, model.config.r_block)[0])
        parts["model blocks"] = 4 * 8 * pairs * model.layout.nmax ** 2 + 40_000 * min(pairs, BLOCK_CHUNK)
    return parts


def check_memory(source, atoms, window_cfg: dict, ranks: int) -> dict | None:
    """Refuse up front a job whose snapshots (one per rank at a time) would not fit in this machine's memory,
    naming the estimate by part (:func:`snapshot_memory`); returns the estimate."""
    import os

    try:
        parts = snapshot_memory(source, atoms, window_cfg)
    except (KeyError, ValueError):  # an element without basis functions: the first snapshot names it
        return None
    need = sum(parts.values()) * ranks
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.8 * have:
        detail = ", ".join(f"{k} {v / 2**30:.1f}" for k, v in parts.items())
        hint = ("set window.solver: sparse (or auto)" if len(parts) == 1 else
                "use fewer ranks, or a shorter window.overlap_cutoff_ang (docs/couplings.md measures its effect)")
        raise ValueError(f"a snapshot needs ~{need / ranks / 2**30:.1f} GiB ({detail} GiB) on each of {ranks} "
                         f"rank(s), {need / 2**30:.1f} GiB in all; this machine has {have / 2**30:.1f} GiB: {hint}")
    return parts


def run_couplings(cfg: dict, progress: bool = True) -> dict | None:
    """Run (or resume) a couplings job; rank 0 returns a summary dict, other ranks None."""
    from .sources import make_source

    ranks = world()
    out = Path(cfg["output"])
    ckdir = Path(cfg["checkpoint"] or str(out) + ".ckpt")
    t0 = time.time()

    def kept() -> str | None:  # said on failure only when something finished is really on disk
        n = len(list(ckdir.glob("snap_*.npz"))) if ckdir.is_dir() else 0
        return f"{n} finished snapshot(s) are kept in {ckdir}; re-run the same command to resume" if n else None

    with ranks.stop_all_on_error("namd couplings", kept):
        frames, dt = load_frames(cfg)
        N = len(frames)
        if ranks.rank == 0:
            check_checkpoints(ckdir, job_settings(cfg), frame_hashes(frames))
        ranks.barrier()
        source = make_source(cfg["hamiltonian"], device=cfg["device"])
        outside = domain_report(source, frames, cfg) if ranks.rank == 0 else []
        mine = chunk(N, ranks.rank, ranks.size)
        bar = _bar(progress and ranks.rank == 0, 2 * N, "couplings")
        timings = []
        memory = check_memory(source, frames[0], cfg["window"], ranks.size)
        start = None  # the previous snapshot's states: the sparse solver's warm start
        held = {}  # states of my last snapshot or two, by index: the step between them needs no file read
        for k in mine:  # eigenpairs of my snapshots, and each step within my chunk as soon as both ends exist
            f = ckdir / f"snap_{k:06d}.npz"
            if not f.exists():
                if start is None and k > 0 and (ckdir / f"snap_{k - 1:06d}.npz").exists():
                    start = stored_states(ckdir / f"snap_{k - 1:06d}.npz")
                ts = time.perf_counter()
                try:
                    snap = snapshot(source, frames[k], cfg["window"], start)
                except Exception as exc:
                    raise RuntimeError(f"snapshot {k}: {type(exc).__name__}: {exc}") from exc
                (lo, hi), r = snap["window"], snap["record"]
                save_npz(f, eps=snap["eps"], C=snap["C"], first=snap["first"], lo=lo, hi=hi, nel=snap["nel"],
                         vbm=snap["vbm"], cbm=snap["cbm"], **{k_: np.asarray(v) for k_, v in r.items()})
                start, held = snap["states"], {j: c for j, c in held.items() if j == k - 1} | {k: snap["C"]}
                timings.append(time.perf_counter() - ts)
            else:  # done by an earlier run: the next one starts from this one's checkpoint
                start, held = None, {}
            if bar is not None:
                bar.update(ranks.size)
            if k > mine[0] and not (ckdir / f"ovl_{k - 1:06d}.npz").exists():
                ts = time.perf_counter()
                step_overlap(cfg, source, frames, ckdir, k - 1, held)
                timings.append(time.perf_counter() - ts)
        scissor_edges(cfg, frames, mine, ckdir, bar is not None)
        ranks.barrier()
        for k in mine:  # the steps left: the one into the next rank's chunk, and any a killed run did not write
            if k < N - 1 and not (ckdir / f"ovl_{k:06d}.npz").exists():
                ts = time.perf_counter()
                step_overlap(cfg, source, frames, ckdir, k, {})
                timings.append(time.perf_counter() - ts)
            elif cfg["compact_checkpoint"]:  # a run killed between an overlap and the compaction it allows
                compact(ckdir, k)
            if bar is not None:
                bar.update(ranks.size)
        if bar is not None:
            bar.close()
    all_t = ranks.gather(timings)
    ranks.barrier()
    if ranks.rank != 0:
        return None
    summary = _assemble(cfg, source, frames, dt, ckdir, out, ranks.size, time.time() - t0,
                        [t for ts in all_t for t in ts], outside)
    if memory:
        summary["memory_estimate_GiB"] = {k: round(v / 2**30, 3) for k, v in memory.items()}
    return summary


def _scissor_dir(cfg: dict, ckdir: Path) -> Path:
    """Checkpoints of the scissor Hamiltonian's band edges, in a folder named after that Hamiltonian."""
    spec = json.dumps(cfg["scissor"]["hamiltonian"], sort_keys=True)
    model = cfg["scissor"]["hamiltonian"].get("model")
    if model:
        spec += _model_sha256(model)
    return ckdir / f"scissor_{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def scissor_edges(cfg: dict, frames, mine, ckdir: Path, progress: bool) -> None:
    """VBM and CBM of the scissor Hamiltonian at my snapshots (when the scissor follows one), checkpointed."""
    spec = cfg["scissor"]["hamiltonian"]
    if spec is None:
        return
    from .sources import make_source

    folder = _scissor_dir(cfg, ckdir)
    todo = [k for k in mine if not (folder / f"edges_{k:06d}.npz").exists()]
    if not todo:
        return
    source = make_source(spec, device=cfg["device"])
    bar = _bar(progress, len(todo), "scissor band edges")
    for k in todo:
        try:
            edges = snapshot(source, frames[k], {**cfg["window"], "valence": 1, "conduction": 1, "bands": None,
                                                 "buffer": 0})
            nel, vbm, cbm = edges["nel"], edges["vbm"], edges["cbm"]
        except Exception as exc:
            raise RuntimeError(f"snapshot {k}, scissor Hamiltonian: {type(exc).__name__}: {exc}") from exc
        save_npz(folder / f"edges_{k:06d}.npz", vbm=vbm, cbm=cbm, nel=nel)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def scissor_shifts(cfg: dict, ckdir: Path, vbm: np.ndarray, cbm: np.ndarray, nel: float) -> tuple[np.ndarray, dict]:
    """Rigid shift (eV) of the conduction states at each snapshot, and its record for the output's metadata:
    to a given average gap (one shift), or to another Hamiltonian's gap snapshot by snapshot."""
    sc = cfg["scissor"]
    gap = cbm - vbm
    if sc["gap_eV"] is not None:
        shift = np.full(len(gap), float(sc["gap_eV"]) - float(np.mean(gap)))
        return shift, {"to_average_gap_eV": float(sc["gap_eV"]), "shift_eV": float(shift[0])}
    if sc["hamiltonian"] is not None:
        folder = _scissor_dir(cfg, ckdir)
        edges = [np.load(folder / f"edges_{k:06d}.npz") for k in range(len(gap))]
        other_nel = {int(round(float(e["nel"]))) for e in edges}  # occupations summed: not exact integers
        if other_nel != {int(round(nel))}:
            raise ValueError(f"scissor Hamiltonian counts {sorted(other_nel)} electrons, the couplings Hamiltonian "
                             f"{int(round(nel))}")
        other = np.array([float(e["cbm"]) - float(e["vbm"]) for e in edges])
        shift = other - gap
        return shift, {"to_gap_of": sc["hamiltonian"], "mean_shift_eV": float(shift.mean()),
                       "average_gap_eV": float(other.mean())}
    return np.zeros(len(gap)), {}


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", file=sys.stderr)


def domain_report(source, frames, cfg: dict) -> list[int]:
    """Selected frames (0-based) outside the model's training domain (:mod:`n2amd_driver.models.domain`),
    warned about in one line; none when ``close_atoms: off`` or the source is a reference engine."""
    from ..models.domain import model_domain, out_of_domain

    domain = model_domain(getattr(source, "model", None))
    if cfg["close_atoms"] == "off" or not domain:
        return []
    texts = [out_of_domain(a, domain) for a in frames]
    outside = [k for k, t in enumerate(texts) if t]
    if outside:
        import warnings

        warnings.warn(f"{cfg['trajectory']}: {len(outside)} of {len(frames)} selected frames lie outside the "
                      f"model's training domain (listed in the output's metadata); selected frame {outside[0]}: "
                      f"{texts[outside[0]]}", stacklevel=2)
    return outside


def window_of(res, a: int, b: int):
    """The couplings of labels a..b (the window) out of those of window + buffer, and the steps where a window
    state's character went to a buffer state: its largest |<i(t)|j(t+dt)>|² is with a state outside a..b
    (with tracking on, the label then follows that state out of the window's eigen-range)."""
    from .couplings import CorrectedCouplings

    n = res.energies.shape[1]
    if a == 0 and b == n - 1:
        return res, []
    w = slice(a, b + 1)
    exchanges = []
    for k, O in enumerate(res.overlaps):
        partner = np.argmax(np.abs(O[w]) ** 2, axis=1)  # label → label (tracked or not)
        for i, j in zip(range(a, b + 1), partner):
            leaves = not a <= j <= b  # untracked: the character moved to a buffer label
            # tracked: the label itself moved onto an eigen-state outside the window's range
            leaves |= bool(a <= res.order[k, i] <= b and not a <= res.order[k + 1, i] <= b)
            if leaves:
                exchanges.append({"step": k, "state": int(i - a), "text": f"window state {i - a} exchanged "
                                  "character with a buffer state"})
    sub = CorrectedCouplings(res.energies[:, w], res.overlaps[:, w, w], res.nac[:, w, w], res.signs[:, w],
                             res.order[:, w], res.reorderings)
    return sub, exchanges


def snapshot_costs(snaps) -> dict | None:
    """Mean seconds per snapshot for the Hamiltonian (model or engine, with S) and the eigen-window, and the
    sparse solver's factorisations per snapshot and its share of warm starts (for checkpoints that record them)."""
    if "eigen_s" not in snaps[0]:
        return None
    out = {"hamiltonian_s": float(np.mean([s["hamiltonian_s"] for s in snaps])),
           "eigen_s": float(np.mean([s["eigen_s"] for s in snaps])), "solver": str(snaps[0]["solver"])}
    if out["solver"] == "sparse":
        out["factorizations"] = float(np.mean([s["factorizations"] for s in snaps]))
        out["warm_fraction"] = float(np.mean([bool(s["warm"]) for s in snaps]))
    return out


def _assemble(cfg, source, frames, dt, ckdir, out, nranks, elapsed, timings, outside=()) -> dict:
    from .couplings import correct
    from .couplings_file import Couplings, write_couplings
    from .series import CouplingSeries

    N = len(frames)
    snaps = [np.load(ckdir / f"snap_{k:06d}.npz") for k in range(N)]
    eps = np.array([s["eps"] for s in snaps])
    O_raw = np.array([np.load(ckdir / f"ovl_{k:06d}.npz")["O"] for k in range(N - 1)])
    lo, hi, nel = int(snaps[0]["lo"]), int(snaps[0]["hi"]), float(snaps[0]["nel"])
    first = int(snaps[0]["first"]) if "first" in snaps[0] else lo
    res = correct(eps, O_raw, dt, track=bool(cfg["track_states"]))
    res, exchanges = window_of(res, lo - first, hi - first)
    vbm = np.array([float(s["vbm"]) for s in snaps])
    cbm = np.array([float(s["cbm"]) for s in snaps])
    bands = np.arange(lo, hi + 1) + 1  # 1-based engine numbering
    shift, scissor = scissor_shifts(cfg, ckdir, vbm, cbm, nel)
    if scissor:  # conduction states only: valence energies, wavefunctions and couplings stay
        conduction = bands > int(round(nel / 2))
        res.energies[:, conduction] += shift[:, None]
        cbm = cbm + shift
    meta = {"hamiltonian": source.describe(), "trajectory": str(cfg["trajectory"]), "frames": cfg["frames"],
            "window": cfg["window"], "bands_1based": [int(lo + 1), int(hi + 1)], "n_electrons": nel,
            "vbm_band_1based": int(round(nel / 2)), "track_states": bool(cfg["track_states"]),
            "reorderings": res.reorderings, "nranks": nranks, "frames_outside_domain": [int(k) for k in outside],
            "scissor": scissor or None, "buffer_exchanges": exchanges}
    series = CouplingSeries(res.energies, res.nac, dt, bands, meta)
    write_couplings(out, Couplings(series, overlaps=res.overlaps, phase_signs=res.signs, state_order=res.order,
                                   vbm_eV=vbm, cbm_eV=cbm, scissor_shift_eV=shift if scissor else None))
    summary = {"output": str(out), "snapshots": N, "states": len(bands), "bands_1based": [int(lo + 1), int(hi + 1)],
               "dt_fs": dt, "average_gap_eV": float(np.mean(cbm - vbm)), "reorderings": res.reorderings,
               "ranks": nranks, "wall_s": round(elapsed, 2), "frames_outside_domain": len(outside),
               "seconds_per_task": float(np.mean(timings)) if timings else None, "scissor": scissor or None,
               "buffer_exchanges": len(exchanges), "per_snapshot": snapshot_costs(snaps)}
    if exchanges:
        import warnings

        warnings.warn(f"{len(exchanges)} step(s) where a window state exchanged character with a buffer state "
                      f"(first: step {exchanges[0]['step']}, {exchanges[0]['text']}); listed in the output's "
                      "metadata", stacklevel=2)
    if cfg["exports"].get("hefei"):
        from .hefei import write_hefei

        write_hefei(cfg["exports"]["hefei"], series, bmin=lo + 1)
    if cfg["exports"].get("pyxaid"):
        from .exports import write_pyxaid

        write_pyxaid(cfg["exports"]["pyxaid"], series)
    if cfg["plots"]:
        from .plots import plot_couplings

        plot_couplings(out.with_suffix(""), series, vbm, cbm)
    if cfg["keep_checkpoint"]:
        size = sum(f.stat().st_size for f in ckdir.glob("*.npz")) / 1e6
        summary["checkpoint"] = str(ckdir)
        print(f"[n2amd namd couplings] the per-snapshot checkpoints stay in {ckdir} ({size:.1f} MB): a rerun with "
              "more frames computes only the new ones; remove the folder (or set keep_checkpoint: false) when done",
              flush=True)
    else:
        for f in list(ckdir.glob("*.npz")) + list(ckdir.glob("scissor_*/*.npz")) + [ckdir / "settings.json",
                                                                                  ckdir / "frames.json"]:
            f.unlink(missing_ok=True)
        for d in ckdir.glob("scissor_*"):
            d.rmdir()
        try:
            ckdir.rmdir()
        except OSError:
            pass
    (out.with_suffix(".summary.json")).write_text(json.dumps(summary, indent=2))
    return summary
