"""Files of structures and labels: the n2amd HDF5 dataset format, MD trajectory files from LAMMPS, i-PI
and ASE, and the start structures of generation jobs."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "h5format": ["DatasetError", "create_dataset", "frame_ids", "frame_key", "open_dataset", "read_atoms",
                 "read_frame", "write_labels", "write_structure"],
    "trajectory": ["TrajectoryError", "read_trajectory", "remove_drift", "unwrap"],
    "structures": ["build_system", "strain_cell"],
})
