"""The N2AMD paper's Table 2 for silicon: NAMD of one MLFF trajectory with Hamiltonians at several levels.

    .venv/bin/python scripts/bench_functionals.py [--mlff si_pbe_mlff.pt] [--nve-fs 1000] [--out runs/functionals_pbe] \
        [--json docs/bench/functionals.json] [--levels GFN1-xTB ML-PBE ...]

One Si64 trajectory at 300 K with the PBE MLFF (``n2amd md lammps``: 1000 fs NVT, then NVE dumped every 1 fs), so that
the MD is at the DFT level whatever the Hamiltonian, then for each level
the couplings job (2 MPI ranks, 2 valence + 2 conduction bands) and DISH electron–hole recombination CBM → VBM
(10 initial times × 100 trajectories × 10 ns, populations recorded every ps), all through the package's CLI:

- GFN1-xTB: the bundled ``si_hamiltonian.pt``;
- ML-PBE: ``si_pbe_hamiltonian.pt``;
- ML-PBE + scissor: the same couplings with the conduction states shifted rigidly to ML-HSE06's averaged gap
  (``scissor.gap_eV``; valence states, wavefunctions and NAC unchanged, so it reuses ML-PBE's checkpoints);
- ML-HSE06: ``si_hse06_hamiltonian.pt``, when it is bundled (the scissor row needs it too).

Per level: ⟨gap⟩, VBM–CBM pure-dephasing time, RMS NAC of VBM−1/VBM, VBM/CBM and CBM/CBM+1, and the DISH
lifetime (exponential fit) with its standard error over the initial times. Every job resumes where it stopped; a
rerun recomputes only what is missing. Writes JSON, a markdown table and a bar plot of the four quantities
(PNG next to the JSON).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import DISH_LONG as DISH_RUN, dish_populations, namd_figures, provenance, run_package as run  # noqa: E402

#: (name, bundled Hamiltonian, scissor to this level's averaged gap)
LEVELS = [("GFN1-xTB", "si_hamiltonian.pt", None), ("ML-PBE", "si_pbe_hamiltonian.pt", None),
          ("ML-PBE + scissor", "si_pbe_hamiltonian.pt", "ML-HSE06"), ("ML-HSE06", "si_hse06_hamiltonian.pt", None)]
VALENCE = CONDUCTION = 2


def trajectory(out: Path, mlff: str, nve_fs: int) -> Path:
    md = out / "md"
    dump = md / "si64_nve.dump"
    if not dump.exists():
        run(["n2amd_driver.cli", "md", "lammps", "--model", mlff, "--temperature", "300", "--nvt-steps", "1000",
             "--nve-steps", str(nve_fs), "--dtype", "float32", "--seed", "4928", "--workdir", str(md)],
            out / "md.log")
    return dump


def trajectory_figures(dump: Path) -> dict:
    """What the MD gives the Hamiltonians to respond to: the RMS displacement of the atoms about their mean
    positions over the NVE frames (Å, centre-of-mass motion removed) and the kinetic temperature from
    central-difference velocities (K)."""
    import numpy as np

    from n2amd_driver.core.units import AMU_A2_FS2_EV, KB_EV_K
    from n2amd_driver.data.trajectory import read_trajectory

    frames = read_trajectory(dump, "lammps-dump")
    P = np.array([f.positions for f in frames])
    P -= P.mean(1, keepdims=True)  # the cell is cubic and atoms stay near their sites: no unwrapping needed
    rms = float(np.sqrt(((P - P.mean(0)) ** 2).sum(-1).mean()))
    v = (P[2:] - P[:-2]) / 2.0  # Å/fs, 1 fs frames
    m = frames[0].get_masses()[None, :, None]
    T = float((m * v**2).sum((1, 2)).mean() * AMU_A2_FS2_EV / (3 * (P.shape[1] - 1) * KB_EV_K))
    return {"rms_displacement_A": rms, "temperature_K": T, "frames": len(frames)}


def couplings(out: Path, name: str, model: str, traj: Path, nve_fs: int, scissor_gap: float | None) -> Path:
    """The couplings file of one level (resumes; the scissor row shares its Hamiltonian's checkpoints)."""
    tag = name.replace(" + ", "_").replace("-", "").replace(" ", "_").lower()
    h5 = out / f"{tag}.h5"
    if h5.exists():
        return h5
    base = out / f"{Path(model).stem}.h5.ckpt"
    sets = {"trajectory": str(traj), "format": "lammps-dump", "dt_fs": 1.0, "frames.stop": nve_fs + 1,
            "hamiltonian.model": model, "hamiltonian.dtype": "float32", "window.valence": VALENCE,
            "window.conduction": CONDUCTION, "output": str(h5), "checkpoint": str(base), "plots": True}
    if scissor_gap is not None:
        sets["scissor.gap_eV"] = scissor_gap
    cmd = ["n2amd_driver.namd", "couplings", str(ROOT / "tests" / "data" / "empty.yaml"), "-q"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    run(cmd, out / f"{tag}.log", ranks=2)
    return h5


def row(name: str, h5: Path, out: Path) -> dict:
    """One level's figures (:func:`benchlib.namd_figures`) after its DISH run."""
    from n2amd_driver.namd.couplings_file import read_couplings

    pops = dish_populations(h5, VALENCE, out / f"{h5.stem}.log", dish=DISH_RUN)
    job = json.loads(h5.with_suffix(".summary.json").read_text())
    return {"level": name, **namd_figures(h5, pops, VALENCE), "scissor": read_couplings(h5).series.meta.get("scissor"),
            "couplings_s_per_task": job.get("seconds_per_task")}


def table(rows: list[dict]) -> str:
    head = ("| level | ⟨gap⟩ (eV) | dephasing VBM–CBM (fs) | RMS NAC VBM−1/VBM (meV) | VBM/CBM (meV) | CBM/CBM+1 (meV) "
            "| DISH lifetime (ns) |\n|---|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['level']} | {r['gap_eV']:.3f} | {r['dephasing_fs']:.1f} | {r['rms_nac_meV']['VBM-1/VBM']:.3f} | "
             f"{r['rms_nac_meV']['VBM/CBM']:.3f} | {r['rms_nac_meV']['CBM/CBM+1']:.3f} | "
             + (f"{r['lifetime_ns']:.3g} ± {r['lifetime_stderr_ns']:.2g} |" if math.isfinite(r["lifetime_ns"])
                else "no decay resolved |") for r in rows]
    return "\n".join([head, *lines])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["level"] for r in rows]
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.4))
    for a, (vals, err, label) in zip(ax, [([r["gap_eV"] for r in rows], None, "<gap> (eV)"),
                                          ([r["dephasing_fs"] for r in rows], None, "dephasing VBM–CBM (fs)"),
                                          ([r["rms_nac_meV"]["VBM/CBM"] for r in rows], None, "RMS NAC VBM/CBM (meV)"),
                                          ([r["lifetime_ns"] for r in rows], [r["lifetime_stderr_ns"] for r in rows],
                                           "DISH lifetime (ns)")]):
        a.bar(range(len(rows)), vals, yerr=err, color="C0", capsize=4)
        a.set_xticks(range(len(rows)), names, rotation=30, ha="right")
        a.set_title(label, fontsize=10)
    ax[3].set_yscale("log")
    fig.suptitle("Si64, 300 K, one MLFF trajectory: NAMD with Hamiltonians at several levels")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    from n2amd_driver.models.io import BUNDLED

    ap = argparse.ArgumentParser()
    ap.add_argument("--mlff", default="si_pbe_mlff.pt", help="force field of the trajectory")
    ap.add_argument("--nve-fs", type=int, default=1000, help="fs of NVE the couplings run over (1 fs steps)")
    ap.add_argument("--out", default="runs/functionals_pbe")
    ap.add_argument("--json", default="docs/bench/functionals.json")
    ap.add_argument("--levels", nargs="+", choices=[name for name, _, _ in LEVELS], metavar="LEVEL",
                    default=[name for name, _, _ in LEVELS], help="levels to run (default: all)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    traj = trajectory(out, args.mlff, args.nve_fs)
    done: dict[str, dict] = {}
    order = sorted(LEVELS, key=lambda lv: lv[2] is not None)  # a scissor row needs its target level first
    for name, model, scissor_to in order:
        if name not in args.levels:
            continue
        if not (BUNDLED / model).exists() or (scissor_to and scissor_to not in done):
            print(f"[functionals] {name}: skipped ({model if not (BUNDLED / model).exists() else scissor_to} "
                  "is not bundled)", flush=True)
            continue
        print(f"[functionals] {name} ({time.time() - t0:.0f} s)", flush=True)
        gap = done[scissor_to]["gap_eV"] if scissor_to else None
        h5 = couplings(out, name, model, traj, args.nve_fs, gap)
        done[name] = row(name, h5, out)
    rows = [done[name] for name, _, _ in LEVELS if name in done]
    png = Path(args.json).with_suffix(".png")
    plot(rows, png)
    md = table(rows)
    print(md)
    Path(args.json).write_text(json.dumps({"rows": rows, "mlff": args.mlff, "nve_fs": args.nve_fs,
                                           "trajectory": trajectory_figures(traj),
                                           "window": [VALENCE, CONDUCTION], "dish": DISH_RUN, "plot": str(png),
                                           "provenance": provenance()}, indent=1))


if __name__ == "__main__":
    main()
