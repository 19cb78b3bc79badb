"""The package's layers: imports point down, never sideways or up, no import cycles, and no module uses
another module's private names. Read from the source (every import statement, lazy ones in functions
included), so nothing has to be imported to check it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "n2amd_driver"
#: bottom to top; a module may import from its own subpackage and from lower layers only
LAYERS = {"core": 0, "orbitals": 1, "engines": 2, "data": 2, "models": 3, "training": 4, "md": 5, "namd": 5}
TOP = 6  # cli, demo, reference_data, ipi, setup_hooks and the package's __init__


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import in ``module`` within the package."""
    tree = ast.parse(MODULES[module].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("n2amd_driver")]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target.startswith("n2amd_driver"):
                continue
            names = [a.name for a in node.names]
            # "from .pkg import module" imports a module, not a name
            subs = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(f"{target}.{n}", [], node.lineno) for n in subs]
            rest = [n for n in names if n not in subs]
            if rest:
                out.append((target, rest, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args \
                and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("n2amd_driver"):
            out.append((node.args[0].value, [], node.lineno))
    return out


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]], parts[1]
    return TOP, parts[1] if len(parts) > 1 else ""


def test_every_import_points_down():
    wrong = []
    for module in MODULES:
        layer, sub = _layer(module)
        for target, _, line in _imports(module):
            t_layer, t_sub = _layer(target)
            if t_sub == sub and layer < TOP:
                continue
            if t_layer >= layer and not (layer == TOP and t_layer == TOP and target != module):
                wrong.append(f"{module}:{line} imports {target} (layer {t_layer} from layer {layer})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    # a package's __init__ that only names its public API lazily is not a real dependency of its modules
    cycles, index, low, stack, on, counter = [], {}, {}, [], set(), [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v), on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_private_names_stay_in_their_module():
    wrong = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text())
        aliases = {}
        for target, names, line in _imports(module):
            wrong += [f"{module}:{line} imports {target}.{n}" for n in names
                      if n.startswith("_") and not n.startswith("__") and target != module]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _resolve(module, node).startswith("n2amd_driver"):
                for a in node.names:
                    full = f"{_resolve(module, node)}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                wrong.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("sub", sorted(LAYERS))
def test_each_subpackage_names_its_public_api(sub):
    """Every name a subpackage's ``__init__`` offers exists in the module it points to."""
    import importlib

    pkg = importlib.import_module(f"n2amd_driver.{sub}")
    assert pkg.__all__, f"n2amd_driver.{sub} names no public API"
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
