"""Everything about atomic orbitals: orbital conventions and rotations, the basis functions themselves,
their overlap integrals (equal-time, cross-geometry, derivatives) and generalised eigen-solutions.
Energies eV, lengths Å; matrices in e3nn orbital order (:mod:`.conventions`)."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "conventions": ["Basis", "ENGINES", "convention_matrix", "wigner_D"],
    "functions": ["BasisFunctions", "GaussianShell", "basis_functions", "pyscf_shells", "shell_data",
                  "tblite_shells"],
    "integrals": ["contracted_overlaps"],
    "overlap": ["cross_overlap", "overlap_derivative", "overlap_gradient", "overlap_matrix", "pair_cutoff_ang"],
    "radial": ["RadialOverlap", "overlap_trace_gradients", "radial_overlap"],
    "eigen": ["band_edges", "bloch_hamiltonian", "dos", "eigh"],
})
