"""The equivariant Hamiltonian: exact symmetries (untrained and trained), Hermiticity, k-space, training."""
import numpy as np
import pytest
import torch

from n2amd_driver.electronic import bloch_hamiltonian, model_blocks
from n2amd_driver.engines import get_engine
from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
from n2amd_driver.structure import rotate_atoms

from .conftest import make_triclinic_si, random_orthogonal


@pytest.fixture(scope="module")
def gaas_model():
    torch.set_default_dtype(torch.float64)
    basis = get_engine("tblite", method="GFN2-xTB").basis(["Ga", "As"])
    torch.manual_seed(0)
    m = HamiltonianModel(HamiltonianConfig(elements=["Ga", "As"], basis_json=basis.to_json(), r_block=6.0))
    return m.double(), basis


def gaas():
    from ase.build import bulk

    a = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    a.rattle(0.08, seed=9)
    return a


def check_symmetries(model, basis, atoms, tol=1e-6):
    H = model.hamiltonian(atoms)
    scale = np.abs(H).max()
    assert scale > 1e-3
    np.testing.assert_allclose(H, H.T, atol=1e-12 * scale)  # Hermitian (real symmetric at Γ)
    for improper in (False, True):
        Q = random_orthogonal(21 + improper, improper)
        H2 = model.hamiltonian(rotate_atoms(atoms, Q, (1.3, -0.4, 2.2)))  # rotation + arbitrary translation
        D = basis.rotation_matrix(atoms.numbers, Q)
        assert np.abs(H2 - D @ H @ D.T).max() <= tol * scale
    perm = np.random.default_rng(1).permutation(len(atoms))
    offs = basis.orbital_offsets(atoms.numbers)
    idx = np.concatenate([np.arange(offs[p], offs[p + 1]) for p in perm])
    assert np.abs(model.hamiltonian(atoms[perm]) - H[np.ix_(idx, idx)]).max() <= tol * scale


def test_untrained_model_is_exactly_equivariant(gaas_model):
    model, basis = gaas_model
    check_symmetries(model, basis, gaas())


def test_trained_model_is_exactly_equivariant(gaas_model):
    model, basis = gaas_model
    atoms = gaas()
    target = torch.as_tensor(get_engine("tblite", method="GFN2-xTB").label(atoms).hamiltonian)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    d = model.prepare([atoms])
    first = None
    for _ in range(5):
        loss = ((model.matrices(model(d), d)[0] - target) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first  # it did train
    check_symmetries(model, basis, atoms)


def test_blocks_are_hermitian_pairs_and_fold_to_gamma(gaas_model):
    model, _ = gaas_model
    atoms = gaas()
    blocks = model_blocks(model, atoms)
    np.testing.assert_allclose(bloch_hamiltonian(blocks, [0, 0, 0]).real, model.hamiltonian(atoms), atol=1e-12)
    Hk = bloch_hamiltonian(blocks, [0.3, -0.1, 0.25])
    np.testing.assert_allclose(Hk, Hk.conj().T, atol=1e-12)  # H_ij(T) = H_ji(−T)ᵀ


def test_unknown_element_is_named(gaas_model):
    model, _ = gaas_model
    with pytest.raises(ValueError, match="element Si is not in this model"):
        model.hamiltonian(make_triclinic_si())


def test_smooth_block_cutoff():
    """Off-site blocks vanish continuously as a pair leaves the block cutoff."""
    from ase import Atoms

    basis = get_engine("tblite", method="GFN2-xTB").basis(["Si"])
    torch.manual_seed(1)
    m = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=6.0, r_mp=4.0)).double()
    vals = []
    for r in (5.9, 5.99, 5.999):
        dimer = Atoms("Si2", positions=[[0, 0, 0], [0, 0, r]])
        vals.append(np.abs(m.hamiltonian(dimer)[:9, 9:]).max())
    assert vals[0] > vals[1] > vals[2] and vals[2] < 1e-8
