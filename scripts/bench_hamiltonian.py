"""Hamiltonian model: accuracy on held-out cells and speed against the reference engine, side by side.

    .venv/bin/python scripts/bench_hamiltonian.py MODEL.pt TEST.h5 [--speed-sizes 2 3] [--out bench_h.json]

Accuracy (held-out frames of TEST.h5, never used in training): H-element MAE, eigenvalue MAE within
±2 eV of the gap, VBM/CBM MAE, gap error — the model's H with S from the basis functions, against the
labels (reference H, S and orbital energies; frames labelled on a k-mesh are compared block by block and
over all their k-points). Speed: wall time per snapshot of model H + S + dense
generalised eigensolve against a single point of the reference engine (same method and settings as the
labels; for pyscf, the 8-atom cell on the k-mesh whose supercell is the timed cell) in one run, and their ratio.
Prints a markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import provenance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def predict(model, g, atoms):
    """The model's H of a test frame as the frame stores it (Γ, or per image of its k-mesh) and the
    eigenvalues with the basis's S (for a k-mesh frame: those of all its k-points, sorted)."""
    from n2amd_driver.orbitals.eigen import eigh
    from n2amd_driver.orbitals.overlap import overlap_matrix
    from n2amd_driver.training.hamiltonian import bvk_overlap, frame_eigvalsh

    if "kmesh" not in g:
        S = overlap_matrix(model.basis_functions(atoms), atoms)
        H = model.hamiltonian(atoms, S)
        return H, eigh(H, S)[0]
    kmesh = tuple(int(k) for k in g["kmesh"][()])
    S = torch.as_tensor(bvk_overlap(atoms, kmesh, g.file.attrs["basis"]))
    d = model.prepare([atoms], overlaps=[S.to(next(model.parameters()).dtype)], kmeshes=[kmesh])
    with torch.no_grad():
        H = model.matrices(model(d), d)[0].cpu().double()
    return H.numpy(), frame_eigvalsh(H, {"S": S, "kmesh": kmesh}).numpy()


def accuracy(model, test_path, window=2.0):
    from n2amd_driver.data import h5format
    from n2amd_driver.orbitals.eigen import band_edges

    rows = []
    with h5format.open_dataset(test_path) as f:
        for i in h5format.frame_ids(f):
            g = f["frames"][h5format.frame_key(i)]
            atoms = h5format.read_atoms(g)
            H_ref, eps_ref, occ = g["hamiltonian"][()], g["orbital_energies"][()], g["occupations"][()]
            H, eps = predict(model, g, atoms)
            nel = occ.sum()
            vr, cr = band_edges(eps_ref, nel)
            vm, cm = band_edges(eps, nel)
            sel = (eps_ref > vr - window) & (eps_ref < cr + window)
            d = eps[sel] - eps_ref[sel]
            rows.append({"frame": i, "source": g.attrs.get("source", ""), "natoms": len(atoms),
                         "H_mae_meV": 1000 * float(np.abs(H - H_ref).mean()),
                         "eig_mae_meV": 1000 * float(np.abs(d).mean()),
                         # the same with the frame's mean shift of these levels removed: how much is rigid
                         "eig_shift_meV": 1000 * float(d.mean()),
                         "eig_mae_unshifted_meV": 1000 * float(np.abs(d - d.mean()).mean()),
                         "vbm_err_meV": 1000 * (vm - vr), "cbm_err_meV": 1000 * (cm - cr),
                         "gap_err_meV": 1000 * ((cm - vm) - (cr - vr))})
    return rows


CUBIC_CELLS = {("Si",): {"name": "Si", "crystalstructure": "diamond", "a": 5.43},  # experimental lattice constants
               ("As", "Ga"): {"name": "GaAs", "crystalstructure": "zincblende", "a": 5.65}}


def speed(model, model32, n_cells: int, repeats: int = 2):
    """Model H + S + dense eigh, as trained and evaluated in float32, against one reference single point of the
    same cell: tblite on the n³ supercell of the cubic 8-atom cell, or, for a pyscf-trained model, pyscf with the
    labels' settings on the 8-atom cell with an n×n×n k-mesh (whose Born–von Kármán supercell is that cell: the
    cheapest way pyscf has to the same Γ-point states)."""
    from ase.build import bulk

    from n2amd_driver.orbitals.eigen import eigh
    from n2amd_driver.engines import get_engine
    from n2amd_driver.orbitals.overlap import overlap_matrix

    elements = tuple(sorted(model.elements))
    if elements not in CUBIC_CELLS:
        raise SystemExit(f"no 8-atom cubic cell for {elements} to time; use --speed-sizes with no value")
    cell = bulk(**CUBIC_CELLS[elements], cubic=True)
    cell.rattle(0.02, seed=3)
    atoms = cell.repeat(n_cells)  # the repeat of a rattled cell: the same structure for model and reference
    times = []
    for m in (model, model32):
        bf = m.basis_functions(atoms)
        m.hamiltonian(atoms, overlap_matrix(bf, atoms))  # warm-up
        t = time.perf_counter()
        for _ in range(repeats):
            S = overlap_matrix(bf, atoms)
            eigh(np.asarray(m.hamiltonian(atoms, S), float), S)
        times.append((time.perf_counter() - t) / repeats)
    ref = dict(model.info["reference"])
    if ref["engine"] == "pyscf":
        engine = get_engine("pyscf", method=ref["method"], basis=ref["basis"], pseudo=ref["pseudo"],
                            kmesh=None if n_cells == 1 else (n_cells,) * 3)
        target, what = cell, f"pyscf {ref['method']}, 8-atom cell on {n_cells}×{n_cells}×{n_cells} k-points"
    else:
        engine, target, what = get_engine("tblite", method=ref["method"]), atoms, f"tblite {ref['method']}"
    t = time.perf_counter()
    engine.label(target)
    t_ref = time.perf_counter() - t
    return {"natoms": len(atoms), "model_s": times[0], "model_float32_s": times[1], "reference_s": t_ref,
            "reference": what, "speedup": t_ref / times[0], "speedup_float32": t_ref / times[1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("test")
    ap.add_argument("--speed-sizes", type=int, nargs="*", default=[2, 3], help="supercells of the 8-atom cell")
    ap.add_argument("--out", default="bench_hamiltonian.json")
    ap.add_argument("--keep-speed", metavar="OLD.json",
                    help="take the speed rows (and their provenance) from an earlier record instead of timing again: "
                         "for a model whose weights changed in ways that cannot change its cost")
    args = ap.parse_args()
    from n2amd_driver.models.io import load_hamiltonian_model

    model = load_hamiltonian_model(args.model)
    acc = accuracy(model, args.test)
    extra = {}
    if args.keep_speed:
        old = json.loads(Path(args.keep_speed).read_text())
        spd = old["speed"]
        extra["speed_provenance"] = old.get("speed_provenance") or old["provenance"]
    else:
        model32 = load_hamiltonian_model(args.model, dtype="float32")
        spd = [speed(model, model32, n) for n in args.speed_sizes]
    Path(args.out).write_text(json.dumps({"accuracy": acc, "speed": spd, **extra, "threads": torch.get_num_threads(),
                                          "cores": os.cpu_count(),
                                          "model": args.model, "test": args.test,
                                          "reference": model.info["reference"], "provenance": provenance()},
                                         indent=1))
    keys = ["H_mae_meV", "eig_mae_meV", "vbm_err_meV", "cbm_err_meV", "gap_err_meV"]
    print("| frame | source | " + " | ".join(keys) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in keys) + " |")
    for r in acc:
        print(f"| {r['frame']} | {r['source']} | " + " | ".join(f"{r[k]:.1f}" for k in keys) + " |")
    print("| mean abs | | " + " | ".join(f"{np.mean([abs(r[k]) for r in acc]):.1f}" for k in keys) + " |")
    print("\n| atoms | model H + S + eigh (s) | same, float32 model (s) | reference single point (s) | ratios |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for s in spd:
        print(f"| {s['natoms']} | {s['model_s']:.2f} | {s['model_float32_s']:.2f} | {s['reference_s']:.1f} | "
              f"{s['speedup']:.1f}× / {s['speedup_float32']:.1f}× |")


if __name__ == "__main__":
    main()
