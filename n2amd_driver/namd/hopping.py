"""Surface hopping in the classical path approximation: FSSH and DISH over initial times and stochastic
trajectories.

**FSSH** (Tully, CPA as in Hefei-NAMD/PYXAID). The coefficients do not feel the active state, so one
vector c per initial time serves all its trajectories. Hop probability from the active state k to m
over one step, accumulated over its sub-steps (h = dt/nelm):
    g_km = max(0, Σ_sub 2 Re(c_k* c_m d_km) h / |c_k|²),
upward hops (in the carrier's sense: higher energy for electrons, lower for holes) are multiplied by
exp(−ΔE/k_BT) with energies at the step midpoint (detailed balance in the CPA). One uniform random
number per trajectory and step picks the hop. No velocity rescaling.

**DISH** (Jaeger, Fischer, Prezhdo, JCP 137, 22A545 (2012)). Each trajectory carries its own c. The
decoherence rate of state i is 1/τ_i = Σ_j |c_j|² / τ_ij (τ_ij pure-dephasing times, τ_ii = ∞).
Each state keeps the time since its last decoherence event. Variant chosen here (and tested):
- at most one decoherence event per trajectory per step: the state with the largest (clock/τ_i) ≥ 1;
- fixed-threshold waiting times (the event happens when the clock reaches τ_i; not exponential);
- the event collapses the wavefunction onto state i with probability |c_i|², times exp(−ΔE/k_BT) if i is
  above the active state in the carrier's sense; i then becomes the active state and every clock is reset.
  Otherwise state i is projected out (c_i = 0, c renormalised) and only its clock is reset;
- the active state changes only at a collapse (projecting out the active state leaves it active until
  the next collapse), which keeps detailed balance between two levels.
Each method draws exactly one uniform random number per trajectory and step, from a generator that
belongs to the row, so results do not depend on how rows are shared among MPI ranks.

Trajectories are held in rows (a row: one random generator, ``width`` trajectories, one initial time);
the job makes one row per (initial time, block of trajectories) and shares rows among MPI ranks. FSSH keeps
one c per initial time (``group``), shared by its rows, and propagates it sub-step by sub-step (exact
exponential applied to the vector); DISH applies one step propagator per trajectory and step (the product
of the sub-step exponentials, computed once per MD step and shared). Both are exact to machine precision.
The per-trajectory loops are compiled kernels (C, ``hopping_kernels.c``), run over chunks of
:data:`CHUNK_STEPS` steps; what a chunk needs is built for its steps only (FSSH: one initial time at a time),
and its random numbers are drawn for a bounded number of rows at a time, so memory does not grow with the
trajectory length or the number of trajectories.
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.native import build_shared, cache_root
from ..core.units import HBAR_EV_FS, KB_EV_K
from .series import CouplingSeries
from .tdks import step_propagators, substep_hamiltonians


#: MD steps done per kernel call; their propagators (DISH) or sub-step Hamiltonians (FSSH) are built together
CHUNK_STEPS = 256
#: DISH step propagators of the whole trajectory are kept when they fit in this many bytes
CACHE_BYTES = 64 * 2**20
#: the random numbers of a chunk are drawn for as many rows at a time as fit in this many bytes
RANDOM_BYTES = 32 * 2**20


@dataclass
class HopSettings:
    method: str = "dish"  # "fssh" or "dish"
    nelm: int = 10  # electronic sub-steps per MD step
    ntraj: int = 100  # stochastic trajectories per row (HopState.start's default width)
    temperature_K: float = 300.0
    hole: bool = False  # hole dynamics: "upward" means lower band energy
    detailed_balance: bool = True
    dephasing_fs: np.ndarray | None = None  # (n, n) pure-dephasing times for DISH
    reuse: str = "wrap"  # "wrap" | "dev": how runs longer than the trajectory reuse it (step_indices)
    absorbing: bool = False  # freeze trajectories in the lowest state (carrier's sense)

    def __post_init__(self):
        self.method = self.method.lower()
        if self.method not in ("fssh", "dish"):
            raise ValueError(f"method must be 'fssh' or 'dish', got '{self.method}'")
        if self.method == "dish" and self.dephasing_fs is None:
            raise ValueError("DISH needs pure-dephasing times (dephasing_fs)")
        if self.reuse not in ("wrap", "dev"):
            raise ValueError(f"reuse must be 'wrap' or 'dev', got '{self.reuse}'")

    def ground_state(self, nstates: int) -> int:
        """The lowest state in the carrier's sense: the bottom of the window for electrons, the top for holes."""
        return nstates - 1 if self.hole else 0


def step_indices(t: np.ndarray, series: CouplingSeries, reuse: str = "wrap") -> np.ndarray:
    """The step of the series used at run step ``t`` (= initial step + steps done). ``wrap``: t mod nsteps
    (every step in turn; a series with one coupling per snapshot couples the last back to the first).
    ``dev``: Hefei-NAMD-DEV's cycle over steps 1..N−2 (0-based; period N − 2, N snapshots), for t ≥ 1."""
    t = np.asarray(t)
    if reuse == "wrap":
        return t % series.nsteps
    N = series.energies.shape[0]
    if N < 3:
        raise ValueError("trajectory_reuse dev needs at least 3 snapshots")
    return 1 + (t - 1) % (N - 2)


class Propagators:
    """What hopping needs along the nuclear path for the steps asked for (:meth:`take`). DISH step
    propagators are kept once built while all of them fit in :data:`CACHE_BYTES` (runs longer than the
    trajectory reuse them); otherwise they are rebuilt per chunk, so memory does not grow with NSW."""

    def __init__(self, series: CouplingSeries, settings: HopSettings):
        self.series = series
        self.settings = settings
        self.dt = series.dt_fs
        self.nelm = settings.nelm
        n = series.nstates
        if settings.method == "dish":
            tau = np.asarray(settings.dephasing_fs, dtype=float)
            if tau.shape != (n, n):
                raise ValueError(f"dephasing matrix of shape {tau.shape} for {n} states")
            # 1/τ_ij with τ_ii (and zero or infinite entries) meaning "never"
            self.inv_tau = np.divide(1.0, tau, out=np.zeros_like(tau), where=np.isfinite(tau) & (tau > 0))
            np.fill_diagonal(self.inv_tau, 0.0)
        cache = settings.method == "dish" and series.nsteps * n * n * 16 <= CACHE_BYTES
        self._U = np.empty((series.nsteps, n, n), complex) if cache else None
        self._built = np.zeros(series.nsteps, bool)

    def prebuild(self, steps: np.ndarray, ranks=None) -> None:
        """Build the DISH step propagators of ``steps`` now, the work shared among ``ranks`` (a
        :class:`~n2amd_driver.core.parallel.Ranks`; every rank then holds all of them). Only when the whole
        trajectory's propagators fit the cache; otherwise :meth:`take` builds each chunk's."""
        if self._U is None:
            return
        from ..core.parallel import chunk

        todo = np.asarray(steps, int)
        todo = todo[~self._built[todo]]
        rank, size = (0, 1) if ranks is None else (ranks.rank, ranks.size)
        mine = todo[np.asarray(chunk(len(todo), rank, size), int)]
        built = np.empty((len(mine),) + self._U.shape[1:], complex)
        for k in range(0, len(mine), CHUNK_STEPS):  # in chunks: the sub-step arrays are nelm times larger
            built[k:k + CHUNK_STEPS] = step_propagators(self.series, self.nelm, steps=mine[k:k + CHUNK_STEPS])
        parts = [built] if ranks is None else ranks.allgather(built)
        if len(todo):
            self._U[todo] = np.concatenate(parts)
            self._built[todo] = True

    def take(self, steps: np.ndarray) -> dict:
        """For the series steps ``steps``: DISH the step propagators U (len, n, n); FSSH the sub-step
        Hamiltonians H (len, nelm, n, n) eV; both the Boltzmann factors F (len, n, n) of a move k → m at the
        step midpoint."""
        E = self.series.energies
        steps = np.asarray(steps, int)
        E_mid = 0.5 * (E[steps] + E[(steps + 1) % E.shape[0]])
        out = {"F": boltzmann_factors(E_mid, self.settings)}
        if self.settings.method == "fssh":
            out["H"] = substep_hamiltonians(self.series, self.nelm, steps)
        elif self._U is None:
            out["U"] = step_propagators(self.series, self.nelm, steps=steps)
        else:
            self.prebuild(steps)
            out["U"] = self._U[steps]
        return out



def boltzmann_factors(E_mid: np.ndarray, settings: HopSettings) -> np.ndarray:
    """f[..., k, m] = min(1, exp(−ΔE_km/kT)) for a move k → m; ΔE in the carrier's sense."""
    sign = -1.0 if settings.hole else 1.0
    dE = sign * (E_mid[..., None, :] - E_mid[..., :, None])  # E_m − E_k
    if not settings.detailed_balance:
        return np.ones_like(dE)
    return np.exp(-np.clip(dE, 0.0, None) / (KB_EV_K * settings.temperature_K))


@dataclass
class HopState:
    """The state of a set of rows of trajectories (what a checkpoint stores). Rows belong to groups (initial
    times): ``group[r]`` is row r's group; row r uses its first ``nvalid[r]`` trajectories."""

    step0: np.ndarray  # (G,) series step at which each group's run starts
    init_state: np.ndarray  # (G,) state index of the carrier at t0
    group: np.ndarray  # (R,) group of each row
    c: np.ndarray  # FSSH (G, n); DISH (R, W, n) complex
    active: np.ndarray  # (R, W) int
    clocks: np.ndarray | None  # DISH (R, W, n) fs since each state's last decoherence event
    steps_done: int
    rngs: list  # one numpy Generator per row
    nvalid: np.ndarray  # (R,) trajectories in use in each row

    @classmethod
    def start(cls, step0, init_state, nstates: int, settings: HopSettings, seeds, group=None,
              width: int | None = None, nvalid=None) -> "HopState":
        """Rows seeded by ``seeds`` (one per row), in groups ``group`` (default: one row per group) of
        ``width`` trajectories (default ``settings.ntraj``), of which ``nvalid`` (default all) are used."""
        step0, init_state = np.asarray(step0, int), np.asarray(init_state, int)
        G = len(step0)
        group = np.arange(G) if group is None else np.asarray(group, int)
        R, W = len(group), int(width or settings.ntraj)
        if np.any(init_state < 0) or np.any(init_state >= nstates):
            raise ValueError(f"initial states {init_state.tolist()} outside the {nstates}-state window")
        if settings.reuse == "dev" and np.any(step0 < 1):
            raise ValueError("trajectory_reuse dev (Hefei-NAMD-DEV's cycle) needs initial steps ≥ 1 (NAMDTINI ≥ 2)")
        active = np.repeat(init_state[group][:, None], W, axis=1)
        if settings.method == "fssh":
            c = np.zeros((G, nstates), complex)
            c[np.arange(G), init_state] = 1.0
            clocks = None
        else:
            c = np.zeros((R, W, nstates), complex)
            c[np.arange(R), :, init_state[group]] = 1.0
            clocks = np.zeros((R, W, nstates))
        rngs = [np.random.default_rng(s) for s in seeds]
        if len(rngs) != R:
            raise ValueError(f"{len(rngs)} seeds for {R} rows")
        nvalid = np.full(R, W, np.int64) if nvalid is None else np.ascontiguousarray(nvalid, np.int64)
        return cls(step0, init_state, group, c, active, clocks, 0, rngs, nvalid)


@dataclass
class Record:
    """Sums over trajectories every ``every`` steps, per initial time: trajectories in each state ``sh`` and
    Σ|c|² ``c2``; record i is after i·every steps (i ≥ 1; record 0, the initial condition, is left to the
    caller). ``index`` maps the state's groups to rows of the record, so ranks holding parts of the same
    initial times fill records that add up."""

    every: int
    sh: np.ndarray  # (rows, nrec, n)
    c2: np.ndarray  # (rows, nrec, n)
    index: np.ndarray  # (G,) record row of each group of the state

    @classmethod
    def start(cls, state: HopState, series: CouplingSeries, nsteps: int, every: int = 1, index=None,
              rows: int | None = None) -> "Record":
        G, n = len(state.step0), series.nstates
        index = np.arange(G) if index is None else index
        shape = (G if rows is None else rows, nsteps // every + 1, n)
        return cls(every, np.zeros(shape), np.zeros(shape), np.ascontiguousarray(index, np.int64))


def advance(state: HopState, prop: Propagators, settings: HopSettings, nsteps: int, record: Record | None = None):
    """Run ``nsteps`` MD steps of every trajectory of ``state``, filling ``record`` as they go. The work is
    done in chunks of :data:`CHUNK_STEPS` steps by the compiled kernels."""
    R, W = state.active.shape
    n = prop.series.nstates
    if record is None:  # nothing to record
        record = Record.start(state, prop.series, 0, every=2**62)
    bottom = settings.ground_state(n)
    done = 0
    while done < nsteps:
        block = min(CHUNK_STEPS, nsteps - done)
        t = state.step0[:, None] + state.steps_done + np.arange(block)[None, :]  # (G, block)
        ks = step_indices(t, prop.series, settings.reuse)
        if settings.method == "fssh":  # each initial time's coefficients through the chunk, one at a time
            G = len(state.step0)
            g, out, pops = np.empty((G, block, n, n)), np.empty((G, block, n)), np.empty((G, block, n))
            for k in range(G):  # (the sub-step Hamiltonians of all of them at once would be nelm·n² per step)
                uniq, where = np.unique(ks[k], return_inverse=True)
                P = prop.take(uniq)
                g[k], out[k], pops[k] = _fssh_probabilities(P["H"], P["F"], where[None, :], state.c[k:k + 1],
                                                             prop.dt / prop.nelm / HBAR_EV_FS)
        else:  # the chunk's step propagators, as the kernel reads them
            uniq, where = np.unique(ks, return_inverse=True)
            P = prop.take(uniq)
            P = {"Ur": np.ascontiguousarray(P["U"].real), "Ui": np.ascontiguousarray(P["U"].imag), "F": P["F"],
                 "where": np.ascontiguousarray(where.reshape(ks.shape), np.int64)}
        per_batch = max(1, RANDOM_BYTES // (8 * block * W))  # rows whose random numbers are drawn together
        for r0 in range(0, R, per_batch):
            rows = slice(r0, min(R, r0 + per_batch))
            # one random number per trajectory and step, from each row's own generator
            rand = np.empty((rows.stop - r0, block, W))
            for rng, row in zip(state.rngs[rows], rand):
                rng.random(out=row)
            if settings.method == "fssh":
                _fssh_hops(g, out, state, rows, rand, settings, bottom, record)
            else:
                _dish_steps(P, state, rows, prop, rand, settings, bottom, record)
        if settings.method == "fssh":
            idx = np.arange(state.steps_done + 1, state.steps_done + block + 1)
            on = np.flatnonzero(idx % record.every == 0)
            if len(on):  # every trajectory of a group has its |c|²
                rec_rows = record.index[state.group]
                np.add.at(record.c2, (rec_rows[:, None], idx[on][None, :] // record.every),
                          pops[state.group][:, on] * state.nvalid[:, None, None])
        state.steps_done += block
        done += block
    return record


# ---- compiled kernels ---------------------------------------------------------------------------
# The per-trajectory loops are C (hopping_kernels.c, built on first use into a per-user cache and called
# through ctypes) rather than a JIT, whose start-up alone is a large part of a short run (docs/namd.md).

def kernels_path() -> Path:
    """The compiled kernels (built now if missing: C compiler ``$CC`` or ``cc``; cache ``$N2AMD_NATIVE_CACHE``
    or ``<venv>/var/n2amd_native``)."""
    cc = os.environ.get("CC", "cc")
    return build_shared(Path(__file__).with_name("hopping_kernels.c"), "hopping_kernels.so",
                        [cc, "-O3", "-fPIC", "-shared"], cache_root("N2AMD_NATIVE_CACHE", "n2amd_native"),
                        link=("-lm",), depends=(platform.machine(),))


@functools.cache
def _kernels() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(kernels_path()))
    i64, f64, cint = ctypes.c_int64, ctypes.c_double, ctypes.c_int

    def arr(dtype):
        return np.ctypeslib.ndpointer(dtype=dtype, flags="C_CONTIGUOUS")

    F, C, I = arr(np.float64), arr(np.complex128), arr(np.int64)
    lib.fssh_probabilities.argtypes = [i64, i64, i64, i64, C, F, I, C, f64, F, F, F]
    lib.fssh_hops.argtypes = [i64, i64, i64, i64, F, F, I, I, I, I, F, cint, i64, i64, i64, i64, F]
    lib.dish_steps.argtypes = [i64, i64, i64, i64, F, F, F, I, I, I, C, I, F, I, F, F, f64, cint, i64, i64, i64, i64,
                               F, F]
    for f in (lib.fssh_probabilities, lib.fssh_hops, lib.dish_steps):
        f.restype = None
    return lib


def _fssh_probabilities(H, F, where, c, tau):
    """Propagate each group's c (G, n) through the chunk's sub-step Hamiltonians H (u, nelm, n, n) eV
    (``where`` (G, block) picks each group's step; τ = h/ħ); returns the hop probabilities g (G, block, n, n)
    accumulated over the sub-steps, clipped at 0, times the Boltzmann factors F, their sums over the target
    state (G, block, n), and |c|² after each step (G, block, n)."""
    G, block = where.shape
    nelm, n = H.shape[1], H.shape[-1]
    g, out, pops = np.empty((G, block, n, n)), np.empty((G, block, n)), np.empty((G, block, n))
    if not c.flags.c_contiguous:
        raise ValueError("FSSH coefficients must be C-contiguous (they are propagated in place)")
    _kernels().fssh_probabilities(G, block, nelm, n, np.ascontiguousarray(H), np.ascontiguousarray(F),
                                  np.ascontiguousarray(where, np.int64), c, tau, g, out, pops)
    return g, out, pops


def _fssh_hops(g, out, state: HopState, rows: slice, rand, settings: HopSettings, bottom: int,
               record: Record) -> None:
    """The hops of the trajectories of ``rows`` (a contiguous range of rows) over the chunk."""
    W = state.active.shape[1]
    block, n = out.shape[1:]
    group = state.group[rows]
    _kernels().fssh_hops(len(group), W, block, n, g, out, group, record.index[group], state.active[rows],
                         state.nvalid[rows], rand, int(settings.absorbing), bottom, state.steps_done, record.every,
                         record.sh.shape[1], record.sh)


def _dish_steps(P: dict, state: HopState, rows: slice, prop: Propagators, rand, settings: HopSettings, bottom: int,
                record: Record) -> None:
    """DISH over the chunk for the trajectories of ``rows`` (a contiguous range of rows); ``P``: the chunk's
    step propagators (real and imaginary parts), Boltzmann factors and each group's step."""
    W, n = state.c.shape[1:]
    group = state.group[rows]
    block = P["where"].shape[1]
    _kernels().dish_steps(len(group), W, block, n, P["Ur"], P["Ui"], P["F"], P["where"], group, record.index[group],
                          state.c[rows], state.active[rows], state.clocks[rows], state.nvalid[rows], rand,
                          prop.inv_tau, prop.dt, int(settings.absorbing), bottom, state.steps_done, record.every,
                          record.sh.shape[1], record.sh, record.c2)
