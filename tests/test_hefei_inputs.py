"""Hefei-NAMD-DEV run folders (inp, EIGTXT, NATXT, INICON, DEPHTIME) mean here what they mean there."""
import numpy as np
import pytest

from n2amd_driver.namd.hefei import parse_namelist, read_hefei, write_hefei
from n2amd_driver.namd.hop_job import initial_conditions, load_config, prepare, run_hop
from n2amd_driver.namd.hopping import HopSettings, step_indices
from n2amd_driver.namd.lifetime import LINEAR_UNTIL, fit_lifetime, levels_off, linear_window
from n2amd_driver.namd.series import CouplingSeries

from .test_namd_hop import random_series


def folder(tmp_path, inp: str | None = None, n=3, N=201, inicon=None, bmin=64, name="hefei"):
    """A Hefei folder from a random series; ``inp`` (namelist text) replaces the written one when given."""
    s = random_series(N=N, n=n, nac_scale=0.01)
    path = tmp_path / name
    write_hefei(path, s, bmin=bmin)
    if inp is not None:
        (path / "inp").write_text(inp)
    if inicon is not None:
        (path / "INICON").write_text("".join(f"{t} {b}\n" for t, b in inicon))
    return path, s


def job(path, **over):
    return prepare(load_config(None, {"input": {"hefei": str(path)}, **over}))


def test_spaced_namelist_with_end_terminator_and_comments():
    text = "&NAMDPARA\n BMIN = 10 BMAX = 12 NSW = 100 ! three bands\n POTIM = 1.0D0  ALGO = 'FSSH' LHOLE = T\n&END\n"
    assert parse_namelist(text) == {"BMIN": 10, "BMAX": 12, "NSW": 100, "POTIM": 1.0, "ALGO": "FSSH",
                                    "LHOLE": True}
    with pytest.raises(ValueError, match="no &NAMDPARA group .found: &OTHER"):
        parse_namelist("&OTHER\n A = 1\n/\n")
    with pytest.raises(ValueError, match="inp: not a valid Fortran namelist"):
        parse_namelist("&NAMDPARA\n BMIN = (3\n/\n")
    # f90nml alone would drop these without a word
    with pytest.raises(ValueError, match="'BMIN' in &NAMDPARA is neither 'KEY = value' nor a value"):
        parse_namelist("&NAMDPARA\n BMIN 3\n/\n")
    with pytest.raises(ValueError, match="'=' in &NAMDPARA is neither"):
        parse_namelist("&NAMDPARA\n BMIN = = 3\n/\n")


def test_inp_keys_set_the_run(tmp_path):
    inp = ("&NAMDPARA\n BMIN = 64 BMAX = 66 NSW = 201 POTIM = 0.5\n NTRAJ = 7 NAMDTIME = 101 NELM = 5\n"
           " TEMP = 250.0 ALGO = 'FSSH' LHOLE = .TRUE.\n/\n")
    path, _ = folder(tmp_path, inp)
    cfg = job(path).cfg
    assert (cfg["ntraj"], cfg["nelm"], cfg["temperature_K"], cfg["method"], cfg["carrier"]) == \
        (7, 5, 250.0, "fssh", "hole")
    assert cfg["namdtime_fs"] == 50.0  # NAMDTIME = 101 records: 100 steps of POTIM = 0.5 fs


def test_absent_keys_take_hefei_namd_dev_defaults(tmp_path):
    path, _ = folder(tmp_path, "&NAMDPARA\n BMIN = 64 NSW = 201 POTIM = 1.0 NAMDTIME = 11\n/\n")
    h = job(path)
    assert (h.cfg["ntraj"], h.cfg["nelm"], h.cfg["temperature_K"], h.cfg["method"], h.cfg["carrier"]) == \
        (1000, 10, 300.0, "dish", "electron")
    assert "ntraj = 1000 (Hefei-NAMD-DEV's default; inp does not set it)" in h.notes


def test_yaml_overrides_inp_and_the_log_says_which_won(tmp_path):
    path, _ = folder(tmp_path, "&NAMDPARA\n BMIN = 64 NSW = 201 NTRAJ = 7 NAMDTIME = 11 TEMP = 250\n/\n")
    h = job(path, ntraj=30)
    assert h.cfg["ntraj"] == 30 and h.cfg["temperature_K"] == 250.0
    assert "ntraj = 30 (config; overrides inp NTRAJ = 7)" in h.notes
    assert "temperature_K = 250.0 (inp TEMP)" in h.notes


def test_namdtime_missing_everywhere_is_refused(tmp_path):
    path, _ = folder(tmp_path, "&NAMDPARA\n BMIN = 64 NSW = 201\n/\n")
    with pytest.raises(ValueError, match="inp has no NAMDTIME .* set one of them"):
        run_hop(load_config(None, {"input": {"hefei": str(path)}, "output": str(tmp_path / "o")}), progress=False)


@pytest.mark.parametrize("line,message", [
    ("NTRAJS = 5", "unknown key.s. NTRAJS"),
    ("LSPACE = .TRUE.", "LSPACE = .TRUE.: active-space"),
    ("LCPTXT = .FALSE.", "LCPTXT = .FALSE.: COUPCAR"),
    ("LSHP = .FALSE.", "LSHP = .FALSE."),
    ("ALGO = 'SH'", "ALGO = 'SH': DISH or FSSH is expected"),
    ("ALGO_INT = 10", "ALGO_INT = 10: only 0"),
    ("NTRAJ = 0", "NTRAJ = 0: an integer ≥ 1 is expected"),
    ("NAMDTIME = 1", "NAMDTIME = 1: an integer ≥ 2"),
    ("NELM = 2.5", "NELM = 2.5: an integer"),
    ("TEMP = -5", "TEMP = -5: a positive temperature"),
    ("LHOLE = 'yes'", "LHOLE = 'yes': .TRUE. or .FALSE."),
    ("BMAX = 70", "BMIN..BMAX = 64..70 is 7 bands, EIGTXT has 3"),
    ("NSW = 500", "EIGTXT: 201 lines, fewer than NSW = 500"),
])
def test_keys_without_counterpart_or_out_of_range_are_refused_by_name(tmp_path, line, message):
    path, _ = folder(tmp_path, f"&NAMDPARA\n BMIN = 64 NSW = 201 NAMDTIME = 11\n {line}\n/\n")
    with pytest.raises(ValueError, match=message):
        job(path)


def test_keys_without_effect_are_logged(tmp_path):
    path, _ = folder(tmp_path, "&NAMDPARA\n BMIN = 64 NSW = 201 NAMDTIME = 11 NPAR = 4 RUNDIR = 'r'\n/\n")
    notes = job(path).notes
    assert any(n.startswith("inp: NPAR = 4 has no effect here") for n in notes)
    assert any(n.startswith("inp: RUNDIR = 'r' has no effect here") for n in notes)


def test_complex_literal_natxt_reads_as_the_real_one(tmp_path):
    path, s = folder(tmp_path)
    na = np.loadtxt(path / "NATXT")
    (path / "NATXT").write_text("\n".join(" ".join(f"({v:.12E},0.0D0)" for v in row) for row in na) + "\n")
    back, _ = read_hefei(path)
    np.testing.assert_allclose(back.nac, s.nac, rtol=1e-9, atol=1e-15)
    (path / "NATXT").write_text("\n".join(" ".join(f"({v:.6E},{0.1 + abs(v):.3E})" for v in row) for row in na))
    with pytest.raises(ValueError, match="NATXT has imaginary parts up to"):
        read_hefei(path)


def test_inicon_absolute_and_relative_bands_and_nsample(tmp_path):
    inp = "&NAMDPARA\n BMIN = 64 NSW = 201 NAMDTIME = 11 NSAMPLE = 2\n/\n"
    abs_path, _ = folder(tmp_path, inp, inicon=[(5, 66), (50, 65), (100, 64)], name="abs")
    rel_path, _ = folder(tmp_path, inp, inicon=[(5, 3), (50, 2), (100, 1)], name="rel")
    for path in (abs_path, rel_path):
        h = job(path)
        steps, states = initial_conditions(h.cfg, h.series, h.inicon)
        assert steps.tolist() == [4, 49] and states.tolist() == [2, 1]  # NSAMPLE = 2 of the 3 lines
    assert any("INIBAND read relative to BMIN = 64" in n for n in job(rel_path).notes)
    too_many, _ = folder(tmp_path, inp.replace("NSAMPLE = 2", "NSAMPLE = 5"), inicon=[(5, 66)], name="few")
    with pytest.raises(ValueError, match="NSAMPLE = 5 but INICON has only 1 line"):
        job(too_many)


def test_dephtime_in_the_folder_is_used_for_dish(tmp_path):
    path, _ = folder(tmp_path, "&NAMDPARA\n BMIN = 64 NSW = 201 NAMDTIME = 11\n/\n")
    tau = np.array([[0.0, 5.0, 7.0], [5.0, 0.0, 9.0], [7.0, 9.0, 0.0]])
    np.savetxt(path / "DEPHTIME", tau)
    h = job(path)
    np.testing.assert_array_equal(h.tau_fs, tau)
    assert any("DEPHTIME (the folder's DEPHTIME)" in n for n in h.notes)
    assert job(path, states=[0, 2]).tau_fs.tolist() == [[0.0, 7.0], [7.0, 0.0]]


def test_shprop_files_in_dev_layout_with_a_t0_row(tmp_path):
    inp = "&NAMDPARA\n BMIN = 64 NSW = 201 NAMDTIME = 21 NTRAJ = 60 POTIM = 1.0\n/\n"
    path, s = folder(tmp_path, inp, inicon=[(10, 66), (100, 66)])
    cfg = load_config(None, {"input": {"hefei": str(path)}, "shprop": True, "plots": False,
                             "output": str(tmp_path / "out")})
    run_hop(cfg, progress=False)
    for name in ("SHPROP.10", "SHPROP.100", "POPRT.10", "POPRT.100"):
        rows = (tmp_path / "out" / name).read_text().splitlines()
        assert len(rows) == 21 and len(rows[0]) == 13 + 11 + 3 * 11  # NAMDTIME rows, DEV's f13.2 f11.6 n·f11.6
    sh = np.loadtxt(tmp_path / "out" / "SHPROP.10")
    np.testing.assert_allclose(sh[:, 0], np.arange(21) * 1.0)
    np.testing.assert_allclose(sh[0, 2:], [0, 0, 1])  # the t = 0 row is the initial condition
    assert sh[0, 1] == pytest.approx(s.energies[9, 2], abs=1e-6)  # its energy: band 66 at NAMDTINI = 10
    np.testing.assert_allclose(sh[:, 2:].sum(axis=1), 1.0, atol=2e-6)
    import h5py

    with h5py.File(tmp_path / "out" / "populations.h5") as f:  # the same numbers as the HDF5 output
        np.testing.assert_allclose(sh[:, 2:], f["populations"][0], atol=5e-7)
        np.testing.assert_allclose(np.loadtxt(tmp_path / "out" / "POPRT.10")[:, 2:], f["populations_coefficients"][0],
                                   atol=5e-7)


def test_dev_reuse_cycles_over_inner_steps_with_period_nsw_minus_2():
    s = random_series(N=10, n=2)
    t = np.arange(1, 30)
    dev = step_indices(t, s, "dev")
    assert set(dev.tolist()) == set(range(1, 9))  # steps 2..NSW−1 of Hefei's 1-based numbering
    np.testing.assert_array_equal(dev[8:], dev[:-8])  # period NSW − 2 = 8
    assert step_indices(np.array([9, 10]), s, "wrap").tolist() == [0, 1]  # wrap: period NSW steps
    with pytest.raises(ValueError, match="needs initial steps ≥ 1"):
        from n2amd_driver.namd.hopping import HopState

        HopState.start([0], [1], 2, HopSettings(method="fssh", reuse="dev"), [0])


def test_absorbing_ground_freezes_recombined_trajectories_and_breaks_detailed_balance():
    """Two levels 10 meV apart at 300 K: with the default the upper level keeps its Boltzmann share; with an
    absorbing ground every trajectory that reached the lower level stays there."""
    from n2amd_driver.namd.hopping import HopState, Propagators, advance

    N, dE = 2001, 0.01
    E = np.zeros((N, 2))
    E[:, 1] = dE
    D = np.zeros((N - 1, 2, 2))
    D[:, 0, 1], D[:, 1, 0] = 0.02, -0.02
    s = CouplingSeries(E, D, 1.0)
    tau = np.array([[0.0, 5.0], [5.0, 0.0]])
    final = {}
    for absorbing in (False, True):
        st = HopSettings(method="dish", ntraj=400, dephasing_fs=tau, absorbing=absorbing)
        state = HopState.start([0], [1], 2, st, [np.random.SeedSequence(1)])
        seen_bottom = np.zeros((1, 400), bool)
        back_up = []

        prop = Propagators(s, st)
        for _ in range(3000):  # one step at a time, to follow each trajectory
            advance(state, prop, st, 1)
            back_up.append(np.any(seen_bottom & (state.active == 1)))
            seen_bottom[:] |= state.active == 0
        final[absorbing] = float(np.mean(state.active == 1))
        assert any(back_up) is not absorbing
        if absorbing:  # the only ones still up never came down
            assert np.array_equal(state.active == 1, ~seen_bottom)
    assert final[True] < 0.01
    boltzmann = np.exp(-dE / (8.617333262e-5 * 300.0))
    assert final[False] == pytest.approx(boltzmann / (1 + boltzmann), abs=0.07)


def test_linear_fit_window_is_the_start_of_the_decay():
    t = np.linspace(0, 20000, 2001)
    p = np.exp(-t / 17000.0)[None, :]
    lo, hi = linear_window(t, p)
    assert lo == 0.0 and np.exp(-hi / 17000.0) == pytest.approx(LINEAR_UNTIL, abs=2e-3)
    lin = fit_lifetime(t, p, "linear")
    # 1 − e^{−t/τ} ≈ t/τ − t²/2τ² fitted through the origin up to T: τ_lin = τ / (1 − 3T/8τ), 4 % high here
    assert lin.window_fs == (lo, hi) and lin.tau_fs == pytest.approx(17000.0 / (1 - 3 * hi / (8 * 17000.0)), rel=3e-3)
    whole = fit_lifetime(t, p, "linear", window_fs=(0.0, 20000.0))
    assert whole.tau_fs > 1.4 * 17000.0  # what the whole-window fit used to report


def test_a_plateau_is_reported_not_fitted():
    t = np.linspace(0, 5000, 501)
    plateau = (0.5 + 0.5 * np.exp(-t / 300.0))[None, :]
    assert levels_off(t, plateau, fit_lifetime(t, plateau)) == pytest.approx(0.5, abs=1e-3)
    decay = np.exp(-t / 2000.0)[None, :]
    assert levels_off(t, decay, fit_lifetime(t, decay)) is None
    rng = np.random.default_rng(0)  # a sampled decay (20 initial times × 1000 trajectories) is not a plateau
    noisy = rng.binomial(1000, np.exp(-t / 3000.0), size=(20, len(t))) / 1000
    assert levels_off(t, noisy, fit_lifetime(t, noisy)) is None
