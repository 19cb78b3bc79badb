"""``python -m n2amd_driver.namd hop config.yaml``: populations and lifetimes from a couplings file.

Runs on one process or under ``mpirun -n N``: the work is (initial time, block of trajectories) units,
dealt to the ranks in contiguous shares; each unit has its own random generator seeded from (seed,
initial-time index, block index), so populations do not depend on N. Every rank checkpoints its units and
its share of the records every ``checkpoint_every_fs``; re-running the same command resumes from the
checkpoints (also with another number of ranks). Rank 0 writes the results.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.checkpoint import save_npz
from ..core.parallel import world
from .hopping import HopSettings, HopState, Propagators, Record, advance, step_indices
from .series import CouplingSeries

def _schema():
    """The hop config: every key with its type, allowed values, range and unit (checked when loaded)."""
    from typing import Literal

    from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

    from ..core.config import section_base

    Section = section_base()

    class Input(Section):
        couplings: str | None = Field(None, description="n2amd couplings HDF5 (from `namd couplings`)")
        hefei: str | None = Field(None, description="or a Hefei-NAMD folder with EIGTXT, NATXT, inp (INICON used "
                                                    "if present)")

    class Initial(Section):
        times: PositiveInt | list[NonNegativeInt] | None = Field(
            None, description="number of initial times spread evenly over the trajectory, or a list of MD steps; "
                              "null: the Hefei folder's INICON if it has one, else 20")
        state: Literal["auto"] | NonNegativeInt = Field(
            "auto", description="auto: the highest state (electron) or the lowest (hole); or a state index in "
                                "the window")

    class Hop(Section):
        input: Input = Field(default_factory=Input)
        states: list[NonNegativeInt] | None = Field(None, description="indices of the states to keep (default: all)")
        method: Literal["dish", "fssh"] | None = Field(
            None, description="surface hopping: dish | fssh; null: a Hefei inp's ALGO, else dish")
        carrier: Literal["electron", "hole"] | None = Field(
            None, description="electron | hole (hole: 'upward' means lower band energy); null: a Hefei inp's LHOLE, "
                              "else electron")
        temperature_K: PositiveFloat | None = Field(
            None, description="K, of the detailed-balance factors; null: a Hefei inp's TEMP, else 300")
        nelm: PositiveInt | None = Field(
            None, description="electronic sub-steps per MD step; null: a Hefei inp's NELM, else 10")
        ntraj: PositiveInt | None = Field(
            None, description="stochastic trajectories per initial time; null: a Hefei inp's NTRAJ (1000 when a Hefei "
                              "inp has none, as in Hefei-NAMD-DEV), else 100")
        namdtime_fs: PositiveFloat | None = Field(
            None, description="fs, length of each run (that many / dt steps); the MD trajectory is reused if shorter. "
                              "null: (NAMDTIME − 1) × POTIM from a Hefei inp (DEV's NAMDTIME = N does N − 1 steps), "
                              "else 1000")
        initial: Initial = Field(default_factory=Initial)
        dephasing: Literal["auto"] | str | list[list[float]] = Field(
            "auto", description="auto: the Hefei folder's DEPHTIME (inp DIINIT) if it has one, else from the gap "
                                "fluctuations; or a DEPHTIME file, or an n×n list (fs)")
        detailed_balance: bool = Field(True, description="Boltzmann factor on upward hops")
        trajectory_reuse: Literal["wrap", "dev"] = Field(
            "wrap", description="how runs longer than the trajectory reuse it: wrap (every step in turn, the last "
                                "snapshot coupled back to the first when the input has one coupling per snapshot) | "
                                "dev (Hefei-NAMD-DEV's cycle over steps 2..NSW−1, period NSW − 2; initial steps ≥ 1)")
        absorbing_ground: bool = Field(
            False, description="freeze a trajectory once it reaches the lowest state in the carrier's sense, as "
                               "Hefei-NAMD-DEV's DISH does for recombination (breaks detailed balance: nothing is "
                               "re-excited)")
        shprop: bool = Field(False, description="also write Hefei-NAMD SHPROP.<NAMDTINI> files (and POPRT.<NAMDTINI> "
                                                "with the TDKS populations)")
        plots: bool = Field(False, description="also write PNG plots of populations, energy and dephasing")
        seed: int = Field(0, description="random seed (results do not depend on the number of ranks)")
        record_every: PositiveInt = Field(1, description="MD steps between recorded populations")
        checkpoint_every_fs: PositiveFloat = Field(20000.0, description="fs of dynamics between checkpoints")
        output: str = Field("hop", description="output folder")

    return Hop


SCHEMA = _schema()
#: Documented defaults of a hop config (YAML): what :data:`SCHEMA` gives when a key is not set.
DEFAULTS: dict = SCHEMA().model_dump()
DEFAULT_INITIAL_TIMES = 20
#: what a null setting becomes when the input (an n2amd couplings file) does not say
PACKAGE_DEFAULTS = {"method": "dish", "carrier": "electron", "temperature_K": 300.0, "nelm": 10, "ntraj": 100,
                    "namdtime_fs": 1000.0}


def load_config(path=None, overrides: dict | None = None) -> dict:
    """The hop settings from a YAML file and overrides, checked against :data:`SCHEMA` before any work."""
    from ..core.config import load_validated

    return load_validated(SCHEMA, path, overrides, relative_paths=("input.couplings", "input.hefei"))


@dataclass
class HopInput:
    """A hop job's input, read and resolved: the series (states selected), INICON conditions, the settings
    with every null filled in, the dephasing matrix when it comes from a file, and the log of who set what."""

    series: CouplingSeries
    inicon: np.ndarray | None
    cfg: dict
    tau_fs: np.ndarray | None = None
    notes: list = field(default_factory=list)


def prepare(cfg: dict) -> HopInput:
    """Read the input and fill the null settings: the config wins over a Hefei folder's inp, which wins over
    the defaults (Hefei-NAMD-DEV's for a Hefei folder); each choice is logged."""
    from .couplings_file import read_series
    from .hefei import hefei_settings, read_dephtime, read_hefei

    cfg = json.loads(json.dumps(cfg))  # a copy
    hs, notes = None, []
    if cfg["input"]["couplings"]:
        series = read_series(cfg["input"]["couplings"])
    elif cfg["input"]["hefei"]:
        folder = Path(cfg["input"]["hefei"])
        series, inp = read_hefei(folder)
        hs = hefei_settings(folder, inp, series)
        notes += hs.notes
    else:
        raise ValueError("config needs input.couplings (HDF5) or input.hefei (folder)")
    for key, default in PACKAGE_DEFAULTS.items():
        from_inp = hs is not None and key in hs.given
        if cfg[key] is not None:
            if from_inp:
                notes.append(f"{key} = {cfg[key]} (config; overrides inp {hs.given[key]} = {hs.values[key]})")
            continue
        if hs is not None and key in hs.values:
            cfg[key] = hs.values[key]
            notes.append(f"{key} = {cfg[key]} " + (f"(inp {hs.given[key]})" if from_inp else
                                                    "(Hefei-NAMD-DEV's default; inp does not set it)"))
        elif hs is not None and key == "namdtime_fs":
            continue  # left null: run_hop refuses it (DEV's default NAMDTIME = 0 runs no step)
        else:
            cfg[key] = default
    inicon = hs.inicon if hs is not None else None
    if inicon is not None:
        if cfg["initial"]["times"] is not None:
            notes.append(f"initial.times = {cfg['initial']['times']} (config; the folder's INICON is not used)")
            inicon = None
        else:
            notes.append(f"initial conditions: {len(inicon)} from {hs.given['initial']}")
    tau = None
    if cfg["dephasing"] == "auto" and hs is not None and hs.dephasing and cfg["method"] == "dish":
        tau = read_dephtime(hs.dephasing)
        notes.append(f"dephasing: {hs.dephasing} (the folder's DEPHTIME)")
    elif isinstance(cfg["dephasing"], (str, list)) and cfg["dephasing"] != "auto":
        tau = read_dephtime(cfg["dephasing"]) if isinstance(cfg["dephasing"], str) else np.asarray(cfg["dephasing"], float)
    if tau is not None and tau.shape != (series.nstates, series.nstates):
        raise ValueError(f"dephasing matrix of shape {tau.shape} for the {series.nstates} states of the input")
    if cfg["states"] is not None:
        series, inicon, tau = _select(cfg["states"], series, inicon, tau)
    return HopInput(series, inicon, cfg, tau, notes)


def _select(states: list, series: CouplingSeries, inicon, tau):
    bad = [s for s in states if s >= series.nstates]
    if bad:
        raise ValueError(f"states: {bad} outside the {series.nstates} states of the input (0..{series.nstates - 1})")
    if inicon is not None:  # INICON's bands are counted in the full window: map them into the selection
        missing = sorted({int(s) for s in inicon[:, 1]} - set(states))
        if missing:
            raise ValueError(f"INICON starts in window state(s) {missing}, which 'states: {states}' leaves out")
        inicon = np.column_stack([inicon[:, 0], [states.index(int(s)) for s in inicon[:, 1]]])
    if tau is not None:
        tau = tau[np.ix_(states, states)]
    return series.select(states), inicon, tau


def load_series(cfg: dict) -> tuple[CouplingSeries, np.ndarray | None]:
    """The coupling series and, for a Hefei-NAMD folder with INICON, its (step, state) initial conditions."""
    h = prepare(cfg)
    return h.series, h.inicon


def initial_conditions(cfg: dict, series: CouplingSeries, inicon) -> tuple[np.ndarray, np.ndarray]:
    n, M = series.nstates, series.nsteps
    times = cfg["initial"]["times"]
    if inicon is not None and times is None:
        steps, states = inicon[:, 0], inicon[:, 1]
    else:
        times = DEFAULT_INITIAL_TIMES if times is None else times
        steps = np.asarray(times, int) if isinstance(times, (list, tuple)) else \
            np.linspace(0, M - 1, int(times)).round().astype(int)
        st = cfg["initial"]["state"]
        if st == "auto":
            st = 0 if cfg["carrier"] == "hole" else n - 1
        states = np.full(len(steps), int(st))
    if np.any(steps < 0) or np.any(steps >= M):
        raise ValueError(f"initial steps must lie in 0..{M - 1}")
    return steps, states


def dephasing_times(cfg: dict, series: CouplingSeries, tau=None):
    """(τ (n, n) fs, dephasing-function times, D(t)): ``tau`` when it came from a file, else from the gaps;
    FSSH does not use them, so without a file it gets (None, None, None)."""
    if tau is not None or cfg["method"] == "fssh":
        return tau, None, None
    from .dephasing import dephasing_matrix

    return dephasing_matrix(series.energies, series.dt_fs)


#: trajectories per work unit, by method: the job's work is (initial time, block of trajectories) pairs,
#: each with its own random generator, shared among MPI ranks; results do not depend on the rank count
TRAJ_BLOCK = {"dish": 50, "fssh": 500}  # FSSH trajectories are cheap: larger blocks keep the records small
#: settings that change no result: left out of the checkpoint key
OUTPUT_ONLY = ("output", "checkpoint_every_fs", "plots", "shprop")


def _hash(cfg: dict, series: CouplingSeries) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k not in OUTPUT_ONLY},
                                  sort_keys=True, default=str).encode())
    h.update(series.energies.tobytes())
    h.update(series.nac.tobytes())
    return h.hexdigest()[:16]


def work_units(ninit: int, ntraj: int, block: int) -> np.ndarray:
    """(unit, 3) int: initial-time index, block index, trajectories in the block."""
    nb = -(-ntraj // block)
    return np.array([(i, b, min(block, ntraj - b * block)) for i in range(ninit) for b in range(nb)])


def run_hop(cfg: dict, progress: bool = True) -> dict | None:
    """Run (or resume) a hop job; rank 0 returns the summary dict, other ranks None."""
    from ..core.parallel import chunk as my_chunk

    ranks = world()
    rank, size = ranks.rank, ranks.size
    out = Path(cfg["output"])
    ckdir = out / "checkpoint"
    def kept() -> str | None:  # said on failure only when something finished is on disk
        return f"checkpoints stay in {ckdir}; re-run the same command to resume" if any(ckdir.glob("rank*.npz")) \
            else None

    with ranks.stop_all_on_error("namd hop", kept):
        job = prepare(cfg)
        cfg, series = job.cfg, job.series
        if rank == 0:
            for line in job.notes:
                print(f"[n2amd namd hop] {line}", flush=True)
        if cfg["namdtime_fs"] is None:
            raise ValueError(f"{cfg['input']['hefei']}: inp has no NAMDTIME (Hefei-NAMD-DEV's default 0 runs no step) "
                             "and the config no namdtime_fs: set one of them")
        steps0, states0 = initial_conditions(cfg, series, job.inicon)
        tau, t_deph, D_deph = dephasing_times(cfg, series, job.tau_fs)
        block = TRAJ_BLOCK[cfg["method"]]
        settings = HopSettings(method=cfg["method"], nelm=int(cfg["nelm"]), ntraj=block,
                               temperature_K=float(cfg["temperature_K"]), hole=cfg["carrier"] == "hole",
                               detailed_balance=bool(cfg["detailed_balance"]), dephasing_fs=tau,
                               reuse=cfg["trajectory_reuse"], absorbing=bool(cfg["absorbing_ground"]))
        nsteps = int(round(float(cfg["namdtime_fs"]) / series.dt_fs))
        every = int(cfg["record_every"])
        key = _hash(cfg, series)
        units = work_units(len(steps0), int(cfg["ntraj"]), block)
        mine = np.asarray(my_chunk(len(units), rank, size), int)
        t0 = time.time()
        prop = Propagators(series, settings)
        prop.prebuild(_visited_steps(steps0, nsteps, series, settings), ranks)
        state, rec, generation = _resume_or_start(ckdir, key, units, mine, steps0, states0, series, settings, cfg,
                                                  nsteps, every, ranks)
        ranks.barrier()  # every rank has read the checkpoints before any writes new ones
        chunk = max(1, int(round(float(cfg["checkpoint_every_fs"]) / series.dt_fs)))
        bar = _progress(nsteps, state.steps_done, rank, progress, cfg["method"])
        while state.steps_done < nsteps:
            todo = min(chunk, nsteps - state.steps_done)
            if len(mine):
                advance(state, prop, settings, todo, rec)
            else:
                state.steps_done += todo
            _save_checkpoint(ckdir, ranks, generation, key, units[mine], state, rec)
            generation += 1
            if bar is not None:
                bar.update(todo)
        if bar is not None:
            bar.close()
        elapsed = time.time() - t0
    gathered = ranks.gather((rec.sh, rec.c2))
    if rank != 0:
        return None
    return _write_results(cfg, series, settings, steps0, states0, gathered, nsteps, every, tau, t_deph, D_deph,
                          elapsed, size, job.notes)


def _progress(nsteps, done, rank, enabled, method):
    if rank != 0 or not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=nsteps, initial=done, desc=f"{method.upper()} (rank 0)", unit="step", file=sys.stderr)


def _visited_steps(steps0: np.ndarray, nsteps: int, series: CouplingSeries, settings: HopSettings) -> np.ndarray:
    """The series steps that runs of ``nsteps`` from the initial steps ``steps0`` go through."""
    seen = np.zeros(series.nsteps, bool)
    for s0 in np.unique(steps0):
        t = s0 + np.arange(min(nsteps, 2 * series.nsteps + 1))  # the cycle repeats within 2 passes
        seen[step_indices(t, series, settings.reuse)] = True
    return np.flatnonzero(seen)


def _start(units, mine, steps0, states0, series, settings, cfg, nsteps, every) -> tuple[HopState, Record]:
    my = units[mine]
    inits = np.unique(my[:, 0]) if len(my) else np.zeros(0, int)
    group = np.searchsorted(inits, my[:, 0]) if len(my) else np.zeros(0, int)
    seeds = [np.random.SeedSequence([int(cfg["seed"]), int(i), int(b)]) for i, b, _ in my]
    state = HopState.start(steps0[inits], states0[inits], series.nstates, settings, seeds, group, settings.ntraj,
                           nvalid=my[:, 2] if len(my) else np.zeros(0, int))
    return state, Record.start(state, series, nsteps, every, index=inits, rows=len(steps0))


def _resume_or_start(ckdir, key, units, mine, steps0, states0, series, settings, cfg, nsteps, every, ranks):
    """The state of my units and my records, from the checkpoints when they hold all my units, and the
    checkpoint generation to write next. Every rank's file holds its units' states and its records, which
    add up over the files of one generation; on a resume rank 0 takes over the records of all of them,
    so the number of ranks may change."""
    state, rec = _start(units, mine, steps0, states0, series, settings, cfg, nsteps, every)
    files = sorted(ckdir.glob("rank*.npz")) if ckdir.exists() else []
    if not files:
        return state, rec, 1
    loaded = {}
    for f in files:
        z = dict(np.load(f, allow_pickle=False))
        if str(z["key"]) != key:
            raise ValueError(f"{f}: checkpoint of a different job (config or input changed); "
                             f"remove {ckdir} to start over")
        loaded[f] = z
    generation = max(int(z["generation"]) for z in loaded.values())
    latest = [z for z in loaded.values() if int(z["generation"]) == generation]
    size = int(latest[0]["size"])
    if len(latest) != size or len({int(z["steps_done"]) for z in latest}) != 1:
        raise ValueError(f"checkpoints in {ckdir} are incomplete (a run stopped while writing them); "
                         "remove them to start over")
    found = {(int(u[0]), int(u[1])): (z, j) for z in latest for j, u in enumerate(z["units"])}
    my = units[mine]
    if not all((int(i), int(b)) in found for i, b, _ in units):
        raise ValueError(f"checkpoints in {ckdir} do not hold every (initial time, trajectory block) of this job; "
                         "remove them to start over")
    rows = [found[(int(i), int(b))] for i, b, _ in my]
    state.steps_done = int(latest[0]["steps_done"])
    if len(my):
        state.active = np.stack([z["active"][j] for z, j in rows])
        for r, (z, j) in enumerate(rows):
            state.rngs[r].bit_generator.state = json.loads(str(z["rng"][j]))
        if settings.method == "dish":
            state.c = np.stack([z["c"][j] for z, j in rows])
            state.clocks = np.stack([z["clocks"][j] for z, j in rows])
        else:  # one c per group: the first row of each group has it
            first = [int(np.flatnonzero(state.group == g)[0]) for g in range(len(state.step0))]
            state.c = np.stack([rows[r][0]["c"][rows[r][1]] for r in first])
    if ranks.rank == 0:  # the records of every file, once
        rec.sh = np.sum([z["sh"] for z in latest], axis=0)
        rec.c2 = np.sum([z["c2"] for z in latest], axis=0)
    return state, rec, generation + 1


def _save_checkpoint(ckdir, ranks, generation, key, my_units, state, rec):
    c = state.c if state.c.ndim == 3 else state.c[state.group]  # FSSH: each row stores its group's c
    arrays = dict(key=key, generation=generation, size=ranks.size, units=my_units, steps_done=state.steps_done,
                  c=c, active=state.active, rng=np.array([json.dumps(g.bit_generator.state) for g in state.rngs]),
                  sh=rec.sh, c2=rec.c2)
    if state.clocks is not None:
        arrays["clocks"] = state.clocks
    save_npz(ckdir / f"rank{ranks.rank}.npz", **arrays)
    ranks.barrier()
    if ranks.rank == 0:  # files of a run on more ranks than this one are of an older generation now
        for f in ckdir.glob("rank*.npz"):
            if int(f.stem[4:]) >= ranks.size:
                f.unlink()


def _write_results(cfg, series, settings, steps0, states0, gathered, nsteps, every, tau, t_deph, D_deph, elapsed,
                   nranks, notes=()):
    import h5py

    from .lifetime import fit_lifetime, levels_off

    ninit, n = len(steps0), series.nstates
    nrec = nsteps // every + 1
    ntraj = int(cfg["ntraj"])
    sh = np.sum([part[0] for part in gathered], axis=0)
    c2 = np.sum([part[1] for part in gathered], axis=0)
    sh[np.arange(ninit), 0, states0] = c2[np.arange(ninit), 0, states0] = ntraj  # t = 0: the initial condition
    sh /= ntraj
    c2 /= ntraj
    # the snapshot each run has reached at each record: steps0 at t = 0, then the one after the step just made
    done = np.arange(nrec) * every
    snap = np.where(done[None, :] == 0, steps0[:, None] % series.energies.shape[0],
                    (step_indices(steps0[:, None] + np.maximum(done[None, :] - 1, 0), series, settings.reuse) + 1)
                    % series.energies.shape[0])
    t = np.arange(nrec) * every * series.dt_fs
    energy = np.einsum("itn,itn->it", sh, series.energies[snap])  # carrier energy along each run, eV
    p_init = sh[np.arange(ninit), :, states0]
    fits = {kind: fit_lifetime(t, p_init, kind) for kind in ("exponential", "linear")}
    plateau = levels_off(t, p_init, fits["exponential"])
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / "populations.h5", "w") as f:
        f.attrs["units"] = json.dumps({"time": "fs", "energy": "eV", "dephasing": "fs", "lifetime": "fs"})
        f.attrs["config"] = json.dumps(cfg, default=str)
        f.attrs["settings_log"] = json.dumps(list(notes))
        f["time_fs"] = t  # t = 0 (the initial condition) first
        f["populations"] = sh  # (initial time, time, state): fraction of trajectories in each state
        f["populations_coefficients"] = c2  # mean |c|²
        f["carrier_energy_eV"] = energy
        f["initial_steps"], f["initial_states"] = steps0, states0
        if tau is not None:
            f["dephasing_fs"] = tau
        if t_deph is not None and D_deph is not None:
            f["dephasing_function/time_fs"] = t_deph
            f["dephasing_function/D"] = D_deph  # (state, state, time): D_ij(t) = exp(−g_ij(t))
        for kind, fit in fits.items():
            g = f.create_group(f"lifetime/{kind}")
            g.attrs.update(tau_fs=fit.tau_fs, stderr_fs=fit.stderr_fs, window_fs=fit.window_fs)
        if plateau is not None:
            f["lifetime"].attrs["levels_off_at"] = plateau
    header = "time_fs,carrier_energy_eV," + ",".join(f"P_state{s}" for s in range(n))
    np.savetxt(out / "populations.csv", np.column_stack([t, energy.mean(0), sh.mean(0)]), delimiter=",",
               header=header, comments="", fmt="%.8g")
    if cfg["shprop"]:
        _write_shprop(out, t, steps0, sh, c2, series, snap)
    summary = _summary(series, tau, fits, plateau, cfg, settings, ninit, nsteps, elapsed, nranks)
    (out / "summary.txt").write_text(summary["text"] + "\n")
    if cfg["plots"]:
        from .plots import plot_dephasing, plot_energy, plot_populations

        plot_populations(out / "populations.png", t, sh.mean(0), series, fits["exponential"])
        plot_energy(out / "energy.png", t, energy)
        if t_deph is not None and D_deph is not None and D_deph.size:
            plot_dephasing(out / "dephasing.png", t_deph, D_deph, tau)
    return summary


def _write_shprop(out: Path, t, steps0, sh, c2, series, snap) -> None:
    """SHPROP.<NAMDTINI> (hopping populations) and POPRT.<NAMDTINI> (TDKS |c|²) per initial time; a NAMDTINI
    that occurs twice gets a suffix .2, .3, ..."""
    from .hefei import write_shprop

    seen: dict[int, int] = {}
    for i, s0 in enumerate(steps0):
        tag = str(int(s0) + 1)
        seen[tag] = seen.get(tag, 0) + 1
        if seen[tag] > 1:
            tag += f".{seen[tag]}"
        E = series.energies[snap[i]]
        write_shprop(out / f"SHPROP.{tag}", t, np.einsum("tn,tn->t", sh[i], E), sh[i])
        write_shprop(out / f"POPRT.{tag}", t, np.einsum("tn,tn->t", c2[i], E), c2[i])


def _summary(series, tau, fits, plateau, cfg, settings, ninit, nsteps, elapsed, nranks) -> dict:
    from ..core.units import HBAR_EV_FS

    n = series.nstates
    ntraj = int(cfg["ntraj"])
    gap = float(np.mean(series.energies[:, -1] - series.energies[:, 0]))
    rms = series.rms_nac_meV()
    ij = (0, n - 1)
    rate = ninit * ntraj * nsteps / max(elapsed, 1e-9)
    life = fits["exponential"].text()
    if plateau is not None:
        life = (f"not resolved: the population levels off at {plateau:.3f} within the run (equilibrium among "
                f"states, or a bottleneck), so no single-exponential lifetime describes it")
    text = "\n".join([
        f"{settings.method.upper()} {cfg['carrier']} dynamics, {n} states, T = {settings.temperature_K:g} K, "
        f"{ninit} initial times × {ntraj} trajectories × {nsteps * series.dt_fs / 1000:g} ps",
        f"  {'averaged gap (top − bottom state)':38s} {gap:.4f} eV",
        f"  {'pure-dephasing time (bottom–top)':38s} "
        + (f"{tau[ij]:.2f} fs" if tau is not None else "not used by FSSH (`n2amd namd analyse` gives it)"),
        f"  {'RMS NAC |ħd| (bottom–top)':38s} {rms[ij]:.4f} meV",
        f"  {'lifetime of the initial state':38s} {life}",
        f"  {'short-time linear estimate':38s} {fits['linear'].text()}",
        f"  {'cost':38s} {elapsed:.2f} s on {nranks} rank(s): {rate:.3g} trajectory-steps/s",
    ])
    print(text)
    return {"text": text, "gap_eV": gap, "dephasing_fs": float(tau[ij]) if tau is not None else float("nan"),
            "rms_nac_meV": float(rms[ij]),
            "lifetime_fs": fits["exponential"].tau_fs if plateau is None else float("nan"),
            "lifetime_stderr_fs": fits["exponential"].stderr_fs, "lifetime_linear_fs": fits["linear"].tau_fs,
            "levels_off_at": plateau, "seconds": elapsed, "hbar_eV_fs": HBAR_EV_FS}
