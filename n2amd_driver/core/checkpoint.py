"""Writing files so that a kill never leaves half of one: write a temporary file beside the target,
then rename it (atomic on POSIX). Every checkpoint, model file and result of the package goes through
:func:`atomic_write`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` fills a temporary file next to ``path``, which then replaces ``path`` in one step.
    The temporary name is hidden (a leading dot: no glob of the real files matches a file left by a kill),
    keeps the suffix (numpy adds ``.npz`` otherwise) and carries the process id (ranks never collide)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_npz(path, **arrays) -> Path:
    """numpy arrays as one ``.npz`` file, atomically."""
    import numpy as np

    return atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def save_torch(obj, path) -> Path:
    """``torch.save(obj)``, atomically."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
