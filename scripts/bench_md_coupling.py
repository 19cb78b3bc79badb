#!/usr/bin/env python
"""MD-coupling benchmark: LAMMPS (pair_style n2amd, 1 and 2 MPI ranks) and i-PI (socket driver) against
calling the same model directly from Python, on 64- and 512-atom Si, in one run.

    python scripts/bench_md_coupling.py --out bench_md.json [--model si_mlff.pt] [--steps 50]

Reports ms/step, ns/day (1 fs steps) and the overhead of each route over the direct call
(energy + forces + virial, float64 as the plugin uses by default). Writes JSON and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ase.build import bulk
from ase.io import write
from benchlib import provenance

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def cell(n_rep):
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(n_rep)
    a.rattle(0.02, seed=1)
    return a


def direct_ms(model, atoms, repeat) -> float:
    model.evaluate(atoms)
    t = time.perf_counter()
    for _ in range(repeat):
        model.evaluate(atoms)  # energy, forces and stress (the virial LAMMPS asks for)
    return (time.perf_counter() - t) / repeat * 1000


def lammps_ms(atoms, model, steps, nproc, threads) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "si.data", atoms, format="lammps-data", masses=True, units="metal", atom_style="atomic")
        (Path(tmp) / "in.bench").write_text(f"""units metal
atom_style atomic
read_data si.data
pair_style n2amd
pair_coeff * * {model} Si
velocity all create 300 1 mom yes rot no
timestep 0.001
fix nve all nve
thermo {steps}
run 5
run {steps}
""")
        cmd = ([str(BIN / "mpirun"), "-n", str(nproc)] if nproc > 1 else []) + [str(BIN / "lmp"), "-in", "in.bench",
                                                                               "-log", "none"]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if r.returncode:
            raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
        loop = float(re.findall(r"Loop time of (\S+) on", r.stdout)[-1])
        return loop / steps * 1000


def _ipi_wall(atoms, model, steps, threads) -> float:
    """Wall seconds of an i-PI NVE run of ``steps`` steps with one socket driver (start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        L = atoms.cell.lengths()
        with open(tmp / "init.xyz", "w") as fh:
            fh.write(f"{len(atoms)}\n# CELL(abcABC): {L[0]} {L[1]} {L[2]} 90 90 90 cell{{angstrom}} "
                     "positions{angstrom}\n")
            for p in atoms.positions:
                fh.write(f"Si {p[0]:.8f} {p[1]:.8f} {p[2]:.8f}\n")
        addr = f"bench{os.getpid()}"
        text = (ROOT / "ipi_configs" / "input_nve.xml").read_text()
        text = re.sub(r"<total_steps> \d+ </total_steps>", f"<total_steps> {steps} </total_steps>", text)
        text = text.replace("si64.xyz", "init.xyz").replace("<address> n2amd </address>", f"<address> {addr} </address>")
        (tmp / "input.xml").write_text(text)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        t = time.perf_counter()
        ipi = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
        drv = subprocess.Popen([sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", addr, "--model",
                                model, "--threads", str(threads)], cwd=tmp, env=env)
        if drv.wait() or ipi.wait():
            raise RuntimeError("the i-PI benchmark run failed")
        return time.perf_counter() - t


def ipi_ms(atoms, model, steps, threads) -> float:
    """ms per step through i-PI, start-up removed: (T(3N) − T(N)) / 2N."""
    return (_ipi_wall(atoms, model, 3 * steps, threads) - _ipi_wall(atoms, model, steps, threads)) / (2 * steps) * 1000


def main(argv=None) -> int:
    import torch

    from n2amd_driver.models.io import load_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="si_mlff.pt")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--out", default="bench_md.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_model(a.model, dtype="float64")
    res = {"model": a.model, "threads": a.threads, "steps": a.steps, "rows": []}
    for n_rep in (2, 4):
        atoms = cell(n_rep)
        row = {"atoms": len(atoms), "direct_ms": direct_ms(model, atoms, 10 if n_rep == 2 else 3)}
        row["lammps_1rank_ms"] = lammps_ms(atoms, a.model, a.steps, 1, a.threads)
        row["lammps_2rank_ms"] = lammps_ms(atoms, a.model, a.steps, 2, a.threads)
        row["ipi_ms"] = ipi_ms(atoms, a.model, a.steps, a.threads)
        res["rows"].append(row)
        print(f"[bench] {row}", flush=True)
    with open(a.out, "w") as fh:
        json.dump({**res, "provenance": provenance()}, fh, indent=1)
    print("\n| atoms | direct Python (ms/call) | LAMMPS 1 rank (ms/step) | overhead | LAMMPS 2 ranks (ms/step) | "
          "ns/day (1 rank) | i-PI (ms/step) | overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['atoms']} | {r['direct_ms']:.1f} | {r['lammps_1rank_ms']:.1f} | "
              f"{100 * (r['lammps_1rank_ms'] / r['direct_ms'] - 1):+.0f}% | {r['lammps_2rank_ms']:.1f} | "
              f"{86.4 / r['lammps_1rank_ms']:.3f} | {r['ipi_ms']:.1f} | {100 * (r['ipi_ms'] / r['direct_ms'] - 1):+.0f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
