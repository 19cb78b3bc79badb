"""Pieces every training loop here shares: config merging, seeds, devices, EMA, checkpoints, metrics."""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import torch


def merge_config(defaults: dict, path=None, overrides: dict | None = None) -> dict:
    from ..config import load_config

    return load_config(defaults, path, overrides, relative_paths=("data", "hamiltonian"))


def dataset_paths(data) -> list[str]:
    """``data:`` of a training config: one dataset or a list of them, whose frames are pooled before the split."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data or [])
    if not paths:
        raise ValueError("no training data: set 'data:' to a dataset file or a list of them")
    return [str(p) for p in paths]


def read_pooled(data, read) -> tuple[list, dict, str]:
    """Frames of one n2amd dataset or a list of them, pooled in file order: ``read(path, group, i)`` for each
    finished frame. Returns the frames, the one reference (engine, method, settings) and the basis (JSON);
    datasets of different references or bases are refused (a model is trained on one reference)."""
    from ..data import h5format

    frames, engines, bases, paths = [], [], [], dataset_paths(data)
    for path in paths:
        with h5format.open_dataset(path) as f:
            engines.append(json.loads(f.attrs["engine"]))
            bases.append(f.attrs.get("basis", ""))
            if engines[-1] != engines[0]:
                raise ValueError(f"{path} was labelled with {engines[-1]}, {paths[0]} with {engines[0]}: "
                                 "a model is trained on one reference, so these datasets cannot be pooled")
            if json.loads(bases[-1] or "null") != json.loads(bases[0] or "null"):
                raise ValueError(f"{path} and {paths[0]} have different orbital bases: they cannot be pooled")
            frames += [read(path, f["frames"][h5format.frame_key(i)], i) for i in h5format.frame_ids(f)]
    return frames, engines[0], bases[0]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class EMA:
    """Exponential moving average of parameters (evaluation and the saved model use the average)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        # warm-up: early on the average must not drag the (rapidly improving) weights back to their start
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
            else:
                self.shadow[k].copy_(v)

    def swap_into(self, model: torch.nn.Module) -> dict:
        """Load the averages into ``model``; returns the raw weights to restore afterwards."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        return raw


class MetricsLog:
    """Append-only CSV of per-epoch metrics (survives restarts: resumed runs keep appending)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, row: dict) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves a half-written checkpoint."""
    tmp = Path(str(path) + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def make_optimizer(model: torch.nn.Module, t: dict):
    """AdamW + plateau schedule + EMA from the ``train`` section of a config."""
    opt = torch.optim.AdamW(model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=float(t["plateau_factor"]),
                                                       patience=int(t["plateau_patience"]), min_lr=float(t["min_lr"]))
    return opt, sched, EMA(model, float(t["ema"]))


def save_checkpoint(path: Path, model, opt, sched, ema: EMA, epoch: int, best: float, since_best: int) -> None:
    atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "ema": ema.shadow, "ema_updates": ema.updates, "epoch": epoch, "best": best,
                 "since_best": since_best, "rng": torch.get_rng_state()}, path)


def load_checkpoint(path: Path, model, opt, sched, ema: EMA, device) -> tuple[int, float, int]:
    """Restore a run from ``path`` if it exists; returns (first epoch to run, best score, epochs since best)."""
    if not Path(path).exists():
        return 0, float("inf"), 0
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    ema.shadow, ema.updates = state["ema"], state.get("ema_updates", 0)
    torch.set_rng_state(state["rng"])
    return state["epoch"] + 1, state["best"], state["since_best"]


def prepare_run(cfg: dict) -> tuple[Path, torch.dtype, torch.device]:
    """Output folder, default dtype and device of a training run from its config; seeds everything."""
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    dtype = {"float64": torch.float64, "float32": torch.float32}[cfg["dtype"]]
    torch.set_default_dtype(dtype)
    seed_everything(int(cfg["train"]["seed"]))
    return out, dtype, pick_device(cfg["device"])


def split_frames(frames: list, split: dict):
    """Seeded train/validation/test split; validation falls back to the training frames when empty.
    Returns (train, validation, index arrays (tr, va, te))."""
    from ..data.torch_dataset import split_indices

    tr, va, te = split_indices(len(frames), tuple(split["fractions"]), int(split["seed"]))
    return [frames[i] for i in tr], [frames[i] for i in va] or [frames[i] for i in tr], (tr, va, te)


def save_split(out: Path, indices) -> None:
    tr, va, te = indices
    (Path(out) / "split.json").write_text(json.dumps({"train": tr.tolist(), "validation": va.tolist(),
                                                      "test": te.tolist()}))


def per_element_values(structures, totals) -> dict[str, float]:
    """Per-element amounts that best explain per-structure totals (least squares over structures):
    energies per atom of each element, or valence electrons from the occupations."""
    elements = sorted({el for a in structures for el in a.get_chemical_symbols()})
    A = np.array([[a.get_chemical_symbols().count(el) for el in elements] for a in structures], float)
    x = np.linalg.lstsq(A, np.asarray(totals, float), rcond=None)[0]
    return {el: float(v) for el, v in zip(elements, x)}


def read_model_file(path, kind: str | None = None, what: str = "") -> dict:
    """The saved dict of an n2amd model file, checked to be of ``kind`` (named ``what`` in errors)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable model file: {exc}") from None
    if not isinstance(state, dict) or (kind is not None and state.get("kind") != kind):
        raise ValueError(f"{path}: not an n2amd {what or kind} model file")
    return state


def build_model(make, state_dict: dict, dtype: torch.dtype, device: str = "auto"):
    """``make()`` under ``dtype`` as default, weights loaded (cast to ``dtype``), moved to ``device``, eval mode."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = make()
    finally:
        torch.set_default_dtype(prev)
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()})
    return model.to(device=pick_device(device), dtype=dtype).eval()
