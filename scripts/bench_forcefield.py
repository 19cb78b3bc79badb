#!/usr/bin/env python
"""Force-field benchmark: held-out accuracy, speed, NVE drift and time to failure, in one run.

    python scripts/bench_forcefield.py --model n2amd_driver/assets/models/si_mlff.pt \
        --sam-model runs/ff_si64_sam/model.pt --test runs/si64_test.h5 --out bench_ff.json

- accuracy on the held-out dataset (energy meV/atom, forces meV/Å, stress meV/Å³) for every model given
  (MLFF, SAM-trained MLFF, NNH);
- speed: ms per energy+forces for 64 and 512 Si atoms (2 threads; median of 7 rounds in which the models
  take turns, so that they share the machine's other load), with the reference engine (tblite, same
  method as the labels) on the 64-atom cell in the same run, as a ratio;
- NVE: 64 Si atoms, 300 K, 1 fs, ``--nve-ps`` ps, total-energy drift (meV/atom/ps);
- stability: Langevin MD at ``--ttf-temperature`` until failure (max ``--ttf-ps``), plain vs SAM.
Writes JSON and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from benchlib import provenance


def si_cell(n_rep: int, seed: int = 0):
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(n_rep)
    a.rattle(0.05, seed=seed)
    return a


def accuracy(model, frames) -> dict:
    de, df, ds = [], [], []
    for fr in frames:
        r = model.evaluate(fr["atoms"], stress=fr["stress"] is not None)
        de.append(abs(r["energy"] - fr["energy"]) / len(fr["atoms"]))
        df.append(np.abs(r["forces"] - fr["forces"]).ravel())
        if fr["stress"] is not None:
            ds.append(np.abs(r["stress"] - fr["stress"]).ravel())
    return {"E_mae_meV_atom": 1000 * float(np.mean(de)), "F_mae_meV_A": 1000 * float(np.mean(np.concatenate(df))),
            "S_mae_meV_A3": 1000 * float(np.mean(np.concatenate(ds))) if ds else None, "frames": len(frames)}


class NequIPBaseline:
    """A NequIP checkpoint (``scripts/nequip_baseline.py``) behind the same ``evaluate`` as our models,
    through NequIP's own ASE calculator (eager model, float32)."""

    def __init__(self, checkpoint: str):
        from nequip.integrations.ase import NequIPCalculator

        self.calc = NequIPCalculator._from_saved_model(checkpoint, device="cpu", chemical_species_to_atom_type_map=True)

    def evaluate(self, atoms, stress: bool = True) -> dict:
        from ase.stress import voigt_6_to_full_3x3_stress

        a = atoms.copy()
        self.calc.reset()  # ASE calculators cache results per structure; the timing needs real evaluations
        a.calc = self.calc
        out = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
        if stress:
            out["stress"] = voigt_6_to_full_3x3_stress(a.get_stress())
        return out


def timing(fn, repeat: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1000


def speeds(models: dict, rounds: int = 7, repeat: int = 5) -> dict:
    """ms per energy+forces call at 64 and 512 atoms (NNH: 64 only, 1 call per round), the models taking turns
    round after round so that they share whatever else the machine does; per model and size the median
    and the fastest round. A fresh copy of the cell each call (no calculator caching)."""
    cells = {64: si_cell(2), 512: si_cell(4)}
    times: dict = {name: {} for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            for n, atoms in cells.items():
                if name == "NNH" and n != 64:
                    continue
                times[name].setdefault(n, []).append(
                    timing(lambda: m.evaluate(atoms.copy(), stress=False), 1 if name == "NNH" else repeat))
    return {name: {"ms_per_call": {n: float(np.median(v)) for n, v in t.items()},
                   "ms_per_call_fastest": {n: float(np.min(v)) for n, v in t.items()}, "rounds": rounds}
            for name, t in times.items()}


def reference_ms_64(engine: dict) -> float:
    """ms for one single point of the reference engine (the labels' method) on the rattled 64-atom cell."""
    from n2amd_driver.engines import get_engine

    options = {"method": engine["method"]}
    if engine["engine"] == "pyscf":  # the labels' basis and pseudopotential, Γ point, with forces
        options.update(basis=engine["basis"], pseudo=engine["pseudo"])
    eng = get_engine(engine["engine"], **options)
    return timing(lambda: eng.label(si_cell(2)), 1)


def measure(name: str, model, frames, reference_ms_64: float | None = None) -> dict:
    """Held-out accuracy (the speed comes from :func:`speeds`, all models in one interleaved run)."""
    r = {"accuracy": accuracy(model, frames)}
    if reference_ms_64 is not None:
        r["reference_ms_64"] = reference_ms_64
    print(f"[bench] {name}: {r}", flush=True)
    return r


def update(a, frames, engine) -> int:
    """``--update``: new rows for the models given, in an earlier result (the models that did not change keep
    their figures); the reference is timed again in this run so that each row's ratio is from one run."""
    from n2amd_driver.models.io import load_model

    with open(a.update) as fh:
        res = json.load(fh)
    given = {"MLFF": a.model, "MLFF (SAM)": a.sam_model, "NNH": a.nnh_model}
    ref = reference_ms_64(engine)
    models = {name: load_model(path) for name, path in given.items() if path}
    if a.nequip:
        models["NequIP (baseline)"] = NequIPBaseline(a.nequip)
    names = list(models)
    for name, m in models.items():
        res["models"][name] = measure(name, m, frames, ref)
    for name, sp in speeds(models).items():
        res["models"][name].update(sp)
    if "NNH" in names:  # the short NNH NVE of the full run belonged to the previous NNH model
        (res.get("nve") or {}).pop("NNH", None)
    earlier = [{**u, "models": [m for m in u["models"] if m not in names]} for u in res.get("updates", [])]
    res["updates"] = [u for u in earlier if u["models"]] + [{"models": names, "provenance": provenance()}]
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"[bench] updated {names} in {a.out}")
    return 0


def main(argv=None) -> int:
    from n2amd_driver.models.calculator import N2AMDCalculator
    from n2amd_driver.models.io import load_model
    from n2amd_driver.md.ase_runs import nve_drift, time_to_failure
    from n2amd_driver.training.forcefield import load_frames

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="MLFF model.pt (required, except with --update)")
    p.add_argument("--sam-model", help="the same MLFF trained with sharpness-aware minimisation")
    p.add_argument("--nnh-model", help="NNH model.pt (band energy + remainder)")
    p.add_argument("--nequip", help="NequIP checkpoint trained on the same data (scripts/nequip_baseline.py)")
    p.add_argument("--test", required=True, help="held-out dataset (n2amd HDF5)")
    p.add_argument("--held-out-of", metavar="TRAIN.yaml",
                   help="use only the test frames that this training config's seeded split leaves out of --test "
                        "(for one dataset that holds both training and held-out frames)")
    p.add_argument("--nve-ps", type=float, default=5.0)
    p.add_argument("--nnh-nve-fs", type=float, default=200.0, help="NNH NVE length (fs; NNH steps cost seconds)")
    p.add_argument("--ttf-temperature", type=float, default=1800.0, help="K")
    p.add_argument("--ttf-ps", type=float, default=5.0)
    p.add_argument("--ttf-seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench_ff.json")
    p.add_argument("--update", metavar="JSON", help="re-measure only the models given (accuracy, speed, with the "
                   "reference timed again) and replace their rows in this earlier result; its other figures and "
                   "its provenance stay, the update's provenance is added under 'updates'")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    frames, engine = load_frames(a.test)
    if a.held_out_of:
        import yaml

        from n2amd_driver.training.loop import split_indices

        split = yaml.safe_load(Path(a.held_out_of).read_text())["split"]
        frames = [frames[i] for i in split_indices(len(frames), tuple(split["fractions"]), int(split["seed"]))[2]]
        if not frames:
            p.error(f"the split of {a.held_out_of} holds out no frames")
    if a.update:
        return update(a, frames, engine)
    if not a.model:
        p.error("--model is required")
    models = {"MLFF": load_model(a.model)}
    if a.sam_model:
        models["MLFF (SAM)"] = load_model(a.sam_model)
    if a.nnh_model:
        models["NNH"] = load_model(a.nnh_model)
    if a.nequip:
        models["NequIP (baseline)"] = NequIPBaseline(a.nequip)
    test_set = f"{a.test} (the test split of {Path(a.held_out_of).name})" if a.held_out_of else a.test
    res: dict = {"test_set": test_set, "reference": engine, "threads": a.threads, "models": {}}
    for name, m in models.items():
        res["models"][name] = measure(name, m, frames)
    for name, sp in speeds(models).items():
        res["models"][name].update(sp)
        print(f"[bench] {name}: {sp}", flush=True)

    res["reference_ms_64"] = reference_ms_64(engine)
    print(f"[bench] {engine['method']} Si64: {res['reference_ms_64']:.0f} ms", flush=True)

    steps = int(round(a.nve_ps * 1000))
    res["nve"] = {"MLFF": nve_drift(si_cell(2), N2AMDCalculator(models["MLFF"]), 300.0, steps, 1.0,
                                    progress=True).as_dict()}
    if "NNH" in models:
        res["nve"]["NNH"] = nve_drift(si_cell(2), N2AMDCalculator(models["NNH"]), 300.0, int(a.nnh_nve_fs), 1.0,
                                      every=5, progress=True).as_dict()
    print(f"[bench] NVE: {res['nve']}", flush=True)

    res["time_to_failure"] = {}
    for name in [k for k in models if k.startswith("MLFF")]:
        runs = [time_to_failure(si_cell(2, seed), N2AMDCalculator(models[name]), a.ttf_temperature,
                                max_fs=a.ttf_ps * 1000, seed=seed) for seed in range(a.ttf_seeds)]
        res["time_to_failure"][name] = {"temperature_K": a.ttf_temperature, "max_ps": a.ttf_ps,
                                        "ps": [r.time_fs / 1000 for r in runs], "failed": [r.failed for r in runs],
                                        "reasons": [r.reason for r in runs]}
        print(f"[bench] time to failure {name}: {res['time_to_failure'][name]}", flush=True)

    with open(a.out, "w") as fh:
        json.dump({**res, "provenance": provenance()}, fh, indent=1)
    print("\n| model | E MAE (meV/atom) | F MAE (meV/Å) | σ MAE (meV/Å³) | ms/call 64 | ms/call 512 | "
          f"speed-up vs {engine['method']} (64) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in res["models"].items():
        acc, ms = r["accuracy"], r["ms_per_call"]
        print(f"| {name} | {acc['E_mae_meV_atom']:.2f} | {acc['F_mae_meV_A']:.1f} | {acc['S_mae_meV_A3'] or 0:.2f} | "
              f"{ms[64]:.1f} | {ms.get(512, float('nan')):.0f} | {res['reference_ms_64'] / ms[64]:.0f}× |")
    for name, r in res["nve"].items():
        print(f"\nNVE {name}: drift {r['drift_meV_atom_ps']:+.3f} meV/atom/ps over {r['duration_ps']:.2f} ps "
              f"(fluctuation {r['fluctuation_meV_atom']:.2f} meV/atom, <T> = {r['mean_temperature_K']:.0f} K)")
    for name, r in res["time_to_failure"].items():
        print(f"time to failure {name} at {r['temperature_K']:.0f} K: {r['ps']} ps (failed: {r['failed']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
