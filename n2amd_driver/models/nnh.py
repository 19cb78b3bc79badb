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


import numpy as np
import torch
from ase import Atoms

from ..orbitals.eigen import eigh
from ..orbitals.functions import BasisFunctions, basis_functions
from ..orbitals.overlap import overlap_matrix, pair_cutoff_ang
from ..orbitals.radial import overlap_trace_gradients
from .batch import POSITIONS, STRAIN

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


class NNHModel:
    """Band energy of a Hamiltonian model + optional remainder MLFF; ``evaluate`` like the MLFF's."""

    def __init__(self, hamiltonian_model, remainder=None, kT: float = 0.0, path: str | None = None, prior=None):
        self.h = hamiltonian_model
        self.remainder = remainder
        self.prior = prior  # a PairRepulsion or None
        self.kT = float(kT)
        self.path = path
        ref = self.h.info.get("reference") or {}
        if ref.get("engine") != "tblite":  # the remainder's prior and its training data are tblite's
            raise ValueError("NNH forces are set up for tblite-trained Hamiltonian models (GFN-xTB), "
                             f"not {ref.get('engine')}")
        self.method = ref["method"]

    @property
    def elements(self) -> list[str]:
        return self.h.elements

    def basis_functions(self, atoms: Atoms) -> BasisFunctions:
        return basis_functions(self.h.basis.name, atoms.get_chemical_symbols(), periodic=bool(np.all(atoms.pbc)))

    def band_terms(self, atoms: Atoms, stress: bool = False) -> dict:
        """Ω_band (eV), its forces (eV/Å), optionally stress (eV/Å³), and the electronic extras."""
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
        wrt = [d[POSITIONS]] + ([d[STRAIN]] if stress else [])
        grads = torch.autograd.grad(surrogate, wrt)
        if "potential" in out_h:
            # H ∋ ½(V S + S V): its S-derivative Tr(ρ ½(V ∂S + ∂S V)) = Tr(M ∂S), M = ½(ρV + Vρ), joins −Tr(W ∂S)
            v = out_h["potential"].detach().cpu().numpy().astype(float)
            W = W - 0.5 * (rho * v[None, :] + v[:, None] * rho)
        dWS, dWS_strain = overlap_trace_gradients(bf, atoms, W, pair_cutoff_ang(bf, atoms.numbers), stress)
        forces = -grads[0].cpu().numpy().astype(float) + dWS
        levels = eps
        if "potential_mean_field" in out_h:  # band edges of the model's full H, as the couplings see them
            v = out_h["potential_mean_field"].detach().cpu().numpy().astype(float)
            levels = eigh(H + 0.5 * (v[:, None] + v[None, :]) * S, S)[0]
        nocc = int(round(n_el / 2))
        out = {"energy": float(np.dot(f, eps) - TS), "forces": forces,
               "extras": {"vbm_eV": float(levels[nocc - 1]), "cbm_eV": float(levels[nocc]),
                          "gap_eV": float(levels[nocc] - levels[nocc - 1]), "mu_eV": mu,
                          "band_energy_eV": float(np.dot(f, eps))}}
        if stress:
            V = atoms.get_volume()
            dH = grads[1][0].cpu().numpy().astype(float)
            s = dH - dWS_strain
            out["stress"] = 0.5 * (s + s.T) / V
        return out

    def fixed_terms(self, atoms: Atoms, stress: bool = False) -> dict:
        """Band terms plus the repulsion prior: everything but the learned remainder."""
        out = self.band_terms(atoms, stress)
        if self.prior is not None:
            _add(out, self.prior.evaluate(atoms, stress=stress), stress)
        return out

    def evaluate(self, atoms: Atoms, stress: bool | None = None) -> dict:
        stress = bool(np.all(atoms.pbc)) if stress is None else stress
        out = self.fixed_terms(atoms, stress)
        if self.remainder is not None:
            _add(out, self.remainder.evaluate(atoms, stress=stress), stress)
        return out


def _add(out: dict, term: dict, stress: bool) -> None:
    out["energy"] += term["energy"]
    out["forces"] = out["forces"] + term["forces"]
    if stress:
        out["stress"] = out["stress"] + term["stress"]
