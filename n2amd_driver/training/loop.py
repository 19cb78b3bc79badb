"""The training loop every trainer here runs (:func:`fit`), and what it needs: config merging, pooled
datasets, seeded splits, EMA weights, checkpoints (re-running a training resumes it), metrics."""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import save_torch
from ..models.io import pick_device


def merge_config(schema, path=None, overrides: dict | None = None) -> dict:
    """A training config from a YAML file and overrides, checked against the trainer's ``schema`` before any
    work (paths in ``data``/``init``/``hamiltonian`` relative to the file's folder)."""
    from ..core.config import load_validated

    return load_validated(schema, path, overrides, relative_paths=("data", "hamiltonian", "init"))


def schema_sections():
    """(Section, Split, Train): the config sections every trainer shares (pydantic, checked when loaded)."""
    from typing import Literal  # noqa: F401  (for the trainers' annotations)

    from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

    from ..core.config import section_base

    Section = section_base()

    class Split(Section):
        fractions: list[NonNegativeFloat] = Field([0.8, 0.1, 0.1], min_length=3, max_length=3,
                                                  description="train / validation / test fractions (sum 1)")
        seed: int = Field(0, description="seed of the split")

        @field_validator("fractions")
        @classmethod
        def _sum_to_one(cls, v):
            if abs(sum(v) - 1.0) > 1e-9:
                raise ValueError(f"fractions must sum to 1, they sum to {sum(v):g}")
            return v

    class Train(Section):
        epochs: PositiveInt = Field(200, description="epochs at most")
        batch_size: PositiveInt = Field(2, description="structures per optimiser step")
        lr: NonNegativeFloat = Field(3e-3, description="AdamW learning rate")
        weight_decay: NonNegativeFloat = Field(0.0, description="AdamW weight decay")
        plateau_factor: PositiveFloat = Field(0.5, lt=1.0, description="learning-rate factor on a plateau")
        plateau_patience: NonNegativeInt = Field(10, description="epochs without improvement before it")
        min_lr: NonNegativeFloat = Field(1e-5, description="lowest learning rate")
        early_stopping: PositiveInt = Field(40, description="epochs without validation improvement before stopping")
        ema: float = Field(0.99, ge=0.0, lt=1.0, description="decay of the exponential moving average of the weights")
        seed: int = Field(0, description="seed of initialisation and batch order")

    return Section, Split, Train, Field


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


def make_optimizer(model: torch.nn.Module, t: dict):
    """AdamW + plateau schedule + EMA from the ``train`` section of a config."""
    opt = torch.optim.AdamW(model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=float(t["plateau_factor"]),
                                                       patience=int(t["plateau_patience"]), min_lr=float(t["min_lr"]))
    return opt, sched, EMA(model, float(t["ema"]))


def save_checkpoint(path: Path, model, opt, sched, ema: EMA, epoch: int, best: float, since_best: int) -> None:
    save_torch({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
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
    """Output folder, dtype and device of a training run from its config; seeds everything. (Trainers run
    under ``default_dtype(dtype)``, which restores torch's default afterwards.)"""
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    dtype = {"float64": torch.float64, "float32": torch.float32}[cfg["dtype"]]
    seed_everything(int(cfg["train"]["seed"]))
    return out, dtype, pick_device(cfg["device"])


def split_indices(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> list[np.ndarray]:
    """Random disjoint splits of ``range(n)`` with the given fractions (the last takes the rest)."""
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(p) for p in np.split(perm, bounds)]


def split_frames(frames: list, split: dict):
    """Seeded train/validation/test split; validation falls back to the training frames when empty.
    Returns (train, validation, index arrays (tr, va, te))."""
    tr, va, te = split_indices(len(frames), tuple(split["fractions"]), int(split["seed"]))
    return [frames[i] for i in tr], [frames[i] for i in va] or [frames[i] for i in tr], (tr, va, te)


def frames_domain(train: list, data) -> dict:
    """The training domain (closest distance per element pair, :mod:`n2amd_driver.models.domain`) of the
    training split, recorded in the model file."""
    from ..models.domain import training_domain

    return training_domain([fr["atoms"] for fr in train],
                           source=f"{', '.join(dataset_paths(data))}: training split, {len(train)} frames")


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


def descend(opt, loss: torch.Tensor) -> float:
    """One plain optimiser step on ``loss``; returns its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def fit(model, train: list, val: list, t: dict, out: Path, device, *, step, evaluate, score, save, desc: str,
        postfix, stage=None, loss_column: str = "train_loss", progress: bool = True) -> None:
    """The epoch loop of every trainer: shuffled batches (seeded), ``step(chunk, epoch, opt) -> loss`` (which
    makes the optimiser step), EMA of the weights, validation of the EMA weights (``evaluate(frames) -> metrics``),
    the best model by ``score(metrics, epoch)`` written by ``save(metrics, epoch)``, a plateau schedule,
    ``metrics.csv``, a checkpoint every epoch (a rerun resumes from it) and early stopping. ``stage(epoch)``
    numbers training stages whose scores are not comparable (a new stage's first model counts as best);
    ``t`` is the config's ``train`` section; ``postfix(metrics)`` is shown on the progress bar."""
    import time

    from tqdm.auto import tqdm

    opt, sched, ema = make_optimizer(model, t)
    ckpt = Path(out) / "checkpoint.pt"
    start, best, since_best = load_checkpoint(ckpt, model, opt, sched, ema, device)  # resume if present
    metrics = MetricsLog(Path(out) / "metrics.csv")
    rng = np.random.default_rng(int(t["seed"]) + start)
    bs = int(t["batch_size"])
    bar = tqdm(range(start, int(t["epochs"])), desc=desc, unit="epoch", disable=not progress,
               initial=start, total=int(t["epochs"]))
    t0 = time.time()
    stages = stage is not None
    stage = stage or (lambda epoch: 1)
    best_stage = stage(start - 1) if start > 0 else stage(0)
    for epoch in bar:
        if stage(epoch) != best_stage:
            best, since_best, best_stage = float("inf"), 0, stage(epoch)
        model.train()
        order = rng.permutation(len(train))
        losses = []
        for k in range(0, len(order), bs):
            losses.append(step([train[i] for i in order[k : k + bs]], epoch, opt))
            ema.update(model)
        model.eval()
        raw = ema.swap_into(model)
        ev = evaluate(val)
        value = score(ev, epoch)
        if value < best:
            best, since_best = value, 0
            save(ev, epoch)
        else:
            since_best += 1
        model.load_state_dict(raw)
        sched.step(value)
        row = {"epoch": epoch, **({"stage": stage(epoch)} if stages else {}),
               loss_column: float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
               **{f"val_{k}": v for k, v in ev.items()}, "seconds": round(time.time() - t0, 1)}
        metrics.write(row)
        bar.set_postfix(**postfix(ev), lr=f"{row['lr']:.1e}")
        save_checkpoint(ckpt, model, opt, sched, ema, epoch, best, since_best)
        if since_best >= int(t["early_stopping"]):
            bar.write(f"[n2amd] early stopping at epoch {epoch}: no validation improvement for {since_best} epochs")
            break
    bar.close()
