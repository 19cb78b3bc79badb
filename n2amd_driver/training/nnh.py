"""``n2amd train nnh config.yaml``: NNH-MD forces from a trained Hamiltonian model.

The band terms of the Hamiltonian model (:class:`n2amd_driver.models.nnh.NNHModel`) and, by default, the
reference method's exact pair repulsion are evaluated on every frame; a short-range MLFF (the remainder)
is fitted to the reference energies, forces and stress minus those, and all of it is written as one NNH
model file. The band terms are kept (``residual.h5``) for reruns with the same inputs.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..models.nnh import BAND_TERMS
from .loop import dataset_paths, read_pooled

#: the remainder MLFF's settings that differ from 'n2amd train forcefield' defaults: small and short-ranged
REMAINDER = {"model": {"r_cut": 4.0, "layers": 2, "hidden": "16x0e+8x1o+4x2e"},
             "train": {"epochs": 100, "batch_size": 2, "early_stopping": 20}}


def _schema():
    from typing import Literal

    from pydantic import NonNegativeFloat, field_validator

    from .loop import schema_sections

    Section, _, _, Field = schema_sections()

    class Config(Section):
        hamiltonian: str | None = Field(None, description="model.pt from 'n2amd train hamiltonian' (tblite "
                                                          "reference; required)")
        data: str | list[str] | None = Field(None, description="n2amd dataset(s) with energy/forces/stress labels "
                                                               "from the same reference, pooled in order")
        kT_eV: NonNegativeFloat = Field(0.0, description="eV, Fermi smearing; 0 = integer occupations (insulators)")
        prior: Literal["repulsion", "none"] = Field(
            "repulsion", description="repulsion: the reference method's pair repulsion, exact, under the "
                                     "remainder; none: the remainder learns it")
        remainder: dict = Field(
            default_factory=lambda: copy.deepcopy(REMAINDER),
            description="settings of the remainder MLFF ('n2amd train forcefield' keys: model, train, ...); "
                        "what is given is merged key by key into the default shown")
        output: str = Field("runs/nnh", description="run folder (model.pt, residual.h5, remainder/)")

        @field_validator("remainder")
        @classmethod
        def _remainder_is_an_mlff_config(cls, v):
            from ..core.config import deep_update, load_validated
            from .forcefield import SCHEMA as FF

            merged = copy.deepcopy(REMAINDER)
            deep_update(merged, v)
            load_validated(FF, None, merged)  # raises naming the key
            return merged

    return Config


SCHEMA = _schema()
#: Documented defaults of an NNH training config (YAML).
DEFAULTS: dict = SCHEMA().model_dump()


def residual_dataset(nnh, data, out_path, progress: bool = True, tag: dict | None = None) -> Path:
    """The reference labels minus the band terms and the prior of ``nnh`` (energy, forces, stress): what
    the remainder MLFF has to learn. ``data``: one dataset or a list (pooled, frames renumbered in order).
    Written as an n2amd dataset next to the output."""
    from tqdm.auto import tqdm

    from ..data import h5format

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
    from ..core.config import load_validated
    from ..models.io import load_hamiltonian_model, save_nnh_model
    from ..models.nnh import NNHModel
    from ..models.repulsion import PairRepulsion
    from .forcefield import SCHEMA as FF_SCHEMA
    from .forcefield import train_forcefield

    for key in ("hamiltonian", "data"):
        if not cfg.get(key):
            raise ValueError(f"NNH training needs '{key}:' (a path) in the config or --set {key}=...")
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    hm = load_hamiltonian_model(cfg["hamiltonian"], device="cpu")
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
    ff_cfg = load_validated(FF_SCHEMA, None, cfg["remainder"])
    ff_cfg.update({"data": str(resid), "output": str(out / "remainder")})
    rem_path = train_forcefield(ff_cfg, progress)
    return save_nnh_model(out / "model.pt", cfg["hamiltonian"], rem_path, float(cfg["kT_eV"]), prior)
