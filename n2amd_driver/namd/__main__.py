"""``python -m n2amd_driver.namd hop config.yaml`` (also under ``mpirun -n N``)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m n2amd_driver.namd",
        description="Nonadiabatic molecular dynamics post-processing. Energies eV, times fs, couplings 1/fs.")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hop", help="surface hopping (FSSH/DISH): populations and lifetimes",
                       description="Run FSSH or DISH on a couplings file (or Hefei-NAMD EIGTXT/NATXT) and write "
                                   "populations (HDF5 + CSV), lifetime fits, plots and a summary table. Defaults: "
                                   "n2amd_driver.namd.hop_job.DEFAULTS. Resumes from checkpoints when re-run.")
    h.add_argument("config", help="YAML config")
    h.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (e.g. ntraj=200)")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from ..cli import parse_overrides
    from .hop_job import load_config, run_hop

    try:
        cfg = load_config(args.config, parse_overrides(args.set))
        run_hop(cfg, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        print(f"n2amd namd: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
