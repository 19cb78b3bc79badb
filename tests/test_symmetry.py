"""The models users get are exactly equivariant: every bundled model, on a rattled cubic cell and a
rattled triclinic one, under proper and improper rotations, translations, permutations and another cell
setting (:mod:`n2amd_driver.models.equivariance`). Hamiltonian models are checked in float64 (H to 1e-10
relative, generalised eigenvalues to 1e-8 eV), force models in the precision they are shipped in."""
import numpy as np
import pytest
from ase.build import bulk

from n2amd_driver.models.equivariance import assert_equivariant, symmetry_cases
from n2amd_driver.models.io import load_model

BUNDLED = [("si_hamiltonian.pt", "Si", "float64"), ("gaas_hamiltonian.pt", "GaAs", "float64"),
           ("si_mlff.pt", "Si", None), ("si_mlff.pt", "Si", "float64"), ("si_mlff_sam.pt", "Si", None),
           ("si_nnh.pt", "Si", None), ("si_pbe_hamiltonian.pt", "Si", "float64"),
           ("si_hse06_hamiltonian.pt", "Si", "float64"), ("si_pbe_mlff.pt", "Si", None)]


def crystal(formula: str, triclinic: bool):
    proto, a = ("zincblende", 5.65) if formula == "GaAs" else ("diamond", 5.43)
    if triclinic:
        atoms = bulk(formula, proto, a=a).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.06], [-0.04, 0.01, 1.04]]),
                       scale_atoms=True)
    else:
        atoms = bulk(formula, proto, a=a, cubic=True)
    atoms.rattle(0.05, seed=7)
    return atoms


@pytest.mark.slow
@pytest.mark.parametrize("triclinic", [False, True], ids=["cubic", "triclinic"])
@pytest.mark.parametrize("name,formula,dtype", BUNDLED, ids=[f"{m}-{d or 'shipped'}" for m, _, d in BUNDLED])
def test_bundled_models_are_equivariant(name, formula, dtype, triclinic):
    model = load_model(name, dtype=dtype, device="cpu")
    assert_equivariant(model, crystal(formula, triclinic))


def test_every_bundled_model_is_checked():
    """A model file added to the package is in BUNDLED, so the check above covers it."""
    from n2amd_driver.models.io import BUNDLED as FOLDER

    assert sorted(p.name for p in FOLDER.glob("*.pt")) == sorted({name for name, _, _ in BUNDLED})


def test_symmetry_cases_are_what_they_say():
    atoms = crystal("GaAs", triclinic=True)
    cases = {c.name: c for c in symmetry_cases(atoms, seed=3)}
    assert set(cases) == {"proper rotation", "improper rotation", "translation", "permutation", "cell setting"}
    assert np.linalg.det(cases["proper rotation"].rotation) == pytest.approx(1.0)
    assert np.linalg.det(cases["improper rotation"].rotation) == pytest.approx(-1.0)
    perm = cases["permutation"]
    assert sorted(perm.permutation) == list(range(len(atoms))) and np.any(perm.permutation != np.arange(len(atoms)))
    np.testing.assert_array_equal(perm.atoms.numbers, atoms.numbers[perm.permutation])
    setting = cases["cell setting"]
    assert not np.allclose(setting.atoms.cell.array, atoms.cell.array)
    assert setting.atoms.get_volume() == pytest.approx(atoms.get_volume())
    # the same crystal: every atom sits on a lattice translate of where it was
    d = setting.atoms.positions - atoms.positions
    frac = np.linalg.solve(atoms.cell.array.T, d.T).T
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


def test_a_broken_model_fails_the_check():
    """The check is not vacuous: a Hamiltonian with a fixed anisotropic on-site term (what the per-orbital
    shift of earlier model files did) fails it, naming the case."""
    model = load_model("si_hamiltonian.pt", dtype="float64", device="cpu")

    class Anisotropic:
        basis, overlap, parameters = model.basis, model.overlap, model.parameters

        def hamiltonian(self, atoms, S=None):
            H = model.hamiltonian(atoms, S)
            H[np.arange(4, len(H), 9), np.arange(4, len(H), 9)] += 1e-3  # d_xy-like component of every atom
            return H

    with pytest.raises(AssertionError, match="proper rotation: H_rel"):
        assert_equivariant(Anisotropic(), crystal("Si", triclinic=False))
