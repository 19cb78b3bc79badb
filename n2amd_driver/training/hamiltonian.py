"""``n2amd train hamiltonian config.yaml``: fit the equivariant Hamiltonian to reference H (Γ-folded).

Stage 1 fits the matrix elements (MSE on every element of the Γ-point H, eV²). From ``band_stage_epoch``
on, a band-energy term is added: eigenvalues of the predicted H with the reference S (generalised
problem, via Cholesky) against the reference eigenvalues, for the states within ``band_window_eV`` of
the gap (as in N2AMD/HamGNN). AdamW, plateau learning-rate schedule, early stopping on the validation
loss, EMA of the weights, seeded splits, checkpoints every epoch (resume by re-running), a progress bar
with live MAEs, ``metrics.csv``, and ``model.pt`` (best EMA weights + full config + basis + units),
loadable with :func:`load_hamiltonian_model`. ``init: model.pt`` starts from a trained model's weights
(fine-tuning, e.g. more band-stage epochs at a lower learning rate).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..models.io import build_model, default_dtype, read_model_file, save_model_file
from .loop import descend, fit, frames_domain, per_element_values, prepare_run, read_pooled, save_split, split_frames

def _schema():
    from typing import Literal

    from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

    from .loop import schema_sections

    Section, Split, Train, Field = schema_sections()

    class Model(Section):
        r_mp: PositiveFloat = Field(5.0, description="Å, message-passing cutoff")
        r_block: PositiveFloat = Field(8.0, description="Å, pair cutoff of the off-site blocks")
        layers: PositiveInt = Field(2, description="message-passing layers")
        lmax_sh: NonNegativeInt = Field(2, description="spherical harmonics in message passing")
        lmax_edge: NonNegativeInt = Field(4, description="harmonics of the bond direction in off-site blocks (d–d "
                                                         "needs 4)")
        num_basis: PositiveInt = Field(8, description="radial basis functions")
        hidden: str = Field("16x0e+4x0o+8x1o+4x1e+4x2e+4x2o+2x3o+2x3e+2x4e", description="e3nn irreps of the "
                                                                                        "hidden features")
        shell_potential: Literal["none", "local", "mean-field"] = Field(
            "mean-field", description="½(v_a + v_b) S_ab with shell potentials v: none | local | mean-field (local "
                                      "+ a response to the cell-averaged bond lengths; models/potential.py)")

    class HTrain(Train):
        band_stage_epoch: NonNegativeInt = Field(150, description="first epoch of stage 2 (band-energy term); "
                                                                  "> epochs disables it")
        band_weight: NonNegativeFloat = Field(0.1, description="weight of the band-energy term (eV² per eV²)")
        band_window_eV: PositiveFloat = Field(2.0, description="eV, states within this of the gap count")

    class Config(Section):
        data: str | list[str] | None = Field(None, description="n2amd dataset(s) with Hamiltonian and overlap "
                                                               "labels, pooled in order")
        init: str | None = Field(None, description="a Hamiltonian model.pt to start from (fine-tuning): its "
                                                   "architecture and weights; 'model' is ignored")
        split: Split = Field(default_factory=Split)
        model: Model = Field(default_factory=Model)
        dtype: Literal["float64", "float32"] = Field("float64", description="precision of training")
        device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
        train: HTrain = Field(default_factory=HTrain)
        output: str = Field("runs/hamiltonian", description="run folder (model.pt, checkpoint.pt, metrics.csv)")

    return Config


SCHEMA = _schema()
#: Documented defaults of a Hamiltonian training config (YAML).
DEFAULTS: dict = SCHEMA().model_dump()

UNITS = {"hamiltonian": "eV", "length": "Å"}


def load_frames(data, dtype) -> tuple[list[dict], str, dict]:
    """Frames with H, S (eV), orbital energies and occupations from one n2amd dataset or a list of them
    (same reference and basis), in file order; also the basis (JSON) and the reference."""
    from ..data import h5format

    def read(path, g, i) -> dict:
        if "hamiltonian" not in g:
            raise ValueError(f"{path}: frame {i} has no Hamiltonian label")
        atoms = h5format.read_atoms(g)
        kmesh = tuple(int(k) for k in g["kmesh"][()]) if "kmesh" in g else None
        if kmesh is None:
            S = g["overlap"][()]
        else:  # "bvk" frames store no S: the basis's analytic S(R) (h5format)
            S = bvk_overlap(atoms, kmesh, g.file.attrs["basis"])
        return {"atoms": atoms, "kmesh": kmesh, "H": torch.as_tensor(g["hamiltonian"][()], dtype=dtype),
                "S": torch.as_tensor(S, dtype=dtype),
                "eps": torch.as_tensor(g["orbital_energies"][()], dtype=dtype), "occ": g["occupations"][()]}

    frames, engine, basis_json = read_pooled(data, read)
    return frames, basis_json, engine


def bvk_overlap(atoms, kmesh, basis_json: str) -> np.ndarray:
    """S(R) of a "bvk" frame from the basis named in its dataset (float64, e3nn order)."""
    from ..orbitals import Basis, basis_functions, bvk_overlaps

    bf = basis_functions(Basis.from_json(basis_json).name, atoms.get_chemical_symbols())
    return bvk_overlaps(bf, atoms, kmesh)


def prepare_frames(model, chunk, device) -> dict:
    """The model's batch of training frames (Γ or k-mesh), with their reference S."""
    return model.prepare([fr["atoms"] for fr in chunk], device, overlaps=[fr["S"] for fr in chunk],
                         kmeshes=[fr.get("kmesh") for fr in chunk])


def frame_bloch(X: torch.Tensor, fr: dict) -> torch.Tensor:
    """A frame's matrix at its k-points: X itself at Γ, or X(k) = Σ_R X(R) e^(2πi k·R), (Nk, n, n), for a
    k-mesh frame's per-image blocks."""
    if fr.get("kmesh") is None:
        return X
    from ..orbitals import bvk_images, bvk_kpoints

    R, k = (torch.as_tensor(x, dtype=X.dtype, device=X.device) for x in (bvk_images(fr["kmesh"]),
                                                                          bvk_kpoints(fr["kmesh"])))
    phase = torch.exp(2j * torch.pi * (k @ R.T))  # (k, R)
    return torch.einsum("kr,rab->kab", phase, X.to(phase.dtype))


def frame_eigvalsh(H: torch.Tensor, fr: dict) -> torch.Tensor:
    """Eigenvalues (eV, ascending) of a predicted H with the frame's reference S: at Γ, or for a k-mesh
    frame those of all its k-points together (the spectrum of its Born–von Kármán supercell)."""
    S = fr["S"].to(H.device)
    return torch.sort(generalized_eigvalsh(frame_bloch(H, fr), frame_bloch(S, fr)).reshape(-1)).values


def onsite_means(frames, basis) -> dict:
    """Each element's on-site level per shell (eV; the mean over atoms, frames and m of the shell's
    diagonal), repeated over the shell's 2l+1 orbitals: the model learns deviations from it. The mean over
    m is what makes it rotation invariant: per-component means would carry the training crystals'
    crystal-field splitting in their orientation."""
    from ..models.hamiltonian import shell_means

    out = {}
    for fr in frames:
        offs = basis.orbital_offsets(fr["atoms"].numbers)
        d = torch.diagonal(fr["H"] if fr.get("kmesh") is None else fr["H"][0]).numpy()  # image R = 0: on-site
        for a, el in enumerate(fr["atoms"].get_chemical_symbols()):
            out.setdefault(el, []).append(d[offs[a] : offs[a + 1]])
    return {el: shell_means(np.mean(v, axis=0), basis.shells_of(el)).tolist() for el, v in out.items()}


def valence_electrons_per_element(frames) -> dict:
    """Electrons per atom of each element, solved from the reference occupations of the frames
    (least squares over frames; exact integers for the engines' valence counts). Stored in the model
    file so that band edges of new structures need no reference calculation."""
    per_cell = lambda fr: float(np.sum(fr["occ"])) / (1 if fr.get("kmesh") is None else int(np.prod(fr["kmesh"])))
    return per_element_values([fr["atoms"] for fr in frames], [per_cell(fr) for fr in frames])


def band_window(eps_ref: torch.Tensor, occ, window: float) -> torch.Tensor:
    nocc = int(round(float(np.sum(occ)) / 2))
    vbm, cbm = eps_ref[nocc - 1], eps_ref[nocc]
    return (eps_ref >= vbm - window) & (eps_ref <= cbm + window)


def generalized_eigvalsh(H: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of H c = ε S c (Hermitian, batched over leading dimensions), differentiable."""
    L = torch.linalg.cholesky(S)
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device).expand_as(S)
    Linv = torch.linalg.solve_triangular(L, eye, upper=False)
    return torch.linalg.eigvalsh(Linv @ H @ Linv.mH)


def evaluate(model, frames, batch_size, device, window) -> dict:
    """MAEs (meV): H elements, eigenvalues within the window, VBM, CBM, gap."""
    h_err, e_err, vbm, cbm, gap = [], [], [], [], []
    with torch.no_grad():
        for k in range(0, len(frames), batch_size):
            chunk = frames[k : k + batch_size]
            d = prepare_frames(model, chunk, device)
            mats = model.matrices(model(d), d)
            for fr, H in zip(chunk, mats):
                H = H.cpu()
                h_err.append((H - fr["H"]).abs().mean().item())
                eps = frame_eigvalsh(H, fr)
                sel = band_window(fr["eps"], fr["occ"], window)
                e_err.append((eps[sel] - fr["eps"][sel]).abs().mean().item())
                nocc = int(round(float(np.sum(fr["occ"])) / 2))
                dv = (eps[nocc - 1] - fr["eps"][nocc - 1]).item()
                dc = (eps[nocc] - fr["eps"][nocc]).item()
                vbm.append(abs(dv)), cbm.append(abs(dc)), gap.append(abs(dc - dv))
    m = lambda x: 1000 * float(np.mean(x)) if x else float("nan")
    return {"H_mae_meV": m(h_err), "eig_mae_meV": m(e_err), "vbm_mae_meV": m(vbm), "cbm_mae_meV": m(cbm),
            "gap_mae_meV": m(gap)}


def train_hamiltonian(cfg: dict, progress: bool = True) -> Path:
    """Run (or resume) a Hamiltonian training; returns the path of the best model file."""
    from ..models.hamiltonian import HamiltonianConfig, HamiltonianModel
    from ..orbitals.conventions import Basis

    t = cfg["train"]
    out, dtype, device = prepare_run(cfg)
    with default_dtype(dtype):
        frames, basis_json, engine = load_frames(cfg["data"], dtype)
        train, val, split = split_frames(frames, cfg["split"])
        domain = frames_domain(train, cfg["data"])
        elements = sorted({el for fr in frames for el in fr["atoms"].get_chemical_symbols()})
        if cfg.get("init"):
            model = initial_model(cfg["init"], elements, basis_json, dtype, device)
        else:
            mcfg = HamiltonianConfig(elements=elements, basis_json=basis_json,
                                     onsite_shift=onsite_means(train, Basis.from_json(basis_json)), **cfg["model"])
            model = HamiltonianModel(mcfg).to(device=device, dtype=dtype)
            if mcfg.shell_potential == "mean-field":
                model.fit_descriptor_stats([fr["atoms"] for fr in train], [fr["S"] for fr in train],
                                           [fr.get("kmesh") for fr in train])
        cfg = {**cfg, "valence_electrons": valence_electrons_per_element(frames)}
        window = float(t["band_window_eV"])
        in_band_stage = lambda epoch: epoch >= int(t["band_stage_epoch"])

        def step(chunk, epoch, opt):
            d = prepare_frames(model, chunk, device)
            mats = model.matrices(model(d), d)
            loss = sum(((H - fr["H"].to(device)) ** 2).mean() for H, fr in zip(mats, chunk)) / len(chunk)
            if in_band_stage(epoch):
                band = 0.0
                for H, fr in zip(mats, chunk):
                    eps = frame_eigvalsh(H, fr)
                    sel = band_window(fr["eps"], fr["occ"], window).to(device)
                    band = band + ((eps[sel] - fr["eps"].to(device)[sel]) ** 2).mean()
                loss = loss + float(t["band_weight"]) * band / len(chunk)
            return descend(opt, loss)

        # the selection score changes at the band stage (blocks → blocks + eigenvalues): stage-1 scores
        # must not block stage-2 models from being saved
        fit(model, train, val, t, out, device, step=step,
            evaluate=lambda frames_: evaluate(model, frames_, int(t["batch_size"]), device, window),
            score=lambda ev, epoch: ev["H_mae_meV"] + (ev["eig_mae_meV"] if in_band_stage(epoch) else 0.0),
            save=lambda ev, epoch: save_model(model, out / "model.pt", cfg, engine, ev, epoch, domain),
            stage=lambda epoch: 2 if in_band_stage(epoch) else 1, loss_column="train_loss_eV2", desc="train H",
            postfix=lambda ev: {"H": f"{ev['H_mae_meV']:.2f}meV", "eig": f"{ev['eig_mae_meV']:.1f}meV"},
            progress=progress)
    save_split(out, split)
    return out / "model.pt"


def initial_model(path, elements: list[str], basis_json: str, dtype=torch.float64, device: str = "cpu"):
    """The model saved in ``path`` (weights included), checked to cover the data's elements and basis."""
    from ..models.hamiltonian import HamiltonianConfig, HamiltonianModel

    state = read_model_file(path, "hamiltonian")
    mcfg = HamiltonianConfig(**state["config"])
    missing = sorted(set(elements) - set(mcfg.elements))
    if missing:
        raise ValueError(f"init model {path} has no {', '.join(missing)} (its elements: {', '.join(mcfg.elements)})")
    if json.loads(mcfg.basis_json) != json.loads(basis_json):
        raise ValueError(f"init model {path} was trained in another basis than the data's")
    return build_model(lambda: HamiltonianModel(mcfg), state["state_dict"], dtype, device)


def save_model(model, path: Path, cfg: dict, engine: dict, metrics: dict, epoch: int,
               domain: dict | None = None) -> None:
    save_model_file(path, "hamiltonian", model, units=UNITS, reference=engine, training=cfg,
                    valence_electrons=cfg.get("valence_electrons", {}), validation=metrics, epoch=epoch, domain=domain)
