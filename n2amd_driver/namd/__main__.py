"""``python -m n2amd_driver.namd hop config.yaml`` (also under ``mpirun -n N``)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m n2amd_driver.namd",
        description="Nonadiabatic molecular dynamics post-processing. Energies eV, times fs, couplings 1/fs.")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    sub = p.add_subparsers(dest="command", required=True)
    from ..core.config import schema_help
    from . import couplings_job, hop_job, hop_md_job

    def config_job(name: str, help: str, schema, description: str, example: str) -> None:
        """A job run from a YAML config: its keys listed from the schema, --set overrides, -q."""
        p_ = sub.add_parser(name, help=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="config keys (YAML, or --set KEY=VALUE; units in the descriptions):\n"
                                   + schema_help(schema), description=description)
        p_.add_argument("config", nargs="?", help="YAML config (settings may also all come from --set)")
        p_.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help=f"override a config value (e.g. {example})")
        p_.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    config_job("hop", "surface hopping (FSSH/DISH): populations and lifetimes", hop_job.SCHEMA,
               "Run FSSH or DISH on a couplings file (or Hefei-NAMD EIGTXT/NATXT) and write "
               "populations (HDF5 + CSV), lifetime fits, plots and a summary table. Every key is listed below and "
               "checked when the config is loaded. Resumes from checkpoints when re-run.", "ntraj=200")
    config_job("couplings", "energies, overlaps and NAC along an MD trajectory", couplings_job.SCHEMA,
               "Model (or tblite reference) Hamiltonian per snapshot, generalised eigenpairs in a "
               "band window, cross-time overlaps, phase-corrected Hammes-Schiffer-Tully NAC; one "
               "HDF5 file (+ Hefei-NAMD/PYXAID exports, plots). Every key is listed below and checked when "
               "the config is loaded. Resumes from checkpoints when re-run.", "dt_fs=1")
    config_job("hop-md", "surface hopping with back-reaction: FSSH on the fly along NNH MD", hop_md_job.SCHEMA,
               "Nuclei on the active carrier state's surface of an NNH model (excited-carrier "
               "forces), TDKS along, hops with velocity rescaling along the NAC vector, energy-"
               "based decoherence; from the frames of a ground-state MD trajectory. Writes "
               "results.npz, summary.json and a plot. Resumes from checkpoints when re-run.", "trajectories=2")
    a = sub.add_parser("analyse", help="averaged gap, dephasing times, RMS NAC and plots of a couplings file",
                       description="Reads an n2amd couplings HDF5 (or a Hefei-NAMD folder with EIGTXT/NATXT) and "
                                   "writes a table (stdout), <prefix>_analysis.json and PNGs. Energies eV, times fs, "
                                   "NAC as ħ|d| in meV.")
    a.add_argument("couplings", help="couplings.h5 or a Hefei-NAMD folder")
    a.add_argument("--pair", type=int, nargs=2, metavar=("I", "J"),
                   help="window states of the headline numbers (default: VBM and CBM)")
    a.add_argument("-o", "--prefix", help="output prefix (default: the input path without suffix)")
    args = p.parse_args(argv)
    from ..core.config import parse_overrides
    from ..core.errors import run_command

    def job() -> int:
        if args.command == "analyse":
            from .analyse import analyse

            print(analyse(args.couplings, args.prefix, tuple(args.pair) if args.pair else None)["text"])
        elif args.command == "hop-md":
            from .hop_md_job import load_config, run_hop_md

            s = run_hop_md(load_config(args.config, parse_overrides(args.set)), progress=not args.quiet)
            if s is not None:
                print(f"[n2amd namd hop-md] {s['trajectories']} trajectories x {s['steps']} steps, "
                      f"{s['hops']['accepted']} hops ({s['hops']['frustrated']} frustrated), energy drift "
                      f"{s['energy_drift_meV_atom_ps']['mean']:+.3f} meV/atom/ps, carrier energy "
                      f"{s['carrier_energy_eV']['start']:.3f} -> {s['carrier_energy_eV']['end']:.3f} eV, "
                      f"{s['wall_s']} s -> {s['output']}")
        elif args.command == "hop":
            from .hop_job import load_config, run_hop

            run_hop(load_config(args.config, parse_overrides(args.set)), progress=not args.quiet)
        else:
            from .couplings_job import load_config, run_couplings

            summary = run_couplings(load_config(args.config, parse_overrides(args.set)), progress=not args.quiet)
            if summary is not None:
                print(f"[n2amd namd couplings] {summary['snapshots']} snapshots, bands {summary['bands_1based']}, "
                      f"<gap> = {summary['average_gap_eV']:.3f} eV, {summary['wall_s']} s on {summary['ranks']} "
                      f"rank(s) -> {summary['output']}")
        return 0

    return run_command("n2amd namd", job, args.debug)

if __name__ == "__main__":
    sys.exit(main())
