"""i-PI with the package's driver: real i-PI processes (short runs) for NVT, NVE, PIMD, kill + reconnect,
RESTART, the custom PES class, and the error cases."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from n2amd_driver.core.units import KB_EV_K
from n2amd_driver.models.io import load_model

BIN = Path(sys.executable).parent
IPI = str(BIN / "i-pi")
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(not Path(IPI).exists(), reason="i-PI is not installed")


def setup_run(tmp_path, name: str, steps: int, extra_output: str = "", address=None):
    """Copy a shipped input into tmp_path with a unique socket address and a given length."""
    for f in (ROOT / "ipi_configs").glob("*.xyz"):
        shutil.copy(f, tmp_path)
    address = address or f"n2t{os.getpid()}{name}{int(time.time() * 1000) % 100000}"
    text = (ROOT / "ipi_configs" / f"input_{name}.xml").read_text()
    text = re.sub(r"<total_steps> \d+ </total_steps>", f"<total_steps> {steps} </total_steps>", text)
    text = text.replace("<address> n2amd </address>", f"<address> {address} </address>")
    text = text.replace("<checkpoint stride=\"100\"/>", extra_output + "<checkpoint stride=\"100\"/>")
    (tmp_path / "input.xml").write_text(text)
    return address


def start_ipi(tmp_path, inp="input.xml", repaired=False):
    """Plain ``i-pi``, or (repaired) the package's ``ipi_server``, which is what run_ipi.sh starts."""
    cmd = [sys.executable, "-m", "n2amd_driver.md.ipi_server", inp] if repaired else [IPI, inp]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=open(tmp_path / "ipi.log", "a"),
                            stderr=subprocess.STDOUT, env=ENV)


def start_driver(tmp_path, address, model="si_mlff.pt", structure=None, extra=()):
    cmd = [sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", address, "--model", model, "--threads", "1",
           *extra]
    cmd += ["--structure", structure] if structure else ["--element", "Si"]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def properties(path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)


def wait_for_step(path, step, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists():
            try:
                d = properties(path)
                if len(d) and d[-1, 0] >= step:
                    return
            except ValueError:
                pass
        time.sleep(0.3)
    raise TimeoutError(f"i-PI did not reach step {step}")


def finish(procs, timeout=300):
    return [p.wait(timeout=timeout) for p in procs]


def test_nvt_step0_equals_the_model_and_extras(tmp_path):
    addr = setup_run(tmp_path, "nvt", 10, '<trajectory filename="frc" stride="1" format="xyz" cell_units="angstrom">'
                     ' forces{ev/ang} </trajectory>\n    <trajectory filename="ext" stride="1"> extras </trajectory>\n    ')
    a = read(tmp_path / "si64.xyz")
    a.cell, a.pbc = [10.86] * 3, True
    a.rattle(0.05, seed=4)  # forces that are not zero by symmetry
    lines = (tmp_path / "si64.xyz").read_text().splitlines()[:2]
    lines += [f"Si {x:.10f} {y:.10f} {z:.10f}" for x, y, z in a.positions]
    (tmp_path / "si64.xyz").write_text("\n".join(lines) + "\n")
    ipi = start_ipi(tmp_path)
    drv = start_driver(tmp_path, addr, structure="si64.xyz")
    assert finish([ipi, drv]) == [0, 0], drv.stderr.read()
    out = properties(tmp_path / "si64_nvt.out")
    assert out[-1, 0] == 10  # steps 0..total_steps
    ref = load_model("si_mlff.pt", dtype="float64").evaluate(a)
    assert out[0, 4] == pytest.approx(ref["energy"], rel=1e-8)  # potential{electronvolt}, step 0
    f = read(tmp_path / "si64_nvt.frc_0.xyz", index=0).positions  # the xyz 'positions' column holds forces
    # i-PI prints xyz trajectories with 6 significant digits: that, not the socket, limits this comparison
    np.testing.assert_allclose(f, ref["forces"], rtol=1e-5, atol=1e-6 * np.abs(ref["forces"]).max())
    assert "energy_eV" in (tmp_path / "si64_nvt.ext_0").read_text()


@pytest.mark.slow
def test_nve_conserves_energy_over_200_steps(tmp_path):
    addr = setup_run(tmp_path, "nve", 200)
    ipi = start_ipi(tmp_path)
    drv = start_driver(tmp_path, addr)
    assert finish([ipi, drv]) == [0, 0]
    out = properties(tmp_path / "si64_nve.out")
    assert len(out) == 201
    slope = np.polyfit(out[:, 1] / 1000, out[:, 2] / 64, 1)[0]  # eV/atom/ps
    assert abs(slope) * 1000 < 1.0


@pytest.mark.slow
def test_pimd_two_drivers_quantum_kinetic_energy_exceeds_classical(tmp_path):
    addr = setup_run(tmp_path, "pimd", 150)
    ipi = start_ipi(tmp_path)
    drivers = [start_driver(tmp_path, addr) for _ in range(2)]
    assert finish([ipi, *drivers]) == [0, 0, 0]
    out = properties(tmp_path / "si8_pimd.out")
    kcv = out[50:, 5] / 8  # centroid-virial kinetic energy per atom (eV), after 50 fs
    classical = 1.5 * KB_EV_K * 100.0
    assert kcv.mean() > 1.5 * classical  # zero-point motion of Si phonons (ħω ~ 30-60 meV ≫ kT = 8.6 meV)


def test_reset_connection_is_a_disconnect_after_repair():
    """A driver that dies with unread bytes resets the socket: plain i-PI 3.3.1 lets that error kill its
    polling thread (the run hangs); the repaired reader reports Disconnected, which i-PI handles."""
    from ipi.interfaces import sockets

    from n2amd_driver.md.ipi_server import repair_disconnects

    def dead_driver():
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        d = sockets.Driver(ours)
        d.sendall(b"POSDATA     ")  # never read by the driver
        theirs.close()
        return d

    if not getattr(sockets.Driver._recv_forces_bulk, "_n2amd_repaired", False):
        with pytest.raises(ConnectionResetError):
            dead_driver()._recv_forces_bulk(2)
    repair_disconnects()
    with pytest.raises(sockets.Disconnected, match="reset"):
        dead_driver()._recv_forces_bulk(2)
    assert repair_disconnects() == 0  # idempotent


def test_driver_killed_and_restarted_resumes(tmp_path):
    addr = setup_run(tmp_path, "nvt", 40)
    ipi = start_ipi(tmp_path, repaired=True)  # SIGKILL can leave unread bytes: see the test above
    drv = start_driver(tmp_path, addr)
    wait_for_step(tmp_path / "si64_nvt.out", 5)
    drv.send_signal(signal.SIGKILL)
    drv.wait()
    time.sleep(1.0)
    assert ipi.poll() is None  # i-PI waits for a new driver
    drv2 = start_driver(tmp_path, addr)
    assert finish([ipi, drv2]) == [0, 0]
    out = properties(tmp_path / "si64_nvt.out")
    assert out[-1, 0] == 40 and np.all(np.diff(out[:, 0]) == 1)  # every step, none lost or repeated


def test_ipi_restart_resumes_a_stopped_run(tmp_path):
    # i-PI polls for the signal about once a second (~20 steps here), so the run is long enough to be cut;
    # the shipped safe_stride=1 makes RESTART the last completed step (with 20 the resumed run repeats steps)
    addr = setup_run(tmp_path, "nvt", 80)
    ipi = start_ipi(tmp_path)
    drv = start_driver(tmp_path, addr)
    wait_for_step(tmp_path / "si64_nvt.out", 8)
    ipi.send_signal(signal.SIGTERM)  # i-PI soft-exits and writes RESTART
    finish([ipi, drv])
    first = properties(tmp_path / "si64_nvt.out")
    assert (tmp_path / "RESTART").exists() and first[-1, 0] < 80
    ipi = start_ipi(tmp_path, "RESTART")
    drv = start_driver(tmp_path, addr)
    assert finish([ipi, drv]) == [0, 0]
    resumed = properties(tmp_path / "si64_nvt.out")  # i-PI appends the resumed run to the same file
    assert resumed[-1, 0] == 80 and np.all(np.diff(resumed[:, 0]) == 1)  # every step once: continued, not redone


def test_custom_pes_with_ipi_py_driver(tmp_path):
    import n2amd_driver.md.ipi_pes as pes

    addr = setup_run(tmp_path, "nvt", 3)
    ipi = start_ipi(tmp_path)
    drv = subprocess.Popen([str(BIN / "i-pi-py_driver"), "-m", "custom", "-P", pes.__file__, "-o",
                            "model=si_mlff.pt,structure=si64.xyz", "-u", "-a", addr], cwd=tmp_path, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert finish([ipi, drv]) == [0, 0], drv.stderr.read()[-2000:]
    out = properties(tmp_path / "si64_nvt.out")
    a = read(tmp_path / "si64.xyz")
    a.cell, a.pbc = [10.86] * 3, True
    assert out[0, 4] == pytest.approx(load_model("si_mlff.pt", dtype="float64").evaluate(a)["energy"], rel=1e-8)


def test_stale_socket_is_named(tmp_path):
    addr = f"n2stale{os.getpid()}"
    path = f"/tmp/ipi_{addr}"
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens: what a killed i-PI leaves behind
    try:
        r = subprocess.run([sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", addr, "--model",
                            "si_mlff.pt", "--element", "Si", "--wait", "1"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "stale socket file" in r.stderr
        # the launcher script detects and removes it before starting i-PI
        setup_run(tmp_path, "nvt", 2, address=addr)
        shutil.copy(ROOT / "ipi_configs" / "run_ipi.sh", tmp_path)
        r = subprocess.run(["bash", "run_ipi.sh", "input.xml", "1"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, env={**ENV, "N2AMD_PYTHON": sys.executable})
        assert r.returncode == 0, r.stderr[-2000:]
        assert "removing stale socket" in r.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_protocol_violation_and_missing_server_are_named(tmp_path):
    addr = f"n2bad{os.getpid()}"
    path = f"/tmp/ipi_{addr}"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    try:
        drv = start_driver(tmp_path, addr)
        conn, _ = srv.accept()
        conn.sendall(b"HELLOWORLD  ")  # not an i-PI message
        _, err = drv.communicate(timeout=60)
        assert drv.returncode == 2 and "unexpected message 'HELLOWORLD'" in err
        conn.close()
    finally:
        srv.close()
        os.unlink(path)
    r = subprocess.run([sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", "nobody_here_x", "--model",
                        "si_mlff.pt", "--element", "Si", "--wait", "0.5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no i-PI server" in r.stderr
    r = subprocess.run([sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", "x", "--model", "nothere.pt",
                        "--element", "Si"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "model file not found: nothere.pt" in r.stderr


def test_driver_needs_to_know_the_elements(tmp_path):
    """i-PI sends no element names: without --structure or --element the driver refuses (it used to take every
    atom as the model's element: a C8 cell ran with Si energies); a structure with elements the model does
    not know is refused by name."""
    from ase.build import bulk
    from ase.io import write

    base = [sys.executable, "-m", "n2amd_driver.ipi", "--unix", "--address", "x", "--model", "si_mlff.pt", "--wait", "0"]
    r = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "i-PI sends no element names: give --structure" in r.stderr
    write(tmp_path / "c8.xyz", bulk("C", "diamond", a=3.57, cubic=True))
    r = subprocess.run(base + ["--structure", str(tmp_path / "c8.xyz")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "c8.xyz has C, which the model does not know (it knows Si)" in r.stderr
    r = subprocess.run(base + ["--element", "C"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--element C: the model knows Si" in r.stderr
    # the shipped launcher takes the elements from the input's <initialize> file
    assert '--structure "$init"' in (ROOT / "ipi_configs" / "run_ipi.sh").read_text()


def test_nnh_model_through_ipi_reports_band_edges(tmp_path, nnh_model):
    """NNH forces served to i-PI: energy as the model's, band gap and edges in the extras."""
    import json

    addr = setup_run(tmp_path, "nvt", 2, '<trajectory filename="ext" stride="1"> extras </trajectory>\n    ')
    text = (tmp_path / "input.xml").read_text().replace("si64.xyz", "si8.xyz")
    (tmp_path / "input.xml").write_text(text)
    ipi = start_ipi(tmp_path)
    drv = start_driver(tmp_path, addr, model=str(nnh_model))
    assert finish([ipi, drv]) == [0, 0], drv.stderr.read()[-2000:]
    out = properties(tmp_path / "si64_nvt.out")
    a = read(tmp_path / "si8.xyz")
    a.cell, a.pbc = [5.43] * 3, True
    ref = load_model(nnh_model).evaluate(a, stress=False)
    assert out[0, 4] == pytest.approx(ref["energy"], rel=1e-8)
    # i-PI prints the parsed dictionary with our JSON string under 'raw'
    raw = re.search(r"'raw': \['(\{.*?\})'\]", (tmp_path / "si64_nvt.ext_0").read_text()).group(1)
    assert json.loads(raw)["gap_eV"] == pytest.approx(ref["extras"]["gap_eV"], rel=1e-8)
