"""NNH-MD forces: energy and forces from the neural-network Hamiltonian itself.

    E(R) = Ω_band(R) + E_rep(R) + E_rem(R),    Ω_band = Σ_n f_n ε_n − T S_el   (Mermin free energy, Fermi smearing kT)

ε_n solve H(R) c = ε S(R) c with the model's Γ-point H and the analytic overlap S of the reference
basis. With ρ = Σ f_n c_n c_nᵀ and W = Σ f_n ε_n c_n c_nᵀ held fixed, the surrogate

    E_s(R) = Tr(ρ H(R)) − Tr(W S(R))

has exactly the gradient of Ω_band (Hellmann–Feynman plus the Pulay term of the non-orthogonal basis;
no back-propagation through the eigensolver), so forces are −∂E_s/∂R: the H part by autograd through
the model, the S part −Tr(W ∂S/∂R) by autograd through the radial overlap tables
(:mod:`n2amd_driver.orbitals.radial`). A model with shell potentials, H ∋ ½(VS + SV) (V = diag(v),
:mod:`.potential`), depends on S too: autograd (S held fixed) gives its v(R) part, and its S part
Tr(ρ ½(V ∂S + ∂S V)) = Tr(M ∂S), M = ½(ρV + Vρ), joins the Pulay term as −Tr((W − M) ∂S).
Stress is the strain derivative of the same surrogate.

Excited carriers (:class:`Excitation`): with occupation changes Δf_n of a few band states,

    E_exc(R) = E(R) + Σ_n Δf_n ε_n(R),

ε_n the levels of the model's full H (with the cell-average potential: the orbital energies the couplings
and NAC vectors use). Their gradient joins the same surrogate as Tr(Δρ H_full) − Tr(ΔW S), Δρ = Σ Δf c cᵀ,
ΔW = Σ Δf ε c cᵀ: exact for non-degenerate states (a state degenerate with one of different occupation
has no single force; the smallest such spacing is reported).

The band energy is that of H *without* the cell-average part of the shell potentials (a Hamiltonian
model with ``shell_potential: mean-field``). In SCC tight binding that potential is the charges'
electrostatic response, and in the total energy its first-order effect is cancelled by the
double-counting term (the forces keep only ½ q ∂γ/∂R q, a small pair term for a near-neutral
crystal), whereas Σ f ε alone would carry it in full: with it, the remainder fit of Si64 left
7.5 meV/atom and 414 meV/Å, without it 3.2 meV/atom and 97 meV/Å (validation, same data and settings).
The band edges in the extras come from the full H, as the couplings see them. E_rep is the reference
method's own pair repulsion (:mod:`.repulsion`, exact; optional: ``prior: repulsion``), E_rem a short-range
MLFF fitted to the reference minus the band terms and the prior (:func:`n2amd_driver.training.nnh.fit_remainder`). Units: eV, Å.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..orbitals.eigen import eigh
from ..orbitals.functions import BasisFunctions, basis_functions
from ..orbitals.overlap import overlap_matrix, pair_cutoff_ang
from ..orbitals.radial import overlap_trace_gradients
from ..orbitals.window import fixed_signs
from .batch import POSITIONS, STRAIN
from .potential import overlap_coupled

#: what the band terms are (part of the key of kept residual datasets: a change recomputes them)
BAND_TERMS = "Mermin band energy of H without the cell-average shell potential"


def fermi_occupations(eps: np.ndarray, n_electrons: float, kT: float) -> tuple[np.ndarray, float, float]:
    """Occupations f_n ∈ [0, 2] (spin-unpolarised), chemical potential μ (eV) and the electronic entropy
    term T·S_el (eV). ``kT`` in eV; ``kT = 0`` fills the lowest n_electrons/2 levels (μ mid-gap)."""
    eps = np.asarray(eps, float)
    nocc = n_electrons / 2
    if kT <= 0:
        k = int(round(nocc))
        f = np.zeros_like(eps)
        f[:k] = 2.0
        mu = 0.5 * (eps[k - 1] + eps[k]) if 0 < k < len(eps) else float(eps[max(k - 1, 0)])
        return f, float(mu), 0.0
    lo, hi = eps.min() - 20 * kT, eps.max() + 20 * kT
    occ = lambda mu: 2.0 * _fermi((eps - mu) / kT)
    for _ in range(200):  # bisection: robust for any spectrum
        mu = 0.5 * (lo + hi)
        if occ(mu).sum() < n_electrons:
            lo = mu
        else:
            hi = mu
    f = occ(mu)
    p = np.clip(f / 2, 1e-300, 1.0)
    q = np.clip(1 - f / 2, 1e-300, 1.0)
    TS = -kT * 2.0 * float(np.sum(p * np.log(p) + q * np.log(q)))
    return f, float(mu), TS


def _fermi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 - np.tanh(0.5 * x))  # = 1/(1+e^x), without overflow


def density_matrices(C: np.ndarray, eps: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ρ = C diag(f) Cᵀ and the energy-weighted W = C diag(f ε) Cᵀ (only occupied columns are used)."""
    occ = f > 1e-14
    Co = C[:, occ]
    return (Co * f[occ]) @ Co.T, (Co * (f[occ] * eps[occ])) @ Co.T


@dataclass(frozen=True)
class Excitation:
    """Occupation changes Δf of band states relative to the ground state (spin-summed, so one promoted
    electron is −1 on its old band and +1 on its new one). Bands are counted from the CBM: 0 is the CBM,
    1 the CBM+1, −1 the VBM, −2 the VBM−1."""

    changes: tuple[tuple[int, float], ...]

    def __post_init__(self):
        total = sum(df for _, df in self.changes)
        if abs(total) > 1e-12:
            raise ValueError(f"an excitation moves electrons between bands: its occupation changes sum to {total:g}, "
                             "not 0")
        if len({b for b, _ in self.changes}) != len(self.changes):
            raise ValueError("an excitation names a band twice")

    @classmethod
    def promote(cls, hole: int = -1, electron: int = 0) -> "Excitation":
        """One electron from band ``hole`` to band ``electron`` (default VBM → CBM)."""
        return cls(((int(hole), -1.0), (int(electron), 1.0)))

    def absolute(self, n_occupied: int, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
        """(0-based band indices, Δf) for a system with ``n_occupied`` filled bands out of ``n_bands``."""
        bands = np.array([n_occupied + b for b, _ in self.changes], dtype=np.int64)
        if np.any(bands < 0) or np.any(bands >= n_bands):
            raise ValueError(f"excitation bands {[b for b, _ in self.changes]} (from the CBM) fall outside the "
                             f"{n_bands} bands of this system")
        return bands, np.array([df for _, df in self.changes])


class NNHModel:
    """Band energy of a Hamiltonian model + optional remainder MLFF; ``evaluate`` like the MLFF's.
    With ``excitation``: the excited-state energy and forces (module docstring)."""

    def __init__(self, hamiltonian_model, remainder=None, kT: float = 0.0, path: str | None = None, prior=None,
                 excitation: Excitation | None = None):
        self.h = hamiltonian_model
        self.remainder = remainder
        self.prior = prior  # a PairRepulsion or None
        self.kT = float(kT)
        self.path = path
        self.excitation = excitation
        ref = self.h.info.get("reference") or {}
        if ref.get("engine") != "tblite":  # the remainder's prior and its training data are tblite's
            raise ValueError("NNH forces are set up for tblite-trained Hamiltonian models (GFN-xTB), "
                             f"not {ref.get('engine')}")
        self.method = ref["method"]

    @property
    def elements(self) -> list[str]:
        return self.h.elements

    def with_excitation(self, excitation: Excitation | None) -> "NNHModel":
        """The same model (shared networks) on the surface of ``excitation`` (None: the ground state)."""
        twin = NNHModel.__new__(NNHModel)
        twin.__dict__.update(self.__dict__)
        twin.excitation = excitation
        return twin

    def basis_functions(self, atoms: Atoms) -> BasisFunctions:
        return basis_functions(self.h.basis.name, atoms.get_chemical_symbols(), periodic=bool(np.all(atoms.pbc)))

    def band_terms(self, atoms: Atoms, stress: bool = False, window: tuple[int, int] | None = None) -> dict:
        """Ω_band (eV), its forces (eV/Å), optionally stress (eV/Å³), and the electronic extras. ``window``:
        bands lo..hi (0-based, inclusive) of the full H returned as ``out["window"]`` (energies eV, states
        (norb, n) in the largest-coefficient-positive gauge, and S)."""
        bf = self.basis_functions(atoms)
        S = overlap_matrix(bf, atoms)
        d = self.h.prepare([atoms], overlaps=[S])
        d[POSITIONS] = d[POSITIONS].detach().requires_grad_(True)
        if stress:
            d[STRAIN] = torch.zeros(1, 3, 3, dtype=d[POSITIONS].dtype, requires_grad=True)
        out_h = self.h(d, mean_field=False)  # why without the cell-average potential: module docstring
        H_t = self.h.matrices(out_h, d)[0]
        H = H_t.detach().cpu().numpy().astype(float)
        if not np.all(np.isfinite(H)):
            raise FloatingPointError("the model Hamiltonian contains NaN/inf")
        eps, C = eigh(H, S)
        n_el = self.h.n_electrons(atoms)
        f, mu, TS = fermi_occupations(eps, n_el, self.kT)
        rho, W = density_matrices(C, eps, f)
        # autograd sees S as a constant: Tr(ρ ∂H) through the blocks and the shell potentials v(R)
        surrogate = (torch.as_tensor(rho, dtype=H_t.dtype) * H_t).sum()
        v = out_h["potential"].detach().cpu().numpy().astype(float) if "potential" in out_h else None
        if v is not None:
            # H ∋ ½(V S + S V): its S-derivative Tr(ρ ½(V ∂S + ∂S V)) = Tr(M ∂S), M = ½(ρV + Vρ), joins −Tr(W ∂S)
            W = W - _potential_pulay(rho, v)
        H_full_t, v_full = H_t, v  # the full H: band edges as the couplings see them, excited levels
        if "potential_mean_field" in out_h:
            v_mf = out_h["potential_mean_field"]
            H_full_t = H_t + overlap_coupled(v_mf, torch.as_tensor(S, dtype=H_t.dtype, device=H_t.device))
            v_full = v + v_mf.detach().cpu().numpy().astype(float)
        nocc = int(round(n_el / 2))
        norb = len(eps)
        need = [nocc - 1, nocc] + (list(window) if window is not None else [])
        if self.excitation is not None:
            bands, df = self.excitation.absolute(nocc, norb)
            need += [int(bands.min()) - 1, int(bands.max()) + 1]  # and their neighbours: the spacing report
        lo, hi = max(0, min(need)), min(norb - 1, max(need))
        # levels and states of the full H for the bands used below only (LAPACK's subset solver)
        levels = np.full(norb, np.nan)
        if H_full_t is H_t:
            levels[lo:hi + 1], C_full = eps[lo:hi + 1], C[:, lo:hi + 1]
        else:
            levels[lo:hi + 1], C_full = eigh(H_full_t.detach().cpu().numpy().astype(float), S, (lo, hi))
        excitation_energy = 0.0
        if self.excitation is not None:
            f_new = f[bands] + df
            if np.any(f_new < -1e-12) or np.any(f_new > 2 + 1e-12):
                raise ValueError(f"excitation {self.excitation.changes} leaves occupations {f_new} outside [0, 2]")
            Cx = C_full[:, bands - lo]
            d_rho, d_W = (Cx * df) @ Cx.T, (Cx * (df * levels[bands])) @ Cx.T
            surrogate = surrogate + (torch.as_tensor(d_rho, dtype=H_t.dtype) * H_full_t).sum()
            W = W + d_W - (_potential_pulay(d_rho, v_full) if v_full is not None else 0.0)
            excitation_energy = float(np.dot(df, levels[bands]))
        wrt = [d[POSITIONS]] + ([d[STRAIN]] if stress else [])
        grads = torch.autograd.grad(surrogate, wrt)
        dWS, dWS_strain = overlap_trace_gradients(bf, atoms, W, pair_cutoff_ang(bf, atoms.numbers), stress)
        forces = -grads[0].cpu().numpy().astype(float) + dWS
        out = {"energy": float(np.dot(f, eps) - TS) + excitation_energy, "forces": forces,
               "extras": {"vbm_eV": float(levels[nocc - 1]), "cbm_eV": float(levels[nocc]),
                          "gap_eV": float(levels[nocc] - levels[nocc - 1]), "mu_eV": mu,
                          "band_energy_eV": float(np.dot(f, eps))}}
        if self.excitation is not None:
            out["extras"]["excitation_energy_eV"] = excitation_energy
            out["extras"]["excited_level_spacing_eV"] = _smallest_spacing(levels, bands, df)
        if window is not None:
            a, b = window
            out["window"] = {"energies": levels[a:b + 1].copy(), "states": fixed_signs(C_full[:, a - lo:b - lo + 1]),
                             "overlap": S}
        if stress:
            V = atoms.get_volume()
            dH = grads[1][0].cpu().numpy().astype(float)
            s = dH - dWS_strain
            out["stress"] = 0.5 * (s + s.T) / V
        return out

    def fixed_terms(self, atoms: Atoms, stress: bool = False, window: tuple[int, int] | None = None) -> dict:
        """Band terms plus the repulsion prior: everything but the learned remainder."""
        out = self.band_terms(atoms, stress, window)
        if self.prior is not None:
            _add(out, self.prior.evaluate(atoms, stress=stress), stress)
        return out

    def evaluate(self, atoms: Atoms, stress: bool | None = None, window: tuple[int, int] | None = None) -> dict:
        stress = bool(np.all(atoms.pbc)) if stress is None else stress
        out = self.fixed_terms(atoms, stress, window)
        if self.remainder is not None:
            _add(out, self.remainder.evaluate(atoms, stress=stress), stress)
        return out


def _potential_pulay(rho: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M = ½(ρV + Vρ), V = diag(v): the S-derivative of Tr(ρ ½(VS + SV))."""
    return 0.5 * (rho * v[None, :] + v[:, None] * rho)


def _smallest_spacing(levels: np.ndarray, bands: np.ndarray, df: np.ndarray) -> float:
    """Smallest |ε_n − ε_m| (eV) between an excited band n and a neighbour m whose occupation change differs:
    near zero, the excited state's force is not defined."""
    change = np.zeros(len(levels))
    change[bands] = df
    gaps = [abs(levels[m] - levels[n]) for n in bands for m in (n - 1, n + 1)
            if 0 <= m < len(levels) and change[m] != change[n]]
    return float(min(gaps)) if gaps else float("inf")


def _add(out: dict, term: dict, stress: bool) -> None:
    out["energy"] += term["energy"]
    out["forces"] = out["forces"] + term["forces"]
    if stress:
        out["stress"] = out["stress"] + term["stress"]
