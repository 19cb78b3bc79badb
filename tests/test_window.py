"""The sparse band-window eigensolver against dense LAPACK, on the bundled Si Hamiltonian's own matrices."""
import numpy as np
import pytest
import scipy.sparse as sp
from ase.build import bulk

from n2amd_driver.models.io import load_hamiltonian_model
from n2amd_driver.orbitals.overlap import overlap_matrix
from n2amd_driver.orbitals.window import (IllConditionedOverlap, WindowNotConverged, dense_window, window_eigh)


@pytest.fixture(scope="module")
def si64_pair():
    """Sparse (H, S) of the bundled GFN1-xTB Si model at two geometries 0.01 Å apart (an MD step), and the
    window of 4 + 4 states around the gap (0-based bands)."""
    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
    a.rattle(0.05, seed=3)
    step = np.random.default_rng(4).normal(size=(len(a), 3))
    out = []
    for k in range(2):
        b = a.copy()
        b.positions += 0.01 * k * step / np.linalg.norm(step, axis=1).mean()
        S = overlap_matrix(m.basis_functions(b), b, sparse=True)
        out.append((m.sparse_hamiltonian(b, S), S))
    nocc = int(round(m.n_electrons(a) / 2))
    return out, (nocc - 4, nocc + 3)


def _same_states(w, d, S):
    """Energies and states equal (each state up to its sign): |<d_i|w_i>| = 1."""
    assert w.bands == d.bands
    assert np.abs(w.eps - d.eps).max() <= 1e-8
    ov = np.abs(np.einsum("ai,ai->i", d.C, S @ w.C))
    assert np.abs(ov - 1).max() <= 1e-8


def test_cold_and_warm_windows_equal_dense_lapack(si64_pair):
    (p0, p1), (lo, hi) = si64_pair
    w0 = window_eigh(*p0, lo, hi, buffer=4)
    assert not w0.warm and w0.residual <= 1e-8
    _same_states(w0, dense_window(*p0, lo - 4, hi + 4), p0[1])
    w1 = window_eigh(*p1, lo, hi, buffer=4, start=w0)
    assert w1.warm and w1.factorizations == 1  # σ from the previous energies lands between the right bands
    _same_states(w1, dense_window(*p1, lo - 4, hi + 4), p1[1])
    e, C = w1.select(lo, hi)
    assert len(e) == hi - lo + 1 and C.shape == (p1[0].shape[0], hi - lo + 1)


def test_a_start_from_elsewhere_in_the_spectrum_is_recovered(si64_pair):
    """A start whose energies put σ several bands off is found out by the inertia count and the window moved
    to the right bands (at the cost of more factorisations), never returned as the wrong bands."""
    (p0, _), (lo, hi) = si64_pair
    d = dense_window(*p0, lo - 4, hi + 4)
    wrong = window_eigh(*p0, lo - 6, hi - 6, buffer=4)  # the same system, window 6 bands lower
    wrong.first = d.first  # ... labelled as if it were the wanted bands
    w = window_eigh(*p0, lo, hi, buffer=4, start=wrong)
    assert w.factorizations > 1
    _same_states(w, d, p0[1])


def test_ill_conditioned_overlap_is_reported_and_projected_out(si64_pair):
    """A basis function duplicated to 1e-9 makes S nearly singular: the solver says so and returns the
    window of the basis without the duplicate."""
    (p0, _), (lo, hi) = si64_pair
    H, S = p0
    n = H.shape[0]
    e = sp.csr_matrix(([1.0], ([5], [0])), shape=(n, 1))  # a copy of basis function 5, scaled by (1 + 1e-9)
    Se, He = S @ e, H @ e
    S2 = sp.bmat([[S, Se], [Se.T, (e.T @ Se) * (1 + 1e-9)]], format="csr")
    H2 = sp.bmat([[H, He], [He.T, e.T @ He]], format="csr")
    with pytest.warns(IllConditionedOverlap, match="smallest eigenvalue"):
        w = window_eigh(H2, S2, lo, hi, buffer=4)
    d = dense_window(H, S, lo - 4, hi + 4)
    assert np.abs(w.eps - d.eps).max() <= 1e-8


def test_non_convergence_is_an_error_not_a_result(si64_pair):
    (p0, _), (lo, hi) = si64_pair
    with pytest.raises(WindowNotConverged, match="residual"):
        window_eigh(*p0, lo, hi, buffer=4, tol=1e-30)


def test_window_outside_the_spectrum_is_refused(si64_pair):
    (p0, _), _ = si64_pair
    with pytest.raises(ValueError, match="outside"):
        window_eigh(*p0, 0, p0[0].shape[0], buffer=2)


def test_a_warm_start_asks_for_as_many_nearest_states_as_its_start_needed(monkeypatch):
    """A spectrum ten times denser above the gap than below: the states nearest σ do not reach the window's
    lower end until ARPACK is asked for more of them. The cold start finds how many; the warm start asks
    for that many at once (one ARPACK run, not several) and gives the same states as LAPACK."""
    import n2amd_driver.orbitals.window as window

    rng = np.random.default_rng(0)
    n, below = 120, 60
    lam = np.concatenate([-1.0 * np.arange(below, 0, -1), 0.1 * np.arange(1, n - below + 1)])
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    L = np.eye(n) + 0.01 * rng.normal(size=(n, n))
    S, H = L @ L.T, L @ (Q * lam) @ Q.T @ L.T  # H c = ε S c has the eigenvalues lam (c = L⁻ᵀ Q e)
    H = 0.5 * (H + H.T)
    runs = []
    nearest = window._nearest
    monkeypatch.setattr(window, "_nearest", lambda *a, **k: runs.append(a[3]) or nearest(*a, **k))
    lo, hi = below - 2, below + 1
    w0 = window_eigh(sp.csr_matrix(H), sp.csr_matrix(S), lo, hi, buffer=2)
    assert w0.nearest > 4 + 4  # the guess of as many states below σ as above fell short
    runs.clear()
    w1 = window_eigh(sp.csr_matrix(H), sp.csr_matrix(S), lo, hi, buffer=2, start=w0)
    assert w1.warm and runs == [w0.nearest]
    _same_states(w1, dense_window(H, S, lo - 2, hi + 2), S)


@pytest.mark.slow
def test_si512_sparse_path_equals_dense_energies_overlaps_and_nac():
    """[K]'s check at 512 atoms with the bundled model: window energies ≤ 1e-8 eV, step overlaps and NAC ≤ 1e-8,
    sparse (CSR H, S, S(t; t+dt), warm-started window) against dense (LAPACK on the same matrices, dense). Both
    with the overlaps cut at 10 Å (|ΔS| ≤ 1.1e-5 against the basis's own 14.9 Å), as a large-cell job would."""
    from n2amd_driver.namd.couplings import correct, state_overlaps
    from n2amd_driver.orbitals.overlap import cross_overlap

    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(4)
    a.rattle(0.05, seed=5)
    step = np.random.default_rng(6).normal(size=(len(a), 3))
    frames = [a.copy() for _ in range(2)]
    frames[1].positions += 0.01 * step / np.linalg.norm(step, axis=1).mean()
    bf = m.basis_functions(a)
    nocc = int(round(m.n_electrons(a) / 2))
    lo, hi = nocc - 4, nocc + 3
    sparse, dense, start = [], [], None
    for b in frames:
        S = overlap_matrix(bf, b, sparse=True, cutoff_ang=10.0)
        H = m.sparse_hamiltonian(b, S)
        start = window_eigh(H, S, lo, hi, buffer=4, start=start)
        sparse.append(start.select(lo, hi))
        dense.append(dense_window(H.toarray(), S.toarray(), lo, hi))
    assert start.warm
    for (e, _), d in zip(sparse, dense):
        assert np.abs(e - d.eps).max() <= 1e-8
    S12 = cross_overlap(bf, *frames, sparse=True, cutoff_ang=10.0)
    O_s = state_overlaps(sparse[0][1], S12, sparse[1][1])
    O_d = state_overlaps(dense[0].C, S12.toarray(), dense[1].C)
    assert np.abs(np.abs(O_s) - np.abs(O_d)).max() <= 1e-8
    nac_s = correct(np.array([e for e, _ in sparse]), O_s[None], 1.0).nac
    nac_d = correct(np.array([d.eps for d in dense]), O_d[None], 1.0).nac
    assert np.abs(nac_s - nac_d).max() <= 1e-8 and np.abs(nac_d).max() > 1e-4


def test_atom_populations_and_participation_ratio():
    """Limits of the formula (one atom: 1/N; evenly spread: 1), and on the bundled model's Si64 band edges:
    Mulliken populations sum to 1 per state, and the states spread over the cell."""
    from n2amd_driver.orbitals.eigen import atom_populations, participation_ratio

    offsets = np.arange(0, 13, 3)  # 4 atoms × 3 orbitals, orthonormal basis
    C = np.zeros((12, 2))
    C[4, 0] = 1.0                  # on atom 1 only
    C[[0, 3, 6, 9], 1] = 0.5       # the same weight on every atom
    q = atom_populations(C, np.eye(12), offsets)
    assert np.allclose(q.sum(0), 1) and np.allclose(q[:, 0], [0, 1, 0, 0])
    assert np.allclose(participation_ratio(q), [0.25, 1.0])

    m = load_hamiltonian_model("si_hamiltonian.pt", device="cpu", dtype="float64")
    a = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
    a.rattle(0.05, seed=3)
    S = overlap_matrix(m.basis_functions(a), a, sparse=True)
    H = m.sparse_hamiltonian(a, S)
    nocc = int(round(m.n_electrons(a) / 2))
    w = window_eigh(H, S, nocc - 2, nocc + 1, buffer=0)
    offsets = m.basis.orbital_offsets(a.numbers)
    q = atom_populations(w.C, S, offsets)
    assert np.abs(q.sum(0) - 1).max() <= 1e-10
    assert np.allclose(q, atom_populations(w.C, S.toarray(), offsets), atol=1e-14)
    assert participation_ratio(q).min() > 0.5  # Bloch-like band edges of a nearly perfect crystal
