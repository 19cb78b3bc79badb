"""Large cells ([K]): the N2AMD paper's size series (its Table 3) for Si at 300 K, NAC and lifetime against N.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_size_series.py [--sizes 2 3 4 5 6] [--snapshots 300] \\
        [--ranks 2] [--work docs/bench/size_series] [--json docs/bench/size_series.json]
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_size_series.py --stage replicas --sizes 2 3 --replicas 3
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_size_series.py --stage tblite216
    .venv/bin/python scripts/bench_size_series.py --stage folding [--sizes 2 3 4 5 6 8]
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_size_series.py --stage localisation --sizes 2 3 4

Per size (the cubic 8-atom cell repeated n×n×n: 64, 216, 512, 1000, 1728 atoms), each step resumable and kept
under ``--work`` (committed as it grows, so a later session continues it):

1. its own MLFF trajectory: the bundled ``si_mlff.pt`` in LAMMPS (float32), 1000 fs NVT at 300 K, then
   ``--snapshots`` fs of NVE dumped every 1 fs step. The positions are kept in ``si<N>/frames.npz`` (float32, Å),
   which *is* the trajectory from then on: the couplings checkpoints are tied to its frames;
2. the couplings job with the bundled ``si_hamiltonian.pt`` (float32) for 2 valence + 2 conduction states and a
   buffer of 4 states on each side: the dense solver below 512 atoms, the sparse one from 512 atoms with a 10 Å
   overlap cutoff (its effect is measured in docs/benchmarks.md, stage large_cells); compact checkpoints in
   ``si<N>/ckpt`` (the states leave them once both steps are done);
3. DISH recombination CBM → VBM (``benchlib.DISH_LONG``: 10 ns per run) and the figures of ``benchlib.namd_figures``.

The JSON gets a row per finished size, the seconds per snapshot of its couplings, a log–log plot of the RMS
VBM/CBM NAC and the DISH lifetime against N beside the N^-1/2 and N laws anchored at the smallest size.

Stage ``replicas`` (``--replicas 3 --sizes 2 3``): more independent trajectories of a size, each with its own
random velocities, through the same steps. In 300 fs of NVE each phonon keeps the energy it was given, so the
block standard errors of one trajectory cannot see how much its NAC owes to that draw; the spread over
replicas can.

Stage ``tblite216``: the model against tblite GFN1-xTB along the first 31 frames of the 216-atom trajectory
(``scripts/validate_couplings.py``, its JSON into ``<work>/tblite216``), and both on the ideal Si64 and Si216
cells (:func:`reference_cell_dependence`). Stage ``folding``: which k-points of the
ideal crystal each size folds onto Γ, and where its conduction-band edge comes from (:func:`folded_band_edges`).
Stage ``localisation``: how far the window states spread over the cell (:func:`localisation`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchlib import DISH_LONG, dish_populations, namd_figures, provenance, run_package  # noqa: E402

VALENCE = CONDUCTION = 2
BUFFER = 4
SPARSE_FROM_ATOMS = 512
CUTOFF_ANG = 10.0


def cubic_cell():
    """The 8-atom cubic Si cell (a = 5.43 Å) whose n×n×n repeats make the series."""
    from ase.build import bulk

    return bulk("Si", "diamond", a=5.43, cubic=True)


def run_name(atoms: int, replica: int = 0) -> str:
    """``si<N>`` for a size's main trajectory, ``si<N>_r<k>`` for its k-th independent replica."""
    return f"si{atoms}" + (f"_r{replica}" if replica else "")


def velocity_seed(n: int, replica: int = 0) -> int:
    """LAMMPS velocity seed of the n×n×n cell's main trajectory (replica 0) or of a replica."""
    return 4928 + n + 100 * replica


def frames_file(work: Path, runs: Path, n: int, snapshots: int, replica: int = 0) -> Path:
    """The size's NVE frames (positions float32 Å, cell, numbers), made once by LAMMPS and kept. A replica
    starts from other random velocities (seed + 100 × replica), so its phonon amplitudes are drawn anew."""
    from ase.io import write

    from n2amd_driver.data.trajectory import read_trajectory

    name = run_name(8 * n**3, replica)
    out = work / name / "frames.npz"
    if out.exists():
        return out
    md = runs / f"{name}_md"
    md.mkdir(parents=True, exist_ok=True)
    cell = md / "si8.extxyz"
    write(cell, cubic_cell(), format="extxyz")
    dumps = list(md.glob("*_nve.dump"))
    frames = read_trajectory(dumps[0], "lammps-dump") if dumps else []
    if len(frames) != snapshots + 1:  # none yet, or a killed run's part: LAMMPS starts again (minutes)
        run_package(["n2amd_driver.cli", "md", "lammps", "--model", "si_mlff.pt", "--structure", str(cell),
                     "--repeat", str(n), str(n), str(n), "--temperature", "300", "--nvt-steps", "1000",
                     "--nve-steps", str(snapshots), "--dtype", "float32", "--seed", str(velocity_seed(n, replica)),
                     "--threads", "2", "--workdir", str(md)], runs / f"{name}_md.log")
        frames = read_trajectory(next(md.glob("*_nve.dump")), "lammps-dump")
    if len(frames) != snapshots + 1:
        raise SystemExit(f"{md}: {len(frames)} NVE frames, expected {snapshots + 1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, positions=np.array([f.positions for f in frames], np.float32), cell=np.asarray(frames[0].cell),
             numbers=frames[0].numbers)
    return out


def trajectory(frames: Path, runs: Path) -> Path:
    """The kept frames as extended XYZ for the couplings job (rewritten identically each session)."""
    from ase import Atoms
    from ase.io import write

    out = runs / f"{frames.parent.name}.extxyz"
    if not out.exists():
        z = np.load(frames)
        write(out, [Atoms(numbers=z["numbers"], positions=p.astype(float), cell=z["cell"], pbc=True)
                    for p in z["positions"]], format="extxyz")
    return out


def couplings(work: Path, runs: Path, traj: Path, atoms: int, ranks: int) -> Path:
    h5 = runs / f"{traj.stem}.h5"
    if h5.exists():
        return h5
    sets = {"trajectory": str(traj), "dt_fs": 1.0, "hamiltonian.model": "si_hamiltonian.pt",
            "hamiltonian.dtype": "float32", "window.valence": VALENCE, "window.conduction": CONDUCTION,
            "window.buffer": BUFFER, "window.solver": "sparse" if atoms >= SPARSE_FROM_ATOMS else "dense",
            "compact_checkpoint": True, "checkpoint": str(work / traj.stem / "ckpt"), "output": str(h5),
            "plots": False}
    if atoms >= SPARSE_FROM_ATOMS:
        sets["window.overlap_cutoff_ang"] = CUTOFF_ANG
    cmd = ["n2amd_driver.namd", "couplings", str(ROOT / "tests" / "data" / "empty.yaml"), "-q"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    run_package(cmd, runs / f"{traj.stem}_couplings.log", ranks=ranks)
    return h5


def size_row(work: Path, runs: Path, n: int, snapshots: int, ranks: int, replica: int = 0) -> dict:
    atoms = 8 * n**3
    t = time.time()
    traj = trajectory(frames_file(work, runs, n, snapshots, replica), runs)
    h5 = couplings(work, runs, traj, atoms, ranks)
    pops = dish_populations(h5, VALENCE, runs / f"{traj.stem}_dish.log", dish=DISH_LONG)
    summary = json.loads(h5.with_suffix(".summary.json").read_text())
    return {"atoms": atoms, **namd_figures(h5, pops, VALENCE), "per_snapshot": summary.get("per_snapshot"),
            "seconds_per_task": summary.get("seconds_per_task"), "ranks": ranks,
            "solver": "sparse" if atoms >= SPARSE_FROM_ATOMS else "dense", "wall_s_this_run": time.time() - t}


def localisation(work: Path, sizes: list[int]) -> dict:
    """How far the window states spread over the cell, on the last frame of each size's main trajectory: the
    participation ratio 1/(N Σ_A q_A²) of the Mulliken atom populations of VBM−1 … CBM+1 (1: spread evenly;
    1/N: on one atom), with the bundled model in float32 and the overlap cutoff, as in the series."""
    from ase import Atoms

    from n2amd_driver.namd.sources import ModelSource
    from n2amd_driver.orbitals.eigen import atom_populations, participation_ratio
    from n2amd_driver.orbitals.window import window_eigh

    src = ModelSource("si_hamiltonian.pt", device="cpu", dtype="float32")
    out = {}
    for n in sizes:
        z = np.load(work / run_name(8 * n**3) / "frames.npz")
        atoms = Atoms(numbers=z["numbers"], positions=z["positions"][-1].astype(float), cell=z["cell"], pbc=True)
        H, S, nel = src.electronic_sparse(atoms, CUTOFF_ANG if len(atoms) >= SPARSE_FROM_ATOMS else None)
        nocc = int(round(nel / 2))
        w = window_eigh(H, S, nocc - VALENCE, nocc + CONDUCTION - 1, buffer=0)
        q = atom_populations(w.C, S, src.model.basis.orbital_offsets(atoms.numbers))
        pr = participation_ratio(q)
        out[str(len(atoms))] = {"frame": int(len(z["positions"]) - 1), "participation_ratio": pr.tolist(),
                                "largest_atom_population": q.max(0).tolist()}
    return out


def reference_cell_dependence(sizes=(2, 3)) -> dict:
    """Band edges (eV) of the ideal cubic cell repeated n×n×n from tblite GFN1-xTB and from the bundled model
    (float64). Both cells hold fcc Γ (the VBM) and X (the CBM), so a fixed Hamiltonian gives them the same
    edges: the model, being local, does. tblite's Γ-only SCC density, and with it every level, depends on
    the cell, and the model carries its 64-atom training cells' density to every size."""
    from scipy.linalg import eigh

    from n2amd_driver.namd.sources import EngineSource, ModelSource
    from n2amd_driver.orbitals.eigen import band_edges

    model = ModelSource("si_hamiltonian.pt", device="cpu", dtype="float64")
    sources = {"model": model, "tblite": EngineSource("tblite", method=model.reference["method"])}
    out = {}
    for n in sizes:
        atoms = cubic_cell().repeat(n)
        row = {}
        for name, src in sources.items():
            H, S, nel = src.electronic(atoms)
            vbm, cbm = band_edges(eigh(H, S, eigvals_only=True), nel)
            row[name] = {"vbm_eV": vbm, "cbm_eV": cbm}
        out[str(len(atoms))] = row
    return out


def folded_band_edges(sizes: list[int]) -> dict:
    """Which states an n×n×n repeat of the cubic cell holds at its band edges: the bundled model's bands of the
    ideal cubic Si8 cell at the k-points that fold onto the supercell's Γ along (k, 0, 0), k = m/n (fractional
    in the cubic cell; k = 0 holds fcc Γ and X). Energies relative to the VBM at k = 0, eV."""
    from n2amd_driver.models.bands import bands_at
    from n2amd_driver.models.io import load_hamiltonian_model
    from n2amd_driver.orbitals.functions import basis_functions

    model = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    cell = cubic_cell()
    bf = basis_functions(model.basis.name, cell.get_chemical_symbols())
    nocc = int(round(model.n_electrons(cell) / 2))
    ks = sorted({round(min(m / n, 1 - m / n), 6) for n in sizes for m in range(n)} | set(np.linspace(0, 0.5, 41)))
    e = bands_at(model, bf, cell, [[k, 0.0, 0.0] for k in ks])[:, nocc - 1 : nocc + 1]
    edges = dict(zip(ks, e - e[ks.index(0.0), 0]))  # k → (VBM, CBM) relative to the VBM at k = 0
    out = {"line_eV": {f"{k:.4f}": edges[k].tolist() for k in np.linspace(0, 0.5, 41)}, "sizes": {}}
    for n in sizes:
        folded = sorted({round(min(m / n, 1 - m / n), 6) for m in range(n)}, key=lambda k: edges[k][1])
        nxt = folded[1] if len(folded) > 1 else None
        out["sizes"][str(8 * n**3)] = {"k_cbm": folded[0], "cbm_eV": float(edges[folded[0]][1]),
                                       "second_cbm_k": None if nxt is None else f"{nxt:.4f}",
                                       "second_above_meV": None if nxt is None else
                                       1000 * float(edges[nxt][1] - edges[folded[0]][1])}
    return out


ENSEMBLE = {"gap_eV": lambda r: r["gap_eV"], "gap_std_meV": lambda r: r["gap_std_meV"],
            "dephasing_fs": lambda r: r["dephasing_fs"], "rms_nac_vbm_cbm_meV": lambda r: r["rms_nac_meV"]["VBM/CBM"],
            "rms_nac_across_gap_meV": lambda r: r["rms_nac_across_gap_meV"], "lifetime_ns": lambda r: r["lifetime_ns"],
            "golden_rule_lifetime_ns": lambda r: r["golden_rule_lifetime_ns"]}


def ensemble(res: dict) -> dict:
    """Per size, over its main trajectory and its replicas: mean, sample standard deviation and standard error
    of each figure, and the ensemble lifetime 1/⟨1/τ⟩ (ns; the decay rate of the population averaged over the
    trajectories while it is still near 1)."""
    out = {}
    for r in res["rows"]:
        every = [r] + res.get("replicas", {}).get(str(r["atoms"]), [])
        fig = {}
        for k, f in ENSEMBLE.items():
            v = np.array([f(x) for x in every])
            sd = float(v.std(ddof=1)) if len(v) > 1 else None
            fig[k] = {"mean": float(v.mean()), "sd": sd, "stderr": None if sd is None else sd / np.sqrt(len(v))}
        rate = np.array([1 / x["lifetime_ns"] for x in every])
        fig["ensemble_lifetime_ns"] = float(1 / rate.mean())
        fig["ensemble_lifetime_stderr_ns"] = (float(rate.std(ddof=1) / np.sqrt(len(rate)) / rate.mean() ** 2)
                                              if len(rate) > 1 else None)
        out[str(r["atoms"])] = {"trajectories": len(every), **fig}
    return out


def plot(res: dict, path: Path) -> None:
    """NAC and lifetime against N: each size's main trajectory, and where a size has replicas, their mean with
    its standard error (slightly offset in N so that the two stay apart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    N = np.array([r["atoms"] for r in rows], float)
    nac = np.array([r["rms_nac_meV"]["VBM/CBM"] for r in rows])
    across = np.array([r.get("rms_nac_across_gap_meV", np.nan) for r in rows])
    life = np.array([r["lifetime_ns"] for r in rows])
    err = np.array([r["lifetime_stderr_ns"] for r in rows])
    ens = [(int(n), e) for n, e in res.get("ensemble", {}).items() if e["trajectories"] > 1]
    # the power laws start from the smallest size's ensemble mean where it has one: one trajectory can be far off
    e0 = res.get("ensemble", {}).get(str(rows[0]["atoms"]))
    e0 = e0 if e0 and e0["trajectories"] > 1 else None
    a0 = e0["rms_nac_across_gap_meV"]["mean"] if e0 else across[0]
    n0 = e0["rms_nac_vbm_cbm_meV"]["mean"] if e0 else nac[0]
    l0 = e0["ensemble_lifetime_ns"] if e0 else life[0]
    fig, ax = plt.subplots(1, 2, figsize=(10, 5))
    ax[0].loglog(N, nac, "o-", label="RMS NAC VBM/CBM, main trajectory")
    ax[0].loglog(N, across, "s-", label="RMS NAC, all V × C pairs (root sum of squares), main trajectory")
    ax[0].loglog(N, n0 * (N / N[0]) ** -0.5, "k--", label="∝ N^-1/2" + (", from the Si%d mean" % N[0] if e0 else ""))
    ax[0].loglog(N, a0 * (N / N[0]) ** -0.5, "k--")
    ax[1].errorbar(N, life, yerr=err, fmt="o-", capsize=3, label="DISH lifetime, main trajectory")
    ax[1].plot(N, l0 * N / N[0], "k--", label="∝ N" + (", from the Si%d ensemble" % N[0] if e0 else ""))
    if ens:
        n = np.array([k for k, _ in ens], float) * 1.06
        a = [e["rms_nac_across_gap_meV"] for _, e in ens]
        ax[0].errorbar(n, [x["mean"] for x in a], yerr=[x["stderr"] for x in a], fmt="D", color="C3", capsize=3,
                       label="all V × C pairs, mean of independent trajectories")
        ax[1].errorbar(n, [e["ensemble_lifetime_ns"] for _, e in ens],
                       yerr=[e["ensemble_lifetime_stderr_ns"] for _, e in ens], fmt="D", color="C3", capsize=3,
                       label="1/⟨1/τ⟩ over independent trajectories")
    ax[0].set(xlabel="atoms N", ylabel="meV")
    ax[1].set(xscale="log", yscale="log", xlabel="atoms N", ylabel="ns")
    for a in ax:
        a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        a.set_xticks(N, [f"{n:.0f}" for n in N])
        a.minorticks_off()
    fig.suptitle("Si at 300 K, GFN1-xTB models: couplings and recombination against cell size")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def every_run(res: dict) -> list[dict]:
    """The rows of the main trajectories and of their replicas."""
    return res["rows"] + [r for rs in res.get("replicas", {}).values() for r in rs]


def store(out: Path, insert) -> None:
    """Add a finished run to the JSON: re-read it (rows come from several runs, and other stages may have
    written meanwhile), ``insert(res)``, then recompute the ensemble figures and the plot, and write."""
    res = json.loads(out.read_text()) if out.exists() else {"rows": []}
    insert(res)
    res["ensemble"] = ensemble(res)
    plot(res, out.with_suffix(".png"))
    out.write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["series", "replicas", "tblite216", "folding", "localisation"],
                    default="series")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4, 5, 6], help="repeats of the 8-atom cell")
    ap.add_argument("--snapshots", type=int, default=300, help="fs of NVE (1 fs steps) per size")
    ap.add_argument("--ranks", type=int, default=2, help="MPI ranks of the couplings jobs")
    ap.add_argument("--replicas", type=int, default=3,
                    help="stage replicas: independent trajectories per size besides the main one")
    ap.add_argument("--work", default="docs/bench/size_series")
    ap.add_argument("--runs", default="runs/bench/size_series")
    ap.add_argument("--json", default="docs/bench/size_series.json")
    ap.add_argument("--refigure", action="store_true",
                    help="recompute the figures of the finished rows from their couplings files under --runs (after a "
                         "change to benchlib.namd_figures or the DISH settings): a missing couplings file is "
                         "reassembled from its checkpoints, a missing DISH run is run")
    a = ap.parse_args()
    work, runs, out = (ROOT / a.work).resolve(), (ROOT / a.runs).resolve(), ROOT / a.json
    runs.mkdir(parents=True, exist_ok=True)
    if a.stage in ("folding", "localisation"):
        part = ({**folded_band_edges(a.sizes), "provenance": provenance()} if a.stage == "folding" else
                {"sizes": localisation(work, a.sizes), "provenance": provenance()})
        res = json.loads(out.read_text()) if out.exists() else {"rows": []}  # read after the work: other stages
        res[a.stage] = part                                                   # may have written meanwhile
        out.write_text(json.dumps(res, indent=1))
        return
    if a.stage == "tblite216":
        from ase.io import read, write

        part = runs / "si216_first31.extxyz"
        write(part, read(trajectory(frames_file(work, runs, 3, a.snapshots), runs), index=":31"), format="extxyz")
        import subprocess

        cmd = [sys.executable, str(ROOT / "scripts" / "validate_couplings.py"), "si_hamiltonian.pt", "--trajectory",
               str(part), "--window", str(VALENCE), str(CONDUCTION), "--model-ranks", "1", "--reference-ranks", "1",
               "--out", str(work / "tblite216")]
        if subprocess.run(cmd, cwd=ROOT).returncode:
            raise SystemExit("validate_couplings.py failed; rerun to resume")
        part = {**json.loads((work / "tblite216" / "validate_couplings.json").read_text()),
                "cell_dependence": reference_cell_dependence(), "cell_dependence_provenance": provenance()}
        res = json.loads(out.read_text()) if out.exists() else {"rows": []}  # other stages may have written
        res["tblite216"] = part
        res.setdefault("provenance", res["tblite216"]["provenance"])
        out.write_text(json.dumps(res, indent=1))
        return
    res = json.loads(out.read_text()) if out.exists() else {"rows": []}
    if a.stage == "replicas":
        reps = res.setdefault("replicas", {})
        for n in a.sizes:
            have = {r["replica"] for r in reps.get(str(8 * n**3), [])}
            for k in range(1, a.replicas + 1):
                if k in have:
                    continue
                print(f"[size series] {run_name(8 * n**3, k)}", flush=True)
                row = {**size_row(work, runs, n, a.snapshots, a.ranks, k), "replica": k,
                       "seed": velocity_seed(n, k), "provenance": provenance()}

                def insert(res, row=row, key=str(8 * n**3)):
                    reps = res.setdefault("replicas", {})
                    reps[key] = sorted(reps.get(key, []) + [row], key=lambda r: r["replica"])

                store(out, insert)
        return
    if a.refigure:
        figures = {}  # (atoms, replica) → new figures; written through store(), which re-reads the JSON
        for r in every_run(res):
            key = (r["atoms"], r.get("replica", 0))
            n = round(r["atoms"] ** (1 / 3) / 2)
            # a couplings file lost with runs/ is reassembled from its committed checkpoints (no snapshot recomputed)
            traj = trajectory(frames_file(work, runs, n, a.snapshots, key[1]), runs)
            h5 = couplings(work, runs, traj, r["atoms"], a.ranks)
            pops = dish_populations(h5, VALENCE, runs / f"{traj.stem}_dish.log", dish=DISH_LONG)
            figures[key] = {**namd_figures(h5, pops, VALENCE), "figures_provenance": provenance()}

        def insert(res):
            for r in every_run(res):
                r.update(figures.get((r["atoms"], r.get("replica", 0)), {}))
            res["dish"] = DISH_LONG

        store(out, insert)
        return
    done = {r["atoms"] for r in res["rows"]}
    for n in a.sizes:
        if 8 * n**3 in done:
            continue
        print(f"[size series] Si{8 * n**3}", flush=True)
        row = {**size_row(work, runs, n, a.snapshots, a.ranks), "provenance": provenance()}

        def insert(res, row=row):
            res["rows"] = sorted(res["rows"] + [row], key=lambda r: r["atoms"])
            res.update({"window": [VALENCE, CONDUCTION], "buffer": BUFFER, "cutoff_ang": CUTOFF_ANG,
                        "dish": DISH_LONG, "snapshots": a.snapshots, "provenance": provenance(),
                        "plot": os.path.relpath(out.with_suffix(".png"), ROOT)})

        store(out, insert)


if __name__ == "__main__":
    main()
