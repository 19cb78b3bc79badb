"""i-PI socket client: serves the package's force models to ``i-pi input.xml``.

    python -m n2amd_driver.ipi --unix --address si64 --model si_mlff.pt --structure init.xyz
    python -m n2amd_driver.ipi --host node07 --port 31415 --model runs/nnh_si64/model.pt --element Si

Protocol (i-PI's, native-endian): 12-byte headers STATUS → READY / NEEDINIT / HAVEDATA; INIT (bead
index, string); POSDATA (cell h with lattice vectors as columns, its inverse, natoms, positions; bohr);
GETFORCE → FORCEREADY, energy (hartree), natoms, forces (hartree/bohr), virial (hartree, 3×3), extras
(JSON string: band gap and edges for NNH models); EXIT. Conversions use i-PI's own unit factors, so
energies round-trip exactly. Inside, everything is eV and Å.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import numpy as np

HEADER = 12


class ProtocolError(RuntimeError):
    """The server sent something the i-PI protocol does not allow here."""


def _units():
    from ipi.utils.units import unit_to_internal, unit_to_user

    return unit_to_internal, unit_to_user


def from_ipi(cell_h, pos) -> tuple[np.ndarray, np.ndarray]:
    """i-PI cell h (columns = lattice vectors, bohr) and positions (bohr) → ASE cell rows and positions (Å)."""
    _, to_user = _units()
    cell = to_user("length", "angstrom", np.asarray(cell_h, float).reshape(3, 3).T)
    return cell, to_user("length", "angstrom", np.asarray(pos, float).reshape(-1, 3))


def to_ipi(energy_eV: float, forces_eV_A: np.ndarray, stress_eV_A3: np.ndarray | None, volume_A3: float):
    """(energy hartree, forces hartree/bohr, virial hartree 3×3) from eV, eV/Å, eV/Å³ (ASE stress sign)."""
    to_int, _ = _units()
    pot = float(to_int("energy", "electronvolt", energy_eV))
    f = np.asarray(to_int("force", "ev/ang", np.asarray(forces_eV_A, float)), np.float64)
    vir = np.zeros((3, 3)) if stress_eV_A3 is None else -np.asarray(stress_eV_A3) * volume_A3
    return pot, f, np.asarray(to_int("energy", "electronvolt", vir.T), np.float64)


class ModelEvaluator:
    """Atoms from i-PI's arrays → the model's energy, forces, virial. i-PI sends positions but no element
    names: they come from a template ``structure`` (atoms in i-PI's order, e.g. the <initialize> file), or,
    for a single-element system, from ``element``, which the model must know."""

    def __init__(self, model, structure=None, element: str | None = None, close_atoms: str = "refuse"):
        from ..core.structure import CLOSE_POLICIES
        from ..models.io import load_force_model

        if close_atoms not in CLOSE_POLICIES:
            raise ValueError(f"close_atoms must be one of {', '.join(CLOSE_POLICIES)}, not {close_atoms!r}")
        self.close_atoms = close_atoms
        self.model = load_force_model(model, dtype="float64") if isinstance(model, (str, os.PathLike)) else model
        self.symbols, self.element = None, None
        from ..models.domain import DomainWatch

        self.domain = DomainWatch(self.model, "i-PI driver")
        if structure is not None:
            from ..data.trajectory import read_trajectory

            self.symbols = read_trajectory(structure, max_frames=1)[0].get_chemical_symbols()  # i-PI xyz or ASE
            unknown = sorted(set(self.symbols) - set(self.model.elements))
            if unknown:
                raise ValueError(f"{structure} has {', '.join(unknown)}, which the model does not know "
                                 f"(it knows {', '.join(self.model.elements)})")
        elif element is not None:
            if element not in self.model.elements:
                raise ValueError(f"--element {element}: the model knows {', '.join(self.model.elements)}")
            self.element = element
        else:
            raise ValueError("i-PI sends no element names: give --structure FILE (a structure with the atoms in "
                             "i-PI's order, e.g. its <initialize> file) or, when every atom is of one element, "
                             "--element EL")

    def __call__(self, cell_h, pos):
        from ase import Atoms

        cell, x = from_ipi(cell_h, pos)
        symbols = self.symbols or [self.element] * len(x)
        if len(symbols) != len(x):
            raise ProtocolError(f"i-PI sent {len(x)} atoms; the template structure has {len(symbols)}")
        atoms = Atoms(symbols, positions=x, cell=cell, pbc=True)
        from ..core.structure import check_close_atoms

        check_close_atoms(atoms, self.close_atoms, "the structure i-PI sent")
        if self.close_atoms != "off":
            self.domain.check(atoms, "a structure i-PI sent")
        out = self.model.evaluate(atoms, stress=True)
        if not np.all(np.isfinite(out["forces"])) or not np.isfinite(out["energy"]):
            raise FloatingPointError("the model returned NaN/inf forces or energy")
        pot, f, vir = to_ipi(out["energy"], out["forces"], out.get("stress"), atoms.get_volume())
        extras = json.dumps({"energy_eV": out["energy"], **out.get("extras", {})})
        return pot, f, vir, extras


class _Stream:
    """Buffered reads from the socket. :meth:`drain` pulls in whatever i-PI has already sent (it fuses
    GETFORCE with POSDATA) before a long force evaluation: a driver killed while computing then leaves
    no unread bytes, so the kernel closes the connection cleanly (FIN) instead of resetting it, which
    i-PI 3.3 handles by re-queuing the request for another driver."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def recv(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(n - len(self.buf), 4096))
            if not chunk:
                raise ConnectionError("i-PI closed the connection")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.setblocking(True)


def _msg(text: str) -> bytes:
    return text.ljust(HEADER).encode()


def connect(address: str, unix: bool, port: int = 31415, wait_s: float = 60.0, prefix: str = "/tmp/ipi_"):
    """Connect, waiting up to ``wait_s`` for i-PI to open its socket (it appears ~2 s after start-up)."""
    deadline = time.monotonic() + wait_s
    path = prefix + address
    last = None
    while True:
        try:
            if unix:
                if not os.path.exists(path):
                    raise FileNotFoundError(path)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
            else:
                s = socket.create_connection((address, port), timeout=5)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            return s
        except (FileNotFoundError, ConnectionRefusedError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            where = path if unix else f"{address}:{port}"
            if unix and os.path.exists(path) and isinstance(last, ConnectionRefusedError):
                raise ConnectionError(f"stale socket file {path}: nothing is listening (an i-PI run that was "
                                      f"killed?). Remove it and restart i-PI.") from None
            raise ConnectionError(f"no i-PI server at {where} after {wait_s:.0f} s ({last})") from None
        time.sleep(0.2)


def serve(sock, evaluate, log=None) -> int:
    """Answer i-PI until EXIT (returns 0). Raises ProtocolError / ConnectionError on violations."""
    initialised, result = False, None
    nat = None
    stream = _Stream(sock)
    _recv = lambda n: stream.recv(n)  # noqa: E731
    while True:
        header = _recv(HEADER).decode(errors="replace").strip()
        if header == "STATUS":
            sock.sendall(_msg("NEEDINIT" if not initialised else "HAVEDATA" if result else "READY"))
        elif header == "INIT":
            bead = int(np.frombuffer(_recv(4), np.int32)[0])
            n = int(np.frombuffer(_recv(4), np.int32)[0])
            text = _recv(n).decode(errors="replace")
            for token in text.split(","):
                k, sep, v = token.partition(":")
                if sep and k.strip() == "batch_size" and v.strip() not in ("", "1"):
                    raise ProtocolError(f"i-PI asks for batched requests ({text!r}); run it without batching")
            initialised = True
            if log:
                log(f"initialised for bead {bead}")
        elif header == "POSDATA":
            if not initialised:
                raise ProtocolError("POSDATA before INIT")
            h = np.frombuffer(_recv(72), np.float64).reshape(3, 3)
            _recv(72)  # inverse cell: not needed
            nat = int(np.frombuffer(_recv(4), np.int32)[0])
            pos = np.frombuffer(_recv(24 * nat), np.float64).reshape(nat, 3)
            stream.drain()
            result = evaluate(h, pos)
        elif header == "GETFORCE":
            if result is None:
                raise ProtocolError("GETFORCE before POSDATA")
            pot, f, vir, extras = result
            data = extras.encode()
            arrays = np.ascontiguousarray(f, np.float64).tobytes() + np.ascontiguousarray(vir, np.float64).tobytes()
            sock.sendall(_msg("FORCEREADY") + np.float64(pot).tobytes() + np.int32(nat).tobytes() + arrays
                         + np.int32(len(data)).tobytes() + data)
            result = None
        elif header == "EXIT":
            return 0
        else:
            raise ProtocolError(f"unexpected message {header!r} from the server")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m n2amd_driver.ipi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--unix", action="store_true", help="UNIX socket /tmp/ipi_ADDRESS (same node; the default)")
    g.add_argument("--host", help="TCP: i-PI's host name (drivers on other nodes)")
    p.add_argument("--address", default="n2amd", help="UNIX socket name, i-PI's <address> (default: n2amd)")
    p.add_argument("--port", type=int, default=31415, help="TCP port, i-PI's <port> (default: 31415)")
    p.add_argument("--model", required=True, help="force model: MLFF or NNH model.pt, or a bundled name (si_mlff.pt)")
    e = p.add_mutually_exclusive_group(required=False)
    e.add_argument("--structure", help="template structure (any ASE format) giving the elements in i-PI's atom order "
                                       "(required unless --element)")
    e.add_argument("--element", help="every atom is this element (a one-element system)")
    p.add_argument("--close-atoms", default="refuse", choices=["refuse", "warn", "off"],
                   help="atoms closer than 0.6 x their covalent radii: stop (default), warn, or let pass")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for i-PI's socket (default 60)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    log = (lambda m: print(f"[n2amd-ipi] {m}", file=sys.stderr, flush=True)) if a.verbose else None
    try:
        evaluate = ModelEvaluator(a.model, a.structure, a.element, a.close_atoms)
        unix = not a.host
        sock = connect(a.address if unix else a.host, unix, a.port, a.wait)
        if log:
            log(f"connected to {'/tmp/ipi_' + a.address if unix else f'{a.host}:{a.port}'}")
        rc = serve(sock, evaluate, log)
        print("[n2amd-ipi] EXIT received from i-PI: done", file=sys.stderr, flush=True)
        return rc
    except (ProtocolError, ConnectionError, FileNotFoundError, ValueError, FloatingPointError) as exc:  # StructureError too
        print(f"[n2amd-ipi] error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
