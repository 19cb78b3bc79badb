"""`n2amd train hamiltonian` and `n2amd bands` end to end on a tiny dataset."""
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write

from n2amd_driver.reference_data import generate, load_config
from n2amd_driver.models.equivariance import assert_equivariant
from n2amd_driver.models.io import load_hamiltonian_model

N2AMD = [sys.executable, "-m", "n2amd_driver.cli"]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("ham") / "si.h5"
    cfg = load_config(None, {"sampling": {"method": "rattle", "temperatures": [300], "strains": [0.0, 0.01],
                                          "frames_per_condition": 2}})
    assert generate(cfg, path, workers=1, progress=False).done == 4
    return path


def test_train_resume_load_and_bands(tiny_dataset, tmp_path, training_split_domain):
    out = tmp_path / "run"
    common = ["train", "hamiltonian", "--set", f"data={tiny_dataset}", "--set", f"output={out}",
              "--set", "model.r_block=5.0", "--set", "train.band_stage_epoch=1", "--set", "train.batch_size=2"]
    r = subprocess.run(N2AMD + common + ["--set", "train.epochs=2"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "train H" in r.stderr and "meV" in r.stderr  # progress bar with live MAEs
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(x["epoch"]) for x in rows] == [0, 1] and rows[1]["stage"] == "2"
    # resume: re-running with more epochs continues from the checkpoint instead of starting over
    r = subprocess.run(N2AMD + common + ["--set", "train.epochs=3"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(x["epoch"]) for x in rows] == [0, 1, 2]  # a restart from scratch would log epochs 0, 1 again
    assert all(np.isfinite(float(x["val_H_mae_meV"])) for x in rows)
    # the model file is self-contained: one call loads it, with config, units and reference
    model = load_hamiltonian_model(out / "model.pt")
    assert model.info["units"]["hamiltonian"] == "eV" and model.info["reference"]["method"] == "GFN2-xTB"
    assert model.info["domain"] == training_split_domain(tiny_dataset, out)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    H = model.hamiltonian(atoms)
    assert H.shape == (72, 72) and np.allclose(H, H.T)
    # trained on cubic cells in one orientation (GFN2 Si has d shells, split e/t2 along the cube axes there),
    # the model is exactly equivariant: rotations, inversion, translation, permutation, another cell setting
    rattled = atoms.copy()
    rattled.rattle(0.05, seed=2)
    assert_equivariant(model, rattled)
    path = tmp_path / "si2.xyz"
    write(path, bulk("Si", "diamond", a=5.43))
    r = subprocess.run(N2AMD + ["bands", str(out / "model.pt"), str(path), "-o", str(tmp_path / "b.png"),
                                "--npoints", "12"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "VBM error" in r.stdout and (tmp_path / "b.png").stat().st_size > 10_000


def test_fine_tune_starts_from_the_init_model(tiny_dataset, tmp_path):
    """init: model.pt loads the trained weights (with lr = 0 the fine-tuned model is the init model), and a
    model of other elements is refused by name."""
    common = ["train", "hamiltonian", "--set", f"data={tiny_dataset}", "--set", "model.r_block=5.0",
              "--set", "train.batch_size=2", "--set", "train.epochs=1"]
    r = subprocess.run(N2AMD + common + ["--set", f"output={tmp_path / 'a'}"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    init = tmp_path / "a" / "model.pt"
    r = subprocess.run(N2AMD + common + ["--set", f"init={init}", "--set", f"output={tmp_path / 'b'}",
                                         "--set", "train.lr=0", "--set", "train.band_stage_epoch=0"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    H_a = load_hamiltonian_model(init).hamiltonian(atoms)
    H_b = load_hamiltonian_model(tmp_path / "b" / "model.pt").hamiltonian(atoms)
    assert np.abs(H_a).max() > 0.1 and np.allclose(H_a, H_b, atol=1e-12)
    from n2amd_driver.training.hamiltonian import initial_model

    state = torch.load(init, weights_only=False)
    with pytest.raises(ValueError, match="has no C"):
        initial_model(init, ["C", "Si"], state["config"]["basis_json"])


def test_bad_model_file_is_named(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model.pt: not a readable model file"):
        load_hamiltonian_model(bad)
    torch.save({"kind": "something else"}, bad)
    with pytest.raises(ValueError, match="model.pt: not an n2amd model file"):
        load_hamiltonian_model(bad)
    torch.save({"kind": "forcefield"}, bad)
    with pytest.raises(ValueError, match="model.pt: a 'forcefield' model file, expected hamiltonian"):
        load_hamiltonian_model(bad)


@pytest.mark.slow
def test_train_on_kmesh_labels(tmp_path):
    """pyscf k-mesh labels (per-image blocks, compact in the file) train a model whose H(R) folded onto
    the Born–von Kármán supercell is exactly its Γ-point H of that supercell; the band-energy metric of a
    k-mesh frame equals the supercell's eigenvalue error."""
    import h5py
    import scipy.linalg as sl

    from n2amd_driver.orbitals import basis_functions, bvk_overlaps, bvk_to_supercell, overlap_matrix
    from n2amd_driver.training.hamiltonian import DEFAULTS, evaluate, load_frames, train_hamiltonian

    m = (2, 2, 1)
    data = tmp_path / "si_k.h5"
    cfg = load_config(None, {"system": {"cubic": False},
                             "sampling": {"method": "rattle", "temperatures": [300], "strains": [0.0],
                                          "frames_per_condition": 3, "rattle_std": 0.05},
                             "label": {"engine": "pyscf", "method": "PBE",
                                       "options": {"basis": "gth-szv", "ke_cutoff": 40, "kmesh": list(m),
                                                   "forces": False}}})
    assert generate(cfg, data, workers=1, progress=False).done == 3
    with h5py.File(data) as f:
        g = f["frames/00000000"]
        assert g["hamiltonian"].dtype == np.float32 and g["hamiltonian"].shape == (4, 8, 8)
        assert "overlap" not in g and tuple(g["kmesh"][()]) == m and g.attrs["fold"] == "bvk"
    out = tmp_path / "run"
    train_cfg = {**DEFAULTS, "data": str(data), "output": str(out),
                 "split": {"fractions": [0.67, 0.33, 0.0], "seed": 0},
                 "model": {**DEFAULTS["model"], "r_block": 5.0},
                 "train": {**DEFAULTS["train"], "epochs": 2, "band_stage_epoch": 1, "batch_size": 2}}
    model = load_hamiltonian_model(train_hamiltonian(train_cfg, progress=False))
    assert model.info["valence_electrons"] == {"Si": 4.0}  # per atom, not per atom and k-point
    frames, _, _ = load_frames(str(data), torch.float64)
    fr = frames[0]
    bf = basis_functions("pyscf:gth-szv", ["Si"])
    np.testing.assert_allclose(fr["S"].numpy(), bvk_overlaps(bf, fr["atoms"], m), atol=1e-12)
    d = model.prepare([fr["atoms"]], overlaps=[fr["S"]], kmeshes=[m])
    with torch.no_grad():
        H_R = model.matrices(model(d), d)[0].numpy()
    supercell = fr["atoms"].repeat(m)
    S_sc = overlap_matrix(bf, supercell)
    H_sc = model.hamiltonian(supercell, overlap=S_sc)
    np.testing.assert_allclose(bvk_to_supercell(H_R, m), H_sc, atol=1e-10, rtol=0)
    eps = sl.eigh(H_sc, S_sc, eigvals_only=True)
    nocc = int(round(fr["occ"].sum() / 2))
    ev = evaluate(model, [fr], 1, "cpu", window=1e3)
    assert ev["vbm_mae_meV"] == pytest.approx(1000 * abs(eps[nocc - 1] - fr["eps"][nocc - 1].item()), rel=1e-6)
    assert ev["eig_mae_meV"] == pytest.approx(1000 * np.abs(eps - fr["eps"].numpy()).mean(), rel=1e-6)
