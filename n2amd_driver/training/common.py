"""Pieces every training loop here shares: config merging, seeds, devices, EMA, checkpoints, metrics."""
from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import numpy as np
import torch


def merge_config(defaults: dict, path=None, overrides: dict | None = None) -> dict:
    from ..config import load_config

    return load_config(defaults, path, overrides, relative_paths=("data", "hamiltonian"))


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
