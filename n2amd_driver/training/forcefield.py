"""``n2amd train forcefield config.yaml``: fit the equivariant MLFF to reference energies, forces, stress.

Loss = w_E · MSE(E/N) [eV²/atom²] + w_F · MSE(F) [eV²/Å²] + w_S · MSE(σ) [eV²/Å⁶], on the [A] datasets.
AdamW, plateau schedule, EMA, early stopping on the validation loss, seeds, checkpoints every epoch (re-run
to resume), progress bar with live MAEs, ``metrics.csv`` (the loop of :func:`.loop.fit`). Optional sharpness-aware minimisation
(``train.sam_rho`` > 0, the Allegro-Legato recipe): the gradient is taken at w + ρ g/|g| and the step is
made from w, which favours flat minima and more robust MD. ``model.pt`` holds the best EMA weights with
the full config, units and reference; load it with :func:`n2amd_driver.models.io.load_model`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.io import default_dtype, save_model_file
from .loop import descend, fit, frames_domain, per_element_values, prepare_run, read_pooled, save_split, split_frames

def _schema():
    from typing import Literal

    from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

    from .loop import schema_sections

    Section, Split, Train, Field = schema_sections()

    class Model(Section):
        r_cut: PositiveFloat = Field(5.0, description="Å, cutoff")
        layers: PositiveInt = Field(3, description="message-passing layers")
        lmax_sh: NonNegativeInt = Field(2, description="spherical harmonics of the edges")
        num_basis: PositiveInt = Field(8, description="radial basis functions")
        hidden: str = Field("32x0e+8x1o+8x1e+4x2e+4x2o", description="e3nn irreps of the hidden features")
        embedding: PositiveInt = Field(32, description="scalar channels of the species embedding")
        scalar_last_layer: bool = Field(True, description="the readout needs scalars only: the last layer makes no "
                                                          "l > 0 features")

    class FSplit(Split):
        fractions: list[NonNegativeFloat] = Field([0.9, 0.1, 0.0], min_length=3, max_length=3,
                                                  description="train / validation / test fractions (sum 1)")

    class FTrain(Train):
        epochs: PositiveInt = Field(300, description="epochs at most")
        batch_size: PositiveInt = Field(4, description="structures per optimiser step")
        lr: NonNegativeFloat = Field(5e-3, description="AdamW learning rate")
        energy_weight: NonNegativeFloat = Field(1.0, description="on (E/N)², eV²")
        force_weight: NonNegativeFloat = Field(1.0, description="on F², eV²/Å²")
        stress_weight: NonNegativeFloat = Field(100.0, description="on σ², eV²/Å⁶ (stress values are ~1e-2 eV/Å³)")
        sam_rho: NonNegativeFloat = Field(0.0, description="> 0: sharpness-aware minimisation with this radius")

    class Config(Section):
        data: str | list[str] | None = Field(None, description="n2amd dataset(s) with energy, force (and stress) "
                                                               "labels, pooled in order")
        split: FSplit = Field(default_factory=FSplit)
        model: Model = Field(default_factory=Model)
        dtype: Literal["float32", "float64"] = Field("float32", description="precision of training")
        device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
        train: FTrain = Field(default_factory=FTrain)
        output: str = Field("runs/forcefield", description="run folder (model.pt, checkpoint.pt, metrics.csv)")

    return Config


SCHEMA = _schema()
#: Documented defaults of an MLFF training config (YAML).
DEFAULTS: dict = SCHEMA().model_dump()

UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3 (ASE sign)"}


def load_frames(data) -> tuple[list[dict], dict]:
    """Structures with energy (eV), forces (eV/Å) and, if labelled, stress (eV/Å³) from one n2amd dataset
    or a list of them (same reference), in file order."""
    from ..data import h5format

    def read(path, g, i) -> dict:
        if "forces" not in g:
            raise ValueError(f"{path}: frame {i} has no force labels")
        return {"atoms": h5format.read_atoms(g), "energy": float(g["energy"][()]), "forces": np.asarray(g["forces"][()]),
                "stress": np.asarray(g["stress"][()]) if "stress" in g else None}

    frames, engine, _ = read_pooled(data, read)
    return frames, engine


def _targets(chunk, device, dtype) -> dict:
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
    natoms = t([len(fr["atoms"]) for fr in chunk])
    out = {"energy": t([fr["energy"] for fr in chunk]), "natoms": natoms,
           "forces": t(np.concatenate([fr["forces"] for fr in chunk]))}
    if all(fr["stress"] is not None and np.all(fr["atoms"].pbc) for fr in chunk):
        out["stress"] = t(np.stack([fr["stress"] for fr in chunk]))
    return out


def loss_terms(model, chunk, device, weights: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Weighted loss of a batch and its parts (eV-based squared errors)."""
    dtype = model.shift.dtype
    y = _targets(chunk, device, dtype)
    d = model.prepare([fr["atoms"] for fr in chunk], device)
    out = model(d, forces=True, stress="stress" in y)
    parts = {"energy": (((out["energy"] - y["energy"]) / y["natoms"]) ** 2).mean(),
             "forces": ((out["forces"] - y["forces"]) ** 2).mean()}
    if "stress" in y:
        parts["stress"] = ((out["stress"] - y["stress"]) ** 2).mean()
    w = weights or {}
    loss = sum(float(w.get(f"{k}_weight", 1.0)) * v for k, v in parts.items())
    return loss, parts


def evaluate(model, frames, batch_size: int, device) -> dict:
    """MAEs: energy (meV/atom), forces (meV/Å), stress (meV/Å³)."""
    de, df, ds = [], [], []
    for k in range(0, len(frames), batch_size):
        chunk = frames[k : k + batch_size]
        d = model.prepare([fr["atoms"] for fr in chunk], device)
        y = _targets(chunk, device, model.shift.dtype)
        out = model(d, forces=True, stress="stress" in y)
        de += (((out["energy"] - y["energy"]) / y["natoms"]).abs()).tolist()
        df.append((out["forces"] - y["forces"]).abs().detach().reshape(-1).cpu())
        if "stress" in y:
            ds.append((out["stress"] - y["stress"]).abs().detach().reshape(-1).cpu())
    m = lambda x: 1000 * float(torch.cat(x).mean()) if x else float("nan")
    return {"E_mae_meV_atom": 1000 * float(np.mean(de)), "F_mae_meV_A": m(df), "S_mae_meV_A3": m(ds)}


def sam_step(model, opt, chunk, device, t: dict) -> float:
    """One sharpness-aware step: gradient at w + ρ g/|g|, update applied from w."""
    rho = float(t["sam_rho"])
    loss, _ = loss_terms(model, chunk, device, t)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    norm = torch.sqrt(sum((g**2).sum() for g in grads if g is not None)) + 1e-12
    eps = [None if g is None else rho * g / norm for g in grads]
    with torch.no_grad():
        for p, e in zip(params, eps):
            if e is not None:
                p.add_(e)
    opt.zero_grad()
    loss_adv, _ = loss_terms(model, chunk, device, t)
    loss_adv.backward()
    with torch.no_grad():
        for p, e in zip(params, eps):
            if e is not None:
                p.sub_(e)
    opt.step()
    return loss.item()


def train_forcefield(cfg: dict, progress: bool = True) -> Path:
    """Run (or resume) an MLFF training; returns the path of the best model file."""
    from ..models.forcefield import ForceFieldConfig, ForceFieldModel

    t = cfg["train"]
    out, dtype, device = prepare_run(cfg)
    with default_dtype(dtype):
        frames, engine = load_frames(cfg["data"])
        train, val, split = split_frames(frames, cfg["split"])
        domain = frames_domain(train, cfg["data"])
        elements = sorted({el for fr in frames for el in fr["atoms"].get_chemical_symbols()})
        shifts = per_element_values([fr["atoms"] for fr in train], [fr["energy"] for fr in train])
        # one scale for every force component: the RMS over all of them, which no rotation changes
        scale = float(np.sqrt(np.mean(np.concatenate([fr["forces"].ravel() for fr in train]) ** 2)))
        nbr = np.mean([_mean_neighbours(fr["atoms"], float(cfg["model"]["r_cut"])) for fr in train[:8]])
        mcfg = ForceFieldConfig(elements=elements, energy_shift=shifts, energy_scale=scale,
                                avg_neighbours=float(nbr), **cfg["model"])
        model = ForceFieldModel(mcfg).to(device=device, dtype=dtype)

        def step(chunk, epoch, opt):
            if float(t["sam_rho"]) > 0:
                return sam_step(model, opt, chunk, device, t)
            return descend(opt, loss_terms(model, chunk, device, t)[0])

        bs = int(t["batch_size"])
        fit(model, train, val, t, out, device, step=step, evaluate=lambda frames_: evaluate(model, frames_, bs, device),
            # validation score in the loss's own weighting, with MAEs in eV-based units
            score=lambda ev, epoch: float(t["energy_weight"]) * ev["E_mae_meV_atom"]
            + float(t["force_weight"]) * ev["F_mae_meV_A"],
            save=lambda ev, epoch: save_model(model, out / "model.pt", cfg, engine, ev, epoch, domain), desc="train FF",
            postfix=lambda ev: {"E": f"{ev['E_mae_meV_atom']:.2f}meV/at", "F": f"{ev['F_mae_meV_A']:.1f}meV/Å"},
            progress=progress)
    save_split(out, split)
    return out / "model.pt"


def _mean_neighbours(atoms, r_cut: float) -> float:
    from ..core.graph import graph_from_atoms

    return graph_from_atoms(atoms, r_cut).num_edges / max(len(atoms), 1)


def save_model(model, path: Path, cfg: dict, engine: dict, metrics: dict, epoch: int,
               domain: dict | None = None) -> None:
    save_model_file(path, "forcefield", model, units=UNITS, reference=engine, training=cfg, validation=metrics,
                    epoch=epoch, domain=domain)
