"""The equivariant Hamiltonian: exact symmetries (untrained and trained), Hermiticity, k-space, training."""
import copy

import numpy as np
import pytest
import torch

from n2amd_driver.engines import get_engine
from n2amd_driver.models.bands import model_blocks
from n2amd_driver.models.equivariance import assert_equivariant
from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
from n2amd_driver.models.io import default_dtype
from n2amd_driver.orbitals.eigen import bloch_hamiltonian

from .conftest import make_triclinic_si


def randomise_potential(model, scale=0.3):
    """Shell-potential weights start at zero; give them values so that the term is really tested."""
    with torch.no_grad():
        for p in model.potential.parameters():
            p.copy_(scale * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=["none", "mean-field"])
def gaas_model(request):
    basis = get_engine("tblite", method="GFN2-xTB").basis(["Ga", "As"])
    torch.manual_seed(0)
    with default_dtype(torch.float64):
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


def check_symmetries(model, atoms):
    H = model.hamiltonian(atoms)
    scale = np.abs(H).max()
    assert scale > 1e-3
    np.testing.assert_allclose(H, H.T, atol=1e-12 * scale)  # Hermitian (real symmetric at Γ)
    assert_equivariant(model, atoms)  # rotations, inversion, translation, permutation, cell setting


def test_untrained_model_is_exactly_equivariant(gaas_model):
    model, _ = gaas_model
    check_symmetries(model, gaas())
    check_symmetries(model, make_triclinic_si_like_gaas())


def make_triclinic_si_like_gaas():
    from ase.build import bulk

    a = bulk("GaAs", "zincblende", a=5.65).repeat((2, 1, 1))
    a.set_cell(a.cell.array @ np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.06], [-0.04, 0.01, 1.04]]),
               scale_atoms=True)
    a.rattle(0.04, seed=2)
    return a


def test_trained_model_is_exactly_equivariant(gaas_model):
    """Trained on the crystal in one orientation (where d levels split e/t2 along the cube axes), the model
    stays equivariant: nothing it learns is tied to that orientation."""
    model, _ = gaas_model
    model = copy.deepcopy(model)
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
    check_symmetries(model, atoms)


def test_onsite_shift_is_a_shell_constant():
    """The trainer's on-site reference levels are per shell (mean over m), even where the labels' on-site
    diagonal is anisotropic (GaAs in the cubic cell: Ga/As d levels split by the crystal field along the
    cube axes); a model file with per-orbital values is made isotropic, with a warning that says by how much."""
    from n2amd_driver.orbitals.conventions import Basis
    from n2amd_driver.training.hamiltonian import onsite_means

    lab = get_engine("tblite", method="GFN2-xTB").label(gaas())
    basis = Basis.from_json(get_engine("tblite", method="GFN2-xTB").basis(["Ga", "As"]).to_json())
    frame = {"atoms": gaas(), "H": torch.as_tensor(lab.hamiltonian)}
    offs = basis.orbital_offsets(frame["atoms"].numbers)
    d_block = np.diag(lab.hamiltonian)[offs[0] + 4 : offs[0] + 9]  # atom 0's d shell (s, p, d)
    assert basis.shells_of(frame["atoms"][0].symbol) == (0, 1, 2)
    assert np.ptp(d_block) > 1e-3  # the labels themselves are anisotropic
    shifts = onsite_means([frame], basis)
    for el, values in shifts.items():
        start = 0
        for l in basis.shells_of(el):
            assert np.ptp(values[start : start + 2 * l + 1]) == 0.0
            start += 2 * l + 1
    with pytest.warns(UserWarning, match="varies within a shell by up to 0.8 eV"):
        with default_dtype(torch.float64):
            m = HamiltonianModel(HamiltonianConfig(elements=["Ga", "As"], basis_json=basis.to_json(), r_block=6.0,
                                                   onsite_shift={"Ga": [0.0] * 4 + [0.0, 0.0, -1.0, 0.0, 0.0]}))
    assert torch.allclose(m.onsite_shift[m.elements.index("Ga"), 4:9], torch.full((5,), -0.2, dtype=torch.float64))


def test_blocks_are_hermitian_pairs_and_fold_to_gamma(gaas_model):
    from n2amd_driver.orbitals.functions import BasisFunctions
    from n2amd_driver.orbitals.overlap import overlap_matrix

    model, _ = gaas_model
    atoms = gaas()
    bf = BasisFunctions.tblite("GFN2-xTB", ["Ga", "As"])
    blocks = model_blocks(model, atoms)
    S0 = overlap_matrix(bf, atoms)
    np.testing.assert_allclose(bloch_hamiltonian(blocks, [0, 0, 0], S0).real, model.hamiltonian(atoms), atol=1e-12)
    k = [0.3, -0.1, 0.25]
    Hk = bloch_hamiltonian(blocks, k, overlap_matrix(bf, atoms, kpt=k))
    np.testing.assert_allclose(Hk, Hk.conj().T, atol=1e-12)  # H_ij(T) = H_ji(−T)ᵀ


def test_shell_potential_enters_as_half_v_plus_v_times_s(float64):
    """H(with potential) − H(blocks only) = ½(v_a + v_b) S_ab, v constant within a shell; the cell average
    makes a supercell give the same potentials as its primitive cell (the term is size-consistent)."""
    from ase.build import bulk

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


@pytest.mark.parametrize("lmax_sh,expected", [(2, False), (4, True)])
def test_onsite_crystal_field_of_a_tetrahedral_site_needs_lmax_sh_4(lmax_sh, expected):
    """At a perfect diamond site Σ_j Y_lm(r̂_ij) vanishes for l = 1, 2 and not for l = 3, 4, so node features
    built from Y_{l≤2} carry no l = 3, 4 part, and the on-site p–d coupling (l = 3) and the d-shell e/t2
    splitting (l = 4) that DFT on-site blocks have (1.7 eV p–d in pyscf PBE Si, gth-dzvp@0.12) cannot be
    represented. GFN1-xTB on-site blocks are atomic and need neither."""
    from ase.build import bulk

    basis = get_engine("tblite", method="GFN1-xTB").basis(["Si"])  # s, p, d
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        m = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=4.0,
                                               lmax_sh=lmax_sh, layers=2))
        on = m(m.prepare([atoms], "cpu"))["onsite"][0].detach().numpy()
    p, d = slice(1, 4), slice(4, 9)
    pd_coupling = np.abs(on[p, d]).max()
    d_splitting = np.ptp(np.diag(on)[d])
    assert (pd_coupling > 1e-6) == expected and (d_splitting > 1e-6) == expected, (pd_coupling, d_splitting)


def test_sparse_hamiltonian_equals_the_dense_one(gaas_model):
    """The sparse Γ assembly (blocks and ½(v_a + v_b) S_ab into CSR) equals the dense H, with two species of
    different orbital counts, in a triclinic cell whose pairs have several lattice images."""
    m, _ = gaas_model
    atoms = make_triclinic_gaas()
    dense = m.hamiltonian(atoms)
    H = m.sparse_hamiltonian(atoms)
    np.testing.assert_allclose(H.toarray(), dense, atol=1e-12, rtol=0)


def test_inference_in_passes_equals_one_pass(gaas_model, monkeypatch):
    """Without gradients, the off-site head runs over the block pairs in passes of BLOCK_CHUNK (bounded memory
    for large cells): the same blocks as one pass; with gradients, one pass."""
    import n2amd_driver.models.hamiltonian as hm

    m, _ = gaas_model
    atoms = make_triclinic_gaas()
    whole = m.hamiltonian(atoms)
    d = m.prepare([atoms])
    monkeypatch.setattr(hm, "BLOCK_CHUNK", 7)
    assert len(d["blk_index"][0]) > 5 * hm.BLOCK_CHUNK
    np.testing.assert_allclose(m.hamiltonian(atoms), whole, atol=1e-13, rtol=0)
    with torch.enable_grad():
        out = m(m.prepare([atoms]))
    np.testing.assert_allclose(m.matrices(out, d)[0].detach().numpy(), whole, atol=1e-13, rtol=0)


def make_triclinic_gaas():
    a = gaas()
    a.set_cell(a.cell.array @ np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.06], [-0.04, 0.01, 1.04]]),
               scale_atoms=True)
    return a


@pytest.mark.slow
def test_bundled_model_sparse_hamiltonian_on_si216():
    """The bundled Si model, sparse against dense on a rattled 216-atom cell: equal to 1e-10 eV. (Nothing is
    saved at this size: GFN1-xTB's lattice sums reach 21 Å, so S and hence H are full in a 16 Å cell.)"""
    from ase.build import bulk

    from n2amd_driver.models.io import load_hamiltonian_model

    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=3)
    H = m.sparse_hamiltonian(atoms)
    np.testing.assert_allclose(H.toarray(), m.hamiltonian(atoms), atol=1e-10, rtol=0)
