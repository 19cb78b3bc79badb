"""Every command ends an error with one line that names the problem and a non-zero exit; --debug shows
the traceback; the namd jobs' help is reachable from `n2amd`."""
import subprocess
import sys

import pytest
from ase.build import bulk
from ase.io import write

N2AMD = [sys.executable, "-m", "n2amd_driver.cli"]


def run(args, **kw):
    return subprocess.run(N2AMD + args, capture_output=True, text=True, timeout=300, **kw)


def test_namd_help_is_the_jobs_help():
    r = run(["namd", "--help"])
    assert r.returncode == 0 and all(job in r.stdout for job in ("couplings", "hop", "analyse"))
    r = run(["namd", "couplings", "--help"])
    assert r.returncode == 0 and "--set" in r.stdout


@pytest.fixture
def carbon_trajectory(tmp_path):
    frames = []
    for k in range(3):
        a = bulk("C", "diamond", a=3.57, cubic=True)
        a.rattle(0.02, seed=k)
        frames.append(a)
    write(tmp_path / "c8.extxyz", frames, format="extxyz")
    return tmp_path / "c8.extxyz"


def test_an_element_the_model_does_not_know_is_one_line(tmp_path, carbon_trajectory):
    args = ["namd", "couplings", "--set", f"trajectory={carbon_trajectory}", "--set", "dt_fs=1",
            "--set", "hamiltonian.model=si_hamiltonian.pt", "--set", f"output={tmp_path / 'c.h5'}", "-q"]
    r = run(args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("n2amd namd: error: snapshot 0: ValueError: element C is not in "
                                                   "this model (elements: Si)")
    assert "finished snapshot" not in r.stderr  # none was
    r = run(["--debug"] + args)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_a_missing_config_and_a_bad_override_are_one_line(tmp_path):
    r = run(["namd", "hop", str(tmp_path / "nothere.yaml")])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "nothere.yaml" in r.stderr
    r = run(["train", "forcefield", "--set", "nodots"])
    assert r.returncode == 2 and "override 'nodots' is not KEY=VALUE" in r.stderr and "Traceback" not in r.stderr
