"""Compiled parts built on the user's machine: a source file compiled into a shared library in a per-user
cache, keyed by the source, the command and whatever else the caller says it depends on, so it is rebuilt
by itself whenever any of them changes. Used by the LAMMPS plugin and the surface-hopping kernels."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from .checkpoint import atomic_write


class NativeBuildError(RuntimeError):
    """The compiler is missing or failed (the message has its command and the end of its output)."""


def cache_root(env: str, name: str) -> Path:
    """``$env`` when set, else ``<sys.prefix>/var/<name>``."""
    return Path(os.environ.get(env) or os.path.join(sys.prefix, "var", name))


def build_shared(source: Path, name: str, command: list[str], root: Path, link: tuple[str, ...] = (),
                 depends: tuple[str, ...] = (), force: bool = False, verbose: bool = False) -> Path:
    """Compile ``source`` with ``command + [source, '-o', output] + link`` into ``root/<key>/name`` unless it is
    there already; returns that path. Concurrent builds (MPI ranks) each write their own temporary file and
    rename it into place (:func:`~n2amd_driver.core.checkpoint.atomic_write`), so a reader never sees half a
    library."""
    h = hashlib.sha256(source.read_bytes())
    for part in (*command, *link, *depends, sys.version):
        h.update(part.encode())
    out = root / h.hexdigest()[:16] / name
    if out.exists() and not force:
        return out

    def compile_to(tmp: Path) -> None:
        cmd = [*command, str(source), "-o", str(tmp), *link]
        if verbose:
            print("[n2amd] compiling:", " ".join(cmd), file=sys.stderr)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise NativeBuildError(f"no compiler '{command[0]}' to build {source.name} (set CC/CXX)") from None
        if r.returncode != 0:
            raise NativeBuildError(f"compiling {source.name} failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")

    return atomic_write(out, compile_to)
