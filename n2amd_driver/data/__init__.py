"""Datasets: the HDF5 format, torch access, configuration sampling and labelling jobs."""
from .h5format import DatasetError, open_dataset, read_atoms
from .torch_dataset import FrameDataset, StreamingFrameDataset, collate_frames, split_indices

__all__ = ["DatasetError", "FrameDataset", "StreamingFrameDataset", "collate_frames", "open_dataset",
           "read_atoms", "split_indices"]
