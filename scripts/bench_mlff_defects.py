#!/usr/bin/env python
"""Do MLFF-driven MD runs stay crystalline? The sampling MD of a data config (same cells, strains, seeds,
Langevin thermostat, LAMMPS with ``pair_style n2amd``), driven by each model given, with every atom's
coordination counted in each snapshot. A robust force field keeps every Si atom 4-coordinated at
300-600 K; a hole in its energy surface shows up as atoms with 5 or more neighbours (defects the
reference puts far higher in energy: GFN1-xTB labels of such frames, `n2amd data generate`, show it).

    .venv/bin/python scripts/bench_mlff_defects.py runs/ff_si64/model.pt si_mlff.pt \
        [--config n2amd_driver/assets/configs/data_si64_mlff.yaml] [--frames 4] [--seeds 11 17]
        [--out mlff_defects.json]

Writes JSON and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import provenance  # noqa: E402

BOND_CUTOFF_A = 2.7  # Å: between the first (2.35 Å) and second (3.84 Å) neighbour shells of diamond Si


def coordination(atoms, cutoff: float = BOND_CUTOFF_A) -> np.ndarray:
    """Neighbours of each atom within ``cutoff`` (Å), periodic images included."""
    from ase.neighborlist import neighbor_list

    i = neighbor_list("i", atoms, cutoff)
    return np.bincount(i, minlength=len(atoms))


def run_model(model: str, cfg: dict, frames: int) -> list[dict]:
    """The config's sampling MD with ``model`` as the potential; per snapshot, the coordination census."""
    from n2amd_driver.models.io import resolve_model_path
    from n2amd_driver.md.sampling import build_system, md_samples

    sampling = {**cfg["sampling"], "potential": {"pair_style": "n2amd dtype float32",
                                                  "pair_coeff": f"* * {resolve_model_path(model)} Si"}}
    base = build_system(cfg["system"])
    conditions = [(float(T), float(s)) for T in sampling["temperatures"] for s in sampling["strains"]]
    rows = []
    for c, (T, s) in enumerate(conditions):  # seeds as sample_configurations gives them
        for smp in md_samples(base, T, s, frames, sampling, seed=int(sampling["seed"]) * 1000 + c):
            cn = coordination(smp.atoms)
            rows.append({"temperature_K": T, "strain": s, "source": smp.source,
                         "over_coordinated": int(np.sum(cn > 4)), "under_coordinated": int(np.sum(cn < 4)),
                         "max_coordination": int(cn.max())})
        print(f"[defects] {model}: T={T:g} K strain={s:+.3f}: "
              f"{[r['over_coordinated'] + r['under_coordinated'] for r in rows[-frames:]]} defective atoms "
              "per snapshot", flush=True)
    return rows


def main() -> int:
    import yaml

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="MLFF model files or bundled names")
    ap.add_argument("--config", default=str(ROOT / "n2amd_driver/assets/configs/data_si64_mlff.yaml"))
    ap.add_argument("--frames", type=int, default=4, help="snapshots per condition (the config's interval apart)")
    ap.add_argument("--seeds", type=int, nargs="+",
                    help="sampling seeds (default: the config's); another seed gives other cells and velocities")
    ap.add_argument("--out", default="mlff_defects.json")
    a = ap.parse_args()
    cfg = yaml.safe_load(open(a.config))
    runs = []
    for seed in a.seeds or [cfg["sampling"]["seed"]]:
        cfg_s = {**cfg, "sampling": {**cfg["sampling"], "seed": seed}}
        runs.append({"seed": seed, "models": {m: run_model(m, cfg_s, a.frames) for m in a.models}})
    res = {"config": str(Path(a.config).relative_to(ROOT)) if Path(a.config).is_absolute() else a.config,
           "config_seed": cfg["sampling"]["seed"], "bond_cutoff_A": BOND_CUTOFF_A, "frames_per_condition": a.frames,
           "equilibration_fs": cfg["sampling"]["equilibration_fs"], "interval_fs": cfg["sampling"]["interval_fs"],
           "runs": runs, "provenance": provenance()}
    Path(a.out).write_text(json.dumps(res, indent=1))
    print("\n| seed | model | snapshots | snapshots with defects | worst (atoms not 4-coordinated) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for run in runs:
        for m, rows in run["models"].items():
            bad = [r["over_coordinated"] + r["under_coordinated"] for r in rows]
            print(f"| {run['seed']} | {m} | {len(rows)} | {sum(b > 0 for b in bad)} | {max(bad)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
