"""Write the training domain (closest distance per element pair, n2amd_driver.models.domain) into the bundled
model files, which were trained before training recorded it. Weights are not touched.

The structures come from re-running the sampling (no labels) of each model's Tersoff-MD dataset config; the
seeded LAMMPS runs reproduce the training frames. The Si models' second dataset (data_si64_mlff.yaml) was
sampled with a first-round MLFF that is not kept, so its frames are not included: the recorded Si minimum
is over the Tersoff frames, an upper bound on the minimum over everything the models saw.

    .venv/bin/python scripts/record_domain.py            # ~1 min
"""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from n2amd_driver.core.checkpoint import save_torch
from n2amd_driver.md.sampling import sample_configurations
from n2amd_driver.models.domain import training_domain
from n2amd_driver.models.io import BUNDLED

CONFIGS = Path(__file__).parents[1] / "n2amd_driver" / "assets" / "configs"
#: bundled model → the dataset configs whose sampling gives its training structures
SOURCES = {
    "si_hamiltonian.pt": ["data_si64_train.yaml"],
    "si_mlff.pt": ["data_si64_train.yaml"],
    "si_mlff_sam.pt": ["data_si64_train.yaml"],
    "si_nnh.pt": ["data_si64_train.yaml"],
    "gaas_hamiltonian.pt": ["data_gaas64_train.yaml"],
}
NOTE = {"data_si64_train.yaml": "; the MLFF-driven frames of data_si64_mlff.yaml (not reproducible) are not "
                                "included, so this minimum is an upper bound"}


def structures(name: str) -> list:
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    return [s.atoms for s in sample_configurations(cfg["system"], cfg["sampling"], progress=False)]


def main() -> None:
    cache: dict[str, list] = {}
    for model, configs in SOURCES.items():
        frames = [a for c in configs for a in cache.setdefault(c, structures(c))]
        source = ", ".join(f"{c} sampling re-run ({len(cache[c])} frames){NOTE.get(c, '')}" for c in configs)
        domain = training_domain(frames, source=source)
        path = BUNDLED / model
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["kind"] == "nnh":  # its Hamiltonian carries the domain, as a freshly trained one would
            state["hamiltonian"]["domain"] = domain
        else:
            state["domain"] = domain
        save_torch(state, path)
        print(f"{model}: {domain['pair_min_A']} Å ({domain['frames']} frames)")


if __name__ == "__main__":
    main()
