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
belongs to the initial time, so results do not depend on how initial times are shared among MPI ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.units import KB_EV_K
from .series import CouplingSeries
from .tdks import step_propagators, substep_hamiltonians, expm_hermitian


@dataclass
class HopSettings:
    method: str = "dish"  # "fssh" or "dish"
    nelm: int = 10  # electronic sub-steps per MD step
    ntraj: int = 100  # stochastic trajectories per initial time
    temperature_K: float = 300.0
    hole: bool = False  # hole dynamics: "upward" means lower band energy
    detailed_balance: bool = True
    dephasing_fs: np.ndarray | None = None  # (n, n) pure-dephasing times for DISH

    def __post_init__(self):
        self.method = self.method.lower()
        if self.method not in ("fssh", "dish"):
            raise ValueError(f"method must be 'fssh' or 'dish', got '{self.method}'")
        if self.method == "dish" and self.dephasing_fs is None:
            raise ValueError("DISH needs pure-dephasing times (dephasing_fs)")


class Propagators:
    """Everything about the nuclear path that hopping needs, computed once per series and reused."""

    def __init__(self, series: CouplingSeries, settings: HopSettings):
        self.series = series
        self.dt = series.dt_fs
        self.nelm = settings.nelm
        H = substep_hamiltonians(series, settings.nelm)
        X = expm_hermitian(H, series.dt_fs / settings.nelm)
        self.U = step_propagators(series, settings.nelm, substeps=X)  # (M, n, n)
        if settings.method == "fssh":
            self.X = X  # per sub-step propagators (M, nelm, n, n)
            self.d_sub = (-H.imag).copy()  # ħ d at sub-steps, eV; off-diagonal only
            from ..core.units import HBAR_EV_FS

            self.d_sub /= HBAR_EV_FS
            n = series.nstates
            self.d_sub[..., np.arange(n), np.arange(n)] = 0.0
        else:
            tau = np.asarray(settings.dephasing_fs, dtype=float)
            if tau.shape != (series.nstates, series.nstates):
                raise ValueError(f"dephasing matrix of shape {tau.shape} for {series.nstates} states")
            # 1/τ_ij with τ_ii (and zero or infinite entries) meaning "never"
            self.inv_tau = np.divide(1.0, tau, out=np.zeros_like(tau), where=np.isfinite(tau) & (tau > 0))
            np.fill_diagonal(self.inv_tau, 0.0)
        E, M, N = series.energies, series.nsteps, series.energies.shape[0]
        k = np.arange(M)
        self.E_mid = 0.5 * (E[k] + E[(k + 1) % N])  # (M, n) energies at the step midpoints, eV
        self.E_snap = E


def boltzmann_factors(E_mid: np.ndarray, settings: HopSettings) -> np.ndarray:
    """f[..., k, m] = min(1, exp(−ΔE_km/kT)) for a move k → m; ΔE in the carrier's sense."""
    sign = -1.0 if settings.hole else 1.0
    dE = sign * (E_mid[..., None, :] - E_mid[..., :, None])  # E_m − E_k
    if not settings.detailed_balance:
        return np.ones_like(dE)
    return np.exp(-np.clip(dE, 0.0, None) / (KB_EV_K * settings.temperature_K))


@dataclass
class HopState:
    """The state of a batch of initial times × trajectories (what a checkpoint stores)."""

    step0: np.ndarray  # (ninit,) MD step index at which each initial time starts
    init_state: np.ndarray  # (ninit,) state index of the carrier at t0
    c: np.ndarray  # FSSH (ninit, n); DISH (ninit, ntraj, n) complex
    active: np.ndarray  # (ninit, ntraj) int
    clocks: np.ndarray | None  # DISH (ninit, ntraj, n) fs since each state's last decoherence event
    steps_done: int
    rngs: list  # one numpy Generator per initial time

    @classmethod
    def start(cls, step0, init_state, nstates: int, settings: HopSettings, seeds) -> "HopState":
        step0, init_state = np.asarray(step0, int), np.asarray(init_state, int)
        ninit = len(step0)
        if np.any(init_state < 0) or np.any(init_state >= nstates):
            raise ValueError(f"initial states {init_state.tolist()} outside the {nstates}-state window")
        active = np.repeat(init_state[:, None], settings.ntraj, axis=1)
        if settings.method == "fssh":
            c = np.zeros((ninit, nstates), complex)
            c[np.arange(ninit), init_state] = 1.0
            clocks = None
        else:
            c = np.zeros((ninit, settings.ntraj, nstates), complex)
            c[np.arange(ninit), :, init_state] = 1.0
            clocks = np.zeros((ninit, settings.ntraj, nstates))
        rngs = [np.random.default_rng(s) for s in seeds]
        return cls(step0, init_state, c, active, clocks, 0, rngs)


def advance(state: HopState, prop: Propagators, settings: HopSettings, nsteps: int, record):
    """Run ``nsteps`` MD steps; after each step call ``record(state, step_index_in_trajectory)``."""
    ninit = len(state.step0)
    M = len(prop.U)
    inits = np.arange(ninit)
    rand = None
    for s in range(nsteps):
        b = s % 1000
        if b == 0:  # one random number per trajectory and step, drawn in blocks per initial time
            block = min(1000, nsteps - s)
            rand = np.stack([rng.random((block, settings.ntraj)) for rng in state.rngs], axis=0)
        r = rand[:, b]  # (ninit, ntraj)
        k = (state.step0 + state.steps_done) % M  # (ninit,) current MD step of each initial time
        if settings.method == "fssh":
            _fssh_step(state, prop, settings, k, r, inits)
        else:
            _dish_step(state, prop, settings, k, r, inits)
        state.steps_done += 1
        record(state, k)


def _fssh_step(state, prop, settings, k, r, inits):
    c = state.c
    n = c.shape[-1]
    h = prop.dt / prop.nelm
    g = np.zeros((len(k), n, n))
    for j in range(prop.nelm):
        c = np.einsum("iab,ib->ia", prop.X[k, j], c)
        pop = np.abs(c) ** 2
        flow = 2.0 * np.real(np.conj(c)[:, :, None] * c[:, None, :]) * prop.d_sub[k, j]  # (ninit, k, m)
        g += flow * h / np.maximum(pop, 1e-300)[:, :, None]
    state.c = c
    g = np.clip(g, 0.0, None) * boltzmann_factors(prop.E_mid[k], settings)
    g[:, np.arange(n), np.arange(n)] = 0.0
    p = g[inits[:, None], state.active]  # (ninit, ntraj, n): probabilities out of each trajectory's state
    cum = np.cumsum(p, axis=-1)
    hop = r[..., None] < cum
    target = np.argmax(hop, axis=-1)
    state.active = np.where(hop.any(axis=-1), target, state.active)


def _dish_step(state, prop, settings, k, r, inits):
    U = prop.U[k]  # (ninit, n, n)
    c = np.einsum("iab,itb->ita", U, state.c)
    n = c.shape[-1]
    state.clocks += prop.dt
    pop = np.abs(c) ** 2
    rates = pop @ prop.inv_tau.T  # (ninit, ntraj, n): 1/τ_i = Σ_j |c_j|²/τ_ij
    ratio = state.clocks * rates
    i_star = np.argmax(ratio, axis=-1)  # (ninit, ntraj)
    event = np.take_along_axis(ratio, i_star[..., None], -1)[..., 0] >= 1.0
    if event.any():
        f = boltzmann_factors(prop.E_mid[k], settings)  # (ninit, n, n)
        f_move = f[inits[:, None], state.active, i_star]  # active → i*
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
            clk = state.clocks
            reset = (np.arange(n) == i_star[..., None]) & project[..., None]
            clk[reset] = 0.0
    state.c = c
