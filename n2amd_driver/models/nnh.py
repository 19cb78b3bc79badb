"""NNH-MD forces: energy and forces from the neural-network Hamiltonian itself.

    E(R) = Ω_band(R) + E_rep(R) + E_rem(R),    Ω_band = Σ_n f_n ε_n − T S_el   (Mermin free energy, Fermi smearing kT)

ε_n solve H(R) c = ε S(R) c with the model's Γ-point H and the analytic overlap S of the reference
basis. With ρ = Σ f_n c_n c_nᵀ and W = Σ f_n ε_n c_n c_nᵀ held fixed, the surrogate

    E_s(R) = Tr(ρ H(R)) − Tr(W S(R))

has exactly the gradient of Ω_band (Hellmann–Feynman plus the Pulay term of the non-orthogonal basis;
no back-propagation through the eigensolver), so forces are −∂E_s/∂R: the H part by autograd through
the model, the S part −Tr(W ∂S/∂R) by autograd through the radial overlap tables
(:mod:`n2amd_driver.overlap_radial`). A model with shell potentials, H ∋ ½(VS + SV) (V = diag(v),
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
MLFF fitted to the reference minus the band terms and the prior (:func:`fit_remainder`). Units: eV, Å.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from ..electronic import eigh
from ..orbitals import BasisFunctions
from ..overlap import overlap_matrix, pair_cutoff_ang
from ..overlap_radial import overlap_trace_gradients

KB_EV = 8.617333262e-5  # eV/K
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
        if ref.get("engine") != "tblite":
            raise ValueError("NNH forces need the analytic basis of a tblite-trained Hamiltonian model")
        self.method = ref["method"]
        self._bf: dict = {}

    @property
    def elements(self) -> list[str]:
        return self.h.elements

    def basis_functions(self, atoms: Atoms) -> BasisFunctions:
        key = tuple(sorted(set(atoms.get_chemical_symbols())))
        if key not in self._bf:
            self._bf[key] = BasisFunctions.tblite(self.method, key)
        return self._bf[key]

    def band_terms(self, atoms: Atoms, stress: bool = False) -> dict:
        """Ω_band (eV), its forces (eV/Å), optionally stress (eV/Å³), and the electronic extras."""
        from ..training.hamiltonian import model_electrons

        bf = self.basis_functions(atoms)
        S = overlap_matrix(bf, atoms)
        d = self.h.prepare([atoms], overlaps=[S])
        d["positions"] = d["positions"].detach().requires_grad_(True)
        if stress:
            d["strain"] = torch.zeros(1, 3, 3, dtype=d["positions"].dtype, requires_grad=True)
        out_h = self.h(d, mean_field=False)  # why without the cell-average potential: module docstring
        H_t = self.h.matrices(out_h, d)[0]
        H = H_t.detach().cpu().numpy().astype(float)
        if not np.all(np.isfinite(H)):
            raise FloatingPointError("the model Hamiltonian contains NaN/inf")
        eps, C = eigh(H, S)
        n_el = model_electrons(self.h, atoms)
        f, mu, TS = fermi_occupations(eps, n_el, self.kT)
        rho, W = density_matrices(C, eps, f)
        # autograd sees S as a constant: Tr(ρ ∂H) through the blocks and the shell potentials v(R)
        surrogate = (torch.as_tensor(rho, dtype=H_t.dtype) * H_t).sum()
        wrt = [d["positions"]] + ([d["strain"]] if stress else [])
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


def save_nnh_model(path, hamiltonian_path, remainder_path=None, kT: float = 0.0, prior=None) -> Path:
    """One file holding the Hamiltonian model, the repulsion prior (its parameters), the remainder MLFF and
    the smearing (kT in eV)."""
    from ..training.common import atomic_save

    load = lambda p: torch.load(p, map_location="cpu", weights_only=False)
    state = {"kind": "nnh", "hamiltonian": load(hamiltonian_path), "kT_eV": float(kT),
             "prior": prior.state() if prior is not None else None,
             "remainder": load(remainder_path) if remainder_path else None,
             "units": {"energy": "eV", "length": "Å", "forces": "eV/Å"}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_save(state, Path(path))
    return Path(path)


def load_nnh_model(path, device: str = "auto") -> NNHModel:
    """NNH models run on the CPU in float64 (the eigensolver and the overlaps are numpy)."""
    from ..training.common import read_model_file

    return nnh_from_state(read_model_file(path, "nnh", "NNH"), str(path))


def nnh_from_state(state: dict, path: str | None = None) -> NNHModel:
    from ..training.forcefield import forcefield_from_state
    from ..training.hamiltonian import hamiltonian_from_state

    from .repulsion import PairRepulsion

    rem = state.get("remainder")
    rem = forcefield_from_state(rem, "cpu", "float64") if rem is not None else None
    prior = PairRepulsion.from_state(state["prior"]) if state.get("prior") else None  # files before priors: none
    return NNHModel(hamiltonian_from_state(state["hamiltonian"], "cpu"), rem, state["kT_eV"], path, prior)


NNH_DEFAULTS: dict = {
    "hamiltonian": None,  # model.pt from 'n2amd train hamiltonian' (tblite reference)
    "data": None,  # n2amd dataset (or a list, pooled) with energy/forces/stress labels from the same reference
    "kT_eV": 0.0,  # Fermi smearing (eV); 0 = fixed integer occupations (insulators)
    "prior": "repulsion",  # repulsion: the reference method's pair repulsion, exact, under the remainder | none
    "remainder": {"model": {"r_cut": 4.0, "layers": 2, "hidden": "16x0e+8x1o+4x2e"},
                  "train": {"epochs": 100, "batch_size": 2, "early_stopping": 20}},
    "output": "runs/nnh",
}


def residual_dataset(nnh: NNHModel, data, out_path, progress: bool = True, tag: dict | None = None) -> Path:
    """The reference labels minus the band terms and the prior of ``nnh`` (energy, forces, stress): what
    the remainder MLFF has to learn. ``data``: one dataset or a list (pooled, frames renumbered in order).
    Written as an n2amd dataset next to the output."""
    from tqdm.auto import tqdm

    from ..data import h5format
    from ..training.common import read_pooled

    read = lambda path, g, i: (h5format.read_atoms(g), h5format.read_frame(g, ("energy", "forces", "stress")))
    items, engine, _ = read_pooled(data, read)
    with h5format.create_dataset(out_path, engine={**engine, "residual_of": "NNH band energy", **(tag or {})},
                                 basis_json=None, overwrite=True) as g:
        for i, (atoms, lab) in enumerate(tqdm(items, desc="band terms", unit="frame", disable=not progress)):
            periodic = bool(np.all(atoms.pbc)) and "stress" in lab
            band = nnh.fixed_terms(atoms, stress=periodic)
            res = {"energy": np.asarray(float(lab["energy"]) - band["energy"]), "forces": lab["forces"] - band["forces"]}
            if periodic:
                res["stress"] = lab["stress"] - band["stress"]
            h5format.write_structure(g, i, atoms, source="residual")
            h5format.write_labels(g, i, res, fold="none")
    return Path(out_path)


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _residual_tag(path) -> dict:
    import json

    from ..data import h5format

    with h5format.open_dataset(path) as f:
        engine = json.loads(f.attrs["engine"])
    return {k: engine.get(k) for k in ("hamiltonian_sha256", "data_sha256", "kT_eV", "band_terms", "prior")}


def fit_remainder(cfg: dict, progress: bool = True) -> Path:
    """``n2amd train nnh``: band terms of the Hamiltonian model (and the repulsion prior) on the data, an
    MLFF fitted to the rest, all saved as one NNH model file (OUTPUT/model.pt)."""
    from ..config import merge
    from ..training.common import dataset_paths
    from ..training.forcefield import DEFAULTS as FF_DEFAULTS
    from ..training.forcefield import train_forcefield
    from ..training.hamiltonian import load_hamiltonian_model
    from .repulsion import PairRepulsion

    for key in ("hamiltonian", "data"):
        if not cfg.get(key):
            raise ValueError(f"NNH training needs '{key}:' (a path) in the config or --set {key}=...")
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    hm = load_hamiltonian_model(cfg["hamiltonian"], device="cpu")
    if cfg["prior"] not in ("repulsion", "none", None):
        raise ValueError(f"prior: {cfg['prior']!r} is not one of: repulsion, none")
    prior = PairRepulsion.for_method(hm.info["reference"]["method"], hm.elements) if cfg["prior"] == "repulsion" else None
    nnh = NNHModel(hm, None, float(cfg["kT_eV"]), prior=prior)
    resid = out / "residual.h5"
    # the band terms are the slow part: computed once and kept for resumed runs of the same inputs
    tag = {"hamiltonian_sha256": _sha256(cfg["hamiltonian"]),
           "data_sha256": ",".join(_sha256(p) for p in dataset_paths(cfg["data"])),
           "kT_eV": float(cfg["kT_eV"]), "band_terms": BAND_TERMS, "prior": prior.state() if prior else None}
    if not resid.exists() or _residual_tag(resid) != tag:
        residual_dataset(nnh, cfg["data"], out / "residual.tmp.h5", progress, tag)
        (out / "residual.tmp.h5").replace(resid)
    import copy

    ff_cfg = copy.deepcopy(FF_DEFAULTS)
    merge(ff_cfg, cfg["remainder"], "remainder")
    ff_cfg.update({"data": str(resid), "output": str(out / "remainder")})
    rem_path = train_forcefield(ff_cfg, progress)
    return save_nnh_model(out / "model.pt", cfg["hamiltonian"], rem_path, float(cfg["kT_eV"]), prior)
