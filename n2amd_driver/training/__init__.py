"""Training: one loop (:func:`loop.fit`: seeded batches, EMA, plateau schedule, checkpoints that resume,
early stopping, metrics) and three trainers: the Hamiltonian, the MLFF and NNH forces. Each trainer reads
a YAML config whose documented defaults are its ``DEFAULTS``."""
from ..core.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "loop": ["fit", "merge_config", "read_pooled", "split_frames", "split_indices"],
    "hamiltonian": ["train_hamiltonian"],
    "forcefield": ["train_forcefield"],
    "nnh": ["fit_remainder"],
})
