"""Surface hopping against the analytic cases (shared notes, namd.md) and the job's guarantees."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from n2amd_driver.core.units import HBAR_EV_FS, KB_EV_K
from n2amd_driver.namd.couplings_file import Couplings, write_couplings
from n2amd_driver.namd.dephasing import (decoherence_limited_rate, dephasing_function, dephasing_matrix,
                                         gaussian_dephasing_time)
from n2amd_driver.namd.hefei import parse_namelist, read_hefei, write_hefei
from n2amd_driver.namd.hopping import HopSettings, HopState, Propagators, Record, advance
from n2amd_driver.namd.lifetime import fit_lifetime
from n2amd_driver.namd.series import CouplingSeries
from n2amd_driver.namd.tdks import propagate, step_propagators

BIN = Path(sys.executable).parent


def two_level(dE, d, N=1001, dt=1.0):
    E = np.zeros((N, 2))
    E[:, 1] = dE
    D = np.zeros((N - 1, 2, 2))
    D[:, 0, 1], D[:, 1, 0] = d, -d
    return CouplingSeries(E, D, dt)


def rabi(dE, d, t):
    """|c_1(t)|² for c(0) = (1, 0): 4V²/W² sin²(Wt/2ħ), V = ħd, W = sqrt(ΔE² + 4V²)."""
    V = HBAR_EV_FS * d
    W = np.sqrt(dE**2 + 4 * V**2)
    return 4 * V**2 / W**2 * np.sin(W * t / (2 * HBAR_EV_FS)) ** 2


def random_series(N=2001, n=4, seed=0, nac_scale=0.004, dt=1.0):
    """Phonon-like energy fluctuations and random antisymmetric couplings."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) * dt
    E = np.zeros((N, n))
    for s in range(n):
        E[:, s] = 0.15 * s + sum(0.02 * np.cos(2 * np.pi * t / p + rng.uniform(0, 6.3)) for p in rng.uniform(40, 300, 5))
    D = rng.normal(scale=nac_scale, size=(N - 1, n, n))
    return CouplingSeries(E, D - np.transpose(D, (0, 2, 1)), dt)


def test_two_level_rabi_oscillation():
    s = two_level(0.3, 0.01)
    c = propagate(np.array([1, 0], complex), step_propagators(s, nelm=10), 0, 1000)
    np.testing.assert_allclose(np.abs(c[:, 1]) ** 2, rabi(0.3, 0.01, np.arange(1001.0)), atol=1e-6)


def test_norm_conserved_with_fluctuating_energies_and_couplings():
    s = random_series(nac_scale=0.02)
    U = step_propagators(s, nelm=10)
    c0 = np.ones(4, complex) / 2
    c = propagate(c0, U, 0, 6000)  # 6000 steps: three passes over the trajectory, 60 000 sub-steps
    assert np.abs(np.linalg.norm(c, axis=1) - 1).max() <= 1e-10


def test_substep_hamiltonians_are_hermitian_and_propagators_unitary():
    """H_eff = E − iħd at every sub-step is Hermitian (d real antisymmetric), with the diagonal interpolated
    between the snapshots' energies; every step propagator is unitary."""
    from n2amd_driver.namd.tdks import substep_hamiltonians

    s = random_series(N=201)
    H = substep_hamiltonians(s, nelm=4)
    np.testing.assert_allclose(H, np.conj(np.swapaxes(H, -1, -2)), atol=1e-15)
    k, j = 7, 1  # sub-step 1 of 4 sits 3/8 of the way from snapshot 7 to 8
    np.testing.assert_allclose(np.diagonal(H[k, j]).real, s.energies[k] + 0.375 * (s.energies[k + 1] - s.energies[k]),
                               atol=1e-14)
    U = step_propagators(s, nelm=4)
    np.testing.assert_allclose(U @ np.conj(np.swapaxes(U, -1, -2)), np.broadcast_to(np.eye(4), U.shape), atol=1e-12)


@pytest.mark.parametrize("n,energy", [(4, 0.0), (12, -7.3)])
def test_fssh_coefficients_equal_the_exact_substep_exponentials(n, energy):
    """FSSH propagates c vector-wise (Taylor series in the compiled kernel); it must equal the product of the
    exact sub-step exponentials (eigendecomposition) to ~machine precision, over several chunks, also for
    band energies far from zero (the series is shifted by its mean diagonal)."""
    from n2amd_driver.namd.tdks import substep_propagators

    s = random_series(N=601, n=n, seed=3, nac_scale=0.02)
    s = CouplingSeries(s.energies + energy, s.nac, s.dt_fs)
    st = HopSettings(method="fssh", ntraj=3, nelm=7)
    state = HopState.start([5], [n - 1], n, st, [0])
    rec = advance(state, Propagators(s, st), st, 590, Record.start(state, s, 590))
    X = substep_propagators(s, 7)
    c = np.zeros(n, complex)
    c[n - 1] = 1.0
    exact = []
    for k in range(5, 595):
        for j in range(7):
            c = X[k, j] @ c
        exact.append(np.abs(c) ** 2)
    np.testing.assert_allclose(rec.c2[0, 1:] / 3, np.array(exact), atol=1e-12)
    np.testing.assert_allclose(np.abs(state.c[0]), np.abs(c), atol=1e-12)


def _dish(series, tau, ntraj, nsteps, init_state, seed, T=300.0):
    st = HopSettings(method="dish", ntraj=ntraj, temperature_K=T,
                     dephasing_fs=np.array([[0, tau], [tau, 0]]))
    state = HopState.start([0], [init_state], 2, st, [seed])
    rec = advance(state, Propagators(series, st), st, nsteps, Record.start(state, series, nsteps))
    return rec.sh[0, 1:, 1] / ntraj  # fraction in the upper state after each step


def test_dish_two_level_lifetime_matches_analytic():
    # Decoherence of the lower state fires every T = 10 fs (first step with clock ≥ τ/|c_1|² ≈ 9.51 fs);
    # each event collapses to the lower state with probability P(T): lifetime = T / P(T) ≈ 9.06 ps.
    T = 10.0
    analytic = T / rabi(0.3, 0.01, T)
    assert analytic == pytest.approx(9050, rel=0.01)  # the shared notes' figure
    upper = _dish(two_level(0.3, 0.01), 9.5, ntraj=4000, nsteps=10000, init_state=1, seed=1)
    fit = fit_lifetime(np.arange(1, 10001.0), upper[None, :], "exponential")
    assert fit.tau_fs == pytest.approx(analytic, rel=0.05)


def test_dish_detailed_balance():
    dE, T = 0.02, 300.0
    upper = _dish(two_level(dE, 0.01), 9.5, ntraj=2000, nsteps=20000, init_state=1, seed=2, T=T)
    p = upper[10000:].mean()
    assert p / (1 - p) == pytest.approx(np.exp(-dE / (KB_EV_K * T)), rel=0.10)


def test_fssh_populations_follow_coefficients_without_boltzmann_restriction():
    s = two_level(0.05, 0.01, N=2001)
    st = HopSettings(method="fssh", ntraj=20000, detailed_balance=False)
    state = HopState.start([0], [0], 2, st, [3])
    rec = advance(state, Propagators(s, st), st, 2000, Record.start(state, s, 2000))
    sh, c2 = rec.sh[0, 1:, 1] / 20000, rec.c2[0, 1:, 1] / 20000
    np.testing.assert_allclose(c2, rabi(0.05, 0.01, np.arange(1, 2001.0)), atol=1e-6)
    assert c2.max() > 0.05  # the population really oscillates
    assert np.abs(sh - c2).max() < 0.012  # ~3σ of 20 000 trajectories


def test_fssh_detailed_balance_scales_upward_hops_by_boltzmann_factor():
    # While |c_1|² still grows (first half Rabi period, ~63 fs here) every hop is upward: the fraction of
    # trajectories in the upper state is |c_1|² without the restriction and exp(−ΔE/kT)·|c_1|² with it.
    dE, t_end = 0.03, 50
    s = two_level(dE, 0.01, N=201)
    fractions = []
    for db in (False, True):
        st = HopSettings(method="fssh", ntraj=20000, detailed_balance=db)
        state = HopState.start([0], [0], 2, st, [4])
        advance(state, Propagators(s, st), st, t_end)
        fractions.append((state.active == 1).mean())
    c2 = rabi(dE, 0.01, float(t_end))
    assert fractions[0] == pytest.approx(c2, rel=0.05)
    assert fractions[1] == pytest.approx(np.exp(-dE / (KB_EV_K * 300)) * c2, rel=0.10)


def test_hole_dynamics_relaxes_upwards_in_band_energy():
    s = two_level(0.3, 0.01)
    st = HopSettings(method="dish", ntraj=500, hole=True, dephasing_fs=np.array([[0, 9.5], [9.5, 0]]))
    state = HopState.start([0], [0], 2, st, [5])  # hole in the lower band: its relaxation is upward
    advance(state, Propagators(s, st), st, 20000)
    assert (state.active == 1).mean() > 0.8


# ---- dephasing and lifetimes -------------------------------------------------------------------
def test_dephasing_time_in_the_slow_modulation_limit_is_hbar_over_sigma():
    rng = np.random.default_rng(7)
    t = np.arange(20000) * 0.5
    gap = 1.0 + sum(0.02 * np.cos(2 * np.pi * t / p + rng.uniform(0, 6.3)) for p in rng.uniform(300, 800, 12))
    tt, D = dephasing_function(gap, 0.5)
    tau = gaussian_dephasing_time(tt, D)
    # slow fluctuations: g(t) ≈ σ²t²/2ħ², so D(t) ≈ exp(−t²/2τ²) with τ = ħ/σ
    assert tau == pytest.approx(HBAR_EV_FS / np.std(gap), rel=0.05)


def test_dephasing_matrix_is_symmetric_with_zero_diagonal():
    s = random_series()
    tau, t, D = dephasing_matrix(s.energies, s.dt_fs)
    np.testing.assert_allclose(tau, tau.T)
    assert np.all(np.diag(tau) == 0) and np.all(tau[np.triu_indices(4, 1)] > 0)
    assert D.shape == (4, 4, len(t)) and np.all(D[0, 1] <= 1 + 1e-12)


def test_decoherence_limited_rate_against_the_constant_coupling_formula():
    """Constant d and gap ΔE = ħω: every window's amplitude is d·dt·Σ_k e^{iωk·dt}, so
    rate = d² dt sin²(ωL·dt/2) / (L sin²(ω·dt/2)); with no gap, d² L·dt (the coherent growth)."""
    d, dt, L, n = 2e-3, 0.5, 40, 1001
    for gap in (0.0, 0.3):
        w = gap / HBAR_EV_FS
        want = d**2 * L * dt if gap == 0 else d**2 * dt * np.sin(w * L * dt / 2) ** 2 / (L * np.sin(w * dt / 2) ** 2)
        got = decoherence_limited_rate(np.full(n - 1, d), np.full(n, gap), dt, L * dt)
        assert got == pytest.approx(want, rel=1e-12)
        # one coupling per snapshot (Hefei-NAMD input), and a sign flip of the coupling: the same rate
        assert decoherence_limited_rate(np.full(n, -d), np.full(n, gap), dt, L * dt) == pytest.approx(want, rel=1e-12)


def test_lifetime_fits_recover_known_decays():
    t = np.linspace(1, 5000, 500)
    taus = np.array([8000.0, 10000.0, 12000.0])
    p = np.exp(-t[None, :] / taus[:, None])
    fit = fit_lifetime(t, p, "exponential")
    assert fit.tau_fs == pytest.approx(1 / np.mean(1 / taus), rel=1e-10)
    assert fit.stderr_fs > 0
    lin = fit_lifetime(t, 1 - t[None, :] / 2e6, "linear")
    assert lin.tau_fs == pytest.approx(2e6, rel=1e-10)
    assert "ns" in lin.text()
    assert not np.isfinite(fit_lifetime(t, np.ones((2, len(t))), "exponential").tau_fs)


# ---- Hefei-NAMD files ----------------------------------------------------------------------------
def test_hefei_round_trip(tmp_path):
    s = random_series(N=101, n=3)
    write_hefei(tmp_path, s, bmin=120, inicon=[(1, 122), (51, 122)], extra_inp={"TEMP": 300.0, "LHOLE": False})
    back, inp = read_hefei(tmp_path)
    np.testing.assert_allclose(back.energies, s.energies, rtol=0, atol=1e-10)  # EIGTXT has 10 decimals (eV)
    np.testing.assert_allclose(back.nac, s.nac, rtol=1e-9, atol=1e-15)
    assert back.dt_fs == 1.0 and back.bands.tolist() == [120, 121, 122]
    assert inp["LHOLE"] is False and inp["NSAMPLE"] == 2 and inp["BMAX"] == 122
    # NATXT holds the undivided numerator 2·dt·d
    na = np.loadtxt(tmp_path / "NATXT")
    np.testing.assert_allclose(na[5].reshape(3, 3), 2 * s.nac[5], rtol=1e-9, atol=1e-14)


def test_namelist_parser_reads_fortran_syntax():
    nl = parse_namelist("&NAMDPARA\n BMIN = 10, BMAX=12\n POTIM = 1.0D0 ! fs\n LHOLE = .TRUE.\n"
                        " RUNDIR = 'run'\n TEMP=3.0e2\n/\n")
    assert nl == {"BMIN": 10, "BMAX": 12, "POTIM": 1.0, "LHOLE": True, "RUNDIR": "run", "TEMP": 300.0}


def test_malformed_hefei_input_is_named(tmp_path):
    s = random_series(N=11, n=2)
    write_hefei(tmp_path, s)
    (tmp_path / "NATXT").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="NATXT: 3 values per line, expected 2² = 4"):
        read_hefei(tmp_path)


# ---- the job: CLI, outputs, MPI, checkpoints -------------------------------------------------
def _job(tmp_path, **over):
    s = random_series(N=1001, n=3, nac_scale=0.01)
    write_couplings(tmp_path / "couplings.h5", Couplings(s))
    cfg = {"input": {"couplings": "couplings.h5"}, "ntraj": 40, "namdtime_fs": 1500.0,
           "initial": {"times": 5}, "checkpoint_every_fs": 500.0, "output": str(tmp_path / "out")}
    cfg.update(over)
    path = tmp_path / "hop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hop(config, *extra, ranks=1, **kw):
    cmd = [sys.executable, "-m", "n2amd_driver.namd", "hop", str(config), *extra]
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-n", str(ranks)] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def populations(folder):
    with h5py.File(Path(folder) / "populations.h5") as f:
        return f["populations"][()], f["carrier_energy_eV"][()]


@pytest.mark.mpi
@pytest.mark.parametrize("method,times", [("dish", 5), ("fssh", 5), ("dish", 1), ("fssh", 1)])
def test_one_and_two_ranks_give_identical_populations(tmp_path, method, times):
    """Work is split over (initial time, block of trajectories: 50 for DISH, 500 for FSSH): 2.4 blocks are 3
    units, so even one initial time is shared by 2 ranks, and the populations are the same as on one."""
    from n2amd_driver.namd.hop_job import TRAJ_BLOCK

    cfg = _job(tmp_path, method=method, ntraj=int(2.4 * TRAJ_BLOCK[method]), initial={"times": times})
    r1 = _hop(cfg, "--set", f"output={tmp_path / 'one'}")
    r2 = _hop(cfg, "--set", f"output={tmp_path / 'two'}", ranks=2)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    p1, e1 = populations(tmp_path / "one")
    p2, e2 = populations(tmp_path / "two")
    assert p1.shape == (times, 1501, 3)  # t = 0 (the initial condition) and 1500 steps
    np.testing.assert_array_equal(p1[:, 0, 2], 1.0)  # an electron starts in the top state
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(e1, e2)
    assert "2 rank(s)" in r2.stdout


@pytest.mark.mpi
def test_checkpoints_of_two_ranks_resume_on_one(tmp_path):
    """Each rank's checkpoint holds its units and its share of the records: a finished 2-rank job re-run on 1
    rank takes all of them over and writes the same populations; with one rank's file gone it refuses."""
    cfg = _job(tmp_path, ntraj=120, initial={"times": 3})
    r2 = _hop(cfg, "-q", ranks=2)
    assert r2.returncode == 0, r2.stderr
    first = populations(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoint").glob("*.npz")) == ["rank0.npz", "rank1.npz"]
    r1 = _hop(cfg, "-q")
    assert r1.returncode == 0, r1.stderr
    np.testing.assert_array_equal(populations(tmp_path / "out")[0], first[0])
    (tmp_path / "out" / "checkpoint" / "rank1.npz").unlink()
    r = _hop(cfg, "-q")
    assert r.returncode == 2 and "checkpoints" in r.stderr and "incomplete" in r.stderr


def test_missing_compiler_for_the_kernels_is_named(tmp_path):
    import os

    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"), N2AMD_NATIVE_CACHE=str(tmp_path / "cache"))
    r = _hop(_job(tmp_path), "-q", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no compiler" in r.stderr and "no-such-cc" in r.stderr and "hopping_kernels.c" in r.stderr


def test_outputs_summary_and_plots(tmp_path):
    r = _hop(_job(tmp_path, plots=True))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    for name in ("populations.h5", "populations.csv", "summary.txt", "populations.png", "energy.png", "dephasing.png"):
        assert (out / name).stat().st_size > 0
    csv = np.loadtxt(out / "populations.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(csv[:, 2:].sum(axis=1), 1.0, atol=1e-12)  # populations sum to one
    header = (out / "populations.csv").read_text().splitlines()[0]
    assert header == "time_fs,carrier_energy_eV,P_state0,P_state1,P_state2"
    text = (out / "summary.txt").read_text()
    for label in ("averaged gap", "pure-dephasing time", "RMS NAC", "lifetime of the initial state"):
        assert label in text
    assert "DISH (rank 0)" in r.stderr  # progress bar


def test_killed_run_resumes_to_the_same_result(tmp_path):
    cfg = _job(tmp_path, namdtime_fs=20000.0, ntraj=200, checkpoint_every_fs=1000.0)
    ref = _hop(cfg, "-q", "--set", f"output={tmp_path / 'ref'}")
    assert ref.returncode == 0, ref.stderr
    cmd = [sys.executable, "-m", "n2amd_driver.namd", "hop", str(cfg), "-q", "--set", f"output={tmp_path / 'cut'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = tmp_path / "cut" / "checkpoint" / "rank0.npz"
    t0 = time.time()
    while not ck.exists() and time.time() - t0 < 120:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "populations.h5").exists()  # it really was cut short
    done = int(np.load(ck)["steps_done"])
    assert 0 < done < 20000
    r = _hop(cfg, "-q", "--set", f"output={tmp_path / 'cut'}")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(populations(tmp_path / "cut")[0], populations(tmp_path / "ref")[0])


def test_runs_hefei_namd_input(tmp_path):
    s = random_series(N=501, n=2, nac_scale=0.01)
    write_hefei(tmp_path / "hefei", s, bmin=64, inicon=[(1, 65), (101, 65), (201, 65)])
    cfg = tmp_path / "hop.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"hefei": "hefei"}, "ntraj": 20, "namdtime_fs": 300.0,
                                   "output": str(tmp_path / "out")}))
    r = _hop(cfg, "-q")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out" / "populations.h5") as f:
        assert f["initial_steps"][()].tolist() == [0, 100, 200]  # INICON NAMDTINI is 1-based
        assert f["initial_states"][()].tolist() == [1, 1, 1]  # INIBAND 65 with BMIN 64


def test_bad_config_is_refused(tmp_path):
    cfg = tmp_path / "hop.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"couplings": "missing.h5"}}))
    r = _hop(cfg)
    assert r.returncode != 0 and "missing.h5" in r.stderr
    cfg.write_text(yaml.safe_dump({"methd": "dish"}))
    r = _hop(cfg)
    assert r.returncode == 2 and "unknown setting 'methd'" in r.stderr


def test_an_explicit_initial_times_setting_is_not_mistaken_for_none(tmp_path):
    """INICON is used when initial.times is not set; an explicit setting wins, even one equal to the number
    that is used without INICON (20)."""
    from n2amd_driver.namd.hop_job import initial_conditions, load_config, load_series

    s = random_series(N=501, n=2, nac_scale=0.01)
    write_hefei(tmp_path / "hefei", s, bmin=64, inicon=[(1, 65), (101, 65), (201, 65)])
    for times, expect in ((None, [0, 100, 200]), (20, np.linspace(0, 499, 20).round().astype(int).tolist())):
        cfg = load_config(None, {"input": {"hefei": str(tmp_path / "hefei")}, "initial": {"times": times}})
        series, inicon = load_series(cfg)
        steps, _ = initial_conditions(cfg, series, inicon)
        assert steps.tolist() == expect


def test_analyse_reads_a_hefei_namd_folder(tmp_path):
    """`namd analyse DIR` on EIGTXT/NATXT/inp: the same numbers as for the series itself (no band edges)."""
    from n2amd_driver.namd.analyse import analyse

    s = random_series(N=301, n=3, nac_scale=0.01)
    write_hefei(tmp_path / "hefei", s, bmin=10)
    res = analyse(tmp_path / "hefei", tmp_path / "an")
    assert res["bands_1based"] == [10, 11, 12] and res["pair"] == [0, 2] and "average_band_gap_eV" not in res
    assert res["average_gap_eV"] == pytest.approx(float(np.mean(s.energies[:, 2] - s.energies[:, 0])), rel=1e-9)
    assert res["rms_nac_meV"] == pytest.approx(s.rms_nac_meV()[0, 2], rel=1e-8)
    rate = decoherence_limited_rate(s.nac[:, 0, 2], s.energies[:, 2] - s.energies[:, 0], s.dt_fs, res["dephasing_fs"])
    assert res["golden_rule_lifetime_fs"] == pytest.approx(1 / rate, rel=1e-6)
    r = subprocess.run([sys.executable, "-m", "n2amd_driver.namd", "analyse", str(tmp_path / "hefei"), "-o",
                        str(tmp_path / "cli")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cli_analysis.json").exists() and "averaged gap" in r.stdout
