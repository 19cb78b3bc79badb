"""A plain (non-editable) install carries everything the commands need: the wheel is built from the
checkout, installed into a folder of its own, and run from another directory with that copy first on
the path, so nothing can be found through the repository."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next((tmp / "dist").glob("n2amd_driver-*.whl"))
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=str(site))
    return wheel, site, env


def test_wheel_holds_the_inputs_models_and_plugin_source(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ["md/inputs/lammps/in.n2amd", "md/inputs/lammps/in.n2amd_nnh", "md/inputs/lammps/si64.data",
              "md/inputs/ipi/input_nvt.xml", "md/inputs/ipi/input_nve.xml", "md/inputs/ipi/input_pimd.xml",
              "md/inputs/ipi/run_ipi.sh", "md/inputs/ipi/si64.xyz", "md/lammps_plugin/n2amd_plugin.cpp",
              "assets/tblite_basis.json", "assets/models/si_hamiltonian.pt", "assets/models/si_mlff.pt",
              "assets/models/si_nnh.pt", "assets/configs/data_si64_train.yaml"]:
        assert f"n2amd_driver/{f}" in names, f


def test_repository_folders_are_the_package_inputs():
    """`lammps_inputs/` and `ipi_configs/` at the top are what users read and copy: the same files."""
    assert (ROOT / "lammps_inputs").resolve() == ROOT / "n2amd_driver" / "md" / "inputs" / "lammps"
    assert (ROOT / "ipi_configs").resolve() == ROOT / "n2amd_driver" / "md" / "inputs" / "ipi"


@pytest.mark.slow
def test_installed_copy_runs_md_and_the_demo_from_elsewhere(installed, tmp_path):
    _, site, env = installed
    cli = [sys.executable, "-m", "n2amd_driver.cli"]
    where = subprocess.run([sys.executable, "-c", "import n2amd_driver; print(n2amd_driver.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.strip() == str(site / "n2amd_driver" / "__init__.py")
    r = subprocess.run(cli + ["md", "lammps", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "--structure" in r.stdout
    r = subprocess.run(cli + ["md", "ipi", "--mode", "nve", "--steps", "3", "--workdir", "ipi"], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "ipi" / "si64_nve.pos_0.xyz").exists()
    r = subprocess.run(cli + ["demo", "--quick", "--workdir", "demo"], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "N2AMD demo" in r.stdout and (tmp_path / "demo" / "summary.json").exists()
    assert str(site) in (tmp_path / "demo" / "md" / "run_lammps.sh").read_text()  # the installed inputs ran
