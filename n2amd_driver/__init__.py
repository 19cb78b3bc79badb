"""n2amd_driver: excited-carrier dynamics in solids at the cost of a neural network (N2AMD).

The pipeline, bottom to top (each layer imports only those below it):

    core       units, structures, neighbour graphs, configs, atomic writes, MPI ranks
    orbitals   orbital conventions, basis functions, overlaps, eigen-solutions
    engines    reference calculations (tblite GFN-xTB, pyscf DFT)
    data       dataset files, MD trajectory files, start structures
    models     equivariant Hamiltonian, MLFF, NNH forces, model files, ASE calculator
    training   the training loop and the trainers
    md         LAMMPS plugin, i-PI driver, ASE MD, sampling of training structures
    namd       couplings along MD, couplings files, surface hopping, Hefei-NAMD formats
    cli, demo, reference_data   the ``n2amd`` command and its workflows
"""
from .core.version import __version__  # noqa: F401 (the package version)


def __getattr__(name):
    # lazy: `import n2amd_driver` stays light (no torch) until the calculator is asked for
    if name in ("N2AMDCalculator", "load_model"):
        from .models import calculator, io

        return {"N2AMDCalculator": calculator.N2AMDCalculator, "load_model": io.load_model}[name]
    raise AttributeError(f"module 'n2amd_driver' has no attribute {name!r}")
