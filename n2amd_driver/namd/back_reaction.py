"""Surface hopping with back-reaction (FSSH beyond the classical path approximation) on an NNH model.

One carrier occupies an *active* adiabatic state a of the model's full H: an electron in a conduction
window (bands CBM … CBM+n−1, the hole held at the VBM) or a hole in a valence window (VBM−n+1 … VBM, the
electron held at the CBM). The nuclei move on that state's surface,

    E_a(R) = E_NNH(R) + ε_a(R) − ε_VBM(R)      (a hole: E_NNH + ε_CBM − ε_a),

by velocity Verlet with the exact excited-carrier forces (:class:`~n2amd_driver.models.nnh.Excitation`).
Each MD step (dt, fs) then does, in this order:

1. **Couplings**: the window states at t + dt, their signs chosen so that <ψ_i(t)|ψ_i(t+dt)> > 0, and the
   Hammes-Schiffer–Tully coupling D = (O − Oᵀ)/(2dt), O = C(t)ᵀ S(t; t+dt) C(t+dt) — the CPA
   post-processor's code (:mod:`.couplings`), with the cross-time basis overlap.
2. **TDKS**: iħ ċ = (diag ε − iħ D) c over ``nelm`` sub-steps, energies linear in time and D held at
   its step value (on the fly the next step's coupling is not known yet), each sub-step an exact
   exponential (:mod:`.tdks`): the norm is kept to machine precision.
3. **Hop**: probability a → j over the step g_j = max(0, Σ_sub 2 Re(c_a* c_j D_aj) h / |c_a|²) (Tully), one
   uniform random number per step. With back-reaction there is no Boltzmann factor: the velocities pay
   for the energy. At an attempted hop the NAC vector d_aj(R) (:mod:`.nac_vectors`) is computed and its
   projection d_aj·Ṙ at the end of the step is recorded beside the HST couplings carried there,
   D_k + (D_k − D_{k−1})/2 (they agree to O(dt²)). The velocities are
   rescaled along d_aj/m so that E_kin + E_pot is the same on both surfaces,
       v_K ← v_K − γ d_K / m_K,   ½ Σ_K (d_K²/m_K) γ² − (Σ_K v_K·d_K) γ + ΔE = 0   (the smaller root),
   and the forces become those of the new surface.
4. **Frustrated hops** (no real root: too little kinetic energy along d_aj): the hop is refused and the
   velocities are kept as they are (Tully's original rule, no reversal); they are counted.
5. **Decoherence** (``decoherence="edc"``, the default): the energy-based decoherence correction of
   Granucci and Persico (J. Chem. Phys. 126, 134114 (2007)): every inactive amplitude is damped,
   c_j ← c_j exp(−dt/τ_ja), τ_ja = ħ/|E_j − E_a| · (1 + C/E_kin), C = 0.1 hartree, and c_a rescaled to keep
   |c| = 1. ``decoherence="none"``: plain FSSH.

Limits (tested): ``hopping=False`` is NNH MD on the initial surface with TDKS alongside;
``back_reaction=False`` moves the nuclei on the ground-state surface (the classical path), and hops then
change only the active state, with the CPA's Boltzmann factor on upward ones (:mod:`.hopping`) and the
velocities untouched.

Units: eV, Å, fs, amu; velocities Å/fs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..core.units import AMU_A2_FS2_EV, HARTREE_EV, HBAR_EV_FS, KB_EV_K
from ..models.nnh import Excitation, NNHModel
from ..orbitals.overlap import cross_overlap
from .couplings import nac_from_overlaps, state_overlaps
from .series import CouplingSeries
from .tdks import expm_hermitian, substep_hamiltonians

#: Granucci–Persico's constant C of the energy-based decoherence time (eV)
EDC_CONSTANT_EV = 0.1 * HARTREE_EV


@dataclass
class Settings:
    carrier: str = "electron"  # "electron" | "hole"
    nstates: int = 4  # window size: CBM … CBM+n−1 (electron) or VBM−n+1 … VBM (hole)
    dt_fs: float = 1.0
    nelm: int = 10
    hopping: bool = True
    back_reaction: bool = True
    decoherence: str = "edc"  # "edc" | "none"
    temperature_K: float = 300.0  # Boltzmann factors of the classical path (back_reaction=False) only

    def __post_init__(self):
        if self.carrier not in ("electron", "hole"):
            raise ValueError(f"carrier must be 'electron' or 'hole', not {self.carrier!r}")
        if self.decoherence not in ("edc", "none"):
            raise ValueError(f"decoherence must be 'edc' or 'none', not {self.decoherence!r}")
        if self.nstates < 2:
            raise ValueError(f"a window of {self.nstates} state(s) has nothing to hop to")

    def offsets(self) -> np.ndarray:
        """Band offsets of the window states from the CBM (0 = CBM, −1 = VBM), ascending in energy."""
        n = self.nstates
        return np.arange(n) if self.carrier == "electron" else np.arange(-n, 0)

    def excitation(self, state: int) -> Excitation:
        """The occupation change that puts the carrier in window state ``state``."""
        band = int(self.offsets()[state])
        return Excitation.promote(-1, band) if self.carrier == "electron" else Excitation.promote(band, 0)

    def carrier_sign(self) -> float:
        """+1 if the carrier's energy rises with its band energy (electron), −1 (hole)."""
        return 1.0 if self.carrier == "electron" else -1.0


@dataclass
class HoppingTrajectory:
    """Everything one trajectory needs to continue (what a checkpoint stores)."""

    positions: np.ndarray  # (N, 3) Å, unwrapped
    velocities: np.ndarray  # (N, 3) Å/fs
    forces: np.ndarray  # (N, 3) eV/Å on the surface the nuclei move on
    potential_eV: float  # that surface's energy
    c: np.ndarray  # (n,) complex amplitudes of the window states
    active: int
    energies: np.ndarray  # (n,) eV, window levels of the full H
    states: np.ndarray  # (norb, n) window states, sign-continued along the trajectory
    rng: np.random.Generator
    step: int = 0
    hops: list = field(default_factory=list)  # dicts: step, from, to, ΔE, γ, energy error, d·v vs D
    frustrated: int = 0
    coupling: np.ndarray | None = None  # (n, n) fs⁻¹, the last step's HST coupling (at its midpoint)


class SurfaceHopping:
    """The dynamics of :mod:`this module <.back_reaction>` for one NNH model and cell."""

    def __init__(self, model: NNHModel, atoms: Atoms, settings: Settings):
        self.model = model
        self.settings = settings
        self.atoms = atoms.copy()
        self.atoms.calc = None
        self.masses = atoms.get_masses()  # amu
        self.bf = model.basis_functions(atoms)
        nocc = int(round(model.h.n_electrons(atoms) / 2))
        first = nocc + int(settings.offsets()[0])
        self.bands = (first, first + settings.nstates - 1)

    # ---- pieces ------------------------------------------------------------------------------
    def kinetic_eV(self, v: np.ndarray) -> float:
        return float(0.5 * np.sum(self.masses[:, None] * v**2) * AMU_A2_FS2_EV)

    def surface(self, positions: np.ndarray, active: int) -> dict:
        """Energy, forces and window states at ``positions`` on the surface the nuclei move on."""
        at = self.atoms.copy()
        at.positions = positions
        model = self.model.with_excitation(self.settings.excitation(active) if self.settings.back_reaction else None)
        return model.evaluate(at, stress=False, window=self.bands)

    def start(self, positions: np.ndarray, velocities: np.ndarray, active: int, seed) -> HoppingTrajectory:
        out = self.surface(positions, active)
        n = self.settings.nstates
        c = np.zeros(n, complex)
        c[active] = 1.0
        w = out["window"]
        return HoppingTrajectory(np.array(positions, float), np.array(velocities, float), out["forces"],
                                 out["energy"], c, int(active), w["energies"], w["states"],
                                 np.random.default_rng(seed))

    def total_energy(self, tr: HoppingTrajectory) -> float:
        return self.kinetic_eV(tr.velocities) + tr.potential_eV

    # ---- one MD step ---------------------------------------------------------------------------
    def step(self, tr: HoppingTrajectory) -> dict:
        """Advance ``tr`` by one MD step (in place); returns that step's record."""
        s = self.settings
        dt = s.dt_fs
        accel = tr.forces / (self.masses[:, None] * AMU_A2_FS2_EV)  # Å/fs²
        v_half = tr.velocities + 0.5 * dt * accel
        r_new = tr.positions + dt * v_half
        out = self.surface(r_new, tr.active)
        w = out["window"]
        # couplings of the step, states sign-continued (phase correction)
        before, after = self.atoms.copy(), self.atoms.copy()
        before.positions, after.positions = tr.positions, r_new
        S12 = cross_overlap(self.bf, before, after)
        C_new = w["states"]
        O = state_overlaps(tr.states, S12, C_new)
        signs = np.where(np.diagonal(O) < 0, -1.0, 1.0)
        C_new, O = C_new * signs, O * signs[None, :]
        D = nac_from_overlaps(O, dt)
        # TDKS over the sub-steps, hop probabilities accumulated
        c, g = self._propagate(tr.c, tr.energies, w["energies"], D, tr.active)
        v_new = v_half + 0.5 * dt * out["forces"] / (self.masses[:, None] * AMU_A2_FS2_EV)
        tr.positions, tr.velocities, tr.forces, tr.potential_eV = r_new, v_new, out["forces"], out["energy"]
        # the HST coupling carried from the step's midpoint to its end (O(dt²)), to compare with d·Ṙ there
        D_end = D if tr.coupling is None else 1.5 * D - 0.5 * tr.coupling
        tr.c, tr.energies, tr.states, tr.coupling = c, w["energies"], C_new, D
        tr.step += 1
        record = {"hop": None}
        u = tr.rng.random()  # one number per step, drawn whether or not hopping is on
        if s.hopping:
            if not s.back_reaction:  # classical path: detailed balance from the Boltzmann factor (as .hopping)
                up = s.carrier_sign() * (tr.energies - tr.energies[tr.active])
                g = g * np.exp(-np.clip(up, 0.0, None) / (KB_EV_K * s.temperature_K))
            target = _pick(g, u)
            if target is not None:
                record["hop"] = self._hop(tr, target, D_end, S=w["overlap"])
        if s.decoherence == "edc":
            tr.c = edc_decoherence(tr.c, tr.active, tr.energies, self.kinetic_eV(tr.velocities), dt)
        return record

    def _propagate(self, c: np.ndarray, E0: np.ndarray, E1: np.ndarray, D: np.ndarray, active: int):
        s = self.settings
        series = CouplingSeries(np.stack([E0, E1]), D[None], s.dt_fs)
        H = substep_hamiltonians(series, s.nelm, coupling="step")[0]  # (nelm, n, n): E linear, D constant
        U = expm_hermitian(H, s.dt_fs / s.nelm)
        h = s.dt_fs / s.nelm
        g = np.zeros(len(c))
        for j in range(s.nelm):
            c = U[j] @ c
            pa = abs(c[active]) ** 2
            if pa > 1e-300:
                g += 2.0 * np.real(np.conj(c[active]) * c * D[active]) * h / pa
        g[active] = 0.0
        return c, np.clip(g, 0.0, None)

    def _hop(self, tr: HoppingTrajectory, target: int, D: np.ndarray, S: np.ndarray) -> dict:
        s = self.settings
        a = tr.active
        dE = s.carrier_sign() * float(tr.energies[target] - tr.energies[a])  # carrier's potential energy change
        event = {"step": tr.step, "from": a, "to": target, "dE_eV": dE, "hst_end_fs": float(D[a, target])}
        if not s.back_reaction:  # classical path: only the active state changes
            tr.active = target
            event["accepted"] = True
            tr.hops.append(event)
            return event
        d = self.nac_vector(tr, a, target, S)
        event["nac_dot_v_fs"] = float(np.sum(d * tr.velocities))
        gamma = rescaling_factor(tr.velocities, self.masses, d, dE)
        if gamma is None:
            tr.frustrated += 1
            event["accepted"] = False
            tr.hops.append(event)
            return event
        e_before = self.total_energy(tr)
        tr.velocities = tr.velocities - gamma * d / self.masses[:, None]
        tr.active = target
        out = self.surface(tr.positions, target)
        tr.forces, tr.potential_eV = out["forces"], out["energy"]
        event.update(accepted=True, gamma=float(gamma), energy_change_eV=self.total_energy(tr) - e_before)
        tr.hops.append(event)
        return event

    def nac_vector(self, tr: HoppingTrajectory, i: int, j: int, S: np.ndarray) -> np.ndarray:
        """d_ij(R) (Å⁻¹, (N, 3)) at the trajectory's current positions, from its own window states."""
        from ..models.hamiltonian_gradients import projected_hamiltonian_gradient
        from ..orbitals.derivative_couplings import (coupling_numerators, coupling_vectors, ket_derivative_forms,
                                                     overlap_derivative_forms)
        from ..orbitals.overlap import overlap_gradient

        at = self.atoms.copy()
        at.positions = tr.positions
        G = overlap_gradient(self.bf, at)
        offsets = self.bf.basis.orbital_offsets(at.numbers)
        C = tr.states[:, [i, j]]
        eps = tr.energies[[i, j]]
        h = projected_hamiltonian_gradient(self.model.h, at, C, S, G, diagonal=False)
        g = coupling_numerators(eps, h, overlap_derivative_forms(G, C, C, offsets))
        d, degenerate = coupling_vectors(eps, g, ket_derivative_forms(G, C, C, offsets), degenerate_tolerance_eV=0.0)
        return d[0, 1]


# ---- pure functions --------------------------------------------------------------------------
def _pick(g: np.ndarray, u: float) -> int | None:
    """The target state of a hop for the uniform number ``u``: state j when u falls in its slice of the
    cumulative probabilities; None (stay) when u is beyond their sum."""
    cum = np.cumsum(g)
    if u >= cum[-1]:
        return None
    return int(np.searchsorted(cum, u, side="right"))


def rescaling_factor(v: np.ndarray, masses: np.ndarray, d: np.ndarray, dE_eV: float) -> float | None:
    """γ with v − γ d/m conserving E_kin + E_pot across a potential step ΔE (eV): the root of smaller |γ| of
    a γ² − b γ + ΔE = 0, a = ½ Σ d²/m, b = Σ v·d (eV, with the amu·Å²/fs² factor); None if frustrated."""
    a = 0.5 * float(np.sum(d**2 / masses[:, None])) * AMU_A2_FS2_EV
    b = float(np.sum(v * d)) * AMU_A2_FS2_EV
    disc = b * b - 4.0 * a * dE_eV
    if a <= 0 or disc < 0:
        return None
    root = np.sqrt(disc)
    return (b - root) / (2 * a) if b >= 0 else (b + root) / (2 * a)


def edc_decoherence(c: np.ndarray, active: int, energies: np.ndarray, kinetic_eV: float, dt_fs: float,
                    constant_eV: float = EDC_CONSTANT_EV) -> np.ndarray:
    """Granucci–Persico energy-based decoherence over one step: inactive amplitudes damped by
    exp(−dt/τ_ja), τ_ja = ħ/|E_j − E_a| (1 + C/E_kin); the active one rescaled so that |c| = 1."""
    c = np.array(c, complex)
    gap = np.abs(np.asarray(energies, float) - energies[active])
    with np.errstate(divide="ignore"):
        tau = HBAR_EV_FS / gap * (1.0 + constant_eV / max(kinetic_eV, 1e-300))
    damp = np.exp(-dt_fs / tau)
    damp[active] = 1.0
    c *= damp
    rest = float(np.sum(np.abs(c) ** 2)) - abs(c[active]) ** 2
    if abs(c[active]) > 0:
        c[active] *= np.sqrt(max(0.0, 1.0 - rest)) / abs(c[active])
    return c
