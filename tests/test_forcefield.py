"""The MLFF and NNH forces: derivatives, symmetries, locality, training (plain and SAM), ASE calculator."""
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from n2amd_driver import N2AMDCalculator
from n2amd_driver.models.forcefield import ForceFieldConfig, ForceFieldModel
from n2amd_driver.models.io import default_dtype
from n2amd_driver.models.nnh import NNHModel, density_matrices, fermi_occupations
from n2amd_driver.core.structure import rotate_atoms
from n2amd_driver.core.units import BOHR_ANG, HARTREE_EV

from .conftest import random_orthogonal

N2AMD = [sys.executable, "-m", "n2amd_driver.cli"]


@pytest.fixture(scope="module")
def ff():
    torch.manual_seed(0)
    cfg = ForceFieldConfig(elements=["Si", "O", "H"], hidden="16x0e+8x1o+4x1e+4x2e", layers=2,
                           energy_shift={"Si": -50.0, "O": -20.0, "H": -10.0}, energy_scale=0.7)
    with default_dtype(torch.float64):
        return ForceFieldModel(cfg).double().eval()


def skewed_si():
    a = bulk("Si", "diamond", 5.43, cubic=True)
    a.set_cell(a.cell.array @ np.array([[1.0, 0.04, 0.0], [0.03, 0.98, 0.05], [0.0, -0.02, 1.03]]), scale_atoms=True)
    a.rattle(0.08, seed=11)
    return a


def fd_energy(model, atoms, i, x, h=1e-5):
    e = []
    for s in (1, -1):
        b = atoms.copy()
        b.positions[i, x] += s * h
        e.append(model.evaluate(b, stress=False)["energy"])
    return -(e[0] - e[1]) / (2 * h)


def fd_stress(model, atoms, p, q, h=1e-5):
    e = []
    for s in (1, -1):
        E = np.zeros((3, 3))
        E[p, q] = s * h
        b = atoms.copy()
        b.set_cell(atoms.cell.array @ (np.eye(3) + E), scale_atoms=True)
        e.append(model.evaluate(b, stress=False)["energy"])
    return (e[0] - e[1]) / (2 * h) / atoms.get_volume()


def test_forces_are_minus_energy_gradient_and_stress_is_strain_derivative(ff):
    a = skewed_si()
    r = ff.evaluate(a)
    assert np.abs(r["forces"]).max() > 1e-2  # a non-trivial check
    for i, x in [(0, 0), (3, 1), (7, 2)]:
        assert r["forces"][i, x] == pytest.approx(fd_energy(ff, a, i, x), rel=1e-6, abs=1e-8)
    S = np.array([[fd_stress(ff, a, p, q) for q in range(3)] for p in range(3)])
    np.testing.assert_allclose(r["stress"], 0.5 * (S + S.T), rtol=1e-6, atol=1e-9)
    assert r["energy"] == pytest.approx(r["energies"].sum(), rel=1e-12)


@pytest.mark.parametrize("improper", [False, True])
def test_rotation_translation_permutation(ff, improper):
    a = skewed_si()
    r = ff.evaluate(a)
    Q = random_orthogonal(5 + improper, improper)
    b = rotate_atoms(a, Q, (0.7, -1.1, 2.3))
    rb = ff.evaluate(b)
    assert rb["energy"] == pytest.approx(r["energy"], rel=1e-12)
    np.testing.assert_allclose(rb["forces"], r["forces"] @ Q.T, atol=1e-10)
    np.testing.assert_allclose(rb["stress"], Q @ r["stress"] @ Q.T, atol=1e-10)
    perm = np.random.default_rng(2).permutation(len(a))
    rp = ff.evaluate(a[perm])
    assert rp["energy"] == pytest.approx(r["energy"], rel=1e-12)
    np.testing.assert_allclose(rp["forces"], r["forces"][perm], atol=1e-10)


def test_far_apart_fragments_are_additive(ff):
    w, s = molecule("H2O"), molecule("SiH4")
    w.rattle(0.05, seed=1)
    both = w + Atoms(s.numbers, s.positions + [20.0, 0, 0])
    e = ff.evaluate(both, stress=False)
    assert e["energy"] == pytest.approx(ff.evaluate(w)["energy"] + ff.evaluate(s)["energy"], rel=1e-12)
    np.testing.assert_allclose(e["forces"][:3], ff.evaluate(w)["forces"], atol=1e-12)


def test_energy_and_forces_vanish_smoothly_at_cutoff(ff):
    rc = ff.config.r_cut
    iso = 2 * ff.evaluate(Atoms("Si", positions=[[0, 0, 0]]))["energy"]

    def dimer(r):
        out = ff.evaluate(Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]]))
        return out["energy"] - iso, out["forces"][1, 0]

    e_in, f_in = zip(*[dimer(rc - d) for d in (0.2, 0.1, 0.05, 0.02)])
    assert all(abs(x) > 0 for x in e_in)
    # the envelope has zero value, slope and curvature at r_c: E ~ δ³ and F ~ δ² as δ → 0
    assert abs(e_in[3]) < abs(e_in[2]) < abs(e_in[1]) < abs(e_in[0])
    assert abs(e_in[3] / e_in[2]) < (0.02 / 0.05) ** 2.5 and abs(f_in[3] / f_in[2]) < (0.02 / 0.05) ** 1.5
    e_out, f_out = dimer(rc + 1e-6)
    assert e_out == 0.0 and f_out == 0.0


def test_wrapping_atoms_into_the_cell_changes_nothing(ff):
    a = skewed_si()
    a.positions[2] += a.cell[0] * 2 - a.cell[1]
    a.positions[5] -= a.cell[2]
    r = ff.evaluate(a)
    b = a.copy()
    b.wrap()
    rb = ff.evaluate(b)
    assert rb["energy"] == pytest.approx(r["energy"], rel=1e-12)
    np.testing.assert_allclose(rb["forces"], r["forces"], atol=1e-10)
    np.testing.assert_allclose(rb["stress"], r["stress"], atol=1e-12)


def test_unknown_element_is_named(ff):
    with pytest.raises(ValueError, match="element Ga is not in this force field"):
        ff.evaluate(bulk("GaAs", "zincblende", 5.65))


def test_ase_calculator_md_and_nonfinite_guard(ff):
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs

    a = skewed_si()
    a.calc = N2AMDCalculator(ff)
    assert a.get_stress().shape == (6,)
    np.testing.assert_allclose(a.get_stress(voigt=False), ff.evaluate(a)["stress"], atol=1e-12)
    assert a.get_potential_energies().shape == (8,)
    a.set_momenta(np.zeros((8, 3)))
    VelocityVerlet(a, 0.5 * fs).run(5)
    assert np.all(np.isfinite(a.positions))

    class Broken:
        def evaluate(self, atoms, stress=False):
            return {"energy": 0.0, "forces": np.full((len(atoms), 3), np.nan)}

    b = skewed_si()
    b.calc = N2AMDCalculator(Broken())
    with pytest.raises(FloatingPointError, match="non-finite"):
        b.get_forces()


def test_nve_run_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path):
    from n2amd_driver.md.ase_runs import nve_drift

    calc = lambda: N2AMDCalculator("si_mlff.pt")  # noqa: E731  (the bundled MLFF, float32 default)
    a = bulk("Si", "diamond", 5.43, cubic=True)
    a.rattle(0.05, seed=2)
    whole = nve_drift(a, calc(), 300.0, 40, 1.0, every=5)
    ck = tmp_path / "nve.npz"
    part = nve_drift(a, calc(), 300.0, 20, 1.0, every=5, checkpoint=ck, checkpoint_every=10)  # "killed" at 20
    assert len(part.time_fs) == 5 and ck.exists()
    resumed = nve_drift(a, calc(), 300.0, 40, 1.0, every=5, checkpoint=ck, checkpoint_every=10)
    np.testing.assert_array_equal(resumed.time_fs, whole.time_fs)
    np.testing.assert_allclose(resumed.total_eV, whole.total_eV, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="another NVE run"):
        nve_drift(a, calc(), 400.0, 40, 1.0, every=5, checkpoint=ck)
    seen = []
    hot = nve_drift(a, calc(), 300.0, 40, 1.0, every=5, max_temperature_K=1.0, observe=lambda at, s: seen.append(s))
    assert hot.stopped.startswith("temperature") and len(hot.time_fs) == 2 and seen == [0, 5]


def test_fermi_occupations_and_density_matrices():
    eps = np.array([-3.0, -2.0, -1.0, -1.0 + 1e-3, 0.5, 2.0])
    for kT in (0.0, 0.05, 0.3):
        f, mu, TS = fermi_occupations(eps, 6.0, kT)
        assert f.sum() == pytest.approx(6.0, abs=1e-10) and np.all((f >= 0) & (f <= 2))
        assert (TS == 0.0) if kT == 0 else (TS > 0)
    f, mu, TS = fermi_occupations(eps, 4.0, 1e-4)
    np.testing.assert_allclose(f, [2, 2, 0, 0, 0, 0], atol=1e-8)
    C = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
    rho, W = density_matrices(C, eps, f)
    assert np.trace(rho) == pytest.approx(4.0) and np.trace(W) == pytest.approx(2 * (-3.0 - 2.0))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from n2amd_driver.reference_data import generate, load_config

    path = tmp_path_factory.mktemp("ff") / "si.h5"
    cfg = load_config(None, {"sampling": {"method": "rattle", "temperatures": [300, 900], "strains": [0.0, 0.01],
                                          "frames_per_condition": 2},
                             "label": {"method": "GFN1-xTB"}})
    assert generate(cfg, path, workers=1, progress=False).done == 8
    return path


def test_train_forcefield_resume_and_sam(tiny_dataset, tmp_path, training_split_domain):
    from n2amd_driver.models.io import load_model as load_forcefield_model

    out = tmp_path / "ff"
    common = ["train", "forcefield", "--set", f"data={tiny_dataset}", "--set", f"output={out}",
              "--set", "model.hidden=8x0e+4x1o", "--set", "model.layers=1", "--set", "train.sam_rho=0.05",
              "--set", "split.fractions=[0.75,0.25,0.0]"]
    r = subprocess.run(N2AMD + common + ["--set", "train.epochs=3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "train FF" in r.stderr and "meV/Å" in r.stderr
    r = subprocess.run(N2AMD + common + ["--set", "train.epochs=4"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(x["epoch"]) for x in rows] == [0, 1, 2, 3]  # resumed, not restarted
    assert float(rows[-1]["val_F_mae_meV_A"]) < float(rows[0]["val_F_mae_meV_A"])  # it learns
    model = load_forcefield_model(out / "model.pt")
    assert model.info["units"]["forces"] == "eV/Å" and model.info["reference"]["method"] == "GFN1-xTB"
    assert model.info["domain"] == training_split_domain(tiny_dataset, out)
    assert model.shift.dtype == torch.float32  # float32 by default
    a = bulk("Si", "diamond", 5.43, cubic=True)
    a.calc = N2AMDCalculator(out / "model.pt")
    assert np.abs(a.get_forces()).max() < 1e-4  # perfect crystal: forces vanish by symmetry


def test_sam_step_uses_the_perturbed_gradient(tiny_dataset, float64):
    """With SAM the update direction is the gradient at w + ρ g/|g|, not at w."""
    from n2amd_driver.training.forcefield import DEFAULTS, load_frames, loss_terms, sam_step

    frames, _ = load_frames(tiny_dataset)
    t = {**DEFAULTS["train"], "sam_rho": 0.5}
    grads = {}
    for name in ("plain", "sam"):
        torch.manual_seed(0)
        m = ForceFieldModel(ForceFieldConfig(elements=["Si"], hidden="8x0e+4x1o", layers=1,
                                             energy_shift={"Si": -40.0})).double().train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-3)
        w0 = [p.detach().clone() for p in m.parameters()]
        if name == "sam":
            sam_step(m, opt, frames[:2], "cpu", t)
        else:
            loss, _ = loss_terms(m, frames[:2], "cpu", t)
            opt.zero_grad(), loss.backward(), opt.step()
        grads[name] = torch.cat([(a - p.detach()).reshape(-1) for a, p in zip(w0, m.parameters())])
    cos = torch.dot(grads["plain"], grads["sam"]) / (grads["plain"].norm() * grads["sam"].norm())
    assert 0.0 < cos < 0.999999  # a different but related direction


def test_nnh_forces_and_stress_match_finite_differences(tmp_path, tiny_dataset, float64):
    """NNH energy = band free energy of a Hamiltonian model + remainder MLFF; forces and stress from the
    surrogate Tr(ρH) − Tr(WS) equal finite differences of that energy (with and without smearing)."""
    from n2amd_driver.engines import get_engine
    from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
    from n2amd_driver.training.hamiltonian import save_model

    torch.manual_seed(3)
    basis = get_engine("tblite", method="GFN1-xTB").basis(["Si"])
    hm = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=5.0, layers=1,
                                            onsite_shift={"Si": [-14, -6, -6, -6, -1, -1, -1, -1, -1]})).eval()
    hpath = tmp_path / "h.pt"
    save_model(hm, hpath, {"valence_electrons": {"Si": 4.0}}, {"engine": "tblite", "method": "GFN1-xTB"}, {}, 0)
    r = subprocess.run(N2AMD + ["train", "nnh", "--set", f"hamiltonian={hpath}", "--set", f"data={tiny_dataset}",
                                "--set", f"output={tmp_path / 'nnh'}", "--set", "kT_eV=0.05",
                                "--set", "remainder={train: {epochs: 2}, model: {hidden: 8x0e+4x1o, layers: 1}}"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    calc = N2AMDCalculator(tmp_path / "nnh" / "model.pt")
    nnh = calc.model
    assert isinstance(nnh, NNHModel) and nnh.remainder is not None and nnh.kT == 0.05
    assert nnh.prior is not None  # the default: the reference's pair repulsion under the remainder
    a = bulk("Si", "diamond", 5.43, cubic=True)
    a.rattle(0.05, seed=2)
    res = nnh.evaluate(a)
    band = nnh.band_terms(a, stress=False)
    assert res["energy"] != pytest.approx(band["energy"])  # the remainder contributes
    for i, x in [(0, 0), (5, 2)]:
        assert res["forces"][i, x] == pytest.approx(fd_energy(nnh, a, i, x, 1e-4), rel=1e-5, abs=1e-5)
    for p, q in [(0, 0), (1, 2)]:
        assert res["stress"][p, q] == pytest.approx(fd_stress(nnh, a, p, q, 1e-4), rel=1e-5, abs=1e-6)
    a.calc = calc
    a.get_forces()
    assert calc.extras["gap_eV"] > 0 and "vbm_eV" in calc.extras
    for kT in (0.0,):  # integer occupations: same identity
        m0 = NNHModel(nnh.h, None, kT)
        f = m0.evaluate(a, stress=False)["forces"]
        assert f[3, 1] == pytest.approx(fd_energy(m0, a, 3, 1, 1e-4), rel=1e-5, abs=1e-5)


def test_nnh_forces_with_shell_potentials_match_finite_differences(float64):
    """A Hamiltonian model with shell potentials ½(v_a + v_b) S_ab (S depends on R, v on R through the
    network): NNH forces and stress still equal finite differences of the NNH energy; that energy leaves the
    cell-average potential out, the reported band edges include it."""
    from n2amd_driver.engines import get_engine
    from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel

    torch.manual_seed(5)
    basis = get_engine("tblite", method="GFN1-xTB").basis(["Si"])
    hm = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=5.0, layers=1,
                                            onsite_shift={"Si": [-14, -6, -6, -6, -1, -1, -1, -1, -1]},
                                            shell_potential="mean-field")).eval()
    with torch.no_grad():
        for p in hm.potential.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    hm.info = {"reference": {"engine": "tblite", "method": "GFN1-xTB"}, "valence_electrons": {"Si": 4.0}}
    a = bulk("Si", "diamond", 5.43, cubic=True)
    a.rattle(0.05, seed=2)
    for kT in (0.05, 0.0):
        nnh = NNHModel(hm, None, kT)
        res = nnh.evaluate(a)
        out = nnh.h(nnh.h.prepare([a]))
        assert np.abs(out["potential"].detach().numpy()).max() > 0.05
        assert np.abs(out["potential_mean_field"].detach().numpy()).max() > 0.05
        for i, x in [(0, 0), (5, 2)]:
            assert res["forces"][i, x] == pytest.approx(fd_energy(nnh, a, i, x, 1e-4), rel=1e-5, abs=1e-5)
        for p, q in [(0, 0), (1, 2)]:
            assert res["stress"][p, q] == pytest.approx(fd_stress(nnh, a, p, q, 1e-4), rel=1e-5, abs=1e-6)
        import scipy.linalg as sl

        eps_full = sl.eigh(hm.hamiltonian(a), hm.overlap(a), eigvals_only=True)
        assert res["extras"]["vbm_eV"] == pytest.approx(eps_full[15], abs=1e-8)  # 8 atoms × 4 electrons / 2 − 1


def _tblite_repulsion_eV(atoms) -> float:
    """tblite's own repulsion energy, as it prints it (the Python API returns only totals)."""
    code = f"""
import numpy as np
from tblite.interface import Calculator
B = 1 / {BOHR_ANG!r}
numbers = np.array({atoms.numbers.tolist()})
pos = np.array({atoms.positions.tolist()}) * B
cell = np.array({atoms.cell.array.tolist()}) * B
calc = Calculator("GFN1-xTB", numbers, pos, lattice=cell, periodic=np.array([True] * 3))
calc.set("verbosity", 3)
calc.set("max-iter", 1)
try:
    calc.singlepoint()
except Exception:
    pass  # one SCC cycle is enough: the repulsion is printed before it
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("repulsion energy"))
    return float(line.split()[2]) * HARTREE_EV


def test_repulsion_prior_is_tblites_repulsion():
    """The NNH prior equals GFN1-xTB's screened-Coulomb repulsion as tblite computes it (Si, GaAs, skewed
    periodic cells); its forces and stress are its derivatives."""
    from n2amd_driver.models.repulsion import PairRepulsion

    gaas = bulk("GaAs", "zincblende", 5.65, cubic=True)
    gaas.rattle(0.06, seed=4)
    for atoms in (skewed_si(), gaas):
        rep = PairRepulsion.for_method("GFN1-xTB", sorted(set(atoms.get_chemical_symbols())))
        out = rep.evaluate(atoms)
        assert out["energy"] == pytest.approx(_tblite_repulsion_eV(atoms), rel=1e-10)
        for i, x in [(0, 0), (5, 2)]:
            assert out["forces"][i, x] == pytest.approx(fd_energy(rep, atoms, i, x, 1e-5), rel=1e-6, abs=1e-7)
        for p, q in [(0, 0), (1, 2), (2, 1)]:
            assert out["stress"][p, q] == pytest.approx(fd_stress(rep, atoms, p, q, 1e-5), rel=1e-6, abs=1e-8)
        assert np.abs(out["forces"].sum(axis=0)).max() < 1e-10
    with pytest.raises(ValueError, match="GFN1-xTB parameters only"):
        PairRepulsion.for_method("GFN2-xTB", ["Si"])
    with pytest.raises(ValueError, match=r"\['Au'\]"):
        PairRepulsion.for_method("GFN1-xTB", ["Si", "Au"])


def test_files_from_before_scalar_last_layer_load_as_written():
    """A model file without the option (last layer with l > 0 outputs) loads with that layer, weights intact;
    the option changes the architecture only where the readout ignores it (fewer parameters, same kind)."""
    from n2amd_driver.models.io import forcefield_from_state

    torch.manual_seed(3)
    kw = dict(elements=["Si"], hidden="8x0e+4x1o+2x2e", layers=2, energy_shift={"Si": -40.0})
    old = ForceFieldModel(ForceFieldConfig(**kw, scalar_last_layer=False)).double().eval()
    config = old.config.to_dict()
    del config["scalar_last_layer"]  # as written before the option existed
    state = {"config": config, "state_dict": old.state_dict(), "dtype": "float64"}
    loaded = forcefield_from_state(state, "cpu")
    a = skewed_si()
    assert loaded.config.scalar_last_layer is False
    assert loaded.evaluate(a)["energy"] == pytest.approx(old.evaluate(a)["energy"], abs=1e-10)
    new = ForceFieldModel(ForceFieldConfig(**kw)).double()
    assert new.interactions[-1].irreps_out.lmax == 0 and old.interactions[-1].irreps_out.lmax == 2
    assert sum(p.numel() for p in new.parameters()) < sum(p.numel() for p in old.parameters())


def test_pooled_datasets(tiny_dataset, tmp_path):
    """``data: [a, b]`` pools frames in file order; datasets of different references are refused."""
    import shutil

    import h5py

    from n2amd_driver.training.forcefield import load_frames
    from n2amd_driver.training.hamiltonian import load_frames as load_h_frames

    one, engine = load_frames(tiny_dataset)
    two, engine2 = load_frames([tiny_dataset, tiny_dataset])
    assert len(two) == 2 * len(one) and engine2 == engine
    assert np.array_equal(two[len(one)]["forces"], one[0]["forces"])
    h_two, basis, _ = load_h_frames([tiny_dataset, tiny_dataset], torch.float64)
    assert len(h_two) == 2 * len(one) and basis
    other = tmp_path / "other.h5"
    shutil.copy(tiny_dataset, other)
    with h5py.File(other, "r+") as f:
        f.attrs["engine"] = f.attrs["engine"].replace("GFN1-xTB", "GFN2-xTB")
    with pytest.raises(ValueError, match="cannot be pooled"):
        load_frames([tiny_dataset, other])


def test_command_line_overrides_keep_non_yaml_strings():
    from n2amd_driver.core.config import parse_overrides

    o = parse_overrides(["sampling.potential.pair_coeff=* * runs/ff/model.pt Si", "data=[a.h5,b.h5]", "x.y=3"])
    assert o == {"sampling": {"potential": {"pair_coeff": "* * runs/ff/model.pt Si"}}, "data": ["a.h5", "b.h5"],
                 "x": {"y": 3}}
