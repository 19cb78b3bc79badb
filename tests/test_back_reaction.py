"""Surface hopping with back-reaction: its limits (NNH MD, classical-path TDKS), energy conservation across hops,
the pure pieces, and the job (resume, ranks)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.io import write
from ase.md.verlet import VelocityVerlet

from n2amd_driver.core.units import AMU_A2_FS2_EV
from n2amd_driver.models.calculator import N2AMDCalculator
from n2amd_driver.models.io import load_force_model
from n2amd_driver.namd.back_reaction import Settings, SurfaceHopping, edc_decoherence, rescaling_factor


@pytest.fixture(scope="module")
def nnh():
    return load_force_model("si_nnh.pt", "cpu", None)


def si8_with_velocities(seed=0, temperature_K=600.0):
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.08, seed=7)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(8, 3)) * np.sqrt(units.kB * temperature_K / (a.get_masses()[:, None] * AMU_A2_FS2_EV))
    return a, v - v.mean(0)  # Å/fs


def test_without_hops_the_nuclei_follow_nnh_md_on_the_active_surface(nnh):
    """hopping off: the positions are those of ASE's velocity Verlet with the excited-carrier calculator, and the
    TDKS norm is kept."""
    atoms, v = si8_with_velocities()
    settings = Settings(nstates=4, hopping=False, decoherence="none")
    sh = SurfaceHopping(nnh, atoms, settings)
    tr = sh.start(atoms.positions, v, 2, seed=1)
    ref = atoms.copy()
    ref.set_velocities(v / units.fs)
    ref.calc = N2AMDCalculator(nnh.with_excitation(settings.excitation(2)))
    md = VelocityVerlet(ref, timestep=settings.dt_fs * units.fs)
    for _ in range(5):
        sh.step(tr)
        md.run(1)
    # ASE's amu is CODATA 2014, the package's CODATA 2018: 5e-9 relative in the accelerations
    np.testing.assert_allclose(tr.positions, ref.positions, rtol=0, atol=1e-8)
    np.testing.assert_allclose(tr.velocities, ref.get_velocities() * units.fs, rtol=0, atol=1e-8)
    assert tr.active == 2 and not tr.hops
    assert abs(np.sum(np.abs(tr.c) ** 2) - 1) < 1e-12
    assert np.abs(tr.c[[0, 1, 3]]).max() > 1e-3  # the amplitudes did move


def test_classical_path_tdks_equals_the_cpa_post_processor(nnh, tmp_path):
    """back_reaction and hopping off: the nuclei move on the ground-state surface and the amplitudes equal
    those that the couplings job + TDKS propagation give along the same trajectory (same couplings code)."""
    from n2amd_driver.namd.couplings_file import read_series
    from n2amd_driver.namd.couplings_job import load_config, run_couplings
    from n2amd_driver.namd.tdks import expm_hermitian, substep_hamiltonians

    atoms, v = si8_with_velocities(seed=2)
    settings = Settings(nstates=4, hopping=False, back_reaction=False, decoherence="none", nelm=10)
    sh = SurfaceHopping(nnh, atoms, settings)
    tr = sh.start(atoms.positions, v, 3, seed=1)
    frames, cs = [], [tr.c.copy()]
    for _ in range(6):
        frame = atoms.copy()
        frame.positions = tr.positions
        frames.append(frame)
        sh.step(tr)
        cs.append(tr.c.copy())
    frame = atoms.copy()
    frame.positions = tr.positions
    frames.append(frame)
    # the ground-state surface: the same path as NNH MD without a carrier
    ref = atoms.copy()
    ref.set_velocities(v / units.fs)
    ref.calc = N2AMDCalculator(nnh)
    VelocityVerlet(ref, timestep=units.fs).run(6)
    np.testing.assert_allclose(tr.positions, ref.positions, rtol=0, atol=1e-8)
    _write_exact_xyz(tmp_path / "traj.extxyz", frames)  # ASE writes 8 decimals: too few for near-degenerate states
    nocc = 16
    cfg = load_config(None, {"trajectory": str(tmp_path / "traj.extxyz"), "dt_fs": 1.0,
                             "hamiltonian": {"model": "si_nnh.pt", "dtype": "float64"},
                             "window": {"bands": [nocc + 1, nocc + 4]}, "remove_drift": False, "plots": False,
                             "device": "cpu", "output": str(tmp_path / "c.h5")})
    run_couplings(cfg, progress=False)
    series = read_series(tmp_path / "c.h5")
    np.testing.assert_allclose(series.energies[-1], tr.energies, rtol=0, atol=1e-10)
    U = expm_hermitian(substep_hamiltonians(series, settings.nelm, coupling="step"), series.dt_fs / settings.nelm)
    c = cs[0]
    for k in range(6):
        for j in range(settings.nelm):
            c = U[k, j] @ c
        np.testing.assert_allclose(c, cs[k + 1], rtol=0, atol=1e-9)
    assert np.abs(cs[-1][:3]).max() > 1e-3


def _write_exact_xyz(path, frames):
    """Extended XYZ with positions to 17 significant digits."""
    lines = []
    for f in frames:
        lattice = " ".join(f"{x:.17g}" for x in f.cell.array.ravel())
        lines += [str(len(f)), f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"']
        lines += [f"{s} {x:.17g} {y:.17g} {z:.17g}" for s, (x, y, z) in zip(f.get_chemical_symbols(), f.positions)]
    Path(path).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("carrier,start,seed", [("electron", 3, 11), ("hole", 1, 1)])
def test_hops_conserve_the_total_energy(nnh, carrier, start, seed):
    """Every accepted hop leaves E_kin + E_active unchanged (≤ 1e-6 eV), electrons and holes; the potential is the
    excited-carrier calculator's energy on the active surface; the runs here have hops."""
    atoms, v = si8_with_velocities(seed=5, temperature_K=900.0)
    settings = Settings(nstates=4, carrier=carrier)
    sh = SurfaceHopping(nnh, atoms, settings)
    tr = sh.start(atoms.positions, v, start, seed=seed)
    for _ in range(12):
        sh.step(tr)
    moved = atoms.copy()
    moved.positions = tr.positions
    assert tr.potential_eV == pytest.approx(
        nnh.with_excitation(settings.excitation(tr.active)).evaluate(moved)["energy"], abs=1e-9)
    accepted = [h for h in tr.hops if h["accepted"]]
    assert accepted, "no hop in this run: choose another seed"
    assert max(abs(h["energy_change_eV"]) for h in accepted) < 1e-6
    assert abs(np.sum(np.abs(tr.c) ** 2) - 1) < 1e-12


def test_rescaling_factor():
    rng = np.random.default_rng(0)
    m = rng.uniform(10, 70, 5)
    v = rng.normal(size=(5, 3)) * 0.01
    d = rng.normal(size=(5, 3))
    kin = lambda u: 0.5 * np.sum(m[:, None] * u**2) * AMU_A2_FS2_EV
    for dE in (-0.05, 0.0, 0.01):
        g = rescaling_factor(v, m, d, dE)
        v2 = v - g * d / m[:, None]
        assert kin(v2) == pytest.approx(kin(v) - dE, abs=1e-12)
        assert np.allclose(np.cross(v2 - v, d), 0)  # along d / m only: per atom parallel to d
    assert rescaling_factor(v, m, d, 0.0) == pytest.approx(0.0, abs=1e-15)  # the small root: no change
    assert rescaling_factor(v, m, d, 10.0) is None  # frustrated: not enough kinetic energy along d


def test_energy_based_decoherence():
    c = np.array([0.6, 0.0 + 0.48j, 0.64])
    out = edc_decoherence(c, 0, np.array([0.0, 0.05, 0.2]), kinetic_eV=1.0, dt_fs=1.0)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(1.0, abs=1e-14)
    assert abs(out[0]) > abs(c[0]) and abs(out[2]) < abs(c[2]) and abs(out[1]) < abs(c[1])
    # the further state loses more: τ ∝ 1/|ΔE|
    assert abs(out[2]) / abs(c[2]) < abs(out[1]) / abs(c[1])
    assert np.angle(out[1]) == pytest.approx(np.angle(c[1]))  # phases kept
    np.testing.assert_allclose(edc_decoherence(c, 0, np.array([0.0, 0.05, 0.2]), 0.0, 1.0), c, atol=1e-15)


@pytest.mark.slow
def test_job_resumes_and_does_not_depend_on_ranks(tmp_path):
    """hop-md: a run stopped half way and continued equals one straight run, and two MPI ranks give the same."""
    from n2amd_driver.namd.hop_md_job import load_config, run_hop_md

    atoms, v = si8_with_velocities(seed=3)
    frames = []
    for k in range(3):
        f = atoms.copy()
        f.positions = atoms.positions + 0.01 * k
        f.arrays["velocities_A_fs"] = v
        frames.append(f)
    write(tmp_path / "md.extxyz", frames, format="extxyz")
    base = {"model": "si_nnh.pt", "initial": {"trajectory": str(tmp_path / "md.extxyz"), "frames": 2},
            "trajectories": 2, "states": 4, "plots": False, "checkpoint_every": 2}
    straight = run_hop_md(load_config(None, {**base, "time_fs": 6, "output": str(tmp_path / "a")}), progress=False)
    run_hop_md(load_config(None, {**base, "time_fs": 3, "output": str(tmp_path / "b")}), progress=False)
    resumed = run_hop_md(load_config(None, {**base, "time_fs": 6, "output": str(tmp_path / "b")}), progress=False)
    a, b = np.load(tmp_path / "a" / "results.npz"), np.load(tmp_path / "b" / "results.npz")
    for key in ("active", "total_eV", "populations"):
        np.testing.assert_array_equal(a[key], b[key])
    assert straight["hops"] == resumed["hops"]
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, "-m", "n2amd_driver.namd", "hop-md",
           "-q", "--set", f"model=si_nnh.pt", "--set", f"initial.trajectory={tmp_path / 'md.extxyz'}",
           "--set", "initial.frames=2", "--set", "trajectories=2", "--set", "states=4", "--set", "plots=false",
           "--set", "time_fs=6", "--set", f"output={tmp_path / 'c'}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    c = np.load(tmp_path / "c" / "results.npz")
    for key in ("active", "total_eV", "populations"):
        np.testing.assert_allclose(a[key], c[key], rtol=0, atol=1e-12)
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["ranks"] == 2


def test_job_refuses_bad_input_by_name(tmp_path):
    from n2amd_driver.namd.hop_md_job import load_config, run_hop_md

    atoms, v = si8_with_velocities()
    write(tmp_path / "novel.extxyz", [atoms], format="extxyz")
    with_v = atoms.copy()
    with_v.arrays["velocities_A_fs"] = v
    write(tmp_path / "md.extxyz", [with_v], format="extxyz")
    base = {"initial": {"trajectory": str(tmp_path / "md.extxyz"), "frames": 1}, "time_fs": 1, "plots": False,
            "output": str(tmp_path / "out")}
    with pytest.raises(ValueError, match="needs an NNH model"):
        run_hop_md(load_config(None, {**base, "model": "si_mlff.pt"}), progress=False)
    with pytest.raises(ValueError, match="no velocities"):
        run_hop_md(load_config(None, {**base, "model": "si_nnh.pt",
                                      "initial": {"trajectory": str(tmp_path / "novel.extxyz")}}), progress=False)
    with pytest.raises(ValueError, match="decoherance"):
        load_config(None, {**base, "decoherance": "edc"})
    with pytest.raises(ValueError, match="decoherence"):
        load_config(None, {**base, "decoherence": "afssh"})
    with pytest.raises(ValueError, match="outside the 6-state window"):
        run_hop_md(load_config(None, {**base, "model": "si_nnh.pt", "initial": {**base["initial"], "state": 9}}),
                   progress=False)
