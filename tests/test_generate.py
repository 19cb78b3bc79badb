"""`n2amd data generate|info` from the command line: sampling, labelling, resume, failures."""
import os
import signal
import subprocess
import sys
import time

import pytest

from n2amd_driver.data import h5format
from n2amd_driver.reference_data import generate, load_config

N2AMD = [sys.executable, "-m", "n2amd_driver.cli"]
RATTLE = ["--set", "sampling.method=rattle", "--set", "sampling.temperatures=[300]", "--set", "sampling.strains=[0.0]"]


def run(args, **kw):
    return subprocess.run(N2AMD + args, capture_output=True, text=True, timeout=600, **kw)


def energies(path):
    with h5format.open_dataset(path) as f:
        return {i: float(f["frames"][h5format.frame_key(i)]["energy"][()]) for i in h5format.frame_ids(f)}


@pytest.mark.slow
@pytest.mark.parametrize("config,elements", [("data_si.yaml", "Si"), ("data_gaas.yaml", "As, Ga")])
def test_generate_md_sampled_dataset_from_the_command_line(tmp_path, config, elements):
    from n2amd_driver.cli import ASSETS

    out = tmp_path / "ds.h5"
    r = run(["data", "generate", str(ASSETS / "configs" / config), "-o", str(out),
             "--set", "sampling.temperatures=[300,600]", "--set", "sampling.strains=[0.0]",
             "--set", "sampling.frames_per_condition=2", "--set", "sampling.equilibration_fs=300"])
    assert r.returncode == 0, r.stderr
    assert "labelling (tblite GFN2-xTB)" in r.stderr and "4/4" in r.stderr  # the progress bar
    assert "4/4 frames labelled" in r.stdout
    info = run(["data", "info", str(out)])
    assert info.returncode == 0
    assert "4 total, 4 done, 0 pending, 0 failed" in info.stdout
    assert f"elements   : {elements}" in info.stdout
    assert "hamiltonian, overlap" in info.stdout
    with h5format.open_dataset(out) as f:
        sources = [f["frames"][k].attrs["source"] for k in f["frames"]]
    assert sum("md T=600K" in s for s in sources) == 2  # snapshots at both temperatures
    # the MD snapshots differ from each other and from the perfect crystal
    e = list(energies(out).values())
    assert len(set(e)) == 4


def test_interrupted_job_resumes_without_recomputing(tmp_path):
    out = tmp_path / "resume.h5"
    args = ["data", "generate", "-o", str(out), "-w", "2", *RATTLE, "--set", "sampling.frames_per_condition=16"]
    # SIGINT back to its default in the child: under a background shell (nohup ... &) it is inherited as
    # ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen(N2AMD + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until a few frames are finished, then press Ctrl-C
    t0, seen = time.time(), ""
    while time.time() - t0 < 120:
        seen += os.read(proc.stderr.fileno(), 4096).decode()  # tqdm redraws with \r, no newlines
        if any(f"| {k}/16" in seen for k in range(3, 12)):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "finished work is saved" in stderr
    before = energies(out)
    assert 0 < len(before) < 16
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert f"16/16 frames labelled ({16 - len(before)} now, 0 failed)" in r.stdout
    after = energies(out)
    assert len(after) == 16
    assert all(after[i] == e for i, e in before.items())  # finished frames were not touched
    # running once more does nothing
    assert "(0 now, 0 failed)" in run(args).stdout


def test_force_field_data_can_leave_the_matrices_out(tmp_path):
    """label.matrices: false keeps energy, forces and levels, and stores no H or S (force-field data)."""
    out = tmp_path / "ff.h5"
    cfg = load_config(None, {"sampling": {"method": "rattle", "temperatures": [300], "strains": [0.0],
                                          "frames_per_condition": 2},
                             "label": {"engine": "tblite", "method": "GFN1-xTB", "matrices": False}, "workers": 1})
    assert generate(cfg, out, progress=False).done == 2
    with h5format.open_dataset(out) as f:
        for i in h5format.frame_ids(f):
            g = f["frames"][h5format.frame_key(i)]
            assert {"energy", "forces", "orbital_energies"} <= set(g) and not {"hamiltonian", "overlap"} & set(g)


def test_labelling_order_spreads_over_the_file():
    """Frames are labelled in an order whose every prefix is spread over the file (a DFT job stopped early
    leaves labels of all sampling conditions), and every frame comes exactly once."""
    from n2amd_driver.reference_data import spread_order

    assert spread_order([]) == [] and spread_order([7]) == [7]
    assert spread_order(list(range(8))) == [0, 4, 2, 6, 1, 5, 3, 7]
    for n in (2, 5, 45, 64):
        order = spread_order(list(range(100, 100 + n)))
        assert sorted(order) == list(range(100, 100 + n))
        if n == 45:  # 9 sampling conditions × 5 frames (data_si8_hse06.yaml): all 9 within the first 12
            assert {(i - 100) // 5 for i in order[:12]} == set(range(9))


def test_failed_structure_is_named_and_batch_keeps_the_rest(tmp_path):
    out = tmp_path / "fail.h5"
    cfg = load_config(None, {"sampling": {"method": "rattle", "temperatures": [300], "strains": [0.0],
                                          "frames_per_condition": 3}})
    s = generate(cfg, out, workers=1, progress=False)
    assert (s.done, s.failed) == (3, 0)
    first = energies(out)
    # a bad structure joins the batch (two atoms on top of each other), plus one good pending one
    with h5format.open_dataset(out, "a") as f:
        bad = h5format.read_atoms(f["frames"]["00000000"])
        good = bad.copy()
        bad.positions[1] = bad.positions[0] + [0.05, 0.0, 0.0]
        good.positions[1] += [0.02, 0.0, 0.0]
        h5format.write_structure(f, 3, bad, "hand-made bad")
        h5format.write_structure(f, 4, good, "hand-made good")
    r = run(["data", "generate", "-o", str(out), "-w", "2", *RATTLE, "--set", "sampling.frames_per_condition=3"])
    assert r.returncode == 1
    assert "frame 3 (Si8): atoms 0 (Si) and 1 (Si) overlap" in r.stderr
    assert "4/5 frames labelled (1 now, 1 failed)" in r.stdout
    after = energies(out)
    assert set(after) == {0, 1, 2, 4} and all(after[i] == first[i] for i in first)
    info = run(["data", "info", str(out)])
    assert "1 failed" in info.stdout and "frame 3: StructureError" in info.stdout


def test_settings_mismatch_and_unknown_keys_are_refused(tmp_path):
    out = tmp_path / "a.h5"
    cfg = load_config(None, {"sampling": {"method": "rattle", "temperatures": [300], "strains": [0.0],
                                          "frames_per_condition": 1}})
    generate(cfg, out, workers=1, progress=False)
    r = run(["data", "generate", "-o", str(out), *RATTLE, "--set", "label.method=GFN1-xTB"])
    assert r.returncode == 2 and "made with different engine settings" in r.stderr
    r = run(["data", "generate", "-o", str(tmp_path / "b.h5"), "--set", "sampling.temprature=[300]"])
    assert r.returncode == 2 and "unknown setting 'sampling.temprature' (known: method, dataset, potential, temperatures" in r.stderr
    r = run(["data", "info", str(tmp_path / "nothing.h5")])
    assert r.returncode == 2 and "no such dataset file" in r.stderr


def test_help_documents_units():
    r = run(["data", "generate", "--help"])
    assert r.returncode == 0 and "eV/Å" in r.stdout


def test_ase_md_sampling_with_a_whole_system_model():
    """Sampling MD driven by the bundled NNH model (LAMMPS pair styles cannot host it): Langevin in ASE, one
    process per condition with workers > 1, the same frames as one process (each condition has its own seed)."""
    import numpy as np

    from n2amd_driver.md.sampling import sample_configurations

    system = {"elements": ["Si"], "prototype": "diamond", "lattice_constant": 5.43, "supercell": [1, 1, 1]}
    sampling = {"method": "ase-md", "potential": {"model": "si_nnh.pt"}, "temperatures": [300, 600],
                "strains": [0.0], "shear_std": 0.005, "frames_per_condition": 2, "equilibration_fs": 3,
                "interval_fs": 2, "seed": 5}
    one = sample_configurations(system, sampling, progress=False)
    two = sample_configurations(system, sampling, progress=False, workers=2)
    assert len(one) == 4 and [s.source for s in one] == [s.source for s in two]
    assert "ase-md T=600K" in one[2].source and "step=7" in one[3].source
    for a, b in zip(one, two):
        np.testing.assert_allclose(a.atoms.positions, b.atoms.positions, atol=1e-8)
        assert a.atoms.constraints == [] and a.atoms.calc is None
    start = sample_configurations(system, {**sampling, "method": "rattle", "rattle_std": 0.0}, progress=False)
    def displacement(a, b):  # minimum image: frames are wrapped into the cell
        d = a.get_scaled_positions() - b.get_scaled_positions()
        return np.abs((d - np.round(d)) @ a.cell.array).max()

    assert np.allclose(one[0].atoms.cell, start[0].atoms.cell)  # same strained cell
    assert 1e-4 < displacement(one[0].atoms, start[0].atoms) < 0.5  # a few fs of MD at 300 K
    assert displacement(one[1].atoms, one[0].atoms) > 1e-4
    with pytest.raises(ValueError, match="potential: {model: FILE}"):
        sample_configurations(system, {**sampling, "potential": "auto"}, progress=False)


def test_dataset_sampling_labels_the_same_frames_at_another_level(tmp_path):
    """sampling.method 'dataset': the structures of another dataset, in frame order, labelled again."""
    import numpy as np

    first = tmp_path / "gfn2.h5"
    r = run(["data", "generate", "-o", str(first), *RATTLE, "--set", "sampling.frames_per_condition=3"])
    assert r.returncode == 0, r.stderr
    second = tmp_path / "gfn1.h5"
    r = run(["data", "generate", "-o", str(second), "--set", "sampling.method=dataset",
             "--set", f"sampling.dataset={first}", "--set", "label.method=GFN1-xTB"])
    assert r.returncode == 0, r.stderr
    with h5format.open_dataset(first) as f, h5format.open_dataset(second) as g:
        assert h5format.frame_ids(g) == [0, 1, 2]
        for i in range(3):
            a, b = (h5format.read_atoms(x["frames"][h5format.frame_key(i)]) for x in (f, g))
            np.testing.assert_array_equal(a.positions, b.positions)
            assert g["frames"][h5format.frame_key(i)].attrs["source"] == f"gfn2.h5 frame {i}"
    assert energies(first) != energies(second)
    r = run(["data", "generate", "-o", str(tmp_path / "x.h5"), "--set", "sampling.method=dataset"])
    assert r.returncode != 0 and "sampling.dataset" in r.stderr
