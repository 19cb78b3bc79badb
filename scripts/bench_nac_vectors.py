#!/usr/bin/env python
"""NAC vectors of a bundled Hamiltonian model against its reference engine, the N2AMD paper's protocol (its
eq. 13 check on 50 perturbed TiO2 cells): randomly perturbed cells, d_ij = <ψ_i|∇ψ_j> for VBM−1/VBM, VBM/CBM
and CBM/CBM+1, the model's by autograd and the reference's (tblite) from finite differences of its
converged H (ΔR = 0.01 Å), both with the analytic ∂S and <φ|∇φ> of the same basis. Each model state's sign
is aligned with the reference state's (the paper aligns phases); pairs closer than 0.1 meV are left out
and counted. Also the cost of one evaluation of each.

The cells are the 64-atom cubic cells the models were trained on, not 8-atom ones: tblite's Γ-only SCC
density of an 8-atom cell is a coarser Brillouin-zone sampling than the training cells', and shifts its
levels by up to 0.5 eV against the same structure repeated 2×2×2 (the model, being local, gives the same
levels for both to 1e-12 eV). The reference's finite differences (6 single points per atom) are done for
``--atoms`` random atoms per cell; the model's vectors are compared on those.

    .venv/bin/python scripts/bench_nac_vectors.py --model si_hamiltonian.pt --cells 50 --out docs/bench/nac_vectors.json
    .venv/bin/python scripts/bench_nac_vectors.py --model gaas_hamiltonian.pt --cells 50 --update docs/bench/nac_vectors.json

Per-cell results are kept in --work (default runs/bench/nac_vectors/<model>), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import stamp  # noqa: E402

from n2amd_driver.core.units import HBAR_EV_FS  # noqa: E402
from n2amd_driver.namd.nac_vectors import nac_vectors  # noqa: E402
from n2amd_driver.namd.sources import EngineSource, ModelSource  # noqa: E402

PAIRS = {"VBM-1/VBM": (0, 1), "VBM/CBM": (1, 2), "CBM/CBM+1": (2, 3)}
CELLS = {"Si": lambda: bulk("Si", "diamond", a=5.43, cubic=True),
         "GaAs": lambda: bulk("GaAs", "zincblende", a=5.65, cubic=True)}


def perturbed_cell(formula: str, seed: int, rattle_ang: float, strain: float):
    """The 64-atom cubic cell with Gaussian displacements (σ = rattle_ang) and a random symmetric strain."""
    rng = np.random.default_rng(seed)
    a = CELLS[formula]().repeat(2)
    e = rng.uniform(-strain, strain, (3, 3))
    a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (e + e.T)), scale_atoms=True)
    a.positions += rng.normal(scale=rattle_ang, size=a.positions.shape)
    return a


def one_cell(model: ModelSource, engine: EngineSource, atoms, step_ang: float, sampled) -> dict:
    H, S, nel = model.electronic(atoms)
    nocc = int(round(nel / 2))
    bands = (nocc - 2, nocc + 1)
    t = time.perf_counter()
    m = nac_vectors(model, atoms, bands)
    t_model = time.perf_counter() - t
    t = time.perf_counter()
    r = nac_vectors(engine, atoms, bands, fd_step_ang=step_ang, fd_atoms=sampled)
    t_ref = time.perf_counter() - t
    overlap = m.coefficients.T @ S @ r.coefficients  # <ψ_model_i|ψ_ref_j>, same basis functions
    match = np.abs(np.diagonal(overlap))
    sign = np.sign(np.diagonal(overlap))
    d_model = m.d * sign[:, None, None, None] * sign[None, :, None, None]
    return {"d_model": d_model[:, :, sampled], "d_ref": r.d[:, :, sampled], "eps_model": m.energies, "eps_ref": r.energies, "match": match,
                    "t_model": t_model, "t_ref": t_ref, "t_ref_per_atom": t_ref / len(sampled)}


def summarise(cells: list[dict]) -> dict:
    out = {}
    for name, (i, j) in PAIRS.items():
        dm = np.array([c["d_model"][i, j] for c in cells])  # (cells, N, 3)
        dr = np.array([c["d_ref"][i, j] for c in cells])
        ok = np.isfinite(dm).all(axis=(1, 2)) & np.isfinite(dr).all(axis=(1, 2))
        matched = ok & np.array([min(c["match"][i], c["match"][j]) > 0.9 for c in cells])
        gm = np.array([c["eps_model"][j] - c["eps_model"][i] for c in cells])  # eV, the pair's splitting
        gr = np.array([c["eps_ref"][j] - c["eps_ref"][i] for c in cells])
        row = {"cells": int(ok.sum()), "degenerate_left_out": int((~ok).sum()),
               "splitting_meV": {"model_median": float(1000 * np.median(gm)),
                                 "reference_median": float(1000 * np.median(gr)),
                                 "reference_min": float(1000 * gr.min()), "reference_max": float(1000 * gr.max())}}
        # d = numerator / splitting: the numerator c_iᵀ(∂H − ε_j ∂S)c_j (eV/Å) is what ∂H decides, the
        # splitting amplifies its error (and adds its own) where the pair is close
        nm, nr = dm * gm[:, None, None], dr * gr[:, None, None]
        row["numerator_mae_relative_to_rms"] = float(np.abs(nm[ok] - nr[ok]).mean() / np.sqrt(np.mean(nr[ok] ** 2)))
        per_cell = np.sort(np.abs(dm[ok] - dr[ok]).mean(axis=(1, 2)))[::-1]
        row["share_of_mae_worst_5_cells"] = float(per_cell[:5].sum() / per_cell.sum())
        for label, sel in (("all", ok), ("states_matched", matched)):
            if not sel.any():
                continue
            err = np.abs(dm[sel] - dr[sel])
            rms = float(np.sqrt(np.mean(dr[sel] ** 2)))
            row[label] = {"cells": int(sel.sum()), "mae_per_ang": float(err.mean()), "rms_ref_per_ang": rms,
                          "mae_relative_to_rms": float(err.mean() / rms),
                          "mae_hbar_eV_fs_per_ang": float(HBAR_EV_FS * err.mean()),
                          "median_abs_error_per_ang": float(np.median(err))}
        out[name] = row
    out["state_overlap_median"] = float(np.median([c["match"] for c in cells]))
    out["band_edge_mae_meV"] = float(1000 * np.mean([np.abs(c["eps_model"][1:3] - c["eps_ref"][1:3]).mean()
                                                     for c in cells]))
    natoms = cells[0]["natoms"]
    out["seconds_per_cell"] = {"model_autograd_all_atoms": float(np.median([c["t_model"] for c in cells])),
                               "reference_finite_differences_all_atoms":
                                   float(np.median([c["t_ref_per_atom"] for c in cells])) * natoms}
    s = out["seconds_per_cell"]
    out["speedup"] = s["reference_finite_differences_all_atoms"] / s["model_autograd_all_atoms"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="si_hamiltonian.pt", help="bundled name or path of a tblite-trained model")
    p.add_argument("--cells", type=int, default=50)
    p.add_argument("--rattle", type=float, default=0.1, help="Å, σ of the random displacements")
    p.add_argument("--strain", type=float, default=0.02, help="largest strain component")
    p.add_argument("--step", type=float, default=0.01, help="Å, finite-difference step of the reference's H")
    p.add_argument("--atoms", type=int, default=3, help="atoms per cell whose reference vectors are computed")
    p.add_argument("--work", help="folder of per-cell results (default runs/bench/nac_vectors/<model>)")
    p.add_argument("--out", help="write the JSON here")
    p.add_argument("--update", help="add this model's section to an existing JSON (and write it back)")
    a = p.parse_args()
    model = ModelSource(a.model, device="cpu", dtype="float64")
    ref = model.reference
    engine = EngineSource(ref["engine"], method=ref["method"])
    formula = "GaAs" if "Ga" in model.model.elements else "Si"
    work = Path(a.work or f"runs/bench/nac_vectors/{Path(a.model).stem}")
    work.mkdir(parents=True, exist_ok=True)
    cells, computed = [], 0
    for k in range(a.cells):
        f = work / f"cell_{k:03d}.npz"
        if not f.exists():
            cell = perturbed_cell(formula, k, a.rattle, a.strain)
            sampled = np.sort(np.random.default_rng(1000 + k).choice(len(cell), a.atoms, replace=False))
            res = one_cell(model, engine, cell, a.step, sampled)
            np.savez(f, sampled=sampled, natoms=len(cell), **res)
            computed += 1
            print(f"cell {k}: model {res['t_model']:.1f} s, reference {res['t_ref']:.1f} s", flush=True)
        z = np.load(f)
        cells.append({key: z[key] for key in z.files})
    section = {"model": a.model, "reference": f"{ref['engine']} {ref['method']}", "formula": formula,
               "atoms": 8 * len(CELLS[formula]()), "atoms_sampled_per_cell": a.atoms, "perturbation": {"rattle_ang": a.rattle, "strain": a.strain},
               "fd_step_ang": a.step, **summarise(cells)}
    target = a.update or a.out
    before = json.loads(Path(target).read_text()) if target and Path(target).exists() else {"models": {}}
    res = before if a.update else {"models": {}}
    res["models"][formula] = section
    stamp(res, before, computed > 0, "provenance" if not a.update else f"provenance_{formula}")
    if target:
        Path(target).write_text(json.dumps(res, indent=1))
    print(json.dumps(section, indent=1))


if __name__ == "__main__":
    main()
