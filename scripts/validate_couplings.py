"""Model vs reference couplings along one MD trajectory (the N2AMD paper's Table 1 analogue), with timings.

    .venv/bin/python scripts/validate_couplings.py MODEL.pt [--trajectory traj.dump] [--steps 500] \
        [--out runs/validate_couplings]

Without ``--trajectory`` a 300 K trajectory is made first with the bundled MLFF in LAMMPS (1000 fs
Nosé–Hoover NVT, then NVE dumped every 1 fs step): of the 64-atom Si cell for a model trained on Γ-point
labels (GFN1-xTB), or of the cubic 8-atom cell, each frame repeated by the k-mesh of the model's labels, for a
model trained on k-mesh labels (pyscf PBE on 3×3×3: Si216 frames, which the reference labels as the Si8 frame
on that mesh). The couplings job runs on the same snapshots with the model's Hamiltonian (1 and 2 MPI ranks)
and with the model's reference engine and settings (tblite, or pyscf with the labels' basis, pseudopotential
and k-mesh; 2 ranks); the script reports VBM/CBM energy MAE, |NAC| MAE for VBM–CBM and neighbouring pairs, RMS
NAC of both, the average gap, seconds per snapshot and the 2-rank speed-up, as a markdown table and JSON, plus
a comparison plot. Every job resumes from its checkpoints.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import stamp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def finished(out: Path) -> bool:
    """Whether the couplings job writing ``out`` has finished (its file and its timing are there)."""
    return out.exists() and out.with_suffix(".timing.json").exists()


def run_job(out: Path, traj: Path, hamiltonian: list[str], ranks: int, window: tuple[int, int]) -> dict:
    """Wall seconds, MPI ranks and snapshots computed (a resumed job counts only what it computed) of one
    couplings job; a finished job is not re-run (its timing is kept)."""
    timing = out.with_suffix(".timing.json")
    if finished(out):
        return json.loads(timing.read_text())
    resumed = len(list(Path(str(out) + ".ckpt").glob("snap_*.npz")))  # snapshots a killed run left
    from n2amd_driver.md.launch import module_command

    args = ["n2amd_driver.namd", "couplings", str(ROOT / "tests" / "data" / "empty.yaml"),
            "--set", f"trajectory={traj}", "--set", "dt_fs=1.0", "--set", f"output={out}", "--set", "plots=true",
            "--set", f"window.valence={window[0]}", "--set", f"window.conduction={window[1]}", "-q"]
    for h in hamiltonian:
        args += ["--set", h]
    cmd, env = module_command(args, ranks, threads_per_rank=1)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    from n2amd_driver.namd.couplings_file import read_couplings

    total = int(read_couplings(out).vbm_eV.shape[0])
    timing.write_text(json.dumps({"seconds": time.perf_counter() - t, "ranks": ranks,
                                  "snapshots_computed": total - resumed}))
    return run_job(out, traj, hamiltonian, ranks, window)


def make_trajectory(out: Path, traj: Path, steps: int, kmesh=None) -> None:
    """A 300 K MD trajectory with the bundled MLFF (1000 fs NVT, then ``steps`` fs NVE): of the shipped Si64
    cell, or, for a model labelled on a k-mesh m, of the cubic Si8 cell with every frame repeated m times (the
    reference engine then labels the Si8 frame on that mesh: the labels' own setting, and the repeated cell's
    Γ-point states)."""
    from n2amd_driver.md.launch import run_lammps

    if not kmesh:
        run_lammps(out / "md", model="si_mlff.pt", nvt_steps=1000, nve_steps=steps, seed=2024).trajectory.rename(traj)
        return
    from ase.build import bulk
    from ase.io import write

    from n2amd_driver.data.trajectory import read_trajectory

    start = out / "si8.xyz"
    write(start, bulk("Si", "diamond", a=5.43, cubic=True), format="extxyz")
    run = run_lammps(out / "md_si8", model="si_mlff.pt", nvt_steps=1000, nve_steps=steps, seed=2024,
                     structure=str(start))
    write(traj, [frame.repeat(tuple(kmesh)) for frame in read_trajectory(run.trajectory)], format="extxyz")


def _nac_errors(dm: np.ndarray, dr: np.ndarray) -> dict:
    """MAE of the model's |NAC| ``dm`` against the reference's ``dr`` (meV, same shape), both RMS, and their ratio."""
    mae, rms_ref = float(np.mean(np.abs(dm - dr))), float(np.sqrt(np.mean(dr**2)))
    return {"nac_mae_meV": mae, "rms_model_meV": float(np.sqrt(np.mean(dm**2))), "rms_reference_meV": rms_ref,
            "mae_over_rms_reference": mae / rms_ref}


def compare(model_h5: Path, ref_h5: Path) -> dict:
    from n2amd_driver.core.units import HBAR_EV_FS
    from n2amd_driver.namd.couplings_file import read_couplings

    cm_file, cr_file = read_couplings(model_h5), read_couplings(ref_h5)
    m, r = cm_file.series, cr_file.series
    vm, cm, vr, cr = cm_file.vbm_eV, cm_file.cbm_eV, cr_file.vbm_eV, cr_file.cbm_eV
    nv = int(m.meta["vbm_band_1based"]) - int(m.bands[0])  # index of the VBM in the window
    meV = 1000 * HBAR_EV_FS  # fs⁻¹ → meV
    pairs = {"VBM-CBM": (nv, nv + 1), "VBM-1/VBM": (nv - 1, nv), "CBM/CBM+1": (nv + 1, nv + 2)}
    out = {"snapshots": int(m.energies.shape[0]), "vbm_mae_meV": 1000 * float(np.mean(np.abs(vm - vr))),
           "cbm_mae_meV": 1000 * float(np.mean(np.abs(cm - cr))),
           "gap_model_eV": float(np.mean(cm - vm)), "gap_reference_eV": float(np.mean(cr - vr)),
           "window_energy_mae_meV": 1000 * float(np.mean(np.abs(m.energies - r.energies)))}
    # a constant offset (e.g. a reference whose level depends on the cell) against the error in how the edges move
    for edge, d in (("vbm", vm - vr), ("cbm", cm - cr)):
        out[f"{edge}_mean_offset_meV"] = 1000 * float(np.mean(d))
        out[f"{edge}_mae_offset_removed_meV"] = 1000 * float(np.mean(np.abs(d - np.mean(d))))
    out["gap_std_model_meV"], out["gap_std_reference_meV"] = (1000 * float(np.std(c - v)) for v, c in ((vm, cm), (vr, cr)))
    for name, (i, j) in pairs.items():
        out[name] = _nac_errors(np.abs(m.nac[:, i, j]) * meV, np.abs(r.nac[:, i, j]) * meV)
    # where the VBM–CBM error sits: its largest steps, with the VBM−1/VBM coupling there (large at an
    # avoided crossing of the valence-band edge, where the VBM changes character)
    i, j = pairs["VBM-CBM"]
    dm, dr = np.abs(m.nac[:, i, j]) * meV, np.abs(r.nac[:, i, j]) * meV
    err = np.abs(dm - dr)
    worst = np.argsort(err)[::-1][:3]
    out["VBM-CBM"]["largest_errors"] = [
        {"step": int(k), "model_meV": float(dm[k]), "reference_meV": float(dr[k]),
         "reference_vbm_1_vbm_meV": float(np.abs(r.nac[k, i - 1, i]) * meV)} for k in worst]
    out["VBM-CBM"]["share_of_mae_largest_2"] = float(err[worst[:2]].sum() / err.sum())
    # every valence × conduction pair of the window pooled: the band edges sit in near-degenerate manifolds
    # whose members can mix differently in model and reference near an avoided crossing, which moves one pair's
    # coupling to its neighbours; the pooled figure is a diagnosis, not the target
    out["all V×C pairs"] = _nac_errors(*(np.abs(x.nac[:, : nv + 1, nv + 1 :]) * meV for x in (m, r)))
    return out, (m, r, vm, cm, vr, cr, nv)


def plot(path: Path, data) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from n2amd_driver.core.units import HBAR_EV_FS

    m, r, vm, cm, vr, cr, nv = data
    t = np.arange(len(vm)) * m.dt_fs
    fig, ax = plt.subplots(2, 1, figsize=(6.4, 6.0), dpi=120, sharex=True)
    ref = r.meta["hamiltonian"].get("method", "reference")
    ax[0].plot(t, vr, "k-", lw=1, label=f"VBM {ref}")
    ax[0].plot(t, vm, "C0--", lw=1, label="VBM model")
    ax[0].plot(t, cr, "k-", lw=1, alpha=0.6, label=f"CBM {ref}")
    ax[0].plot(t, cm, "C3--", lw=1, label="CBM model")
    ax[0].set_ylabel("energy (eV)")
    ax[0].legend(fontsize=7, ncol=2)
    tm = (np.arange(m.nsteps) + 0.5) * m.dt_fs
    ax[1].plot(tm, 1000 * HBAR_EV_FS * np.abs(r.nac[:, nv, nv + 1]), "k-", lw=0.8, label=ref)
    ax[1].plot(tm, 1000 * HBAR_EV_FS * np.abs(m.nac[:, nv, nv + 1]), "C3--", lw=0.8, label="model")
    ax[1].set_ylabel("|ħ d| VBM–CBM (meV)")
    ax[1].set_xlabel("time (fs)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--trajectory")
    ap.add_argument("--steps", type=int, default=500, help="MD steps (1 fs) when the trajectory is made here")
    ap.add_argument("--window", type=int, nargs=2, default=[4, 4], help="valence and conduction states")
    ap.add_argument("--dtype", default="float32", help="model precision in the couplings job (as the demo)")
    ap.add_argument("--reference-ranks", type=int, default=2, help="MPI ranks of the reference job")
    ap.add_argument("--reference-only", action="store_true", help="make the trajectory and the reference job only")
    ap.add_argument("--model-ranks", type=int, nargs="+", default=[1, 2],
                    help="MPI ranks of the timed model jobs (the comparison uses the last; 1 and 2 give the speed-up)")
    ap.add_argument("--out", default="runs/validate_couplings")
    ap.add_argument("--keep-timing", metavar="OLD.json",
                    help="take the time per snapshot (and its provenance) from an earlier record: for a model whose "
                         "weights changed in ways that cannot change its cost, re-measured on busy cores")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from n2amd_driver.models.io import read_model_file, resolve_model_path

    model_file = resolve_model_path(args.model)  # a path, or a bundled model's name
    reference = read_model_file(model_file)["reference"]
    method, kmesh = reference["method"], reference.get("kmesh")
    traj = Path(args.trajectory) if args.trajectory else out / ("si64_300K.dump" if not kmesh else
                                                               f"si8x{''.join(map(str, kmesh))}_300K.extxyz")
    if not traj.exists():
        make_trajectory(out, traj, args.steps, kmesh)
    model_h = [f"hamiltonian.model={model_file.resolve()}", f"hamiltonian.dtype={args.dtype}"]
    ref_h = [f"hamiltonian.engine={reference['engine']}", f"hamiltonian.method={method}"]
    if reference["engine"] == "pyscf":  # the labels' own settings; a k-mesh label of the repeated cell
        ref_h += [f"hamiltonian.basis={reference['basis']}", f"hamiltonian.pseudo={reference['pseudo']}"]
        ref_h += [f"hamiltonian.kmesh=[{','.join(map(str, kmesh))}]"] if kmesh else []
    w = tuple(args.window)
    jobs_h5 = [out / "reference.h5"] + [out / f"model_{r}.h5" for r in args.model_ranks]
    analysis_only = all(finished(h) for h in jobs_h5)
    ref = run_job(out / "reference.h5", traj, ref_h, args.reference_ranks, w)
    if args.reference_only:
        return
    jobs = {r: run_job(out / f"model_{r}.h5", traj, model_h, r, w) for r in args.model_ranks}
    per = lambda job: job["seconds"] / max(job.get("snapshots_computed", 0), 1)
    res, data = compare(out / f"model_{args.model_ranks[-1]}.h5", out / "reference.h5")
    res.update({"reference_s": ref["seconds"], "reference_ranks": ref["ranks"],
                "reference_snapshots_timed": ref.get("snapshots_computed"),
                "reference_s_per_snapshot": per(ref)})
    for r, job in jobs.items():
        res[f"model_{r}rank{'s' if r > 1 else ''}_s"] = job["seconds"]
        res[f"model_s_per_snapshot_{r}rank{'s' if r > 1 else ''}"] = per(job)
    if 1 in jobs and 2 in jobs:
        res["speedup_2ranks"] = per(jobs[1]) / per(jobs[2])
    if args.keep_timing:
        old = json.loads(Path(args.keep_timing).read_text())
        res = {k: v for k, v in res.items() if not k.startswith(("model_1rank", "model_2ranks", "model_s_per_snapshot"))}
        res.update({k: v for k, v in old.items() if k.startswith(("model_1rank", "model_2ranks", "model_s_per_snapshot",
                                                                 "speedup_2ranks"))})
        res["timing_provenance"] = old.get("timing_provenance") or old["provenance"]
    res.update({"model": str(args.model), "trajectory": str(traj), "reference_method": method,
                "model_dtype": args.dtype})
    plot(out / "model_vs_reference.png", data)
    record = out / "validate_couplings.json"
    stamp(res, json.loads(record.read_text()) if record.exists() else {}, computed=not analysis_only)
    record.write_text(json.dumps(res, indent=2))
    print(f"| quantity | model | {method} |\n| --- | ---: | ---: |")
    print(f"| average gap (eV) | {res['gap_model_eV']:.3f} | {res['gap_reference_eV']:.3f} |")
    for name in ("VBM-CBM", "VBM-1/VBM", "CBM/CBM+1"):
        p = res[name]
        print(f"| RMS NAC {name} (meV) | {p['rms_model_meV']:.3f} | {p['rms_reference_meV']:.3f} |")
    print(f"\nVBM MAE {res['vbm_mae_meV']:.1f} meV, CBM MAE {res['cbm_mae_meV']:.1f} meV over {res['snapshots']} snapshots"
          f" (mean offsets {res['vbm_mean_offset_meV']:+.1f} / {res['cbm_mean_offset_meV']:+.1f} meV; MAE with them "
          f"removed {res['vbm_mae_offset_removed_meV']:.1f} / {res['cbm_mae_offset_removed_meV']:.1f} meV)")
    for name in ("VBM-CBM", "VBM-1/VBM", "CBM/CBM+1", "all V×C pairs"):
        p = res[name]
        print(f"|NAC| MAE {name}: {p['nac_mae_meV']:.4f} meV = {100 * p['mae_over_rms_reference']:.1f}% of the "
              "reference RMS")
    times = ", ".join(f"{v:.2f} s ({k.rsplit('_', 1)[1]})" for k, v in res.items() if k.startswith("model_s_per_snapshot"))
    print(f"time per snapshot: model {times}"
          + (f", 2-rank speed-up {res['speedup_2ranks']:.2f}" if "speedup_2ranks" in res else "")
          + f"; {method} {res['reference_s_per_snapshot']:.2f} s ({res['reference_ranks']} rank(s))")


if __name__ == "__main__":
    main()
