"""The ``n2amd`` command line.

Units everywhere: energies eV, lengths Å, time fs, temperature K (atomic units only at the i-PI
socket and inside the reference engines).

    n2amd data generate CONFIG.yaml -o data.h5 [--workers N]   sample + label a dataset (resumable)
    n2amd data info data.h5                                      summarise a dataset
    n2amd label STRUCTURE --engine tblite --method GFN2-xTB      label one structure, print a summary
    n2amd train {forcefield,hamiltonian,nnh} CONFIG.yaml         train a model (resumable)
    n2amd bands MODEL STRUCTURE -o bands.png                     model vs reference band structure
    n2amd md lammps|ipi [options]                                MD with a model (LAMMPS plugin or i-PI)
    n2amd namd couplings CONFIG.yaml                             energies and NAC along an MD trajectory
    n2amd namd hop CONFIG.yaml                                   FSSH/DISH populations and lifetimes
    n2amd namd hop-md CONFIG.yaml                                surface hopping with back-reaction (NNH MD)
    n2amd namd analyse couplings.h5                              gap, dephasing, RMS NAC, plots
    n2amd demo                                                   the whole pipeline on bundled Si models
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.config import parse_overrides

#: ``n2amd demo --level`` choices: the keys of ``demo.LEVELS`` (not imported here: it loads torch)
DEMO_LEVELS = ["gfn1-xtb", "pbe", "hse06"]

ASSETS = Path(__file__).parent / "assets"


def _cmd_data_generate(args) -> int:
    from .reference_data import generate, load_config

    cfg = load_config(args.config, parse_overrides(args.set))
    summary = generate(cfg, args.output, workers=args.workers, progress=not args.quiet,
                       retry_failed=args.retry_failed, overwrite=args.overwrite)
    print(f"[n2amd] {summary.path}: {summary.done}/{summary.total} frames labelled "
          f"({summary.labelled_now} now, {summary.failed} failed) in {summary.seconds:.1f} s")
    if summary.failed:
        print(f"[n2amd] {summary.failed} frame(s) failed; see 'n2amd data info {summary.path}'. "
              "Re-run with --retry-failed to try them again.")
        return 1
    return 0


def _cmd_data_info(args) -> int:
    from .reference_data import dataset_info

    for path in args.files:
        print(dataset_info(path))
    return 0


def _cmd_label(args) -> int:
    import numpy as np
    from ase.io import read

    from .engines import get_engine
    from .core.structure import describe
    from .core.units import EV_PER_ANG3_GPA

    atoms = read(args.structure)
    engine = get_engine(args.engine, method=args.method)
    labels = engine.label(atoms, name=args.structure)
    print(f"{describe(atoms, args.structure)} with {args.engine} {args.method}:")
    print(f"  energy          {labels.energy:.6f} eV ({labels.energy / len(atoms):.6f} eV/atom)")
    if labels.forces is not None:
        print(f"  max |force|     {np.abs(labels.forces).max():.4f} eV/Å")
    if labels.stress is not None:
        print(f"  pressure        {-np.trace(labels.stress) / 3 * EV_PER_ANG3_GPA:.3f} GPa")
    if labels.orbital_energies is not None:
        print(f"  orbitals        {len(labels.orbital_energies)} ({labels.fold} fold); {_gap_text(labels)}")
    return 0


def _gap_text(labels) -> str:
    homo, lumo = labels.band_edges()
    return f"HOMO {homo:.3f} eV, LUMO {lumo:.3f} eV, gap {lumo - homo:.3f} eV"


def _cmd_train(args) -> int:
    from .training.loop import merge_config

    if args.train_command == "hamiltonian":
        from .training.hamiltonian import SCHEMA, train_hamiltonian as train
    elif args.train_command == "forcefield":
        from .training.forcefield import SCHEMA, train_forcefield as train
    else:
        from .training.nnh import SCHEMA, fit_remainder as train
    cfg = merge_config(SCHEMA, args.config, parse_overrides(args.set))
    if not cfg["data"]:
        raise ValueError("no training data: set 'data:' in the config or --set data=FILE.h5")
    path = train(cfg, progress=not args.quiet)
    print(f"[n2amd] model written to {path}")
    return 0


def _cmd_bands(args) -> int:
    from ase.io import read

    from .models.bands import compare_bands
    from .models.io import load_hamiltonian_model

    stats = compare_bands(load_hamiltonian_model(args.model), read(args.structure), Path(args.output), args.npoints)
    print(f"VBM error {stats['vbm_error_meV']:+.1f} meV, CBM error {stats['cbm_error_meV']:+.1f} meV, "
          f"gap {stats['gap_model_eV']:.3f} eV (reference {stats['gap_reference_eV']:.3f} eV), "
          f"eigenvalue MAE within ±2 eV of the gap {stats['eig_mae_window_meV']:.1f} meV; plot: {args.output}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import DemoSettings, run_demo

    opts = {k: v for k, v in {"md": args.md, "forces": args.forces, "structure": args.structure, "mlff": args.mlff,
                              "nnh": args.nnh, "hamiltonian": args.hamiltonian, "ranks": args.ranks}.items()
            if v is not None}
    if args.level:
        settings = DemoSettings.at_level(args.level, quick=args.quick, **opts)
    else:
        settings = DemoSettings.quick(**opts) if args.quick else DemoSettings(**opts)
    run_demo(Path(args.workdir), settings)
    return 0


def _cmd_md(args) -> int:
    from .md.launch import run_ipi, run_lammps

    if args.engine == "lammps":
        run = run_lammps(Path(args.workdir), model=args.model, nnh=args.nnh, temperature_K=args.temperature,
                         nvt_steps=args.nvt_steps, nve_steps=args.nve_steps, ranks=args.ranks, seed=args.seed,
                         structure=args.structure, threads=args.threads, dtype=args.dtype, repeat=args.repeat)
    else:
        run = run_ipi(Path(args.workdir), mode=args.mode, model=args.model, steps=args.steps, drivers=args.drivers,
                      seed=args.seed)
    print(f"[n2amd md] trajectory ({run.format}, {run.dt_fs:g} fs per frame): {run.trajectory}")
    return 0


def _number(kind, low: float, strict: bool):
    """An argparse type: ``kind`` (int or float) above ``low`` (or at least it), named in the error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '≥'} {low:g}")
        return value
    return parse


POSITIVE_INT, NONNEG_INT, POSITIVE = _number(int, 0, True), _number(int, 0, False), _number(float, 0, True)


def build_parser(with_keys: bool = True) -> argparse.ArgumentParser:
    """The n2amd parser; ``with_keys``: list every config key in the jobs' help (imports their schemas)."""
    p = argparse.ArgumentParser(prog="n2amd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .core.version import __version__

    p.add_argument("--version", action="version", version=f"n2amd_driver {__version__}")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate and inspect reference datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    from .core.config import schema_help

    import importlib

    def keys_help(module: str) -> str | None:
        if not with_keys:
            return None
        return ("config keys (YAML, or --set KEY=VALUE; units in the descriptions):\n"
                + schema_help(importlib.import_module(module).SCHEMA))

    g = dsub.add_parser(
        "generate", help="sample configurations and label them with a reference engine",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=keys_help("n2amd_driver.reference_data"),
        description="Sample structures (LAMMPS classical MD at several temperatures/strains, or random "
                    "displacements) and label them with tblite (GFN1/GFN2-xTB) or pyscf (PBE, HSE06): energy (eV), "
                    "forces (eV/Å), stress (eV/Å³), converged H (eV) and S in e3nn orbital order. Runs in parallel, "
                    "shows progress, and resumes when re-run on the same output. Bundled configs: "
                    f"{', '.join(sorted(x.name for x in (ASSETS / 'configs').glob('data_*.yaml')))} in {ASSETS / 'configs'}.")
    g.add_argument("config", nargs="?", help="YAML config (defaults: n2amd_driver.reference_data.DEFAULTS)")
    g.add_argument("-o", "--output", required=True, help="HDF5 dataset to write or resume")
    g.add_argument("-w", "--workers", type=POSITIVE_INT, default=None, help="labelling processes (default: config 'workers')")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set label.method=GFN1-xTB --set sampling.temperatures=[300]")
    g.add_argument("--retry-failed", action="store_true", help="label previously failed frames again")
    g.add_argument("--overwrite", action="store_true", help="start over even if the output exists")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    g.set_defaults(func=_cmd_data_generate)
    i = dsub.add_parser("info", help="summarise dataset files")
    i.add_argument("files", nargs="+")
    i.set_defaults(func=_cmd_data_info)

    lab = sub.add_parser("label", help="label one structure with a reference engine and print a summary")
    lab.add_argument("structure", help="any ASE-readable file")
    lab.add_argument("--engine", default="tblite", choices=["tblite", "pyscf"])
    lab.add_argument("--method", default="GFN2-xTB", help="GFN1-xTB | GFN2-xTB (tblite); PBE | HSE06 | ... (pyscf)")
    lab.set_defaults(func=_cmd_label)

    train = sub.add_parser("train", help="train models on a dataset")
    tsub = train.add_subparsers(dest="train_command", required=True)
    trainers = {
        "hamiltonian": ("fit the E(3)-equivariant Hamiltonian to reference H (eV, Γ-folded)",
                        "Stage 1: MSE on Γ-point H elements (eV²); stage 2 adds eigenvalues within a window around "
                        "the gap (eV). Every key is listed below. Re-running resumes from "
                        "OUTPUT/checkpoint.pt; the best (EMA) model is OUTPUT/model.pt.", "train.epochs=50"),
        "forcefield": ("fit the equivariant MLFF to reference energies (eV), forces (eV/Å), stress (eV/Å³)",
                       "Loss: w_E·MSE(E/N) + w_F·MSE(F) + w_S·MSE(stress); optional sharpness-aware minimisation "
                       "(train.sam_rho > 0). Every key is listed below. Re-running resumes "
                       "from OUTPUT/checkpoint.pt; the best (EMA) model is OUTPUT/model.pt.", "train.sam_rho=0.05"),
        "nnh": ("NNH-MD forces: band energy of a Hamiltonian model + a fitted short-range remainder",
                "Computes the band free energy, forces and stress of the Hamiltonian model on every frame "
                "(eV, eV/Å, eV/Å³), fits an MLFF to the reference minus those, and writes OUTPUT/model.pt "
                "(usable by the ASE calculator, LAMMPS and i-PI). Every key is listed below.",
                "hamiltonian=runs/h_si64/model.pt --set data=runs/si64_train.h5"),
    }
    for name, (help_, description, example) in trainers.items():
        tp = tsub.add_parser(name, help=help_, description=description,
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog=keys_help(f"n2amd_driver.training.{name}"))
        tp.add_argument("config", nargs="?", help="YAML config")
        tp.add_argument("--set", action="append", metavar="KEY=VALUE", help=f"override, e.g. --set {example}")
        tp.add_argument("-q", "--quiet", action="store_true")
        tp.set_defaults(func=_cmd_train)

    bands = sub.add_parser("bands", help="band structure of a Hamiltonian model vs the reference engine (PNG)",
                           description="Model bands along the lattice's high-symmetry path (eV, relative to the VBM), "
                                       "the reference engine's Γ levels on top, and both Γ DOS; prints band-edge "
                                       "errors (meV).")
    bands.add_argument("model", help="model.pt from 'n2amd train hamiltonian'")
    bands.add_argument("structure", help="any ASE-readable periodic structure")
    bands.add_argument("-o", "--output", default="bands.png")
    bands.add_argument("--npoints", type=POSITIVE_INT, default=60, help="k-points along the path (default 60)")
    bands.set_defaults(func=_cmd_bands)

    # listed here for `n2amd --help`; main() hands `n2amd namd ...` to the namd jobs' own parser
    sub.add_parser("namd", help="nonadiabatic dynamics: couplings along MD, surface hopping, analysis "
                                "(n2amd namd --help; same as python -m n2amd_driver.namd)")

    md = sub.add_parser("md", help="molecular dynamics with a model: LAMMPS (plugin) or i-PI (socket driver)",
                        description="Runs the shipped inputs (lammps_inputs/in.n2amd[_nnh], ipi_configs/input_*.xml) "
                                    "in a run folder. Time step 1 fs; temperatures K; the trajectory (positions Å, "
                                    "velocities) is written every step for 'n2amd namd couplings'.")
    msub = md.add_subparsers(dest="engine", required=True)
    ml = msub.add_parser("lammps", help="LAMMPS: NVT equilibration (Nose-Hoover) then NVE, dump every step")
    ml.add_argument("--model", default="si_mlff.pt", help="MLFF (or NNH with --nnh) model file or bundled name "
                                                          "(default si_mlff.pt)")
    ml.add_argument("--nnh", action="store_true", help="NNH forces through 'fix n2amd' (model: an NNH model file)")
    ml.add_argument("--structure", help="start structure (any periodic file ASE reads; default the shipped Si64)")
    ml.add_argument("--repeat", type=POSITIVE_INT, nargs=3, metavar=("NX", "NY", "NZ"),
                    help="run a supercell of the start structure, e.g. --repeat 3 3 3 for Si1728 from Si64")
    ml.add_argument("--temperature", type=POSITIVE, default=300.0, help="K (default 300)")
    ml.add_argument("--nvt-steps", type=NONNEG_INT, default=1000, help="1 fs NVT steps (default 1000)")
    ml.add_argument("--nve-steps", type=POSITIVE_INT, default=2000, help="1 fs NVE steps, dumped (default 2000)")
    ml.add_argument("--ranks", type=POSITIVE_INT, default=1, help="MPI ranks (mpirun -n; default 1)")
    ml.add_argument("--threads", type=POSITIVE_INT, help="torch threads per rank (default: OMP_NUM_THREADS or torch's)")
    ml.add_argument("--seed", type=int, default=4928459, help="velocity seed")
    ml.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="MLFF precision inside LAMMPS (float32 is ~2x faster; default float64)")
    ml.add_argument("--workdir", default="runs/md_lammps", help="run folder (default runs/md_lammps)")
    mi = msub.add_parser("ipi", help="i-PI: NVT (SVR), NVE or PIMD with n2amd drivers on a UNIX socket")
    mi.add_argument("--mode", default="nvt", choices=["nvt", "nve", "pimd"], help="ipi_configs/input_MODE.xml")
    mi.add_argument("--model", default="si_mlff.pt", help="model file or bundled name (default si_mlff.pt)")
    mi.add_argument("--steps", type=POSITIVE_INT, default=3000, help="1 fs steps (default 3000)")
    mi.add_argument("--drivers", type=POSITIVE_INT, default=1, help="driver processes (default 1)")
    mi.add_argument("--seed", type=int, default=31415, help="i-PI random seed")
    mi.add_argument("--workdir", default="runs/md_ipi", help="run folder (default runs/md_ipi)")
    md.set_defaults(func=_cmd_md)

    demo = sub.add_parser("demo", help="the whole pipeline on the bundled 64-atom Si models",
                          description="MLFF MD in LAMMPS (float32 model; 500 fs NVT + 2000 fs NVE at 300 K, 1 fs steps) -> NAMD "
                                      "couplings from the NN Hamiltonian on 2 MPI ranks (first 400 fs of the NVE "
                                      "run, every 1 fs step, 4+4 bands) -> dephasing and DISH "
                                      "CBM->VBM recombination (10 initial times x 100 trajectories x 50 ps) -> "
                                      "table and plots. Resumes stage by stage when re-run on the same folder.")
    demo.add_argument("--workdir", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--md", choices=["lammps", "ipi"], help="MD engine (default lammps)")
    demo.add_argument("--forces", choices=["mlff", "nnh"], help="MLFF (default) or NNH forces")
    demo.add_argument("--structure", help="own start structure (periodic, any ASE format; LAMMPS route)")
    demo.add_argument("--mlff", help="own MLFF model file")
    demo.add_argument("--nnh", help="own NNH model file")
    demo.add_argument("--level", choices=DEMO_LEVELS,
                      help="level of the bundled models: gfn1-xtb (default, fastest), pbe (pyscf PBE Hamiltonian "
                           "and MLFF) or hse06 (HSE06 Hamiltonian, PBE MLFF); the DFT levels' couplings cost ~2x "
                           "more per snapshot")
    demo.add_argument("--hamiltonian", help="own Hamiltonian model file (any level)")
    demo.add_argument("--ranks", type=POSITIVE_INT, help="MPI ranks for couplings and DISH (default 2)")
    demo.add_argument("--quick", action="store_true", help="tiny settings (seconds; used by the tests)")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv[:1] == ["namd"]:  # its own parser: `n2amd namd --help` is the namd jobs' help
        from .namd.__main__ import main as namd_main

        return namd_main((["--debug"] if debug else []) + argv[1:])
    args = build_parser(with_keys="-h" in argv or "--help" in argv).parse_args(argv)
    from .core.errors import run_command

    return run_command("n2amd", lambda: args.func(args), debug)

if __name__ == "__main__":
    sys.exit(main())
