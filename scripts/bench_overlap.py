#!/usr/bin/env python
"""Time the basis-function overlaps on 64-atom Si (GFN1-xTB basis): S(R), S(R(t); R(t+dt)), <∂φ|φ>.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_overlap.py

Uses only the public functions of n2amd_driver.overlap, so the same command times an older
implementation after ``git checkout <commit> -- n2amd_driver/overlap.py``.
"""
import time

from ase.build import bulk

from n2amd_driver.orbitals import BasisFunctions
from n2amd_driver.overlap import cross_overlap, overlap_gradient, overlap_matrix

bf = BasisFunctions.tblite("GFN1-xTB", ["Si"])
a = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
a.rattle(0.05, seed=1)
b = a.copy()
b.rattle(0.01, seed=3)
overlap_matrix(bf, bulk("Si", "diamond", 5.43))  # imports and caches outside the timing
for name, f in [("S(R)", lambda: overlap_matrix(bf, a)), ("S(R1;R2)", lambda: cross_overlap(bf, a, b)),
                ("<dphi|phi>", lambda: overlap_gradient(bf, a))]:
    t = time.perf_counter()
    f()
    print(f"Si64 {name}: {time.perf_counter() - t:.2f} s", flush=True)
