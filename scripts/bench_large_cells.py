"""Large cells ([K]): the sparse path's overlap cutoff against the exact dense path, and its cost per snapshot.

    python scripts/bench_large_cells.py --stage cutoff [--repeat 3] --json docs/bench/large_cells.json
    python scripts/bench_large_cells.py --stage scaling --sizes 4 5 6 8 --cutoff 10 [--dense-up-to 1000]

Stage ``cutoff``: the bundled GFN1-xTB Si model on a rattled cubic Si cell repeated ``--repeat`` times, two
geometries one MD step apart (0.01 Å mean displacement). The reference is the dense path with the basis's own
overlap cutoff (exact to 1e-14). For each cutoff: S, S(t; t+dt) and the model's S-dependent terms cut there,
the window by the sparse solver; the largest change of the window energies (meV) and of the NAC (fs⁻¹, and
relative to the RMS NAC), and the stored entries per row of H. Each stage's result is merged into the JSON.

Stage ``scaling``: per cell size (repeats of the cubic cell, each in its own process so that its peak memory is
its own), three snapshots one MD step apart through the couplings job's pieces: model H and S (sparse), the
window (cold on the first snapshot, warm after), S(t; t+dt) and the state overlaps; seconds of each part and
the peak resident memory. The dense path beside it up to ``--dense-up-to`` atoms. Sizes already in the JSON
with the same settings are kept (the stage resumes).
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


def one_size(repeat: int, cutoff: float, dense: bool) -> dict:
    """Seconds per part for three snapshots of Si(8 repeat³) and the peak memory (this process)."""
    import resource

    from n2amd_driver.orbitals.eigen import eigh

    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(repeat)
    a.rattle(0.05, seed=11)
    step = np.random.default_rng(12).normal(size=(len(a), 3))
    step *= 0.01 / np.linalg.norm(step, axis=1).mean()
    frames = [a.copy() for _ in range(3)]
    for k, f in enumerate(frames):
        f.positions += k * step
    bf = m.basis_functions(a)
    nocc = int(round(m.n_electrons(a) / 2))
    lo, hi = nocc - 4, nocc + 3
    snaps, start, C_prev = [], None, None
    for k, f in enumerate(frames):
        t = {}
        t0 = time.perf_counter()
        S = overlap_matrix(bf, f, sparse=True, cutoff_ang=cutoff)
        t["S_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        H = m.sparse_hamiltonian(f, S)
        t["model_s"] = time.perf_counter() - t0
        st = window_eigh(H, S, lo, hi, buffer=8, start=start)
        t["factorise_s"], t["eigen_solve_s"] = st.seconds["factorise"], st.seconds["solve"]
        t["factorizations"], t["warm"] = st.factorizations, st.warm
        C = st.select(lo - 8, hi + 8)[1]
        if k:
            t0 = time.perf_counter()
            S12 = cross_overlap(bf, frames[k - 1], f, sparse=True, cutoff_ang=cutoff)
            t["cross_overlap_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            state_overlaps(C_prev, S12, C)
            t["state_overlaps_s"] = time.perf_counter() - t0
        if dense and k == 1:
            t0 = time.perf_counter()
            eigh(H.toarray(), S.toarray(), (lo - 8, hi + 8))
            t["dense_eigen_s"] = time.perf_counter() - t0
        t["entries_per_row"] = H.nnz / H.shape[0]
        snaps.append(t)
        start, C_prev = st, C
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB → GB
    warm = snaps[1:]
    total = lambda t: sum(t.get(k, 0.0) for k in ("S_s", "model_s", "factorise_s", "eigen_solve_s", "cross_overlap_s",
                                                  "state_overlaps_s"))
    from n2amd_driver.namd.couplings_job import snapshot_memory
    from n2amd_driver.namd.sources import ModelSource

    estimate = snapshot_memory(ModelSource("si_hamiltonian.pt", device="cpu", dtype="float64"), a,
                               {"solver": "sparse", "overlap_cutoff_ang": cutoff})
    return {"atoms": len(a), "orbitals": int(H.shape[0]), "snapshots": snaps, "peak_rss_GB": peak,
            "memory_estimate_GB": sum(estimate.values()) / 2**30,
            "warm_total_s": float(np.mean([total(t) for t in warm])), "cold_total_s": total(snaps[0])}


def stage_scaling(sizes, cutoff: float, dense_up_to: int, json_path: Path) -> dict:
    import subprocess
    import sys

    res = json.loads(json_path.read_text()) if json_path.exists() else {}
    out = res.get("scaling", {})
    if out.get("cutoff_A") != cutoff:
        out = {"cutoff_A": cutoff, "window": "4 + 4 states, buffer 8", "sizes": {}}
    for r in sizes:
        n = 8 * r**3
        if str(n) in out["sizes"]:
            continue
        cmd = [sys.executable, __file__, "--one", str(r), "--cutoff", str(cutoff)] + (["--dense"] if n <= dense_up_to else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError(f"Si{n}: {p.stderr[-2000:]}")
        out["sizes"][str(n)] = {**json.loads(p.stdout.strip().splitlines()[-1]), "provenance": provenance()}
        print(n, {k: v for k, v in out["sizes"][str(n)].items() if k != "snapshots"}, flush=True)
        res["scaling"], res["provenance"] = out, provenance()
        json_path.write_text(json.dumps(res, indent=1))  # each size as it finishes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["cutoff", "scaling"])
    ap.add_argument("--repeat", type=int, default=3, help="cutoff: cubic 8-atom cells per direction")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 5, 6, 8], help="scaling: cubic cells per direction")
    ap.add_argument("--cutoff", type=float, default=10.0, help="scaling: overlap cutoff (Å)")
    ap.add_argument("--dense-up-to", type=int, default=1000, help="scaling: atoms up to which the dense path runs too")
    ap.add_argument("--json", default="docs/bench/large_cells.json")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, JSON on stdout (a child process)
    ap.add_argument("--dense", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.cutoff, args.dense)))
        return
    path = Path(args.json)
    if args.stage == "scaling":
        stage_scaling(args.sizes, args.cutoff, args.dense_up_to, path)
        print(f"wrote {path}")
        return
    res = json.loads(path.read_text()) if path.exists() else {}
    res[args.stage] = {**stage_cutoff(args.repeat), "provenance": provenance()}
    res["provenance"] = res[args.stage]["provenance"]  # the latest stage's
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
