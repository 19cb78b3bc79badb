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


def test_atoms_on_top_of_each_other_are_refused_in_every_route(tmp_path):
    """Atoms 0.3 Å apart: the calculator, the i-PI driver's evaluator, the LAMMPS pair bridge and the
    couplings job refuse them by default, naming the atoms; 'warn' lets them run with a warning."""
    import numpy as np

    from n2amd_driver.core.structure import StructureError
    from n2amd_driver.md.ipi_client import ModelEvaluator
    from n2amd_driver.models.calculator import N2AMDCalculator
    from n2amd_driver.namd.couplings_job import load_config, load_frames

    a = bulk("Si", "diamond", a=5.43, cubic=True)
    a.positions[1] = a.positions[0] + [0.3, 0.0, 0.0]
    a.calc = N2AMDCalculator("si_mlff.pt")
    with pytest.raises(StructureError, match=r"atoms 0 \(Si\) and 1 \(Si\) are 0.300 Å apart, closer than 1.33 Å"):
        a.get_potential_energy()
    a.calc = N2AMDCalculator("si_mlff.pt", close_atoms="warn")
    with pytest.warns(UserWarning, match="0.300 Å apart"):
        assert np.isfinite(a.get_potential_energy())
    ev = ModelEvaluator("si_mlff.pt", element="Si")
    with pytest.raises(StructureError, match="the structure i-PI sent"):
        ev(a.cell.array.T / 0.529177210903, a.positions / 0.529177210903)
    frames = [a.copy(), a.copy()]
    write(tmp_path / "close.extxyz", frames, format="extxyz")
    with pytest.raises(StructureError, match="selected frame 0 .* 0.300 Å apart"):
        load_frames(load_config(None, {"trajectory": str(tmp_path / "close.extxyz"), "dt_fs": 1.0}))
    # LAMMPS' pair style sees the same pairs through its bridge
    from n2amd_driver.md import lammps_bridge

    h = lammps_bridge.load_pair("si_mlff.pt", ["Si"], dtype="float64")
    tags = np.arange(1, len(a) + 1)
    with pytest.raises(FloatingPointError, match="atoms with IDs 1 and 2 are 0.300 Å apart"):
        lammps_bridge.check_close_edges(h, a.positions, np.array([0]), np.array([1]), np.zeros(len(a), int), tags)


# ---- every job's config is checked when it is loaded: key, value and what is allowed ---------------------------
BAD = {
    "hop": [({"carrier": "holes"}, "carrier = 'holes': Input should be 'electron' or 'hole'"),
            ({"temperature_K": -5}, "temperature_K = -5: Input should be greater than 0"),
            ({"ntraj": 0}, "ntraj = 0: Input should be greater than 0"),
            ({"nelm": 0}, "nelm = 0"), ({"namdtime_fs": 0}, "namdtime_fs = 0"),
            ({"initial": {"state": "top"}}, "initial.state = 'top'"),
            ({"methd": "dish"}, "unknown setting 'methd' (known: input, states, method,")],
    "couplings": [({"dt_fs": "1fs"}, "dt_fs = '1fs': Input should be a valid number"),
                  ({"window": {"valence": "four"}}, "window.valence = 'four': Input should be a valid integer"),
                  ({"type_map": "Si"}, "type_map = 'Si': Input should be a valid list or Input should be a valid "
                                       "dictionary"),
                  ({"hamiltonian": {"dtype": "float16"}}, "hamiltonian.dtype = 'float16'"),
                  ({"frames": {"step": 0}}, "frames.step = 0")],
    "data": [({"sampling": {"method": "mdd"}}, "sampling.method = 'mdd': Input should be 'md', 'ase-md', 'rattle' or 'dataset'"),
             ({"system": {"supercell": [2, 2]}}, "system.supercell = [2, 2]"),
             ({"label": {"engine": "vasp"}}, "label.engine = 'vasp'")],
    "hamiltonian": [({"train": {"epochs": 0}}, "train.epochs = 0"),
                    ({"model": {"shell_potential": "global"}}, "model.shell_potential = 'global'"),
                    ({"split": {"fractions": [0.5, 0.2, 0.2]}}, "fractions must sum to 1")],
    "forcefield": [({"dtype": "float16"}, "dtype = 'float16'"), ({"train": {"sam_rho": -1}}, "train.sam_rho = -1")],
    "nnh": [({"prior": "rep"}, "prior = 'rep'"), ({"remainder": {"model": {"rcut": 3}}}, "unknown setting 'model.rcut'")],
}


def _loader(job):
    from n2amd_driver.core.config import load_validated

    if job == "hop":
        from n2amd_driver.namd.hop_job import load_config
    elif job == "couplings":
        from n2amd_driver.namd.couplings_job import load_config as load

        def load_config(path, over):
            return load(path, {"trajectory": "t.dump", "dt_fs": 1.0, **over})
    elif job == "data":
        from n2amd_driver.reference_data import load_config
    else:
        import importlib

        schema = importlib.import_module(f"n2amd_driver.training.{job}").SCHEMA

        def load_config(path, over):
            return load_validated(schema, path, over)
    return load_config


@pytest.mark.parametrize("job,over,message", [(j, o, m) for j, cases in BAD.items() for o, m in cases])
def test_bad_values_are_refused_with_key_value_and_what_is_allowed(job, over, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        _loader(job)(None, over)


def test_config_file_errors_name_the_file(tmp_path):
    cfg = tmp_path / "hop.yaml"
    cfg.write_text("carrier: holes\nntraj: 10\n")
    r = run(["namd", "hop", str(cfg)])
    assert r.returncode == 2 and f"{cfg}: carrier = 'holes'" in r.stderr and "Traceback" not in r.stderr
    r = run(["namd", "hop", "--help"])
    # null: from a Hefei inp, else the package default, both named in the line
    assert r.returncode == 0 and "carrier (one of electron | hole | null; default null)" in r.stdout
    assert "null: a Hefei inp's LHOLE, else electron" in r.stdout
    assert "temperature_K (float > 0 | null; default null): K" in r.stdout and "TEMP, else 300" in r.stdout
    r = run(["train", "hamiltonian", "--help"])
    assert "model.r_block (float > 0; default 8.0): Å" in r.stdout


def test_ranges_that_depend_on_the_data_are_named(tmp_path):
    """states beyond the window and an analyse --pair outside it: one line naming the range."""
    import numpy as np

    from n2amd_driver.namd.couplings_file import Couplings, write_couplings
    from n2amd_driver.namd.series import CouplingSeries

    E = np.tile([0.0, 0.2, 0.5, 0.9], (11, 1))
    write_couplings(tmp_path / "c.h5", Couplings(CouplingSeries(E, np.zeros((10, 4, 4)), 1.0)))
    cfg = tmp_path / "hop.yaml"
    cfg.write_text(f"input: {{couplings: {tmp_path / 'c.h5'}}}\nstates: [3, 9]\n")
    r = run(["namd", "hop", str(cfg)])
    assert r.returncode == 2 and "states: [9] outside the 4 states of the input (0..3)" in r.stderr
    r = run(["namd", "analyse", str(tmp_path / "c.h5"), "--pair", "3", "12"])
    assert r.returncode == 2 and "--pair 3 12: two different window states of the 4" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["md", "lammps", "--temperature", "-5"], "argument --temperature: -5 must be > 0"),
    (["md", "lammps", "--nve-steps", "0"], "argument --nve-steps: 0 must be > 0"),
    (["md", "lammps", "--ranks", "two"], "argument --ranks: 'two' is not an integer"),
    (["md", "ipi", "--drivers", "0"], "argument --drivers: 0 must be > 0"),
    (["demo", "--ranks", "0"], "argument --ranks: 0 must be > 0"),
    (["demo", "--forces", "mllf"], "argument --forces: invalid choice: 'mllf'"),
])
def test_md_and_demo_options_are_checked(args, message):
    r = run(args)
    assert r.returncode == 2 and message in r.stderr


def test_inicon_errors_name_the_file_and_use_hefei_numbers(tmp_path):
    """INICON lines outside the run are refused with the file, the line and the 1-based NAMDTINI / INIBAND
    a Hefei-NAMD user wrote; with 'states:' its bands are mapped into the selection."""
    import numpy as np

    from n2amd_driver.namd.hefei import write_hefei
    from n2amd_driver.namd.hop_job import initial_conditions, load_config, load_series
    from n2amd_driver.namd.series import CouplingSeries

    E = np.tile([0.0, 0.2, 0.5], (51, 1))
    s = CouplingSeries(E, np.zeros((50, 3, 3)), 1.0)
    for inicon, message in (([(1, 65), (60, 65)], "INICON: line 2: NAMDTINI 60 is outside the 50 steps"),
                            ([(5, 70)], "INICON: line 1: INIBAND 70 is outside the bands of EIGTXT (BMIN..BMAX = "
                                        "64..66)")):
        write_hefei(tmp_path / "h", s, bmin=64, inicon=inicon)
        with pytest.raises(ValueError, match=__import__("re").escape(message)):
            load_series(load_config(None, {"input": {"hefei": str(tmp_path / "h")}}))
    write_hefei(tmp_path / "h", s, bmin=64, inicon=[(3, 66)])
    cfg = load_config(None, {"input": {"hefei": str(tmp_path / "h")}, "states": [0, 2]})
    series, inicon = load_series(cfg)
    steps, states = initial_conditions(cfg, series, inicon)
    assert steps.tolist() == [2] and states.tolist() == [1]  # band 66 is state 2 of the file, 1 of the selection
    cfg = load_config(None, {"input": {"hefei": str(tmp_path / "h")}, "states": [0, 1]})
    with pytest.raises(ValueError, match=r"INICON starts in window state\(s\) \[2\], which 'states: \[0, 1\]' leaves out"):
        load_series(cfg)
