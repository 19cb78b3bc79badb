"""NAC vectors d_ij = <ψ_i|∇ψ_j> of trained models against finite differences of their own eigenvectors."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from n2amd_driver.namd.nac_vectors import nac_vectors
from n2amd_driver.namd.sources import EngineSource, ModelSource
from n2amd_driver.orbitals.overlap import cross_overlap
from n2amd_driver.orbitals.window import dense_window

MODELS = "n2amd_driver/assets/models/"


def triclinic_si8() -> Atoms:
    """Eight Si atoms in a skewed cell, rattled so that no two window states are degenerate."""
    cell = np.array([[3.9, 0.2, 0.1], [1.8, 3.6, -0.15], [1.9, 1.2, 3.3]])
    a = Atoms("Si4", cell=cell, pbc=True,
              scaled_positions=[[0, 0, 0], [0.26, 0.24, 0.25], [0.5, 0.5, 0.02], [0.74, 0.77, 0.24]]).repeat((2, 1, 1))
    a.rattle(0.05, seed=3)
    return a


def window(source, atoms):
    nocc = int(round(source.electronic(atoms)[2] / 2))
    return nocc - 2, nocc + 1  # VBM−1 .. CBM+1


def finite_difference_couplings(source, atoms, bands, C0, coordinates, step=2e-4):
    """<ψ_i(R)|∂ψ_j/∂R_Kx> by the 4-point stencil on <ψ_i(R)|ψ_j(R + hê)> = c_i(R)ᵀ S(R; R + hê) c_j(R + hê),
    each displaced state's sign aligned with the undisplaced one."""
    bf = source.basis_functions(atoms)
    out = {}
    for k, x in coordinates:
        vals = []
        for s in (1, -1, 2, -2):
            moved = atoms.copy()
            moved.positions[k, x] += s * step
            H, S, _ = source.electronic(moved)
            C1 = dense_window(H, S, *bands).C
            O = C0.T @ cross_overlap(bf, atoms, moved) @ C1
            vals.append(O * np.sign(np.diag(O))[None, :])
        out[k, x] = (8 * (vals[0] - vals[1]) - (vals[2] - vals[3])) / (12 * step)
    return out


@pytest.mark.parametrize("model", ["si_hamiltonian.pt", pytest.param("si_pbe_hamiltonian.pt", marks=pytest.mark.slow)])
def test_nac_vectors_equal_finite_differences_of_the_eigenvectors(model):
    """Bundled models (GFN1-xTB s, p, d basis with shell potentials; pyscf gth-dzvp), float64, triclinic cell."""
    source = ModelSource(MODELS + model, device="cpu", dtype="float64")
    atoms = triclinic_si8()
    bands = window(source, atoms)
    nv = nac_vectors(source, atoms, bands)
    assert not nv.degenerate.any() and np.all(np.isfinite(nv.d))
    assert nv.method == "autograd"
    coords = [(0, 0), (3, 1), (7, 2), (5, 0)]
    fd = finite_difference_couplings(source, atoms, bands, nv.coefficients, coords)
    scale = np.abs(nv.d).max()
    assert scale > 0.1  # couplings of order 1/Å, not a vanishing test
    for (k, x), ref in fd.items():
        np.testing.assert_allclose(nv.d[:, :, k, x], ref, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(nv.d, -np.swapaxes(nv.d, 0, 1), rtol=0, atol=1e-12 * scale)
    # the diagonal of the numerators is ∂ε_i/∂R: Hellmann–Feynman in a moving basis
    moved = atoms.copy()
    h = 1e-4
    moved.positions[3, 1] += h
    back = atoms.copy()
    back.positions[3, 1] -= h
    de = (dense_window(*source.electronic(moved)[:2], *bands).eps
          - dense_window(*source.electronic(back)[:2], *bands).eps) / (2 * h)
    np.testing.assert_allclose(np.diagonal(nv.numerators[:, :, 3, 1]), de, rtol=0, atol=1e-6)


def test_degenerate_pairs_are_reported_not_divided():
    """The perfect diamond lattice has threefold degenerate band edges at Γ: those pairs are flagged, their d is
    NaN and their numerators stay finite."""
    source = ModelSource(MODELS + "si_hamiltonian.pt", device="cpu", dtype="float64")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    bands = window(source, atoms)
    nv = nac_vectors(source, atoms, bands)
    assert nv.degenerate.any()
    assert np.all(np.isnan(nv.d[nv.degenerate]))
    assert np.all(np.isfinite(nv.d[~nv.degenerate]))
    assert np.all(np.isfinite(nv.numerators))


@pytest.mark.slow
def test_engine_nac_vectors_by_finite_differences_of_h():
    """The reference engine's route (∂H by central differences of tblite's converged H) against finite differences
    of tblite's own eigenvectors; the tolerance is that of the O(ΔR²) difference of H and the SCC convergence."""
    source = EngineSource("tblite", method="GFN1-xTB")
    atoms = triclinic_si8()
    bands = window(source, atoms)
    nv = nac_vectors(source, atoms, bands, fd_step_ang=2e-3)
    assert nv.method.startswith("finite differences")
    fd = finite_difference_couplings(source, atoms, bands, nv.coefficients, [(2, 0), (6, 2)], step=2e-3)
    scale = np.abs(nv.d).max()
    for (k, x), ref in fd.items():
        np.testing.assert_allclose(nv.d[:, :, k, x], ref, rtol=0, atol=1e-3 * scale)


def test_nac_vectors_dotted_with_velocities_give_the_hst_coupling():
    """Along a short MLFF MD segment, Σ_K d_ij·Ṙ_K at time t equals the Hammes-Schiffer–Tully coupling
    (O_ij − O_ji)/(2Δt) from the states at t ± Δt/2, with an error that falls as Δt²."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from n2amd_driver.models.calculator import N2AMDCalculator
    from n2amd_driver.namd.couplings import nac_from_overlaps, state_overlaps

    source = ModelSource(MODELS + "si_hamiltonian.pt", device="cpu", dtype="float64")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.08, seed=11)
    kT = 600 * units.kB
    atoms.set_momenta(np.random.default_rng(2).normal(size=(8, 3)) * np.sqrt(kT * atoms.get_masses())[:, None])
    atoms.calc = N2AMDCalculator("si_mlff.pt", device="cpu")
    frames = [atoms.copy()]
    md = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    for _ in range(8):
        md.run(1)
        frames.append(atoms.copy())
    bands = window(source, frames[4])
    nv = nac_vectors(source, frames[4], bands)
    velocity = frames[4].get_velocities() * units.fs  # Å/fs
    exact = nv.time_derivative_couplings(velocity)
    assert np.abs(exact).max() > 1e-3  # fs⁻¹: a coupling worth testing
    bf = source.basis_functions(frames[4])
    errors, hsts = [], []
    for half in (4, 2, 1):  # Δt = 2, 1, 0.5 fs around the same midpoint
        a, b = frames[4 - half], frames[4 + half]
        Ca, Cb = (dense_window(*source.electronic(f)[:2], *bands).C for f in (a, b))
        # the gauge of the midpoint's states, carried to both ends
        Ca = Ca * np.sign(np.diag(state_overlaps(nv.coefficients, cross_overlap(bf, frames[4], a), Ca)))
        Cb = Cb * np.sign(np.diag(state_overlaps(nv.coefficients, cross_overlap(bf, frames[4], b), Cb)))
        hst = nac_from_overlaps(state_overlaps(Ca, cross_overlap(bf, a, b), Cb), 2 * half * 0.25)
        errors.append(np.abs(hst - exact).max())
        hsts.append(hst)
    assert 3.5 < errors[0] / errors[1] < 4.5 and 3.5 < errors[1] / errors[2] < 4.5  # O(Δt²)
    # with the Δt² term extrapolated away (Richardson), what is left is O(Δt⁴)
    richardson = (4 * hsts[2] - hsts[1]) / 3
    assert np.abs(richardson - exact).max() < 0.05 * errors[2]
