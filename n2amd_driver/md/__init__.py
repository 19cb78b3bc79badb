"""Molecular dynamics with the package's models: the LAMMPS plugin (``pair_style n2amd``, ``fix n2amd``)
and its Python side, the i-PI socket driver, ASE runs (NVE drift, time to failure), the shipped inputs
(package data: :data:`launch.LAMMPS_INPUTS`, :data:`launch.IPI_CONFIGS`) and the sampling of training
structures by MD. Units: LAMMPS metal (Å, eV, ps) at LAMMPS, atomic units at the i-PI socket, eV/Å/fs here."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "launch": ["IPI_CONFIGS", "LAMMPS_INPUTS", "MDRun", "executable", "module_command", "run_ipi", "run_lammps",
               "thermo_tables"],
    "ase_runs": ["nve_drift", "time_to_failure"],
    "sampling": ["sample_configurations"],
    "lammps_library": ["classical_trajectory", "open_lammps", "potential_commands"],
})
