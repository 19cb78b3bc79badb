#!/usr/bin/env python
"""Rewrite a Hamiltonian (or NNH) model file with its on-site shift made per shell: each shell's mean over
m replaces the per-orbital values that model files before the per-shell rule carried (they broke rotation
equivariance). Prints the largest change per element (eV). The weights are kept as they are; use it where
that change is far below the model's accuracy (the bundled Si model: 9e-5 eV), and fine-tune otherwise.

    python scripts/isotropic_onsite.py n2amd_driver/assets/models/si_hamiltonian.pt -o si_hamiltonian.pt
"""
from __future__ import annotations

import argparse
import copy

import numpy as np

from n2amd_driver.core.checkpoint import save_torch
from n2amd_driver.models.hamiltonian import shell_means
from n2amd_driver.models.io import read_model_file
from n2amd_driver.orbitals.conventions import Basis


def isotropic(state: dict) -> tuple[dict, dict]:
    """(new Hamiltonian state, largest change per element in eV)."""
    state = copy.deepcopy(state)
    basis = Basis.from_json(state["config"]["basis_json"])
    change = {}
    for el, values in state["config"]["onsite_shift"].items():
        iso = shell_means(values, basis.shells_of(el))
        change[el] = float(np.abs(np.asarray(values) - iso).max())
        state["config"]["onsite_shift"][el] = iso.tolist()
    state["state_dict"].pop("onsite_shift", None)  # derived from the config since the per-shell rule
    return state, change


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    state = read_model_file(a.model, ("hamiltonian", "nnh"))
    if state["kind"] == "nnh":
        state["hamiltonian"], change = isotropic(state["hamiltonian"])
    else:
        state, change = isotropic(state)
    state.setdefault("history", []).append(f"on-site shift made per shell by scripts/isotropic_onsite.py "
                                           f"(largest change per element, eV: {change})")
    save_torch(state, a.output)
    print(f"{a.output}: largest on-site change per element (eV): " + ", ".join(f"{k} {v:.3g}" for k, v in change.items()))


if __name__ == "__main__":
    main()
