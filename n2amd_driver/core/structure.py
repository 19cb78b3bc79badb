"""Structures: ASE ``Atoms`` in and out, and the checks every engine and model relies on.

Positions and cells are in Å; cells have lattice vectors as rows (ASE convention).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols


class StructureError(ValueError):
    """A structure that cannot be used as given; the message names the structure and the problem."""


def describe(atoms: Atoms, name: str | None = None) -> str:
    """Short human name of a structure, e.g. ``"frame 12 (Si64)"``."""
    formula = atoms.get_chemical_formula(mode="hill") if len(atoms) else "empty"
    return f"{name} ({formula})" if name else formula


def check_structure(
    atoms: Atoms,
    *,
    name: str | None = None,
    elements=None,
    min_distance: float = 0.5,
    periodic: bool | None = None,
) -> None:
    """Raise :class:`StructureError` if ``atoms`` is unusable.

    - ``elements``: allowed chemical symbols (e.g. those of a basis or a model);
    - ``min_distance`` (Å): atoms (or periodic images) closer than this count as overlapping;
    - ``periodic``: ``True`` requires full 3-D periodicity with a non-degenerate cell, ``False``
      requires an isolated structure (no periodic direction), ``None`` accepts either but not a
      partially periodic one.
    """
    label = describe(atoms, name)
    if len(atoms) == 0:
        raise StructureError(f"{label}: structure has no atoms")
    pos = atoms.positions
    if not np.all(np.isfinite(pos)):
        raise StructureError(f"{label}: positions contain NaN or inf")
    bad = [z for z in np.unique(atoms.numbers) if z <= 0 or z >= len(chemical_symbols)]
    if bad:
        raise StructureError(f"{label}: invalid atomic number(s) {bad}")
    if elements is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if unknown:
            raise StructureError(
                f"{label}: element(s) {', '.join(unknown)} not supported here (supported: {', '.join(sorted(elements))})"
            )
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise StructureError(f"{label}: partially periodic structures (pbc={pbc.tolist()}) are not supported")
    if pbc.all():
        if abs(atoms.cell.volume) < 1e-6:
            raise StructureError(f"{label}: periodic structure with a zero-volume cell")
        if periodic is False:
            raise StructureError(f"{label}: periodic structure given where an isolated one is required")
    elif periodic is True:
        raise StructureError(f"{label}: isolated structure (pbc=False) given where a periodic cell is required")
    if len(atoms) > 1 or pbc.any():
        from .graph import graph_from_atoms

        g = graph_from_atoms(atoms, min_distance)
        if g.num_edges:
            e = int(np.argmin(g.distances))
            i, j = g.edge_index[:, e]
            raise StructureError(
                f"{label}: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) overlap: "
                f"{g.distances[e]:.3f} Å apart (minimum {min_distance} Å)"
            )


def rotate_atoms(atoms: Atoms, rotation: np.ndarray, translation=(0.0, 0.0, 0.0)) -> Atoms:
    """Apply x → Q·x + t to positions and lattice vectors (Q any 3×3 orthogonal matrix)."""
    Q = np.asarray(rotation, dtype=float)
    out = atoms.copy()
    out.positions = atoms.positions @ Q.T + np.asarray(translation)
    out.cell = atoms.cell.array @ Q.T
    return out


#: atoms closer than this fraction of the sum of their covalent radii (ASE's, Cordero 2008) count as
#: unphysically close: 1.33 Å for Si–Si (bond 2.35 Å), 0.37 Å for H–H (H2: 0.74 Å)
CLOSE_FACTOR = 0.6
CLOSE_POLICIES = ("refuse", "warn", "off")


def close_pairs(atoms: Atoms, factor: float = CLOSE_FACTOR):
    """(i, j, distance Å, limit Å) of the atom pairs (periodic images included) closer than ``factor`` times
    the sum of their covalent radii, closest first."""
    from ase.data import covalent_radii

    from .graph import graph_from_atoms

    r = covalent_radii[atoms.numbers]
    g = graph_from_atoms(atoms, float(factor * 2 * r.max()))
    i, j = g.edge_index
    d = g.distances
    limit = factor * (r[i] + r[j])
    keep = (d < limit) & (i <= j)
    order = np.argsort(d[keep])
    return i[keep][order], j[keep][order], d[keep][order], limit[keep][order]


def check_close_atoms(atoms: Atoms, policy: str = "refuse", name: str | None = None,
                      factor: float = CLOSE_FACTOR) -> None:
    """Refuse (StructureError), warn about, or let pass (``policy``: refuse | warn | off) a structure with
    atoms closer than ``factor`` × the sum of their covalent radii: no model is trained there, and what it
    returns for such a structure is not physics."""
    if policy not in CLOSE_POLICIES:
        raise ValueError(f"close_atoms must be one of {', '.join(CLOSE_POLICIES)}, not {policy!r}")
    if policy == "off" or len(atoms) < 2 and not np.any(atoms.pbc):
        return
    i, j, d, limit = close_pairs(atoms, factor)
    if not len(d):
        return
    s = atoms.get_chemical_symbols()
    text = (f"{describe(atoms, name)}: atoms {i[0]} ({s[i[0]]}) and {j[0]} ({s[j[0]]}) are {d[0]:.3f} Å apart, closer "
            f"than {limit[0]:.2f} Å ({factor:g} × their covalent radii; {len(d)} such pair(s)): outside any "
            "model's training domain")
    if policy == "refuse":
        raise StructureError(text + " (close_atoms: warn lets it run)")
    import warnings

    warnings.warn(text, stacklevel=2)
