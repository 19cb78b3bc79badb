#!/usr/bin/env python
"""Train NequIP (the ``nequip`` package, an established equivariant MLFF) on the same data, split and epochs
as the bundled MLFF, for the force-field benchmark's side-by-side comparison.

    .venv/bin/pip install nequip==0.19.1          # once; installs beside torch 2.13 + e3nn 0.6
    .venv/bin/python scripts/nequip_baseline.py --data runs/si64_train.h5 runs/si64_mlff.h5 --out runs/nequip_si64
    → runs/nequip_si64/best.ckpt, read by scripts/bench_forcefield.py --nequip runs/nequip_si64/best.ckpt

Same as `train_ff_si64.yaml`: the same datasets pooled in the same order, the seeded 90/10 split (seed 0)
of those frames, 150 epochs, batch 2,
lr 5e-3 with a plateau schedule, EMA, early stopping after 30 flat epochs, loss per-atom energy + forces +
100 × stress (ASE sign, eV/Å³), r_cut 5 Å, 2 interaction layers, l ≤ 2, 8 radial Bessel functions,
float32. Features: 16 channels per l, the last layer scalars only (the bundled MLFF: 32x0e + 16x1o + 8x2e,
a 16-channel species embedding, the last layer scalars only).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_split(data, out: Path, seed: int = 0) -> tuple[Path, Path]:
    """The bundled MLFF's train/validation frames as extxyz files NequIP's ASE data module reads."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from n2amd_driver.training.loop import split_frames
    from n2amd_driver.training.forcefield import load_frames

    frames, _ = load_frames(data)
    train, val, _ = split_frames(frames, {"fractions": [0.9, 0.1, 0.0], "seed": seed})
    paths = []
    for name, subset in (("train", train), ("val", val)):
        images = []
        for fr in subset:
            a = fr["atoms"].copy()
            a.calc = SinglePointCalculator(a, energy=fr["energy"], forces=fr["forces"], stress=fr["stress"])
            images.append(a)
        p = out / f"{name}.xyz"
        ase.io.write(p, images, format="extxyz")
        paths.append(p)
    return paths[0], paths[1]


def config(train_xyz: Path, val_xyz: Path, epochs: int, seed: int) -> dict:
    monitored = "val0_epoch/weighted_sum"
    loader = {"_target_": "torch.utils.data.DataLoader", "batch_size": 2, "num_workers": 0}
    return {
        "run": ["train"],
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule", "seed": seed,
            "train_file_path": str(train_xyz), "val_file_path": str(val_xyz),
            "transforms": [{"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                            "model_type_names": ["Si"], "chemical_species_to_atom_type_map": {"Si": "Si"}},
                           {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": 5.0}],
            "train_dataloader": {**loader, "shuffle": True}, "val_dataloader": loader,
            "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager", "type_names": ["Si"],
                              "dataloader_kwargs": {"batch_size": 2}},
        },
        "trainer": {
            "_target_": "lightning.Trainer", "accelerator": "cpu", "max_epochs": epochs, "logger": False,
            "enable_progress_bar": True, "check_val_every_n_epoch": 1, "log_every_n_steps": 10,
            "callbacks": [
                {"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitor": monitored, "patience": 30},
                {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "monitor": monitored,
                 "dirpath": "${hydra:runtime.output_dir}", "filename": "best", "save_last": True}],
        },
        "training_module": {
            "_target_": "nequip.train.EMALightningModule", "ema_decay": 0.99,
            "loss": {"_target_": "nequip.train.EnergyForceStressLoss", "per_atom_energy": True,
                     "coeffs": {"total_energy": 1.0, "forces": 1.0, "stress": 100.0}},
            "val_metrics": {"_target_": "nequip.train.EnergyForceStressMetrics",
                            "coeffs": {"per_atom_energy_mae": 1.0, "forces_mae": 1.0, "stress_mae": 0.0}},
            "optimizer": {"_target_": "torch.optim.Adam", "lr": 5.0e-3},
            "lr_scheduler": {"scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "factor": 0.5,
                                           "patience": 8, "min_lr": 1e-6},
                             "monitor": monitored, "interval": "epoch", "frequency": 1},
            "model": {
                "_target_": "nequip.model.NequIPGNNModel", "seed": seed, "model_dtype": "float32",
                "type_names": ["Si"], "r_max": 5.0, "num_bessels": 8, "polynomial_cutoff_p": 6,
                "num_layers": 2, "l_max": 2, "parity": False, "num_features": 16,
                "radial_mlp_depth": 2, "radial_mlp_width": 32,
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
                "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
            },
        },
        "global_options": {"allow_tf32": False},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["runs/si64_train.h5"],
                    help="dataset(s), pooled in this order before the split, as the MLFF's 'data:' list")
    ap.add_argument("--out", default="runs/nequip_si64")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tr, va = write_split(a.data, out, a.seed)
    (out / "nequip_si64.yaml").write_text(yaml.safe_dump(config(tr, va, a.epochs, a.seed), sort_keys=False))
    train = Path(sys.executable).parent / "nequip-train"
    subprocess.run([str(train), "-cp", str(out), "-cn", "nequip_si64.yaml", f"hydra.run.dir={out}"], check=True)
    print(f"[nequip] best checkpoint: {out / 'best.ckpt'}")


if __name__ == "__main__":
    main()
