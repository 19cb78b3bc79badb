"""Couplings along MD trajectories: trajectory readers, overlaps between steps, phase correction, NAC, the MPI
job (chunk boundaries, rank independence, resume), exports. Reference: tblite GFN1-xTB on 8-atom Si cells."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from n2amd_driver.namd.couplings import correct, nac_from_overlaps, phase_signs, state_overlaps, tracking_permutations
from n2amd_driver.data.trajectory import TrajectoryError, read_trajectory, remove_drift, unwrap

ROOT = Path(__file__).resolve().parents[1]
WINDOW = {"valence": 3, "conduction": 3, "bands": None}


@pytest.fixture(scope="module")
def si8_dump(tmp_path_factory):
    from n2amd_driver.md.lammps_library import classical_trajectory

    path = tmp_path_factory.mktemp("traj") / "si8.dump"
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    return classical_trajectory(atoms, path, 600.0, 8, timestep_fs=1.0, every=1, equilibration_fs=200.0, seed=5)


@pytest.fixture(scope="module")
def source():
    from n2amd_driver.namd.sources import EngineSource

    return EngineSource("tblite", method="GFN1-xTB")


# ---- pure functions -----------------------------------------------------------------------------------------------
def test_phase_signs_and_nac_antisymmetry():
    rng = np.random.default_rng(0)
    n, M = 5, 6
    # slowly rotating orthonormal states with random sign flips per snapshot
    base = [np.eye(n)]
    for k in range(M):
        A = 0.02 * rng.normal(size=(n, n))
        A = A - A.T
        base.append(base[-1] @ (np.eye(n) + A + A @ A / 2))
    flips = rng.choice([-1.0, 1.0], size=(M + 1, n))
    C = [b * f for b, f in zip(base, flips)]
    O = np.array([C[k].T @ C[k + 1] for k in range(M)])
    res = correct(np.tile(np.arange(n, dtype=float), (M + 1, 1)), O, dt_fs=1.0)
    assert np.all(np.diagonal(res.overlaps, axis1=1, axis2=2) > 0)
    np.testing.assert_allclose(res.nac, -np.swapaxes(res.nac, 1, 2), atol=0)
    np.testing.assert_array_equal(res.signs, flips * flips[0])  # the accumulated signs undo the random flips


def test_tracking_follows_character_through_a_swap():
    n = 3
    O = np.array([np.eye(n), np.eye(n)[:, [1, 0, 2]], np.eye(n)])  # states 0 and 1 swap energy order at step 1
    perm = tracking_permutations(O)
    np.testing.assert_array_equal(perm[2], [1, 0, 2])
    res = correct(np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2.0]]), O, 1.0, track=True)
    assert res.reorderings == 1
    np.testing.assert_allclose(res.energies[2], [1, 0, 2])
    np.testing.assert_allclose(res.nac, 0, atol=1e-15)
    np.testing.assert_array_equal(perm[3], [1, 0, 2])  # the labels keep following the character afterwards
    untracked = correct(np.zeros((4, 3)), O, 1.0, track=False)
    assert untracked.overlaps[1, 0, 0] == 0 and untracked.overlaps[1, 0, 1] == 1  # without tracking, state 0 "jumps"


def test_nac_formula_two_level_rotation():
    """|1>,|2> rotating by angle θ per step: d_12 = −sin θ / dt to first order (Hammes-Schiffer–Tully: (O12 − O21)/2dt)."""
    th, dt = 0.01, 0.5
    O = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    d = nac_from_overlaps(O[None], dt)[0]
    assert d[0, 1] == pytest.approx(-np.sin(th) / dt)
    assert phase_signs(O[None]).shape == (2, 2)


# ---- trajectories -------------------------------------------------------------------------------------------------
def test_lammps_dump_reader(si8_dump):
    frames = read_trajectory(si8_dump)
    assert len(frames) == 9 and frames[0].get_chemical_symbols() == ["Si"] * 8
    v = frames[3].arrays["velocities_A_fs"]
    # velocity Verlet makes x(t+dt) − x(t−dt) = 2 dt v(t) exactly: the central difference of the unwrapped
    # positions (1 fs apart) equals the dumped velocity (Å/ps, read as Å/fs) to the dump's 10 decimals
    fd = (frames[4].positions - frames[2].positions) / 2.0
    assert np.abs(fd - v).max() < 1e-8 and np.sqrt((v**2).mean()) > 1e-3
    # the raw dump holds Å/ps: the reader divides by 1000
    lines = si8_dump.read_text().splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("ITEM: ATOMS"))
    cols = lines[header].split()[2:]
    first = dict(zip(cols, lines[header + 1].split()))
    assert float(first["vx"]) / 1000 == pytest.approx(frames[0].arrays["velocities_A_fs"][int(first["id"]) - 1, 0],
                                                     rel=1e-12)


def test_lammps_dump_types_and_errors(tmp_path):
    txt = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 5\n0 5\n0 5\n"
           "ITEM: ATOMS id type x y z ix iy iz\n2 1 1.0 1.0 1.0 1 0 0\n1 2 4.0 4.0 4.0 0 0 -1\n")
    p = tmp_path / "a.dump"
    p.write_text(txt)
    with pytest.raises(TrajectoryError, match="type map"):
        read_trajectory(p)
    a = read_trajectory(p, type_map=["Ga", "As"])[0]
    assert a.get_chemical_symbols() == ["As", "Ga"]  # sorted by id
    np.testing.assert_allclose(a.positions, [[4, 4, -1], [6, 1, 1]])  # image flags unwrap
    with pytest.raises(TrajectoryError, match="not in the type map"):
        read_trajectory(p, type_map=["Ga"])
    p.write_text(txt[:-20])
    with pytest.raises(TrajectoryError, match="line|truncated|columns"):
        read_trajectory(p, type_map=["Ga", "As"])
    p.write_text(txt.replace(" type ", " element ").replace("2 1 1.0", "2 Xx 1.0"))
    with pytest.raises(TrajectoryError, match="unknown element"):
        read_trajectory(p)


def test_ipi_xyz_reader_and_extxyz(tmp_path):
    import ase.io

    from n2amd_driver.core.units import BOHR_ANG

    p = tmp_path / "sim.pos_0.xyz"
    p.write_text("2\n# CELL(abcABC):   10.0  10.0  12.0  90.00000  90.00000  90.00000  Step: 7  Bead: 0 "
                 "positions{atomic_unit}  cell{atomic_unit}\nSi 1.0 2.0 3.0\nSi 0.0 0.0 0.0\n")
    a = read_trajectory(p)[0]
    assert a.info["timestep"] == 7
    np.testing.assert_allclose(a.cell.lengths(), np.array([10, 10, 12]) * BOHR_ANG)
    np.testing.assert_allclose(a.positions[0], np.array([1, 2, 3]) * BOHR_ANG)
    q = tmp_path / "t.extxyz"
    b = bulk("Si", "diamond", a=5.43)
    ase.io.write(q, [b, b], format="extxyz")
    assert len(read_trajectory(q)) == 2


def test_unwrap_and_drift():
    a = bulk("Si", "diamond", a=5.43, cubic=True)
    b = a.copy()
    b.positions[0] += [-0.1, 0, 0]
    b.wrap()  # atom 0 re-enters on the other side
    u = unwrap([a, b])
    np.testing.assert_allclose(u[1].positions[0], a.positions[0] + [-0.1, 0, 0], atol=1e-12)
    c = a.copy()
    c.positions += [0.3, -0.2, 0.1]
    r = remove_drift([a, c])
    np.testing.assert_allclose(r[1].positions, a.positions, atol=1e-12)


# ---- physics of the overlaps --------------------------------------------------------------------------------------
def test_self_overlap_identity_and_static_zero_nac(source):
    from n2amd_driver.namd.couplings_job import snapshot
    from n2amd_driver.orbitals.overlap import cross_overlap

    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.05, seed=2)
    snap = snapshot(source, a, WINDOW)
    eps, C = snap["eps"], snap["C"]
    O = state_overlaps(C, cross_overlap(source.basis_functions(a), a, a), C)
    np.testing.assert_allclose(O, np.eye(len(eps)), atol=1e-7)  # basis S vs tblite S agree to ~1e-8
    res = correct(np.array([eps, eps]), O[None], 1.0)
    assert np.abs(res.nac).max() < 1e-7


def test_rigid_translation_coupling_is_the_momentum_matrix_element(source):
    """Without drift removal, translating every atom by δ gives d_ij = −(δ/dt)·<ψ_i|∇ψ_j> (analytic gradient
    integrals): the basis-motion term that only the cross-time overlap S(t; t+dt) contains (S(t) alone gives 0).
    This spurious coupling of a uniform translation is why the job removes the centre-of-mass drift."""
    from n2amd_driver.namd.couplings_job import snapshot
    from n2amd_driver.orbitals.overlap import cross_overlap, overlap_gradient

    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.05, seed=1)
    delta = np.array([0.004, -0.002, 0.003])
    b = a.copy()
    b.positions += delta
    sa, sb = snapshot(source, a, WINDOW), snapshot(source, b, WINDOW)
    ea, Ca, eb, Cb = sa["eps"], sa["C"], sb["eps"], sb["C"]
    bf = source.basis_functions(a)
    res = correct(np.array([ea, eb]), state_overlaps(Ca, cross_overlap(bf, a, b), Cb)[None], 1.0)
    C = Ca * res.signs[0]
    grad = -np.einsum("ai,xab,bj->xij", C, overlap_gradient(bf, a), C)  # <ψ_i|∇ψ_j>, Å⁻¹
    predicted = -np.einsum("x,xij->ij", delta, grad)
    assert np.abs(predicted).max() > 3e-4  # a real effect (×1000 the tolerance below) at this displacement
    np.testing.assert_allclose(res.nac[0], predicted, atol=2e-7)
    wrong = correct(np.array([ea, eb]), state_overlaps(Ca, source.electronic(a)[1], Cb)[None], 1.0)
    assert np.abs(wrong.nac).max() < 1e-9


# ---- the job ------------------------------------------------------------------------------------------------------
def _cfg(tmp, dump, **kw):
    from n2amd_driver.namd.couplings_job import load_config

    over = {"trajectory": str(dump), "dt_fs": 1.0, "hamiltonian": {"engine": "tblite", "method": "GFN1-xTB"},
            "window": WINDOW, "output": str(tmp / "c.h5"), "plots": False}
    over.update(kw)
    return load_config(None, over)


def test_job_static_and_translated_trajectories_give_zero_nac(tmp_path):
    import ase.io

    from n2amd_driver.namd.couplings_job import run_couplings
    from n2amd_driver.namd.couplings_file import read_series

    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.rattle(0.04, seed=3)
    frames = [a.copy() for _ in range(3)]
    for k, f in enumerate(frames):
        f.positions += k * np.array([0.01, 0.02, -0.015])  # rigid translation
    ase.io.write(tmp_path / "t.extxyz", frames, format="extxyz")
    run_couplings(_cfg(tmp_path, tmp_path / "t.extxyz"), progress=False)
    s = read_series(tmp_path / "c.h5")
    assert s.nac.shape == (2, 6, 6)
    assert np.abs(s.nac).max() < 1e-7
    np.testing.assert_allclose(s.energies[0], s.energies[2], atol=1e-6)


def test_job_chunks_ranks_resume_and_exports(tmp_path, si8_dump):
    """Same NAC whatever the chunking (1 vs 2 MPI ranks), after a resume from partial checkpoints, and through
    the Hefei-NAMD export/import round trip."""
    import h5py

    from n2amd_driver.namd.couplings_job import run_couplings
    from n2amd_driver.namd.hefei import read_hefei
    from n2amd_driver.namd.couplings_file import read_series

    cfg = _cfg(tmp_path, si8_dump, exports={"hefei": str(tmp_path / "hefei"), "pyxaid": str(tmp_path / "pyxaid")},
               plots=True, keep_checkpoint=True)
    one = run_couplings(cfg, progress=False)
    s1 = read_series(tmp_path / "c.h5")
    assert one["snapshots"] == 9 and s1.nac.shape == (8, 6, 6)
    np.testing.assert_allclose(s1.nac, -np.swapaxes(s1.nac, 1, 2), atol=0)
    with h5py.File(tmp_path / "c.h5") as f:
        assert np.all(np.diagonal(f["overlaps"][()], axis1=1, axis2=2) > 0.9)
    for png in ("c_energies.png", "c_nac.png", "c_nac_map.png"):
        assert (tmp_path / png).stat().st_size > 1000
    # Hefei-NAMD round trip
    back, inp = read_hefei(tmp_path / "hefei")
    np.testing.assert_allclose(back.nac, s1.nac, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(back.energies, s1.energies, atol=1e-9)
    assert inp["BMIN"] == s1.bands[0] and inp["BMAX"] == s1.bands[-1]
    assert len(list((tmp_path / "pyxaid").glob("Ham_*_re"))) == 8

    # resume: drop half the checkpoints and re-run with the same config → identical
    ck = Path(str(tmp_path / "c.h5") + ".ckpt")
    for f in sorted(ck.glob("*.npz"))[::2]:
        f.unlink()
    run_couplings(cfg, progress=False)
    np.testing.assert_array_equal(read_series(tmp_path / "c.h5").nac, s1.nac)

    # two MPI ranks (chunk boundary in the middle of the trajectory), fresh checkpoints
    out2 = tmp_path / "c2.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, "-m", "n2amd_driver.namd", "couplings",
           "--set", f"trajectory={si8_dump}", "--set", "dt_fs=1.0", "--set", "hamiltonian.engine=tblite",
           "--set", "hamiltonian.method=GFN1-xTB", "--set", "window.valence=3", "--set", "window.conduction=3",
           "--set", f"output={out2}", "--set", "plots=false", "-q", str(ROOT / "tests" / "data" / "empty.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    s2 = read_series(out2)
    assert s2.meta["nranks"] == 2
    np.testing.assert_allclose(s2.nac, s1.nac, atol=1e-12)
    np.testing.assert_allclose(s2.energies, s1.energies, atol=1e-12)


def test_job_bad_inputs(tmp_path):
    from n2amd_driver.namd.couplings_job import load_config, run_couplings

    with pytest.raises(ValueError, match="dt_fs"):
        load_config(None, {"trajectory": "x.dump"})
    (tmp_path / "bad.dump").write_text("ITEM: TIMESTEP\nzero\n")
    with pytest.raises(TrajectoryError):
        run_couplings(_cfg(tmp_path, tmp_path / "bad.dump"), progress=False)
    with pytest.raises(ValueError, match="outside"):
        from n2amd_driver.namd.couplings import window_bands

        window_bands(32, 72, bands=[1, 100])


# ---- what a rerun does with finished work, and inputs that must not be taken as they are ----------------------
def _dump_with_steps(tmp_path, si8_dump, steps, name="steps.dump"):
    """The Si8 dump with its TIMESTEP lines replaced by ``steps`` (one per frame, as many frames as steps)."""
    text = si8_dump.read_text().split("ITEM: TIMESTEP\n")[1:]
    frames = ["ITEM: TIMESTEP\n" + f"{t}\n" + body.split("\n", 1)[1] for t, body in zip(steps, text)]
    path = tmp_path / name
    path.write_text("".join(frames))
    return path


def test_changed_settings_are_refused_and_checkpoints_kept(tmp_path, si8_dump):
    from n2amd_driver.namd.couplings_job import run_couplings

    run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 4}), progress=False)
    ck = Path(str(tmp_path / "c.h5") + ".ckpt")
    before = sorted(p.name for p in ck.glob("*.npz"))
    assert len(before) == 4 + 3  # kept after the job by default
    with pytest.raises(ValueError, match=r"other settings \(window.conduction: 3 → 2\).*nothing was deleted"):
        run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 4}, window={"valence": 3, "conduction": 2}),
                      progress=False)
    with pytest.raises(ValueError, match=r"dt_fs: 1.0 → 2.0"):
        run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 4}, dt_fs=2.0), progress=False)
    assert sorted(p.name for p in ck.glob("*.npz")) == before


def test_more_frames_compute_only_the_new_snapshots(tmp_path, si8_dump, monkeypatch):
    from n2amd_driver.namd import couplings_job
    from n2amd_driver.namd.couplings_file import read_series

    short = couplings_job.run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 5}), progress=False)
    assert short["snapshots"] == 5
    computed = []
    original = couplings_job.snapshot
    monkeypatch.setattr(couplings_job, "snapshot", lambda *a: computed.append(1) or original(*a))
    long = couplings_job.run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 9}), progress=False)
    assert long["snapshots"] == 9 and len(computed) == 4  # frames 5..8 only
    extended = read_series(tmp_path / "c.h5")
    fresh = couplings_job.run_couplings(_cfg(tmp_path, si8_dump, output=str(tmp_path / "fresh.h5")), progress=False)
    assert fresh["snapshots"] == 9
    np.testing.assert_allclose(extended.nac, read_series(tmp_path / "fresh.h5").nac, atol=1e-12)


def test_compact_checkpoints_keep_the_results_and_only_the_last_states(tmp_path, si8_dump):
    """compact_checkpoint drops each snapshot's states once both its steps are written: the same couplings,
    checkpoints without C but the last one, a rerun with more frames continues from it, and a run killed
    after some snapshots resumes."""
    from n2amd_driver.namd import couplings_job
    from n2amd_driver.namd.couplings_file import read_series

    ref = couplings_job.run_couplings(_cfg(tmp_path, si8_dump, output=str(tmp_path / "ref.h5")), progress=False)
    ck = tmp_path / "c.h5.ckpt"
    couplings_job.run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 5}, compact_checkpoint=True),
                                progress=False)
    with_states = [f.name for f in sorted(ck.glob("snap_*.npz")) if "C" in np.load(f).files]
    assert with_states == ["snap_000004.npz"]
    # killed before the last two snapshots of a longer run: the rest resumes, the seam included
    couplings_job.run_couplings(_cfg(tmp_path, si8_dump, frames={"stop": 7}, compact_checkpoint=True),
                                progress=False)
    for k in (5, 6):
        (ck / f"snap_{k:06d}.npz").unlink()
    (ck / "ovl_000005.npz").unlink()
    long = couplings_job.run_couplings(_cfg(tmp_path, si8_dump, compact_checkpoint=True), progress=False)
    assert long["snapshots"] == ref["snapshots"] == 9
    with_states = [f.name for f in sorted(ck.glob("snap_*.npz")) if "C" in np.load(f).files]
    assert with_states == ["snap_000008.npz"]
    a, b = read_series(tmp_path / "c.h5"), read_series(tmp_path / "ref.h5")
    np.testing.assert_allclose(a.nac, b.nac, atol=1e-12)
    np.testing.assert_allclose(a.energies, b.energies, atol=1e-12)
    # 2 ranks: the chunk seam is computed from the first snapshot of the second chunk before it is compacted
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, "-m", "n2amd_driver.namd", "couplings",
           "--set", f"trajectory={si8_dump}", "--set", "dt_fs=1.0", "--set", "hamiltonian.engine=tblite",
           "--set", "hamiltonian.method=GFN1-xTB", "--set", "window.valence=3", "--set", "window.conduction=3",
           "--set", "compact_checkpoint=true", "--set", f"output={tmp_path / 'two.h5'}", "--set", "plots=false",
           "-q", str(ROOT / "tests" / "data" / "empty.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    two = read_series(tmp_path / "two.h5")
    assert two.meta["nranks"] == 2
    np.testing.assert_allclose(two.nac, b.nac, atol=1e-12)
    ck2 = tmp_path / "two.h5.ckpt"
    assert [f.name for f in sorted(ck2.glob("snap_*.npz")) if "C" in np.load(f).files] == ["snap_000008.npz"]


def test_uneven_md_steps_are_refused_unless_a_grid_is_given(tmp_path, si8_dump):
    from n2amd_driver.namd.couplings_job import load_frames

    path = _dump_with_steps(tmp_path, si8_dump, [0, 1, 2, 4, 5, 6, 7, 8, 9])
    with pytest.raises(TrajectoryError, match=r"frame 2 is step 2 and frame 3 step 4, where most consecutive "
                                              r"frames are 1 apart"):
        load_frames(_cfg(tmp_path, path))
    # 0, 2, 4, 6, 8 are on a 2-step grid: kept, with dt_fs the time between them
    frames, dt = load_frames(_cfg(tmp_path, path, frames={"timestep_spacing": 2}, dt_fs=2.0))
    assert [a.info["timestep"] for a in frames] == [0, 2, 4, 6, 8] and dt == 2.0


def test_truncated_dump_frames_before_stop_are_usable(tmp_path, si8_dump):
    from n2amd_driver.namd.couplings_job import load_frames

    text = si8_dump.read_text()
    cut = tmp_path / "cut.dump"
    six = text.index("ITEM: TIMESTEP\n6\n")
    cut.write_text(text[: text.index("ITEM: ATOMS", six) + 150])  # frame 6 ends after two of its atoms
    with pytest.raises(TrajectoryError, match=r"frame 6 .*truncated"):
        load_frames(_cfg(tmp_path, cut))
    frames, _ = load_frames(_cfg(tmp_path, cut, frames={"stop": 6}))
    assert len(frames) == 6


def test_changed_atoms_and_cells_are_named(tmp_path, si8_dump):
    from n2amd_driver.data.trajectory import read_trajectory
    from n2amd_driver.namd.couplings_job import load_frames

    frames = read_trajectory(si8_dump)
    lines = si8_dump.read_text().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("ITEM: ATOMS")]
    swapped = list(lines)
    row = swapped[starts[3] + 2].split()
    row[1] = "C"  # an element changed in frame 3
    swapped[starts[3] + 2] = " ".join(row)
    (tmp_path / "el.dump").write_text("\n".join(swapped) + "\n")
    with pytest.raises(TrajectoryError, match=r"frame 3: atom 1 is C, in frame 2 Si"):
        load_frames(_cfg(tmp_path, tmp_path / "el.dump"))
    dup = list(lines)
    dup[starts[1] + 2] = dup[starts[1] + 1]  # atom id 1 twice in frame 1
    (tmp_path / "dup.dump").write_text("\n".join(dup) + "\n")
    with pytest.raises(TrajectoryError, match=r"frame 1 .*atom id\(s\) \[1\] appear more than once"):
        load_frames(_cfg(tmp_path, tmp_path / "dup.dump"))
    import ase.io

    npt = [a.copy() for a in frames[:3]]
    npt[2].set_cell(npt[2].cell.array * 1.01, scale_atoms=True)
    ase.io.write(tmp_path / "npt.extxyz", npt, format="extxyz")
    with pytest.raises(TrajectoryError, match=r"the cell of frame 2 differs from frame 0's .* fixed cell"):
        load_frames(_cfg(tmp_path, tmp_path / "npt.extxyz"))
    assert len(frames) == 9


def test_output_folder_and_early_errors_say_what_is_true(tmp_path, si8_dump, capsys):
    from n2amd_driver.namd.couplings_job import load_config, run_couplings

    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="output .*out is a folder"):
        load_config(None, {"trajectory": str(si8_dump), "dt_fs": 1.0, "output": str(tmp_path / "out")})
    with pytest.raises(TrajectoryError):
        run_couplings(_cfg(tmp_path, tmp_path / "missing.dump"), progress=False)
    assert "finished snapshot" not in capsys.readouterr().err  # nothing was computed, so nothing is promised


def test_scissor_shifts_the_conduction_states_only(tmp_path, si8_dump):
    """A scissor moves the conduction states rigidly: to a given average gap (one shift), or to another
    Hamiltonian's gap at each snapshot (here GFN2-xTB under GFN1-xTB); valence energies and the couplings stay,
    and the output records the shift. Changing the scissor reuses the snapshots' checkpoints."""
    import h5py

    from n2amd_driver.namd.couplings_file import read_couplings
    from n2amd_driver.namd.couplings_job import run_couplings

    frames = {"stop": 4}
    run_couplings(_cfg(tmp_path, si8_dump, frames=frames, output=str(tmp_path / "plain.h5"),
                       checkpoint=str(tmp_path / "ck")), progress=False)
    plain = read_couplings(tmp_path / "plain.h5")
    cond = plain.series.bands > plain.series.meta["vbm_band_1based"]
    assert cond.sum() == 3 and plain.scissor_shift_eV is None

    s = run_couplings(_cfg(tmp_path, si8_dump, frames=frames, output=str(tmp_path / "gap.h5"),
                           checkpoint=str(tmp_path / "ck"), scissor={"gap_eV": 1.17}), progress=False)
    gap = read_couplings(tmp_path / "gap.h5")
    shift = 1.17 - np.mean(plain.cbm_eV - plain.vbm_eV)
    np.testing.assert_allclose(gap.scissor_shift_eV, shift, atol=1e-12)
    np.testing.assert_allclose(gap.series.energies[:, cond], plain.series.energies[:, cond] + shift, atol=1e-12)
    np.testing.assert_array_equal(gap.series.energies[:, ~cond], plain.series.energies[:, ~cond])
    np.testing.assert_array_equal(gap.series.nac, plain.series.nac)
    assert np.mean(gap.cbm_eV - gap.vbm_eV) == pytest.approx(1.17, abs=1e-12)
    assert s["scissor"]["to_average_gap_eV"] == 1.17 and s["average_gap_eV"] == pytest.approx(1.17, abs=1e-12)

    other = {"engine": "tblite", "method": "GFN2-xTB"}
    run_couplings(_cfg(tmp_path, si8_dump, frames=frames, output=str(tmp_path / "gfn2.h5"),
                       checkpoint=str(tmp_path / "ck"), scissor={"hamiltonian": other}), progress=False)
    per = read_couplings(tmp_path / "gfn2.h5")
    ref = run_couplings(_cfg(tmp_path, si8_dump, frames=frames, output=str(tmp_path / "ref2.h5"),
                             checkpoint=str(tmp_path / "ck2"), hamiltonian=other), progress=False)
    ref2 = read_couplings(tmp_path / "ref2.h5")
    np.testing.assert_allclose(per.cbm_eV - per.vbm_eV, ref2.cbm_eV - ref2.vbm_eV, atol=1e-8)  # GFN2's gap
    np.testing.assert_allclose(per.series.energies[:, cond] - plain.series.energies[:, cond],
                               np.repeat(per.scissor_shift_eV[:, None], 3, axis=1), atol=1e-12)
    assert np.ptp(per.scissor_shift_eV) > 0  # a shift per snapshot, not one for all
    np.testing.assert_array_equal(per.series.nac, plain.series.nac)
    with h5py.File(tmp_path / "gfn2.h5") as f:
        assert "GFN2-xTB" in f.attrs["meta"]
    assert ref["average_gap_eV"] == pytest.approx(float(np.mean(per.cbm_eV - per.vbm_eV)), abs=1e-8)

    with pytest.raises(ValueError, match="scissor takes gap_eV or hamiltonian, not both"):
        _cfg(tmp_path, si8_dump, scissor={"gap_eV": 1.0, "hamiltonian": other})
    from n2amd_driver.namd.sources import make_source

    with pytest.raises(ValueError, match="basis, pseudo apply to the pyscf engine only, not tblite"):
        make_source({"engine": "tblite", "method": "GFN1-xTB", "basis": "gth-dzvp", "pseudo": "gth-pbe"})


@pytest.mark.slow
def test_pyscf_reference_for_couplings_computes_no_forces():
    """A pyscf reference in the couplings job needs H and S only: no gradients (minutes per k-mesh frame)."""
    from n2amd_driver.namd.sources import make_source

    src = make_source({"engine": "pyscf", "method": "PBE", "basis": "gth-szv", "kmesh": [2, 2, 2]})
    assert src.engine.forces is False and src.engine.kmesh == (2, 2, 2)


def test_pyscf_engine_runs_through_the_couplings_job(tmp_path):
    """A pyscf DFT Hamiltonian (PBE, GTH basis) goes through the same couplings code path as tblite: the window
    energies are pyscf's own eigenvalues, S(t; t+dt) comes from the same basis functions and the NAC is
    antisymmetric. (pyscf SCF is slow even for 2 atoms: two frames only.)"""
    import ase.io

    from n2amd_driver.engines import get_engine
    from n2amd_driver.namd.couplings_file import read_couplings
    from n2amd_driver.namd.couplings_job import run_couplings

    a = bulk("Si", "diamond", a=5.43)
    a.rattle(0.03, seed=1)
    frames = [a.copy(), a.copy()]
    frames[1].positions[0] += [0.01, -0.005, 0.0]
    ase.io.write(tmp_path / "t.extxyz", frames, format="extxyz")
    spec = {"engine": "pyscf", "method": "PBE", "basis": "gth-szv"}
    run_couplings(_cfg(tmp_path, tmp_path / "t.extxyz", hamiltonian=spec, remove_drift=False,
                       window={"valence": 2, "conduction": 2, "bands": None}), progress=False)
    c = read_couplings(tmp_path / "c.h5")
    assert c.series.meta["hamiltonian"]["engine"] == "pyscf"
    lab = get_engine("pyscf", method="PBE", basis="gth-szv").label(frames[0])
    nocc = int(round(np.sum(lab.occupations) / 2))
    np.testing.assert_allclose(c.series.energies[0], np.sort(lab.orbital_energies)[nocc - 2:nocc + 2], atol=1e-6)
    np.testing.assert_allclose(c.series.nac, -np.swapaxes(c.series.nac, 1, 2), atol=0)
    assert c.series.nac.shape == (1, 4, 4) and np.abs(c.series.nac).max() > 1e-6


@pytest.mark.slow
def test_engine_source_on_a_kmesh_gives_the_supercell_matrices():
    """An engine on a k-mesh labels the cell that the snapshot repeats and returns the supercell's Γ H and S:
    S equals the package's S of the supercell (≤ 1e-8), the eigenvalues are those of every k-point."""
    import scipy.linalg as sl
    from ase.build import bulk

    from n2amd_driver.engines import get_engine
    from n2amd_driver.namd.sources import EngineSource, repeated_cell
    from n2amd_driver.orbitals import overlap_matrix

    cell = bulk("Si", "diamond", a=5.43)
    cell.rattle(0.04, seed=5)
    m = (2, 1, 1)
    options = dict(method="PBE", basis="gth-szv", ke_cutoff=40, kmesh=m, forces=False)
    src = EngineSource("pyscf", **options)
    supercell = cell.repeat(m)
    H, S, n_el = src.electronic(supercell)
    assert H.shape == (16, 16) and n_el == pytest.approx(16)
    np.testing.assert_allclose(S, overlap_matrix(src.basis_functions(supercell), supercell), atol=1e-8, rtol=0)
    lab = get_engine("pyscf", **options).label(cell)
    np.testing.assert_allclose(sl.eigh(H, S, eigvals_only=True), lab.orbital_energies, atol=1e-6, rtol=0)
    moved = supercell.copy()
    moved.positions[3] += 0.1  # one copy displaced: no longer a repeat
    with pytest.raises(ValueError, match="not a 2x1x1 repeat"):
        repeated_cell(moved, m)


def test_model_in_a_pyscf_basis_has_pyscf_overlaps(tmp_path):
    """A Hamiltonian model trained in a pyscf basis (the DFT data's) runs through ModelSource with S(t) and
    S(t; t+dt) from that basis: both equal pyscf's own lattice-summed integrals to ≤ 1e-8, in a triclinic cell."""
    import torch
    from pyscf.pbc.gto.cell import intor_cross

    from n2amd_driver.engines import get_engine
    from n2amd_driver.models.hamiltonian import HamiltonianConfig, HamiltonianModel
    from n2amd_driver.models.io import default_dtype
    from n2amd_driver.namd.sources import ModelSource
    from n2amd_driver.orbitals import cross_overlap
    from n2amd_driver.training.hamiltonian import save_model

    from .conftest import make_triclinic_si

    name = "gth-dzvp-molopt-sr@0.12"
    engine = get_engine("pyscf", method="PBE", basis=name)
    basis = engine.basis(["Si"])
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        model = HamiltonianModel(HamiltonianConfig(elements=["Si"], basis_json=basis.to_json(), r_block=4.0,
                                                   layers=1))
    save_model(model.eval(), tmp_path / "h.pt", {"valence_electrons": {"Si": 4.0}},
               {"engine": "pyscf", "method": "PBE", "basis": name}, {}, 0)
    src = ModelSource(tmp_path / "h.pt", device="cpu")
    t0 = make_triclinic_si()
    t1 = t0.copy()
    t1.positions += np.random.default_rng(2).normal(scale=0.02, size=t1.positions.shape)
    H, S, n_el = src.electronic(t0)
    assert n_el == pytest.approx(4.0 * len(t0)) and np.allclose(H, H.T)
    c0, _ = engine._build(t0)
    c1, _ = engine._build(t1)
    to_e3nn = lambda M: basis.to_internal(np.asarray(M), t0.numbers)
    np.testing.assert_allclose(S, to_e3nn(c0.pbc_intor("int1e_ovlp", hermi=1)), atol=1e-8, rtol=0)
    S01 = cross_overlap(src.basis_functions(t0), t0, t1)
    np.testing.assert_allclose(S01, to_e3nn(intor_cross("int1e_ovlp", c0, c1)), atol=1e-8, rtol=0)


def test_sparse_window_solver_equals_dense_through_the_job(tmp_path, si8_dump):
    """The bundled Si model on a 64-atom trajectory: the sparse path (sparse H, S, S(t; t+dt), warm-started
    shift-invert window) gives the dense path's energies and NAC to 1e-8, with a buffer, on 1 and 2 ranks."""
    import ase.io

    from n2amd_driver.data.trajectory import read_trajectory
    from n2amd_driver.namd.couplings_file import read_series
    from n2amd_driver.namd.couplings_job import run_couplings

    offset = np.random.default_rng(7).normal(scale=0.03, size=(64, 3))  # breaks the 2×2×2 repeat's degeneracies
    frames = [f.repeat(2) for f in read_trajectory(si8_dump, None, None)[:6]]
    for f in frames:
        f.positions += offset
    ase.io.write(tmp_path / "si64.extxyz", frames, format="extxyz")
    window = {"valence": 3, "conduction": 3, "buffer": 2}
    out = {}
    for solver in ("dense", "sparse"):
        cfg = _cfg(tmp_path, tmp_path / "si64.extxyz", hamiltonian={"model": "si_hamiltonian.pt", "dtype": "float64"},
                   window={**window, "solver": solver}, output=str(tmp_path / f"{solver}.h5"))
        summary = run_couplings(cfg, progress=False)
        out[solver] = read_series(tmp_path / f"{solver}.h5")
        assert summary["per_snapshot"]["solver"] == solver and summary["buffer_exchanges"] == 0
    assert summary["per_snapshot"]["warm_fraction"] == pytest.approx(5 / 6)  # cold only on the first snapshot
    d, s = out["dense"], out["sparse"]
    assert s.nac.shape == (5, 6, 6)
    assert np.abs(s.energies - d.energies).max() <= 1e-8
    assert np.abs(s.nac - d.nac).max() <= 1e-8
    assert np.abs(d.nac).max() > 1e-4  # real couplings, not zeros
    # resume with every other snapshot gone: those start warm from their neighbour's checkpoint
    for f in sorted(Path(str(tmp_path / "sparse.h5") + ".ckpt").glob("snap_*.npz"))[1::2]:
        f.unlink()
    for f in Path(str(tmp_path / "sparse.h5") + ".ckpt").glob("ovl_*.npz"):
        f.unlink()
    run_couplings(cfg, progress=False)
    again = read_series(tmp_path / "sparse.h5")
    assert np.abs(again.nac - s.nac).max() <= 1e-8 and np.abs(again.energies - s.energies).max() <= 1e-8

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", "2", sys.executable, "-m", "n2amd_driver.namd", "couplings",
           "--set", f"trajectory={tmp_path / 'si64.extxyz'}", "--set", "dt_fs=1.0", "--set",
           "hamiltonian.model=si_hamiltonian.pt", "--set", "hamiltonian.dtype=float64", "--set", "window.valence=3",
           "--set", "window.conduction=3", "--set", "window.buffer=2", "--set", "window.solver=sparse",
           "--set", f"output={tmp_path / 'two.h5'}", "--set", "plots=false", "-q",
           str(ROOT / "tests" / "data" / "empty.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    two = read_series(tmp_path / "two.h5")
    assert two.meta["nranks"] == 2
    assert np.abs(two.nac - s.nac).max() <= 1e-8 and np.abs(two.energies - s.energies).max() <= 1e-8


def test_a_window_state_swapping_with_a_buffer_state_is_reported():
    """Window = labels 1..2 of 4 (one buffer state each side). At step 1 window state 1 (label 2) exchanges
    character with the upper buffer state: reported, and with tracking its label follows that state."""
    from n2amd_driver.namd.couplings_job import window_of

    n = 4
    swap = np.eye(n)[:, [0, 1, 3, 2]]
    O = np.array([np.eye(n), swap, np.eye(n)])
    E = np.tile(np.arange(n, dtype=float), (4, 1))
    for track in (False, True):
        sub, exchanges = window_of(correct(E, O, 1.0, track=track), 1, 2)
        assert sub.energies.shape == (4, 2) and sub.nac.shape == (3, 2, 2)
        assert [(e["step"], e["state"]) for e in exchanges] == [(1, 1)]
        assert "buffer state" in exchanges[0]["text"]
        if track:  # the label moved with the character: from step 2 on it is the eigen-state above the window
            assert sub.order[2, 1] == 3


def test_memory_is_estimated_up_front_and_a_job_that_does_not_fit_is_refused(monkeypatch):
    """The sparse estimate counts the exact pattern of S and H (pairs within the overlap cutoff) and the
    factorisation from Pardiso's symbolic analysis; a job beyond the machine's memory is refused naming the parts."""
    from n2amd_driver.namd.couplings_job import check_memory, snapshot_memory
    from n2amd_driver.namd.sources import ModelSource
    from n2amd_driver.orbitals.overlap import overlap_matrix
    from n2amd_driver.orbitals.sparse import block_pattern

    source = ModelSource("si_hamiltonian.pt", device="cpu")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    window = {"solver": "sparse", "overlap_cutoff_ang": 7.0}
    bf = source.basis_functions(atoms)
    pattern = block_pattern(atoms, bf.basis.orbital_offsets(atoms.numbers), source.model.config.r_block)  # 8 Å
    S = overlap_matrix(bf, atoms, cutoff_ang=7.0, sparse=True)
    H, _, _ = source.electronic_sparse(atoms, 7.0)
    assert (pattern - (H != 0).astype(float)).count_nonzero() == 0  # H's places exactly
    assert S.multiply(pattern).count_nonzero() == S.count_nonzero()  # S's among them
    parts = snapshot_memory(source, atoms, window)
    assert set(parts) == {"sparse matrices", "factorisation", "model blocks"} and all(v > 0 for v in parts.values())
    assert set(snapshot_memory(source, atoms, {"solver": "dense"})) == {"dense matrices and eigensolver"}
    monkeypatch.setattr(os, "sysconf", lambda name: 1024 if name == "SC_PHYS_PAGES" else 4096)  # 4 MiB
    with pytest.raises(ValueError, match=r"factorisation .* GiB.* on each of 2 rank"):
        check_memory(source, atoms, window, 2)
