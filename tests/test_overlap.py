"""Overlaps from the basis functions: against the engines' own S, derivatives, cross-geometry overlaps."""
import numpy as np
import pytest
from ase.build import bulk
from ase.spacegroup import crystal

from n2amd_driver.engines import get_engine
from n2amd_driver.orbitals.functions import BasisFunctions
from n2amd_driver.orbitals.overlap import cross_overlap, overlap_derivative, overlap_gradient, overlap_matrix

from .conftest import make_triclinic_si


def rutile_tio2():
    a = crystal(["Ti", "O"], basis=[(0, 0, 0), (0.3048, 0.3048, 0)], spacegroup=136,
                cellpar=[4.594, 4.594, 2.959, 90, 90, 90]).repeat((1, 1, 2))
    a.rattle(0.03, seed=2)
    return a


def si8():
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.05, seed=1)
    return a


def gaas8():
    a = bulk("GaAs", "zincblende", a=5.65, cubic=True)
    a.rattle(0.05, seed=1)
    return a


# tblite truncates products of primitive Gaussians at exp(−25); d–d products of diffuse Ga/As functions
# at 15–18 Å leave 1.9e-8 of the converged lattice sum out (molecular GaAs clusters agree to 3e-11).
TOL = {"Si8": 1e-8, "O8Ti4": 1e-8, "As4Ga4": 2.5e-8}


@pytest.mark.parametrize("method", ["GFN1-xTB", "GFN2-xTB"])
@pytest.mark.parametrize("make", [si8, gaas8, rutile_tio2])
def test_overlap_reproduces_tblite(method, make):
    atoms = make()
    bf = BasisFunctions.tblite(method, atoms.get_chemical_symbols())
    S = overlap_matrix(bf, atoms)
    ref = get_engine("tblite", method=method).label(atoms).overlap
    assert np.abs(S - ref).max() <= TOL[atoms.get_chemical_formula()]


def test_overlap_of_a_molecule_reproduces_tblite():
    from ase.build import molecule

    mol = molecule("CH3CH2OH")  # GFN1 H has an orthogonalised 2s shell
    bf = BasisFunctions.tblite("GFN1-xTB", mol.get_chemical_symbols())
    ref = get_engine("tblite", method="GFN1-xTB").label(mol).overlap
    np.testing.assert_allclose(overlap_matrix(bf, mol), ref, atol=1e-10)


def test_overlap_reproduces_pyscf_periodic():
    atoms = make_triclinic_si()
    engine = get_engine("pyscf", method="PBE", basis="gth-dzvp")
    cell, _ = engine._build(atoms)
    basis = engine.basis(["Si"])
    ref = basis.to_internal(np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1)), atoms.numbers)
    bf = BasisFunctions.pyscf("gth-dzvp", ["Si"])
    np.testing.assert_allclose(overlap_matrix(bf, atoms), ref, atol=1e-8)


def test_overlap_derivative_matches_finite_differences():
    atoms = si8()
    bf = BasisFunctions.tblite("GFN2-xTB", ["Si"])
    dS = overlap_derivative(bf, atoms)
    h = 1e-4
    for a, x in [(0, 0), (3, 2), (6, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, x] += h
        minus.positions[a, x] -= h
        fd = (overlap_matrix(bf, plus) - overlap_matrix(bf, minus)) / (2 * h)
        np.testing.assert_allclose(dS[a, x], fd, atol=1e-7)
    # translation invariance: the derivatives of all atoms sum to zero
    np.testing.assert_allclose(dS.sum(axis=0), 0.0, atol=1e-12)


def test_cross_overlap_limits_and_first_order_term():
    atoms = si8()
    bf = BasisFunctions.tblite("GFN2-xTB", ["Si"])
    S = overlap_matrix(bf, atoms)
    np.testing.assert_allclose(cross_overlap(bf, atoms, atoms), S, atol=1e-13)  # equal geometries
    v = np.random.default_rng(0).normal(size=atoms.positions.shape)  # Å per unit time
    G = overlap_gradient(bf, atoms)
    offs = bf.basis.orbital_offsets(atoms.numbers)
    atom_of = np.repeat(np.arange(len(atoms)), np.diff(offs))
    # d/dt <φ_a(R)|φ_b(R + v t)> at t=0 = v_B · <φ_a|∇_{R_B} φ_b> = v_B · G[:, a, b]
    first_order = np.einsum("xab,bx->ab", G, v[atom_of])
    for dt in (1e-3, 1e-4):
        moved = atoms.copy()
        moved.positions += v * dt
        S12 = cross_overlap(bf, atoms, moved)
        assert np.abs(S12 - S).max() > 0  # not the equal-time overlap
        np.testing.assert_allclose((S12 - S) / dt, first_order, atol=20 * dt)
    # same-atom s–p blocks carry a first-order term: exactly what S(t) alone would miss
    a0 = slice(offs[0], offs[1])
    assert np.abs(first_order[a0, a0]).max() > 1e-3


def test_cross_overlap_with_atoms_across_the_boundary():
    """Unwrapped positions: an atom that left the cell keeps its identity; wrapping it back would not."""
    atoms = si8()
    bf = BasisFunctions.tblite("GFN2-xTB", ["Si"])
    moved = atoms.copy()
    moved.positions += [5.43 - atoms.positions[:, 0].max() + 0.01, 0, 0]  # pushes one atom out of the box
    S_rigid = cross_overlap(bf, moved, moved)
    np.testing.assert_allclose(S_rigid, overlap_matrix(bf, atoms), atol=1e-12)  # translation invariant


@pytest.mark.parametrize("make,basis", [(gaas8, "GFN1-xTB"), (rutile_tio2, "GFN2-xTB"), (make_triclinic_si, "gth-dzvp")])
def test_radial_tables_equal_the_recurrence(make, basis):
    """Radial × solid-harmonic blocks (the default) equal Obara–Saika at every geometry: S, cross S
    (atoms moved in random directions, incl. an atom displaced by < 1e-3 Å) and the Bloch S(k)."""
    atoms = make()
    els = atoms.get_chemical_symbols()
    bf = BasisFunctions.tblite(basis, els) if "xTB" in basis else BasisFunctions.pyscf(basis, els)
    moved = atoms.copy()
    moved.positions += np.random.default_rng(3).normal(0, 0.1, atoms.positions.shape)
    moved.positions[0] = atoms.positions[0] + [2e-4, -1e-4, 3e-4]
    for kw in ({}, {"kpt": [0.1, 0.25, -0.3]}):
        a = overlap_matrix(bf, atoms, **kw)
        b = overlap_matrix(bf, atoms, method="obara-saika", **kw)
        assert np.abs(a - b).max() < 1e-12
    a, b = cross_overlap(bf, atoms, moved), cross_overlap(bf, atoms, moved, method="obara-saika")
    assert np.abs(a - b).max() < 1e-12 and np.abs(a - overlap_matrix(bf, atoms)).max() > 1e-3


def test_overlap_trace_gradients_are_the_derivatives_of_tr_ws():
    """Σ W∘S: forces from the radial tables' backward pass equal G contracted analytically; the strain
    derivative equals a central difference of scaled cells (the NNH Pulay force and stress)."""
    from n2amd_driver.orbitals.overlap import pair_cutoff_ang
    from n2amd_driver.orbitals.radial import overlap_trace_gradients

    atoms = gaas8()
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.03, 0], [0, 0.98, 0.02], [0.01, 0, 1.01]]), scale_atoms=True)
    bf = BasisFunctions.tblite("GFN1-xTB", atoms.get_chemical_symbols())
    n = bf.basis.orbital_offsets(atoms.numbers)[-1]
    W = np.random.default_rng(0).normal(size=(n, n))
    W = W + W.T
    dR, dE = overlap_trace_gradients(bf, atoms, W, pair_cutoff_ang(bf, atoms.numbers), stress=True)
    ref = np.einsum("ab,Cxab->Cx", W, overlap_derivative(bf, atoms))
    np.testing.assert_allclose(dR, ref, atol=1e-10 * np.abs(ref).max())
    h, fd = 1e-5, np.zeros((3, 3))
    for p in range(3):
        for q in range(3):
            e = np.zeros((3, 3))
            e[p, q] = h
            tr = []
            for sgn in (1, -1):
                b = atoms.copy()
                b.set_cell(atoms.cell.array @ (np.eye(3) + sgn * e), scale_atoms=True)
                tr.append(np.sum(W * overlap_matrix(bf, b)))
            fd[p, q] = (tr[0] - tr[1]) / (2 * h)
    np.testing.assert_allclose(0.5 * (dE + dE.T), 0.5 * (fd + fd.T), atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("name", ["tblite:GFN1-xTB", "pyscf:gth-dzvp-molopt-sr@0.12"])
def test_sparse_overlaps_equal_the_dense_ones(name):
    """S and S(t; t+dt) assembled sparse from the pair blocks equal the dense matrices (triclinic cell)."""
    from n2amd_driver.orbitals import basis_functions, cross_overlap, overlap_matrix

    from .conftest import make_triclinic_si

    a0 = make_triclinic_si().repeat((2, 1, 1))
    a1 = a0.copy()
    a1.positions += np.random.default_rng(0).normal(scale=0.03, size=a1.positions.shape)
    bf = basis_functions(name, a0.get_chemical_symbols())
    np.testing.assert_allclose(overlap_matrix(bf, a0, sparse=True).toarray(), overlap_matrix(bf, a0), atol=1e-14)
    np.testing.assert_allclose(cross_overlap(bf, a0, a1, sparse=True).toarray(), cross_overlap(bf, a0, a1),
                               atol=1e-14)
    with pytest.raises(ValueError, match="Γ-point"):
        overlap_matrix(bf, a0, kpt=[0.5, 0, 0], sparse=True)
