"""Surface hopping in the classical path approximation: FSSH and DISH, vectorised over initial times
(axis 0) and stochastic trajectories (axis 1).

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
one c per initial time (``group``), shared by its rows. Propagators are built for the steps a chunk of
the run uses only, so memory does not grow with the trajectory length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.units import KB_EV_K
from .series import CouplingSeries
from .tdks import expm_hermitian, substep_hamiltonians


#: MD steps whose propagators are built together (bounds memory: chunk × nelm × n² complex per group)
CHUNK_STEPS = 256


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
    """Builds what hopping needs along the nuclear path for the steps asked for (:meth:`take`)."""

    def __init__(self, series: CouplingSeries, settings: HopSettings):
        self.series = series
        self.settings = settings
        self.dt = series.dt_fs
        self.nelm = settings.nelm
        if settings.method == "dish":
            tau = np.asarray(settings.dephasing_fs, dtype=float)
            if tau.shape != (series.nstates, series.nstates):
                raise ValueError(f"dephasing matrix of shape {tau.shape} for {series.nstates} states")
            # 1/τ_ij with τ_ii (and zero or infinite entries) meaning "never"
            self.inv_tau = np.divide(1.0, tau, out=np.zeros_like(tau), where=np.isfinite(tau) & (tau > 0))
            np.fill_diagonal(self.inv_tau, 0.0)

    def take(self, steps: np.ndarray) -> dict:
        """For the series steps ``steps``: DISH the step propagators U (len, n, n); FSSH the sub-step ones X
        and the couplings d at the sub-steps (len, nelm, n, n); both the midpoint energies E_mid (len, n) eV."""
        from ..core.units import HBAR_EV_FS

        s, E = self.series, self.series.energies
        steps = np.asarray(steps, int)
        H = substep_hamiltonians(s, self.nelm, steps)
        X = expm_hermitian(H, self.dt / self.nelm)
        out = {"E_mid": 0.5 * (E[steps] + E[(steps + 1) % E.shape[0]]), "dt_sub": self.dt / self.nelm}
        if self.settings.method == "fssh":
            d = -H.imag / HBAR_EV_FS  # ħ d at sub-steps, eV → d in 1/fs; off-diagonal only
            n = s.nstates
            d[..., np.arange(n), np.arange(n)] = 0.0
            out.update(X=X, d=d)
        else:
            U = X[:, 0]
            for j in range(1, X.shape[1]):
                U = X[:, j] @ U
            out["U"] = U
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
    times): ``group[r]`` is row r's group."""

    step0: np.ndarray  # (G,) series step at which each group's run starts
    init_state: np.ndarray  # (G,) state index of the carrier at t0
    group: np.ndarray  # (R,) group of each row
    c: np.ndarray  # FSSH (G, n); DISH (R, W, n) complex
    active: np.ndarray  # (R, W) int
    clocks: np.ndarray | None  # DISH (R, W, n) fs since each state's last decoherence event
    steps_done: int
    rngs: list  # one numpy Generator per row

    @classmethod
    def start(cls, step0, init_state, nstates: int, settings: HopSettings, seeds, group=None,
              width: int | None = None) -> "HopState":
        """Rows seeded by ``seeds`` (one per row), in groups ``group`` (default: one row per group) of
        ``width`` trajectories (default ``settings.ntraj``)."""
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
        return cls(step0, init_state, group, c, active, clocks, 0, rngs)


def advance(state: HopState, prop: Propagators, settings: HopSettings, nsteps: int, record):
    """Run ``nsteps`` MD steps; after each step call ``record(state, k)`` with ``k`` (G,) the series step
    each group has just made."""
    W = state.active.shape[1]
    bottom = settings.ground_state(prop.series.nstates)
    done = 0
    while done < nsteps:
        block = min(CHUNK_STEPS, nsteps - done)
        t = state.step0[:, None] + state.steps_done + np.arange(block)[None, :]  # (G, block)
        ks = step_indices(t, prop.series, settings.reuse)
        uniq, where = np.unique(ks, return_inverse=True)
        where = where.reshape(ks.shape)
        P = prop.take(uniq)
        # one random number per trajectory and step, from each row's own generator
        rand = np.stack([rng.random((block, W)) for rng in state.rngs], axis=1)  # (block, R, W)
        for b in range(block):
            w = where[:, b]
            before = state.active
            if settings.method == "fssh":
                _fssh_step(state, P, w, settings, rand[b])
            else:
                _dish_step(state, prop, P, w, settings, rand[b])
            if settings.absorbing:
                state.active = np.where(before == bottom, bottom, state.active)
            state.steps_done += 1
            record(state, ks[:, b])
        done += block


def _fssh_step(state, P, w, settings, r):
    c = state.c  # (G, n)
    G, n = c.shape
    X, d = P["X"][w], P["d"][w]  # (G, nelm, n, n)
    nelm = X.shape[1]
    g = np.zeros((G, n, n))
    for j in range(nelm):
        c = np.einsum("gab,gb->ga", X[:, j], c)
        pop = np.abs(c) ** 2
        flow = 2.0 * np.real(np.conj(c)[:, :, None] * c[:, None, :]) * d[:, j]  # (G, k, m)
        g += flow / np.maximum(pop, 1e-300)[:, :, None]
    state.c = c
    g *= P["dt_sub"]
    g = np.clip(g, 0.0, None) * boltzmann_factors(P["E_mid"][w], settings)
    g[:, np.arange(n), np.arange(n)] = 0.0
    gr = g[state.group]  # (R, n, n)
    rows = np.arange(len(state.group))[:, None]
    out = gr.sum(axis=-1)[rows, state.active]  # (R, W): total probability of leaving
    hop = r < out
    if hop.any():
        ri, ti = np.nonzero(hop)
        cum = np.cumsum(gr[ri, state.active[ri, ti]], axis=-1)  # (nhop, n)
        target = np.argmax(r[ri, ti][:, None] < cum, axis=-1)
        state.active[ri, ti] = target


def _dish_step(state, prop, P, w, settings, r):
    U = P["U"][w][state.group]  # (R, n, n)
    c = np.matmul(state.c, np.swapaxes(U, -1, -2))  # c_r,t ← U_r c_r,t
    n = c.shape[-1]
    state.clocks += prop.dt
    pop = c.real**2 + c.imag**2
    rates = pop @ prop.inv_tau.T  # (R, W, n): 1/τ_i = Σ_j |c_j|²/τ_ij
    ratio = state.clocks * rates
    i_star = np.argmax(ratio, axis=-1)  # (R, W)
    event = np.take_along_axis(ratio, i_star[..., None], -1)[..., 0] >= 1.0
    if event.any():
        f = boltzmann_factors(P["E_mid"][w][state.group], settings)  # (R, n, n)
        rows = np.arange(len(state.group))[:, None]
        f_move = f[rows, state.active, i_star]  # active → i*
        p_i = np.take_along_axis(pop, i_star[..., None], -1)[..., 0]
        collapse = event & (r < p_i * f_move)
        project = event & ~collapse
        if collapse.any():
            ci = np.take_along_axis(c, i_star[..., None], -1)[..., 0]
            phase = np.where(np.abs(ci) > 0, ci / np.maximum(np.abs(ci), 1e-300), 1.0)
            onehot = (np.arange(n) == i_star[..., None])
            c = np.where(collapse[..., None], onehot * phase[..., None], c)
            state.active = np.where(collapse, i_star, state.active)
            state.clocks[collapse] = 0.0
        if project.any():
            keep = ~((np.arange(n) == i_star[..., None]) & project[..., None])
            cp = c * keep
            norm = np.linalg.norm(cp, axis=-1, keepdims=True)
            ok = project[..., None] & (norm > 1e-150)
            c = np.where(ok, cp / np.where(norm > 0, norm, 1.0), c)
            reset = (np.arange(n) == i_star[..., None]) & project[..., None]
            state.clocks[reset] = 0.0
    state.c = c
