"""The Python side of the LAMMPS plugin (``pair_style n2amd`` and ``fix n2amd``).

The C++ plugin hands over LAMMPS's own arrays as writable memoryviews (no copies) and calls:

- :func:`load_pair` / :func:`compute_pair` for the local MLFF. Each rank evaluates the model on its
  owned atoms plus ghosts (LAMMPS keeps a ghost shell of ``layers × r_cut`` + skin). Ghost atoms
  that are periodic images of an atom owned by the same rank are mapped onto that atom (on one rank
  this is exactly the periodic graph: no duplicated work); ghosts owned by other ranks are extra
  nodes, whose features are exact as far as the owned atoms' energies need them. Only owned atoms'
  energies are summed; forces on ghosts are returned for LAMMPS's reverse communication
  (``newton pair on``), and the virial follows from Σ x·f over owned and ghost atoms.
- :func:`load_global` / :func:`compute_global` for models that need the whole system (NNH forces):
  the fix gathers all atoms on rank 0 (unwrapped, sorted by atom ID) and calls them there.

Units: LAMMPS ``metal`` (Å, eV, eV/Å, ps) — the package's own; other unit styles are refused by the
plugin. Every error is raised as an exception whose message LAMMPS prints in its ERROR line.
"""
from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import numpy as np


class PairHandle:
    def __init__(self, model, type_to_species: np.ndarray, elements: list[str]):
        from ase.data import atomic_numbers, covalent_radii

        from ..core.structure import CLOSE_FACTOR, CLOSE_POLICIES

        self.model = model
        self.type_to_species = type_to_species  # index by LAMMPS type (1-based; 0 unused)
        self.elements = elements
        self.r_cut = float(model.config.r_cut)
        self.layers = int(model.config.layers)
        # atoms closer than CLOSE_FACTOR × their covalent radii: N2AMD_CLOSE_ATOMS = refuse (default) | warn | off
        self.close_atoms = os.environ.get("N2AMD_CLOSE_ATOMS", "refuse")
        if self.close_atoms not in CLOSE_POLICIES:
            raise ValueError(f"N2AMD_CLOSE_ATOMS must be one of {', '.join(CLOSE_POLICIES)}, not {self.close_atoms!r}")
        self.radius = CLOSE_FACTOR * covalent_radii[[atomic_numbers[el] for el in model.elements]]  # per species
        self.warned = False
        from ..models.domain import DomainWatch

        self.domain = DomainWatch(model, "pair n2amd")


def _torch_threads() -> None:
    import torch

    n = os.environ.get("N2AMD_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if n:
        torch.set_num_threads(int(n))


def load_pair(model_path: str, elements: list[str], dtype: str = "float64", device: str = "cpu") -> PairHandle:
    """Load the MLFF for ``pair_coeff * * model.pt El1 El2 ...`` (one element per LAMMPS type)."""
    from ..models.io import load_force_model

    _torch_threads()
    model = load_force_model(model_path, device=device, dtype=dtype)
    if not hasattr(model, "config") or not hasattr(model.config, "r_cut"):
        raise ValueError(f"pair n2amd: {model_path} is not a local force field (use fix n2amd for NNH models)")
    missing = [el for el in elements if el not in model.elements]
    if missing:
        raise ValueError(f"pair n2amd: element(s) {', '.join(missing)} not in the model {model_path} "
                         f"(it knows {', '.join(model.elements)})")
    t2s = np.array([-1] + [model.elements.index(el) for el in elements], dtype=np.int64)
    return PairHandle(model, t2s, list(elements))


def _array(mv, dtype, shape):
    return np.frombuffer(mv, dtype=dtype).reshape(shape)


def compute_pair(h: PairHandle, x_mv, f_mv, type_mv, tag_mv, nlocal: int, nall: int, eatom_mv=None) -> float:
    """Energy (eV) of the owned atoms; adds forces (eV/Å) on owned and ghost atoms into ``f`` in place."""
    import torch

    from ..core.graph import neighbour_graph

    if nlocal == 0:  # an empty sub-domain: nothing owned, nothing to add
        return 0.0
    x = _array(x_mv, np.float64, (-1, 3))[:nall]
    f = _array(f_mv, np.float64, (-1, 3))[:nall]
    types = _array(type_mv, np.int32, (-1,))[:nall]
    tags = _array(tag_mv, np.int64, (-1,))[:nall]
    if not np.all(np.isfinite(x[:nlocal])):
        raise FloatingPointError("pair n2amd: non-finite atom positions (the simulation has blown up)")
    # node of each atom: owned → itself; ghost of an owned atom → that atom; other ghosts → own node
    order = np.argsort(tags[:nlocal], kind="stable")
    pos = np.searchsorted(tags[:nlocal], tags, sorter=order).clip(0, max(nlocal - 1, 0))
    owner = order[pos]
    local_owner = tags[owner] == tags
    node = np.where(local_owner, owner, -1)
    node[:nlocal] = np.arange(nlocal)
    foreign = np.flatnonzero(node < 0)
    node[foreign] = nlocal + np.arange(len(foreign))
    # graph over owned + ghost atoms (explicit images: non-periodic neighbour search). Only atoms with
    # features of their own (owned, foreign ghosts) receive messages, so a ghost of an owned atom matters
    # only within r_cut of them: the ghost shell (layers × r_cut + skin) is cut to that first.
    own = np.zeros(nall, bool)
    own[:nlocal] = True
    own[foreign] = True
    lo, hi = x[own].min(axis=0) - h.r_cut, x[own].max(axis=0) + h.r_cut
    sel = np.flatnonzero(own | np.all((x >= lo) & (x <= hi), axis=1))
    g = neighbour_graph(x[sel], np.zeros((3, 3)), False, h.r_cut)
    i, j = sel[g.edge_index[0]], sel[g.edge_index[1]]  # every pair, both directions
    # messages flow i → j (aggregated at j). A mapped ghost needs none: its owner gets them all.
    keep = (j < nlocal) | ~local_owner[j]
    i, j = i[keep], j[keep]
    # prune to what the owned atoms' energies depend on: features at layer k are needed only within
    # (layers − k) hops of an owned atom
    n_nodes = nlocal + len(foreign)
    src, dst = node[i], node[j]
    need = np.zeros(n_nodes, bool)
    need[:nlocal] = True
    for _ in range(h.layers - 1):
        grown = need.copy()
        grown[src[need[dst]]] = True
        need = grown
    keep = need[dst]
    i, j = i[keep], j[keep]
    node_atom = np.concatenate([np.arange(nlocal), foreign]).astype(np.int64)
    species = h.type_to_species[types[node_atom]]
    if h.close_atoms != "off" and len(i):
        check_close_edges(h, x, i, j, h.type_to_species[types], tags)
        if h.domain.domain and not h.domain.warned:
            symbols = np.array(h.model.elements)[h.type_to_species[types]]
            h.domain.check_edges(i, j, np.linalg.norm(x[j] - x[i], axis=1), symbols, tags, "atoms by LAMMPS ID")
    m = h.model
    dt = m.shift.dtype
    xt = torch.tensor(x, dtype=dt, requires_grad=True)
    vec = xt[torch.as_tensor(j)] - xt[torch.as_tensor(i)]
    e_node = m.atomic_energies(torch.as_tensor(species), torch.as_tensor(node[i]), torch.as_tensor(node[j]), vec)
    e_local = e_node[:nlocal]
    energy = e_local.sum()
    (grad,) = torch.autograd.grad(energy, xt)
    forces = -grad.detach().numpy()
    if not np.all(np.isfinite(forces)) or not np.isfinite(energy.item()):
        raise FloatingPointError("pair n2amd: the model returned NaN/inf forces or energy")
    f += forces
    if eatom_mv is not None:
        _array(eatom_mv, np.float64, (-1,))[:nlocal] += e_local.detach().numpy()
    return float(energy.item())


def check_close_edges(h: PairHandle, x, i, j, species, tags) -> None:
    """The closest pair i[k]–j[k] (positions ``x`` Å, species per atom, LAMMPS IDs ``tags``) nearer than
    0.6 × the covalent radii: refused (an ERROR line naming the IDs) or warned about once."""
    d = np.linalg.norm(x[j] - x[i], axis=1)
    limit = h.radius[species[i]] + h.radius[species[j]]
    bad = np.flatnonzero(d < limit)
    if not len(bad):
        return
    k = bad[np.argmin(d[bad])]
    text = (f"pair n2amd: atoms with IDs {tags[i[k]]} and {tags[j[k]]} are {d[k]:.3f} Å apart, closer than "
            f"{limit[k]:.2f} Å (0.6 × their covalent radii): outside any model's training domain")
    if h.close_atoms == "refuse":
        raise FloatingPointError(text + " (export N2AMD_CLOSE_ATOMS=warn to let it run)")
    if not h.warned:
        import warnings

        warnings.warn(text + " (warned once)", stacklevel=2)
        h.warned = True


class GlobalHandle:
    def __init__(self, model, elements: list[str], every: int, out_path: str | None):
        self.model = model
        self.elements = elements
        self.every = max(int(every), 0)
        self.out_path = out_path
        self.calls = 0
        from ..models.domain import DomainWatch

        self.domain = DomainWatch(model, "fix n2amd")


def load_global(model_path: str, elements: list[str], every: int = 0, out_path: str = "") -> GlobalHandle:
    """Any force model the calculator loads (NNH or MLFF) for ``fix ID all n2amd model.pt El1 ...``.
    With ``every`` > 0, band edges and gap (eV) of NNH models are appended to ``out_path`` (JSON lines)."""
    from ..models.io import load_force_model

    _torch_threads()
    model = load_force_model(model_path, device="cpu", dtype="float64")
    missing = [el for el in elements if el not in model.elements]
    if missing:
        raise ValueError(f"fix n2amd: element(s) {', '.join(missing)} not in the model {model_path} "
                         f"(it knows {', '.join(model.elements)})")
    if every and out_path:
        Path(out_path).write_text("")  # a fresh file per run
    return GlobalHandle(model, list(elements), every, out_path or None)


def compute_global(h: GlobalHandle, x_mv, f_mv, type_mv, cell_mv, pbc: int, step: int, virial_mv,
                   want_virial: int = 1) -> float:
    """Whole system on rank 0: positions (N,3) Å unwrapped and sorted by atom ID, cell rows (Å).
    Writes forces (eV/Å) into ``f`` and, when LAMMPS asks for it, the virial Σ r⊗f (eV; xx yy zz xy xz yz)
    into ``virial``; returns the energy (eV)."""
    from ase import Atoms

    x = _array(x_mv, np.float64, (-1, 3))
    f = _array(f_mv, np.float64, (-1, 3))
    types = _array(type_mv, np.int32, (-1,))
    cell = _array(cell_mv, np.float64, (3, 3))
    atoms = Atoms([h.elements[t - 1] for t in types], positions=x, cell=cell, pbc=bool(pbc))
    from ..core.structure import check_close_atoms

    policy = os.environ.get("N2AMD_CLOSE_ATOMS", "refuse")
    try:  # N2AMD_CLOSE_ATOMS = refuse (default) | warn | off, as for pair n2amd
        check_close_atoms(atoms, policy, f"fix n2amd, step {step}")
    except ValueError as exc:
        raise FloatingPointError(str(exc)) from None
    if policy != "off":
        h.domain.check(atoms, f"step {step} (atoms by index in ID order)")
    out = h.model.evaluate(atoms, stress=bool(pbc and want_virial))
    if not np.all(np.isfinite(out["forces"])) or not np.isfinite(out["energy"]):
        raise FloatingPointError("fix n2amd: the model returned NaN/inf forces or energy")
    f[:] = out["forces"]
    if "stress" in out:
        # LAMMPS virial W = −V σ (ASE stress sign), Voigt order xx yy zz xy xz yz
        W = -atoms.get_volume() * out["stress"]
        _array(virial_mv, np.float64, (6,))[:] = [W[0, 0], W[1, 1], W[2, 2], W[0, 1], W[0, 2], W[1, 2]]
    extras = out.get("extras")
    if h.every and extras and h.out_path and step % h.every == 0:
        with open(h.out_path, "a") as fh:
            fh.write(json.dumps({"step": int(step), **extras}) + "\n")
    h.calls += 1
    return float(out["energy"])


def format_exception(exc: BaseException) -> str:
    """One line for LAMMPS's ERROR message (the full traceback goes to stderr first)."""
    traceback.print_exception(exc)
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")
