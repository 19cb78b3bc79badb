"""``python -m n2amd_driver.md.ipi_server input.xml``: i-PI's own ``i-pi`` program with one repair.

i-PI 3.3.1 reads a driver's force reply in ``Driver._recv_forces_bulk`` and turns an orderly close
(0 bytes read) or a timeout into ``Disconnected``; the request then goes back to the queue for the next
driver. A driver that dies with bytes still unread in its socket (SIGKILL, the OOM killer, a node going
down) makes the kernel reset the connection instead: ``recv_into`` raises ``ConnectionResetError``,
nothing catches it, i-PI's polling thread dies and the run waits forever. Here a reset or broken pipe
while receiving forces is reported as ``Disconnected``, the case i-PI already handles, so a new driver
picks up the step. Everything else is i-PI as installed (same options as ``i-pi``).
"""
from __future__ import annotations

import functools
import runpy
import shutil
import sys
from pathlib import Path

_PATCHED = ("_recv_forces_bulk", "_recv_forces_bulk_batch")  # the two readers whose callers catch Disconnected


def _reset_means_disconnected(method, disconnected):
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ConnectionResetError, BrokenPipeError) as err:
            raise disconnected(f"driver connection lost while sending forces: {err}") from err

    wrapped._n2amd_repaired = True
    return wrapped


def repair_disconnects() -> int:
    """Wrap i-PI's force readers (idempotent); returns how many methods were wrapped."""
    from ipi.interfaces import sockets

    n = 0
    for cls in vars(sockets).values():
        if not (isinstance(cls, type) and issubclass(cls, sockets.DriverSocket)):
            continue
        for name in _PATCHED:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_n2amd_repaired", False):
                setattr(cls, name, _reset_means_disconnected(method, sockets.Disconnected))
                n += 1
    return n


def ipi_program() -> Path:
    """The ``i-pi`` script installed beside this Python, else the one on PATH."""
    here = Path(sys.executable).parent / "i-pi"
    if here.exists():
        return here
    found = shutil.which("i-pi")
    if found is None:
        raise FileNotFoundError("the i-pi program is not installed (pip install ipi==3.3.1)")
    return Path(found)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if repair_disconnects() == 0:
        print("[ipi_server] warning: i-PI's force readers were not found; running i-PI unchanged", file=sys.stderr)
    program = ipi_program()
    sys.argv = [str(program), *argv]
    runpy.run_path(str(program), run_name="__main__")  # i-PI ends the process itself (os._exit) when done
    return 0


if __name__ == "__main__":
    sys.exit(main())
