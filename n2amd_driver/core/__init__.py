"""The bottom layer: units, structures, neighbour graphs, configs, atomic file writes, MPI ranks, how
commands end on an error, and compiled parts built on the user's machine.
Nothing here knows about orbitals, models or dynamics."""
from .lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "units": ["BOHR_ANG", "HARTREE_EV", "HBAR_EV_FS", "KB_EV_K", "AU_TIME_FS", "EV_PER_ANG3_GPA"],
    "structure": ["StructureError", "check_close_atoms", "check_structure", "close_pairs", "describe", "rotate_atoms"],
    "graph": ["NeighbourGraph", "neighbour_graph", "graph_from_atoms", "pairs_between"],
    "config": ["deep_update", "load_validated", "parse_overrides", "schema_help", "section_base"],
    "checkpoint": ["atomic_write", "save_npz", "save_torch"],
    "parallel": ["Ranks", "world", "chunk"],
    "errors": ["one_line", "run_command"],
    "native": ["NativeBuildError", "build_shared", "cache_root"],
})
