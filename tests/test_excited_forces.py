"""Excited-carrier forces of the bundled NNH model: the exact gradient of E + Σ Δf ε."""
import numpy as np
import pytest
from ase.build import bulk

from n2amd_driver.models.calculator import N2AMDCalculator
from n2amd_driver.models.io import load_force_model
from n2amd_driver.models.nnh import Excitation


@pytest.fixture(scope="module")
def nnh():
    return load_force_model("si_nnh.pt", "cpu", None)


@pytest.fixture
def si8():
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.1, seed=7)  # splits the Γ-folded band edges by ≥ 10 meV
    return a


def _energy_derivative(model, atoms, k, x, h=2.5e-4):
    """−∂E/∂R_kx by the 4-point stencil."""
    e = []
    for s in (1, -1, 2, -2):
        moved = atoms.copy()
        moved.positions[k, x] += s * h
        e.append(model.evaluate(moved, stress=False)["energy"])
    return -(8 * (e[0] - e[1]) - (e[2] - e[3])) / (12 * h)


@pytest.mark.parametrize("excitation", [Excitation.promote(), Excitation(((-2, -1.0), (1, 1.0)))],
                         ids=["VBM-to-CBM", "VBM-1-to-CBM+1"])
def test_excited_forces_equal_finite_differences(nnh, si8, excitation):
    model = nnh.with_excitation(excitation)
    out = model.evaluate(si8)
    assert out["extras"]["excited_level_spacing_eV"] > 5e-3
    ground = nnh.evaluate(si8)
    assert np.abs(out["forces"] - ground["forces"]).max() > 0.05  # the carrier changes the forces
    for k, x in [(0, 0), (3, 1), (6, 2)]:
        assert out["forces"][k, x] == pytest.approx(_energy_derivative(model, si8, k, x), abs=1e-6)
    # stress: the strain derivative of the same energy
    eps = 1e-4
    e = []
    for s in (1, -1):
        strained = si8.copy()
        strained.set_cell(si8.cell.array @ (np.eye(3) + s * eps * np.diag([0.0, 1.0, 0.0])), scale_atoms=True)
        e.append(model.evaluate(strained, stress=False)["energy"])
    assert out["stress"][1, 1] == pytest.approx((e[0] - e[1]) / (2 * eps) / si8.get_volume(), abs=1e-6)


def test_excitation_energy_is_the_level_difference(nnh, si8):
    ground = nnh.evaluate(si8)
    excited = nnh.with_excitation(Excitation.promote()).evaluate(si8)
    assert excited["energy"] - ground["energy"] == pytest.approx(ground["extras"]["gap_eV"], abs=1e-10)
    assert excited["extras"]["excitation_energy_eV"] == pytest.approx(ground["extras"]["gap_eV"], abs=1e-12)
    assert nnh.excitation is None  # the twin shares the networks, not the surface
    calc = N2AMDCalculator(nnh.with_excitation(Excitation.promote()))
    atoms = si8.copy()
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(excited["energy"], abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), excited["forces"], atol=1e-10)


def test_impossible_excitations_are_refused(nnh, si8):
    with pytest.raises(ValueError, match="sum to"):
        Excitation(((0, 1.0),))
    with pytest.raises(ValueError, match="twice"):
        Excitation(((0, 1.0), (0, -1.0)))
    with pytest.raises(ValueError, match=r"outside \[0, 2\]"):
        nnh.with_excitation(Excitation.promote(hole=-1, electron=-2)).evaluate(si8)  # into a full band
    with pytest.raises(ValueError, match="fall outside"):
        nnh.with_excitation(Excitation.promote(electron=10_000)).evaluate(si8)


def test_an_nnh_model_refuses_a_precision_or_device_it_cannot_run_in():
    """NNH runs in float64 on the CPU; asking for float32 or CUDA is refused, not silently ignored."""
    for kw in ({"dtype": "float32"}, {"device": "cuda"}):
        with pytest.raises(ValueError, match=r"si_nnh.pt: an NNH model runs in float64 on the CPU"):
            load_force_model("si_nnh.pt", **kw)
        with pytest.raises(ValueError, match=r"float64 on the CPU"):
            N2AMDCalculator("si_nnh.pt", **kw)
