"""The `n2amd` entry points as a newcomer meets them."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

N2AMD = [sys.executable, "-m", "n2amd_driver.cli"]


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("n2amd", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe is not None
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "data generate" in r.stdout


def test_label_one_structure(tmp_path):
    path = tmp_path / "si.xyz"
    write(path, bulk("Si", "diamond", a=5.43, cubic=True))
    r = subprocess.run(N2AMD + ["label", str(path), "--method", "GFN1-xTB"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "eV/atom" in r.stdout and "gap" in r.stdout and "(gamma fold)" in r.stdout


@pytest.mark.slow
def test_demo_pipeline_end_to_end_reduced(tmp_path):
    """`n2amd demo --quick`: LAMMPS + MLFF plugin MD → couplings on 2 MPI ranks from the bundled Hamiltonian →
    DISH on 2 ranks → table and plots; then a re-run resumes (every stage found done) with the same table."""
    import h5py

    from n2amd_driver.orbitals.eigen import eigh

    wd = tmp_path / "demo"
    r = subprocess.run(N2AMD + ["demo", "--quick", "--workdir", str(wd)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Step" in r.stdout and "1/3 MD" in r.stdout  # LAMMPS thermo output streamed as progress
    assert "N2AMD on Si64 at 300 K (mlff forces, lammps: 20 fs NVT + 40 fs NVE" in r.stdout
    assert "N2AMD demo — Si64, GFN1-xTB-trained models, 300 K" in r.stdout
    dump = (wd / "md" / "si64_nve.dump").read_text()
    assert dump.count("ITEM: TIMESTEP") == 41  # 40 NVE steps + step 0, every step
    with h5py.File(wd / "couplings.h5") as f:
        assert f["energies"].shape == (31, 4) and json.loads(f.attrs["meta"])["nranks"] == 2
        gap = f["cbm_eV"][()] - f["vbm_eV"][()]
        assert json.loads(f.attrs["meta"])["hamiltonian"]["dtype"] == "float32"
    # the first snapshot's gap is the bundled model's on that frame (same code path outside the job), and
    # within the model's accuracy of GFN1-xTB's own gap for it (held-out band edges ~5 meV, docs/models.md)
    from n2amd_driver.data.trajectory import read_trajectory
    from n2amd_driver.engines import get_engine
    from n2amd_driver.namd.sources import ModelSource

    frame = read_trajectory(wd / "md" / "si64_nve.dump")[0]
    H, S, nel = ModelSource("si_hamiltonian.pt", device="cpu", dtype="float32").electronic(frame)
    eps = eigh(H, S)[0]
    assert gap[0] == pytest.approx(eps[int(nel) // 2] - eps[int(nel) // 2 - 1], abs=1e-5)
    vbm, cbm = get_engine("tblite", method="GFN1-xTB").label(frame).band_edges()
    assert gap[0] == pytest.approx(cbm - vbm, abs=0.02)
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["gap_eV"] == pytest.approx(float(np.mean(gap)), rel=1e-9)
    assert summary["dephasing_fs"] > 0 and summary["rms_nac_meV"] > 0
    for png in ("couplings_energies.png", "couplings_nac.png", "dish/populations.png", "dish/dephasing.png"):
        assert (wd / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (wd / "hefei" / "EIGTXT").exists() and "averaged gap" in r.stdout
    an = subprocess.run(N2AMD + ["namd", "analyse", str(wd / "couplings.h5")], capture_output=True, text=True)
    assert an.returncode == 0, an.stderr
    res = json.loads((wd / "couplings_analysis.json").read_text())
    assert res["pair"] == [1, 2] and res["average_gap_eV"] == pytest.approx(summary["gap_eV"], rel=1e-9)
    assert res["rms_nac_meV"] == pytest.approx(summary["rms_nac_meV"], rel=1e-9)
    again = subprocess.run(N2AMD + ["demo", "--quick", "--workdir", str(wd)], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "done before" in again.stdout
    assert (wd / "summary.md").read_text().split("wall time")[0] in again.stdout
    # a stage rerun (its output deleted) records its new time; the stages found done keep theirs
    before = json.loads((wd / "stage_times.json").read_text())
    shutil.rmtree(wd / "dish")
    rerun = subprocess.run(N2AMD + ["demo", "--quick", "--workdir", str(wd)], capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0 and "3/3 dephasing" in rerun.stdout
    after = json.loads((wd / "stage_times.json").read_text())
    assert {k: after[k] for k in ("md_s", "couplings_s")} == {k: before[k] for k in ("md_s", "couplings_s")}
    assert after["dish_s"] != before["dish_s"]
    assert json.loads((wd / "summary.json").read_text())["total_s"] == pytest.approx(sum(after.values()))


@pytest.mark.slow
def test_demo_at_the_pbe_level(tmp_path):
    """`n2amd demo --quick --level pbe`: the bundled PBE Hamiltonian (pyscf basis) through the same couplings
    and DISH jobs; the title says which level drove the MD and which gave the Hamiltonian."""
    import h5py

    from n2amd_driver.data.trajectory import read_trajectory
    from n2amd_driver.namd.sources import ModelSource
    from n2amd_driver.orbitals.eigen import eigh

    wd = tmp_path / "demo"
    r = subprocess.run(N2AMD + ["demo", "--quick", "--level", "pbe", "--workdir", str(wd)], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "N2AMD demo — Si64, PBE-trained models, 300 K" in r.stdout
    with h5py.File(wd / "couplings.h5") as f:
        meta = json.loads(f.attrs["meta"])
        assert meta["hamiltonian"]["model"].endswith("si_pbe_hamiltonian.pt")
        gap = f["cbm_eV"][()] - f["vbm_eV"][()]
    frame = read_trajectory(wd / "md" / "si64_nve.dump")[0]
    H, S, nel = ModelSource("si_pbe_hamiltonian.pt", device="cpu", dtype="float32").electronic(frame)
    eps = eigh(H, S)[0]
    assert H.shape == (64 * 13, 64 * 13)  # gth-dzvp-molopt-sr: 2s + 2p + 1d per Si
    assert gap[0] == pytest.approx(eps[int(nel) // 2] - eps[int(nel) // 2 - 1], abs=1e-5)
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["dephasing_fs"] > 0 and summary["rms_nac_meV"] > 0  # a 30 fs DISH run fits no lifetime


def test_demo_levels():
    """Every demo level names bundled models, the CLI offers exactly those, a level excludes an own Hamiltonian
    but not an own MLFF."""
    from n2amd_driver.cli import DEMO_LEVELS
    from n2amd_driver.demo import LEVELS, DemoSettings
    from n2amd_driver.models.io import BUNDLED

    assert DEMO_LEVELS == list(LEVELS) and all((BUNDLED / f).exists() for lv in LEVELS.values() for f in lv[:2])
    assert DemoSettings.at_level("gfn1-xtb") == DemoSettings()
    hse = DemoSettings.at_level("hse06")
    assert (hse.hamiltonian, hse.mlff) == (str(BUNDLED / "si_hse06_hamiltonian.pt"), str(BUNDLED / "si_pbe_mlff.pt"))
    assert DemoSettings.at_level("pbe", mlff="mine.pt").mlff == "mine.pt"
    assert hse.namdtime_fs == 1.0e7 and DemoSettings.at_level("hse06", namdtime_fs=5.0).namdtime_fs == 5.0
    assert DemoSettings.at_level("pbe", quick=True).namd_fs == DemoSettings.quick().namd_fs
    with pytest.raises(ValueError, match="either a level or an own Hamiltonian"):
        DemoSettings.at_level("pbe", hamiltonian="mine.pt")
    with pytest.raises(ValueError, match="level must be one of gfn1-xtb, pbe, hse06"):
        DemoSettings.at_level("hse")
    # the summary's title names each model's level (an NNH file's is its remainder's)
    from n2amd_driver.demo import level_title

    assert level_title(DemoSettings()) == level_title(DemoSettings(forces="nnh")) == "GFN1-xTB-trained models"
    assert level_title(DemoSettings.at_level("pbe")) == "PBE-trained models"
    assert level_title(DemoSettings.at_level("hse06")) == "HSE06 Hamiltonian, PBE MLFF forces"
    assert level_title(DemoSettings.at_level("pbe", mlff=str(BUNDLED / "si_mlff.pt"))) == \
        "PBE Hamiltonian, GFN1-xTB MLFF forces"


def test_md_lammps_on_a_users_structure(tmp_path):
    """`n2amd md lammps --structure` takes any periodic file ASE reads (here extxyz of a strained Si8)."""
    from n2amd_driver.data.trajectory import read_trajectory

    a = bulk("Si", "diamond", a=5.50, cubic=True)
    a.rattle(0.02, seed=0)
    write(tmp_path / "si8.xyz", a, format="extxyz")
    wd = tmp_path / "md"
    r = subprocess.run(N2AMD + ["md", "lammps", "--structure", str(tmp_path / "si8.xyz"), "--nvt-steps", "5",
                                "--nve-steps", "5", "--workdir", str(wd)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not (wd / "si64_nve.dump").exists() and "MLFF MD of si8" in r.stdout  # named after the structure
    frames = read_trajectory(wd / "si8_nve.dump")
    assert len(frames) == 6 and all(len(f) == 8 and set(f.get_chemical_symbols()) == {"Si"} for f in frames)
    assert (wd / "run_lammps.sh").read_text().count("-var") == 9  # the run is reproducible from its folder


def test_md_lammps_repeat_makes_a_supercell(tmp_path):
    """`--repeat NX NY NZ` runs a supercell of the start structure (the shipped Si64 here: 2×1×1 → Si128),
    with the cell and the atoms of the repeat."""
    from n2amd_driver.data.trajectory import read_trajectory

    wd = tmp_path / "md"
    r = subprocess.run(N2AMD + ["md", "lammps", "--repeat", "2", "1", "1", "--nvt-steps", "2", "--nve-steps", "2",
                                "--workdir", str(wd)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    frames = read_trajectory(wd / "si128_nve.dump")
    assert len(frames) == 3 and len(frames[0]) == 128
    np.testing.assert_allclose(frames[0].cell.lengths(), [21.72, 10.86, 10.86], atol=1e-6)
    r = subprocess.run(N2AMD + ["md", "lammps", "--repeat", "2", "0", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "argument --repeat: 0 must be > 0" in r.stderr


def test_md_ipi_route(tmp_path):
    from n2amd_driver.data.trajectory import read_trajectory

    wd = tmp_path / "ipi"
    r = subprocess.run(N2AMD + ["md", "ipi", "--mode", "nve", "--steps", "5", "--workdir", str(wd)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    frames = read_trajectory(wd / "si64_nve.pos_0.xyz")
    assert len(frames) >= 5 and len(frames[0]) == 64


def test_md_reports_a_missing_model(tmp_path):
    r = subprocess.run(N2AMD + ["md", "lammps", "--model", "nonexistent.pt", "--nvt-steps", "1", "--nve-steps", "1",
                                "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "LAMMPS failed" in r.stderr and "nonexistent.pt" in r.stderr


def test_config_paths_relative_to_the_config_file(tmp_path):
    """``data:`` in a training config, a path or a list of paths, is taken relative to the config's folder."""
    from n2amd_driver.training.forcefield import SCHEMA
    from n2amd_driver.training.loop import merge_config

    (tmp_path / "cfg").mkdir()
    one, many = tmp_path / "cfg" / "one.yaml", tmp_path / "cfg" / "many.yaml"
    one.write_text("data: a.h5\n")
    many.write_text("data: [a.h5, /abs/b.h5]\n")
    assert merge_config(SCHEMA, one)["data"] == str(tmp_path / "cfg" / "a.h5")
    assert merge_config(SCHEMA, many)["data"] == [str(tmp_path / "cfg" / "a.h5"), "/abs/b.h5"]
    assert merge_config(SCHEMA, many, {"data": ["x.h5"]})["data"] == ["x.h5"]  # the command line: as typed


def test_demo_settings_are_not_rewritten():
    """Run lengths not given follow the force route (NNH steps cost seconds); given ones are kept, and the
    caller's settings object is left as it was."""
    from n2amd_driver.demo import DemoSettings

    s = DemoSettings(forces="nnh", nve_fs=300)
    r = s.resolved()
    assert (r.nvt_fs, r.nve_fs, r.namd_fs) == (50, 300, 200) and s.nvt_fs is None and s.nve_fs == 300
    assert (DemoSettings().resolved().nve_fs, DemoSettings.quick(forces="nnh").resolved().nve_fs) == (2000, 40)
    with pytest.raises(ValueError, match="forces must be one of mlff, nnh"):
        DemoSettings(forces="mllf").resolved()
