#!/usr/bin/env python
"""Time the basis-function overlaps on 64-atom Si (GFN1-xTB basis): S(R), S(R(t); R(t+dt)), <∂φ|φ>,
and the Pulay term ∂Tr(W S)/∂R (+ strain) of NNH forces, for both evaluations of the integrals.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_overlap.py [--out bench_overlap.json]

Each timing is the best of 3 calls after a warm-up (the radial tables are fitted once per basis, outside
the timing; the fit's own time is printed).
"""
import argparse
import json
import time

import numpy as np
from benchlib import provenance
from ase.build import bulk

from n2amd_driver.orbitals.functions import BasisFunctions
from n2amd_driver.orbitals.overlap import cross_overlap, overlap_derivative, overlap_gradient, overlap_matrix, pair_cutoff_ang
from n2amd_driver.orbitals.radial import overlap_trace_gradients, radial_overlap


def best(f, n=3):
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


ap = argparse.ArgumentParser()
ap.add_argument("--out", default="bench_overlap.json")
args = ap.parse_args()
bf = BasisFunctions.tblite("GFN1-xTB", ["Si"])
t = time.perf_counter()
radial_overlap(bf)
fit_s = time.perf_counter() - t
print(f"radial tables fitted once per basis: {fit_s:.2f} s")
a = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
a.rattle(0.05, seed=1)
b = a.copy()
b.rattle(0.01, seed=3)
W = np.random.default_rng(0).normal(size=(576, 576))
offs = bf.basis.orbital_offsets(a.numbers)
cut = pair_cutoff_ang(bf, a.numbers)
rows = []
for name, m in [("S(R)", "overlap_matrix"), ("S(R1;R2)", "cross_overlap")]:
    fn = {"overlap_matrix": lambda meth: overlap_matrix(bf, a, method=meth),
          "cross_overlap": lambda meth: cross_overlap(bf, a, b, method=meth)}[m]
    rows.append((name, best(lambda: fn("radial")), best(lambda: fn("obara-saika"), 1)))
rows.append(("dTr(WS)/dR + strain", best(lambda: overlap_trace_gradients(bf, a, W, cut, True)),
             best(lambda: np.einsum("ab,Cxab->Cx", W, overlap_derivative(bf, a, overlap_gradient(bf, a))), 1)))
print(f"{'Si64, GFN1 basis':22s} {'radial (s)':>11s} {'Obara-Saika (s)':>16s} {'ratio':>6s}")
for name, r, o in rows:
    print(f"{name:22s} {r:11.3f} {o:16.2f} {o / r:6.1f}")
print("(Obara-Saika for the derivative row: G = <dphi|phi> then contraction, forces only, no strain)")
with open(args.out, "w") as fh:
    json.dump({"rows": [{"quantity": n, "radial_s": r, "obara_saika_s": o} for n, r, o in rows], "fit_s": fit_s,
               "provenance": provenance()}, fh, indent=1)
