"""Plain YAML configs: documented defaults ← a YAML file ← command-line overrides (``--set KEY=VALUE``)."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

#: keys whose values are free-form dicts (passed through to an engine), not merged key by key
_FREE_FORM = {"options"}


def load_config(defaults: dict, path=None, overrides: dict | None = None, relative_paths=()) -> dict:
    """Merge ``defaults`` with the YAML file at ``path`` and then ``overrides``; unknown keys are errors
    that name the file and the key. Values at the dotted keys in ``relative_paths`` that are relative
    paths are taken relative to the config file's folder."""
    cfg = copy.deepcopy(defaults)
    if path is not None:
        with open(path) as fh:
            merge(cfg, yaml.safe_load(fh) or {}, str(path))
        for dotted in relative_paths:
            node, *keys = dotted.split(".")
            parent, key = (cfg, node) if not keys else (cfg[node], keys[-1])
            value = parent.get(key)
            beside = lambda v: v if Path(v).is_absolute() else str(Path(path).parent / v)
            if isinstance(value, list):  # a list of paths (e.g. several datasets pooled)
                parent[key] = [beside(v) for v in value]
            elif value:
                parent[key] = beside(value)
    if overrides:
        merge(cfg, overrides, "command line")
    return cfg


def merge(base: dict, new: dict, where: str) -> None:
    for k, v in new.items():
        if k not in base:
            raise ValueError(f"{where}: unknown setting '{k}' (known: {', '.join(base)})")
        if isinstance(base[k], dict) and k not in _FREE_FORM and isinstance(v, dict):
            merge(base[k], v, f"{where}:{k}")
        else:
            base[k] = v


def parse_overrides(items) -> dict:
    """``["a.b=1", "c=[1,2]"]`` → ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML; a value that is not
    valid YAML stays the string it is)."""
    overrides: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override '{item}' is not KEY=VALUE")
        node = overrides
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:  # e.g. a pair_coeff line "* * model.pt Si" ('*' starts a YAML alias)
            node[parts[-1]] = value
    return overrides
