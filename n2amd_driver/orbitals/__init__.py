"""Everything about atomic orbitals: orbital conventions and rotations, the basis functions themselves,
their overlap integrals (equal-time, cross-geometry, derivatives) and generalised eigen-solutions.
Energies eV, lengths Å; matrices in e3nn orbital order (:mod:`.conventions`)."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "conventions": ["Basis", "ENGINES", "convention_matrix", "wigner_D"],
    "functions": ["BasisFunctions", "GaussianShell", "basis_functions", "load_pyscf_basis", "pyscf_shells",
                  "shell_data", "tblite_shells"],
    "integrals": ["contracted_overlaps"],
    "derivative_couplings": ["coupling_numerators", "coupling_vectors", "degenerate_pairs", "ket_derivative_forms",
                             "overlap_derivative_forms"],
    "overlap": ["bvk_overlaps", "cross_overlap", "overlap_derivative", "overlap_gradient", "overlap_matrix",
                "pair_cutoff_ang"],
    "radial": ["RadialOverlap", "overlap_trace_gradients", "radial_overlap"],
    "sparse": ["block_pattern", "blocks_to_csr", "drop_small", "memory_bytes"],
    "window": ["IllConditionedOverlap", "ShiftInvert", "WindowNotConverged", "WindowStates", "dense_window",
               "factorisation_memory",
               "fixed_signs", "smallest_overlap_eigenvalue", "window_eigh"],
    "eigen": ["atom_populations", "band_edges", "bloch_hamiltonian", "bvk_images", "bvk_kpoints", "bvk_to_k",
              "bvk_to_supercell", "dos", "eigh", "k_to_bvk", "participation_ratio"],
})
