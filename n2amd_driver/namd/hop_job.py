"""``python -m n2amd_driver.namd hop config.yaml``: populations and lifetimes from a couplings file.

Runs on one process or under ``mpirun -n N``: initial times are dealt to ranks (i mod N); each initial
time has its own random generator seeded from (seed, initial-time index), so populations do not depend
on N. Every rank checkpoints its initial times every ``checkpoint_every_fs``; re-running the same command
resumes from the checkpoints (also with another number of ranks). Rank 0 writes the results.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..core.checkpoint import save_npz
from ..core.parallel import world
from .hopping import HopSettings, HopState, Propagators, advance
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
        method: Literal["dish", "fssh"] = Field("dish", description="surface hopping: dish | fssh")
        carrier: Literal["electron", "hole"] = Field(
            "electron", description="electron | hole (hole: 'upward' means lower band energy)")
        temperature_K: PositiveFloat = Field(300.0, description="K, of the detailed-balance factors")
        nelm: PositiveInt = Field(10, description="electronic sub-steps per MD step")
        ntraj: PositiveInt = Field(100, description="stochastic trajectories per initial time")
        namdtime_fs: PositiveFloat = Field(
            1000.0, description="fs, length of each run; the MD trajectory is reused head to tail if shorter")
        initial: Initial = Field(default_factory=Initial)
        dephasing: Literal["auto"] | str | list[list[float]] = Field(
            "auto", description="auto (from the gap fluctuations), a DEPHTIME file, or an n×n list (fs)")
        detailed_balance: bool = Field(True, description="Boltzmann factor on upward hops")
        seed: int = Field(0, description="random seed (results do not depend on the number of ranks)")
        record_every: PositiveInt = Field(1, description="MD steps between recorded populations")
        checkpoint_every_fs: PositiveFloat = Field(20000.0, description="fs of dynamics between checkpoints")
        output: str = Field("hop", description="output folder")

    return Hop


SCHEMA = _schema()
#: Documented defaults of a hop config (YAML): what :data:`SCHEMA` gives when a key is not set.
DEFAULTS: dict = SCHEMA().model_dump()
DEFAULT_INITIAL_TIMES = 20


def load_config(path=None, overrides: dict | None = None) -> dict:
    """The hop settings from a YAML file and overrides, checked against :data:`SCHEMA` before any work."""
    from ..core.config import load_validated

    return load_validated(SCHEMA, path, overrides, relative_paths=("input.couplings", "input.hefei"))


def load_series(cfg: dict) -> tuple[CouplingSeries, np.ndarray | None]:
    """The coupling series and, for Hefei-NAMD input with INICON, its (step, state) initial conditions."""
    from .couplings_file import read_series
    from .hefei import read_hefei

    inicon = None
    if cfg["input"]["couplings"]:
        series = read_series(cfg["input"]["couplings"])
    elif cfg["input"]["hefei"]:
        folder = Path(cfg["input"]["hefei"])
        series, inp = read_hefei(folder)
        if (folder / "INICON").exists():
            inicon = inicon_conditions(folder / "INICON", series, int(inp.get("BMIN", 1)))
    else:
        raise ValueError("config needs input.couplings (HDF5) or input.hefei (folder)")
    if cfg["states"] is not None:
        bad = [s for s in cfg["states"] if s >= series.nstates]
        if bad:
            raise ValueError(f"states: {bad} outside the {series.nstates} states of the input (0..{series.nstates - 1})")
        if inicon is not None:  # INICON's bands are counted in the full window: map them into the selection
            missing = sorted({int(s) for s in inicon[:, 1]} - set(cfg["states"]))
            if missing:
                raise ValueError(f"INICON starts in window state(s) {missing}, which 'states: {cfg['states']}' leaves "
                                 "out")
            inicon = np.column_stack([inicon[:, 0], [cfg["states"].index(int(s)) for s in inicon[:, 1]]])
        series = series.select(cfg["states"])
    return series, inicon


def inicon_conditions(path: Path, series: CouplingSeries, bmin: int) -> np.ndarray:
    """(MD step, window state) of each INICON line, 0-based; a NAMDTINI or INIBAND outside the run is
    refused with the file, the line and Hefei-NAMD's own 1-based numbers."""
    from .hefei import read_inicon

    raw = read_inicon(path)
    M, n = series.nsteps, series.nstates
    for k, (t, b) in enumerate(raw, start=1):
        if not 1 <= t <= M:
            raise ValueError(f"{path}: line {k}: NAMDTINI {t} is outside the {M} steps of EIGTXT/NATXT (1..{M})")
        if not bmin <= b < bmin + n:
            raise ValueError(f"{path}: line {k}: INIBAND {b} is outside the bands of EIGTXT (BMIN..BMAX = "
                             f"{bmin}..{bmin + n - 1})")
    return np.column_stack([raw[:, 0] - 1, raw[:, 1] - bmin])


def initial_conditions(cfg: dict, series: CouplingSeries, inicon) -> tuple[np.ndarray, np.ndarray]:
    n, M = series.nstates, series.nsteps
    times = cfg["initial"]["times"]
    if inicon is not None and times is None:
        steps, states = inicon[:, 0], inicon[:, 1]
    else:
        if inicon is not None:
            print(f"[n2amd namd hop] initial.times is set ({times}): the folder's INICON is not used", flush=True)
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


def dephasing_times(cfg: dict, series: CouplingSeries):
    from .dephasing import dephasing_matrix
    from .hefei import read_dephtime

    d = cfg["dephasing"]
    if d == "auto":
        return dephasing_matrix(series.energies, series.dt_fs)
    tau = read_dephtime(d) if isinstance(d, str) else np.asarray(d, float)
    return tau, None, None


def _hash(cfg: dict, series: CouplingSeries) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k not in ("output", "checkpoint_every_fs")},
                                  sort_keys=True, default=str).encode())
    h.update(series.energies.tobytes())
    h.update(series.nac.tobytes())
    return h.hexdigest()[:16]


def run_hop(cfg: dict, progress: bool = True) -> dict | None:
    """Run (or resume) a hop job; rank 0 returns the summary dict, other ranks None."""
    ranks = world()
    rank, size = ranks.rank, ranks.size
    out = Path(cfg["output"])
    ckdir = out / "checkpoint"
    with ranks.stop_all_on_error("namd hop", f"checkpoints stay in {ckdir}"):
        series, inicon = load_series(cfg)
        steps0, states0 = initial_conditions(cfg, series, inicon)
        tau, t_deph, D_deph = dephasing_times(cfg, series)
        settings = HopSettings(method=cfg["method"], nelm=int(cfg["nelm"]), ntraj=int(cfg["ntraj"]),
                               temperature_K=float(cfg["temperature_K"]), hole=cfg["carrier"] == "hole",
                               detailed_balance=bool(cfg["detailed_balance"]), dephasing_fs=tau)
        nsteps = int(round(float(cfg["namdtime_fs"]) / series.dt_fs))
        every = int(cfg["record_every"])
        key = _hash(cfg, series)
        mine = np.arange(rank, len(steps0), size)
        t0 = time.time()
        prop = Propagators(series, settings)
        state, rec = _resume_or_start(ckdir, key, mine, steps0, states0, series.nstates, settings, cfg, nsteps, every)
        chunk = max(1, int(round(float(cfg["checkpoint_every_fs"]) / series.dt_fs)))
        bar = _progress(nsteps, state.steps_done, rank, progress, cfg["method"])
        while state.steps_done < nsteps:
            todo = min(chunk, nsteps - state.steps_done)

            def record(st, k):
                if st.steps_done % every == 0:
                    idx = st.steps_done // every - 1
                    rec["sh"][:, idx] = _onehot_mean(st.active, series.nstates)
                    pop_c = np.abs(st.c) ** 2
                    rec["c2"][:, idx] = pop_c if pop_c.ndim == 2 else pop_c.mean(axis=1)
                    rec["step"][:, idx] = (k + 1) % series.energies.shape[0]

            advance(state, prop, settings, todo, record)
            _save_checkpoint(ckdir, rank, key, mine, state, rec)
            if bar is not None:
                bar.update(todo)
        if bar is not None:
            bar.close()
        elapsed = time.time() - t0
    gathered = ranks.gather((mine, rec))
    if rank != 0:
        return None
    return _write_results(cfg, series, settings, steps0, states0, gathered, nsteps, every, tau, t_deph, D_deph,
                          elapsed, size)


def _onehot_mean(active, n):
    return np.stack([(active == s).mean(axis=1) for s in range(n)], axis=-1)


def _progress(nsteps, done, rank, enabled, method):
    if rank != 0 or not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=nsteps, initial=done, desc=f"{method.upper()} (rank 0)", unit="step", file=sys.stderr)


def _resume_or_start(ckdir, key, mine, steps0, states0, n, settings, cfg, nsteps, every):
    nrec = nsteps // every
    if ckdir.exists():
        found = {}
        for f in sorted(ckdir.glob("rank*.npz")):
            z = np.load(f, allow_pickle=False)
            if str(z["key"]) != key:
                raise ValueError(f"{f}: checkpoint of a different job (config or input changed); "
                                 f"remove {ckdir} to start over")
            for j, i in enumerate(z["inits"]):
                found[int(i)] = (f, j)
        if all(int(i) in found for i in mine) and len(mine):
            return _load_states(found, mine, settings)
    seeds = [np.random.SeedSequence([int(cfg["seed"]), int(i)]) for i in mine]
    state = HopState.start(steps0[mine], states0[mine], n, settings, seeds)
    rec = {"sh": np.zeros((len(mine), nrec, n)), "c2": np.zeros((len(mine), nrec, n)),
           "step": np.zeros((len(mine), nrec), int)}
    return state, rec


def _load_states(found, mine, settings):
    files = {f: dict(np.load(f, allow_pickle=False)) for f, _ in (found[int(i)] for i in mine)}
    rows = [(files[found[int(i)][0]], found[int(i)][1]) for i in mine]  # (arrays of a file, row in it)
    steps_done = {int(z["steps_done"]) for z, _ in rows}
    if len(steps_done) != 1:
        raise ValueError("checkpoints of this job stopped at different steps; remove them to start over")

    def take(name):
        return np.stack([z[name][j] for z, j in rows])

    rngs = []
    for z, j in rows:
        g = np.random.default_rng()
        g.bit_generator.state = json.loads(str(z["rng"][j]))
        rngs.append(g)
    state = HopState(take("step0"), take("init_state"), take("c"), take("active"),
                     take("clocks") if settings.method == "dish" else None, steps_done.pop(), rngs)
    rec = {"sh": take("sh"), "c2": take("c2"), "step": take("step")}
    return state, rec


def _save_checkpoint(ckdir, rank, key, mine, state, rec):
    arrays = dict(key=key, inits=mine, steps_done=state.steps_done, step0=state.step0, init_state=state.init_state,
                  c=state.c, active=state.active, rng=np.array([json.dumps(g.bit_generator.state) for g in state.rngs]),
                  **rec)
    if state.clocks is not None:
        arrays["clocks"] = state.clocks
    save_npz(ckdir / f"rank{rank}.npz", **arrays)


def _write_results(cfg, series, settings, steps0, states0, gathered, nsteps, every, tau, t_deph, D_deph, elapsed,
                   nranks):
    import h5py

    from .lifetime import fit_lifetime

    ninit, n = len(steps0), series.nstates
    nrec = nsteps // every
    sh = np.zeros((ninit, nrec, n))
    c2 = np.zeros((ninit, nrec, n))
    kstep = np.zeros((ninit, nrec), int)
    for mine, rec in gathered:
        sh[mine], c2[mine], kstep[mine] = rec["sh"], rec["c2"], rec["step"]
    t = (np.arange(nrec) + 1) * every * series.dt_fs
    energy = np.einsum("itn,itn->it", sh, series.energies[kstep])  # carrier energy along each run, eV
    p_init = sh[np.arange(ninit), :, states0]
    fits = {kind: fit_lifetime(t, p_init, kind) for kind in ("exponential", "linear")}
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / "populations.h5", "w") as f:
        f.attrs["units"] = json.dumps({"time": "fs", "energy": "eV", "dephasing": "fs", "lifetime": "fs"})
        f.attrs["config"] = json.dumps(cfg, default=str)
        f["time_fs"] = t
        f["populations"] = sh  # (initial time, time, state): fraction of trajectories in each state
        f["populations_coefficients"] = c2  # mean |c|²
        f["carrier_energy_eV"] = energy
        f["initial_steps"], f["initial_states"] = steps0, states0
        f["dephasing_fs"] = tau
        if t_deph is not None and D_deph is not None:
            f["dephasing_function/time_fs"] = t_deph
            f["dephasing_function/D"] = D_deph  # (state, state, time): D_ij(t) = exp(−g_ij(t))
        for kind, fit in fits.items():
            g = f.create_group(f"lifetime/{kind}")
            g.attrs.update(tau_fs=fit.tau_fs, stderr_fs=fit.stderr_fs, window_fs=fit.window_fs)
    header = "time_fs,carrier_energy_eV," + ",".join(f"P_state{s}" for s in range(n))
    np.savetxt(out / "populations.csv", np.column_stack([t, energy.mean(0), sh.mean(0)]), delimiter=",",
               header=header, comments="", fmt="%.8g")
    summary = _summary(series, tau, fits, cfg, settings, ninit, nsteps, elapsed, nranks)
    (out / "summary.txt").write_text(summary["text"] + "\n")
    from .plots import plot_dephasing, plot_energy, plot_populations

    plot_populations(out / "populations.png", t, sh.mean(0), series, fits["exponential"])
    plot_energy(out / "energy.png", t, energy)
    if t_deph is not None and D_deph is not None and D_deph.size:
        plot_dephasing(out / "dephasing.png", t_deph, D_deph, tau)
    return summary


def _summary(series, tau, fits, cfg, settings, ninit, nsteps, elapsed, nranks) -> dict:
    from ..core.units import HBAR_EV_FS

    n = series.nstates
    gap = float(np.mean(series.energies[:, -1] - series.energies[:, 0]))
    rms = series.rms_nac_meV()
    ij = (0, n - 1)
    rate = ninit * settings.ntraj * nsteps / max(elapsed, 1e-9)
    text = "\n".join([
        f"{settings.method.upper()} {cfg['carrier']} dynamics, {n} states, T = {settings.temperature_K:g} K, "
        f"{ninit} initial times × {settings.ntraj} trajectories × {nsteps * series.dt_fs / 1000:g} ps",
        f"  {'averaged gap (top − bottom state)':38s} {gap:.4f} eV",
        f"  {'pure-dephasing time (bottom–top)':38s} {tau[ij]:.2f} fs",
        f"  {'RMS NAC |ħd| (bottom–top)':38s} {rms[ij]:.4f} meV",
        f"  {'lifetime of the initial state':38s} {fits['exponential'].text()}",
        f"  {'':38s} {fits['linear'].text()}",
        f"  {'cost':38s} {elapsed:.1f} s on {nranks} rank(s): {rate:.3g} trajectory-steps/s",
    ])
    print(text)
    return {"text": text, "gap_eV": gap, "dephasing_fs": float(tau[ij]), "rms_nac_meV": float(rms[ij]),
            "lifetime_fs": fits["exponential"].tau_fs, "lifetime_stderr_fs": fits["exponential"].stderr_fs,
            "lifetime_linear_fs": fits["linear"].tau_fs, "seconds": elapsed,
            "hbar_eV_fs": HBAR_EV_FS}
