"""Large cells ([K]): what the sparse path's overlap cutoff changes, measured against the exact dense path.

    python scripts/bench_large_cells.py --stage cutoff [--repeat 3] --json docs/bench/large_cells.json

Stage ``cutoff``: the bundled GFN1-xTB Si model on a rattled cubic Si cell repeated ``--repeat`` times, two
geometries one MD step apart (0.01 Å mean displacement). The reference is the dense path with the basis's own
overlap cutoff (exact to 1e-14). For each cutoff: S, S(t; t+dt) and the model's S-dependent terms cut there,
the window by the sparse solver; the largest change of the window energies (meV) and of the NAC (fs⁻¹, and
relative to the RMS NAC), and the stored entries per row of H. Each stage's result is merged into the JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from benchlib import provenance
from n2amd_driver.models.io import load_hamiltonian_model
from n2amd_driver.namd.couplings import correct, state_overlaps
from n2amd_driver.orbitals.overlap import cross_overlap, overlap_matrix, pair_cutoff_ang
from n2amd_driver.orbitals.window import dense_window, window_eigh


def two_steps(repeat: int):
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(repeat)
    a.rattle(0.05, seed=11)
    step = np.random.default_rng(12).normal(size=(len(a), 3))
    b = a.copy()
    b.positions += 0.01 * step / np.linalg.norm(step, axis=1).mean()
    return [a, b]


def couplings(m, frames, lo: int, hi: int, cutoff: float | None, sparse: bool):
    """(energies (2, n), NAC (n, n) fs⁻¹ for dt = 1 fs, stored entries per row of H) along the two frames."""
    bf = m.basis_functions(frames[0])
    eps, C, start, nnz = [], [], None, 0.0
    for a in frames:
        S = overlap_matrix(bf, a, sparse=True, cutoff_ang=cutoff)
        H = m.sparse_hamiltonian(a, S)
        nnz = H.nnz / H.shape[0]
        st = window_eigh(H, S, lo, hi, buffer=4, start=start) if sparse else dense_window(H.toarray(), S.toarray(), lo, hi)
        start = st
        e, c = st.select(lo, hi)
        eps.append(e)
        C.append(c)
    S12 = cross_overlap(bf, *frames, sparse=True, cutoff_ang=cutoff)
    res = correct(np.array(eps), state_overlaps(C[0], S12, C[1])[None], 1.0)
    return res.energies, res.nac[0], nnz


def stage_cutoff(repeat: int) -> dict:
    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    frames = two_steps(repeat)
    nocc = int(round(m.n_electrons(frames[0]) / 2))
    lo, hi = nocc - 8, nocc + 7
    exact = pair_cutoff_ang(m.basis_functions(frames[0]), frames[0].numbers)
    t = time.perf_counter()
    e_ref, nac_ref, nnz_ref = couplings(m, frames, lo, hi, None, sparse=False)
    rms = float(np.sqrt(np.mean(nac_ref[np.triu_indices(hi - lo + 1, 1)] ** 2)))
    out = {"atoms": len(frames[0]), "window": "8 valence + 8 conduction states", "exact_cutoff_A": round(exact, 2),
           "reference": {"path": "dense", "entries_per_row": nnz_ref, "seconds": time.perf_counter() - t,
                         "rms_nac_per_fs": rms}, "cutoffs": {}}
    for cut in (8.0, 10.0, 12.0, None):
        t = time.perf_counter()
        e, nac, nnz = couplings(m, frames, lo, hi, cut, sparse=True)
        key = "exact" if cut is None else f"{cut:.1f}"
        out["cutoffs"][key] = {"max_dE_meV": float(1e3 * np.abs(e - e_ref).max()),
                               "max_dNAC_per_fs": float(np.abs(nac - nac_ref).max()),
                               "max_dNAC_over_rms": float(np.abs(nac - nac_ref).max() / rms),
                               "entries_per_row": nnz, "seconds": time.perf_counter() - t}
        print(key, out["cutoffs"][key], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["cutoff"], required=True)
    ap.add_argument("--repeat", type=int, default=3, help="cubic 8-atom cells per direction")
    ap.add_argument("--json", default="docs/bench/large_cells.json")
    args = ap.parse_args()
    path = Path(args.json)
    res = json.loads(path.read_text()) if path.exists() else {}
    res[args.stage] = {**stage_cutoff(args.repeat), "provenance": provenance()}
    res["provenance"] = res[args.stage]["provenance"]  # the latest stage's
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
