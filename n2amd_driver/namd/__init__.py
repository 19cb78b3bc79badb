"""Nonadiabatic molecular dynamics on MD trajectories (the classical path approximation): energies,
overlaps and couplings from a Hamiltonian along the trajectory, the couplings file, surface hopping
(FSSH/DISH), dephasing and lifetimes, Hefei-NAMD and PYXAID files, analysis and plots. Energies eV,
times fs, couplings 1/fs. Jobs: ``python -m n2amd_driver.namd couplings|hop|analyse``."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "series": ["CouplingSeries"],
    "couplings_file": ["Couplings", "read_couplings", "read_series", "write_couplings"],
    "couplings": ["correct", "nac_from_overlaps", "phase_signs", "state_overlaps", "tracking_permutations",
                  "window_bands"],
    "couplings_job": ["run_couplings"],
    "sources": ["EngineSource", "ModelSource", "make_source"],
    "nac_vectors": ["NACVectors", "finite_difference_hamiltonian_gradient", "nac_vectors"],
    "hopping": ["HopSettings", "HopState", "Propagators", "Record", "advance", "kernels_path"],
    "hop_job": ["run_hop"],
    "back_reaction": ["HoppingTrajectory", "Settings", "SurfaceHopping", "edc_decoherence", "rescaling_factor"],
    "hop_md_job": ["run_hop_md"],
    "hefei": ["read_dephtime", "read_hefei", "read_inicon", "write_hefei"],
    "exports": ["write_pyxaid"],
    "dephasing": ["decoherence_limited_rate", "dephasing_function", "dephasing_matrix"],
    "lifetime": ["LifetimeFit", "fit_lifetime"],
    "analyse": ["analyse"],
})
