"""The equivariant Hamiltonian: exact symmetries (untrained and trained), Hermiticity, k-space, training."""
import numpy as np
import pytest
import torch

from n2amd_driver.electronic import bloch_hamiltonian, model_blocks
from n2amd_driver.engines import get_engine
from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
from n2amd_driver.structure import rotate_atoms

from .conftest import make_triclinic_si, random_orthogonal


def randomise_potential(model, scale=0.3):
    """Shell-potential weights start at zero; give them values so that the term is really tested."""
    with torch.no_grad():
        for p in model.potential.parameters():
            p.copy_(scale * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=["none", "mean-field"])
def gaas_model(request):
    torch.set_default_dtype(torch.float64)
    basis = get_engine("tblite", method="GFN2-xTB").basis(["Ga", "As"])
    torch.manual_seed(0)
    m = HamiltonianModel(HamiltonianConfig(elements=["Ga", "As"], basis_json=basis.to_json(), r_block=6.0,
                                           shell_potential=request.param)).double()
    if m.potential is not None:
        randomise_potential(m)
    return m, basis


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
    from n2amd_driver.orbitals import BasisFunctions
    from n2amd_driver.overlap import overlap_matrix

    model, _ = gaas_model
    atoms = gaas()
    bf = BasisFunctions.tblite("GFN2-xTB", ["Ga", "As"])
    blocks = model_blocks(model, atoms)
    S0 = overlap_matrix(bf, atoms)
    np.testing.assert_allclose(bloch_hamiltonian(blocks, [0, 0, 0], S0).real, model.hamiltonian(atoms), atol=1e-12)
    k = [0.3, -0.1, 0.25]
    Hk = bloch_hamiltonian(blocks, k, overlap_matrix(bf, atoms, kpt=k))
    np.testing.assert_allclose(Hk, Hk.conj().T, atol=1e-12)  # H_ij(T) = H_ji(−T)ᵀ


def test_shell_potential_enters_as_half_v_plus_v_times_s():
    """H(with potential) − H(blocks only) = ½(v_a + v_b) S_ab, v constant within a shell; the cell average
    makes a supercell give the same potentials as its primitive cell (the term is size-consistent)."""
    from ase.build import bulk

    torch.set_default_dtype(torch.float64)
    basis = get_engine("tblite", method="GFN1-xTB").basis(["Si"])
    torch.manual_seed(4)
    m = randomise_potential(HamiltonianModel(HamiltonianConfig(
        elements=["Si"], basis_json=basis.to_json(), r_block=5.0, r_mp=4.0, layers=1,
        shell_potential="mean-field")).double())
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=3)
    S = m.overlap(atoms)
    d = m.prepare([atoms], overlaps=[S])
    with torch.no_grad():
        out = m(d)
        v = out["potential"].numpy()
        pot, m.potential = m.potential, None
        H_blocks = m.matrices(m(d), d)[0].numpy()
        m.potential = pot
    H = m.matrices(out, d)[0].numpy()
    assert np.abs(v).max() > 0.05  # the term is really there
    np.testing.assert_allclose(H - H_blocks, 0.5 * (v[:, None] + v[None, :]) * S, atol=1e-12)
    shells = v.reshape(len(atoms), 9)
    assert np.allclose(shells[:, 1:4], shells[:, 1:2]) and np.allclose(shells[:, 4:], shells[:, 4:5])
    big = atoms.repeat((2, 1, 1))
    with torch.no_grad():
        v_big = m(m.prepare([big]))["potential"].numpy()
    np.testing.assert_allclose(v_big, np.tile(v, 2), atol=1e-10)
    # a batch of two structures gives each its own cell average
    strained = atoms.copy()
    strained.set_cell(atoms.cell * 1.02, scale_atoms=True)
    with torch.no_grad():
        vb = m(m.prepare([atoms, strained]))["potential"].numpy()
        v2 = m(m.prepare([strained]))["potential"].numpy()
    np.testing.assert_allclose(vb, np.concatenate([v, v2]), atol=1e-10)
    assert np.abs(v2 - v).max() > 1e-4
    # the mean-field input is standardised on training structures: zero mean, unit spread there
    train = [atoms, strained, big]
    m.fit_descriptor_stats(train, [m.overlap(a) for a in train])
    with torch.no_grad():
        G = torch.cat([m.cell_descriptor(m.prepare([a])) for a in train])
    z = (G - m.potential.descriptor_mean) / m.potential.descriptor_std
    np.testing.assert_allclose(z.mean(0).numpy(), 0, atol=1e-9)
    varying = G.std(0) > 1e-6
    np.testing.assert_allclose(z.std(0, unbiased=False).numpy()[varying.numpy()], 1, rtol=1e-6)
    assert m.config.descriptor_stats["mean"] == m.potential.descriptor_mean.tolist()  # saved with the config


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
