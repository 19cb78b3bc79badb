"""Equivariant neural-network models and their files: the Hamiltonian H(R) in an atomic-orbital basis,
the MLFF, NNH forces (band energy of the Hamiltonian + repulsion + remainder), the ASE calculator, and the
shared symmetry check every model kind passes. Energies eV, lengths Å."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "hamiltonian": ["HamiltonianConfig", "HamiltonianModel", "shell_means"],
    "forcefield": ["ForceFieldConfig", "ForceFieldModel"],
    "nnh": ["Excitation", "NNHModel", "density_matrices", "fermi_occupations"],
    "hamiltonian_gradients": ["projected_hamiltonian_gradient"],
    "repulsion": ["PairRepulsion"],
    "io": ["BUNDLED", "load_force_model", "load_hamiltonian_model", "load_model", "read_model_file",
           "resolve_model_path", "save_model_file", "save_nnh_model"],
    "calculator": ["N2AMDCalculator"],
    "bands": ["band_structure", "bands_at", "compare_bands", "model_blocks"],
    "equivariance": ["TOLERANCES", "assert_equivariant", "equivariance_errors", "symmetry_cases"],
})
