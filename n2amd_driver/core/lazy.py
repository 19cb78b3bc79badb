"""Public names of a subpackage, imported on first use (PEP 562).

A subpackage's ``__init__`` lists what it offers without importing its modules, so that
``import n2amd_driver.namd`` does not pull in torch, and a name's home module is one place:

    __all__, __getattr__, __dir__ = exports(__name__, {"overlap": ["overlap_matrix", "cross_overlap"]})
"""
from __future__ import annotations

import importlib


def exports(package: str, names_by_module: dict[str, list[str]]):
    """(``__all__``, ``__getattr__``, ``__dir__``) for ``package`` from {module: [public names]}."""
    home = {name: module for module, names in names_by_module.items() for name in names}

    def __getattr__(name: str):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return sorted(home), __getattr__, __dir__
