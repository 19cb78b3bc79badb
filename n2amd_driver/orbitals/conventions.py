"""Atomic-orbital basis descriptions and orbital-orientation conventions.

A :class:`Basis` lists, per element, the angular momentum ``l`` of each shell in the engine's
shell order. Inside the package every shell's ``2l+1`` functions are in **e3nn's real
spherical-harmonic order** (l=1: x, y, z; l=2: see below) with parity ``(−1)^l``, so that a
rotation ``Q`` acts on a block as

    H_ij(Q·R) = D_i(Q) · H_ij(R) · D_j(Q)^T,   D = Irrep(l, (−1)^l).D_from_matrix(Q) per shell.

Each engine orders and signs its real orbitals differently. For one shell, ``C = convention_matrix
(engine, l)`` expresses the engine's functions in e3nn's: ``Y_engine = C · Y_e3nn`` (C orthogonal),
so a matrix in engine order converts as ``H_internal = T^T · H_engine · T`` with ``T`` the
block-diagonal of the per-shell ``C`` (see :meth:`Basis.engine_transform`).

e3nn l=2 (component normalisation, unit vector, y the polar axis):
    [√15·xz, √15·xy, √5·(y² − (x²+z²)/2), √15·yz, (√15/2)·(z² − x²)]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

_S3 = np.sqrt(3.0) / 2.0

# rows: the engine's functions, columns: e3nn's (m order as listed in the module docstring)
_D_PYSCF = np.array(  # (dxy, dyz, dz², dxz, dx²−y²) — pyscf and tblite share this order
    [
        [0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, -0.5, 0, _S3],
        [1, 0, 0, 0, 0],
        [0, 0, -_S3, 0, -0.5],
    ]
)
_P_XYZ = np.eye(3)
_P_YZX = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)  # (py, pz, px)


def _rows(d_rows: dict[str, np.ndarray], order: list[str], signs: list[float] | None = None) -> np.ndarray:
    m = np.array([d_rows[k] for k in order], dtype=float)
    if signs is not None:
        m = m * np.asarray(signs, dtype=float)[:, None]
    return m


_D_BY_NAME = dict(zip(["xy", "yz", "z2", "xz", "x2-y2"], _D_PYSCF))
_P_BY_NAME = dict(zip(["x", "y", "z"], np.eye(3)))

#: Supported engines/formats and their orbital orders for l = 0, 1, 2 (rows in e3nn coordinates).
_CONVENTIONS: dict[str, dict[int, np.ndarray]] = {
    "e3nn": {0: np.eye(1), 1: np.eye(3), 2: np.eye(5)},
    # pyscf (cart=False): p = (px, py, pz); d = (dxy, dyz, dz², dxz, dx²−y²)
    "pyscf": {0: np.eye(1), 1: _P_XYZ, 2: _D_PYSCF},
    # tblite: p = (py, pz, px); d as pyscf
    "tblite": {0: np.eye(1), 1: _P_YZX, 2: _D_PYSCF},
    # OpenMX (DeepH folders): p = (x, y, z); d = (z², x²−y², xy, xz, yz), no sign changes
    "openmx": {0: np.eye(1), 1: _P_XYZ, 2: _rows(_D_BY_NAME, ["z2", "x2-y2", "xy", "xz", "yz"])},
    # SIESTA/HONPAS: m = −l..l (p = y, z, x; d = xy, yz, z², xz, x²−y²) with m = ±1 sign-flipped
    "siesta": {
        0: np.eye(1),
        1: _rows(_P_BY_NAME, ["y", "z", "x"], [-1, 1, -1]),
        2: _rows(_D_BY_NAME, ["xy", "yz", "z2", "xz", "x2-y2"], [1, -1, 1, -1, 1]),
    },
    # ABACUS: m = 0, +1, −1, +2, −2 with (−1)^m on odd |m|
    "abacus": {
        0: np.eye(1),
        1: _rows(_P_BY_NAME, ["z", "x", "y"], [1, -1, -1]),
        2: _rows(_D_BY_NAME, ["z2", "xz", "yz", "x2-y2", "xy"], [1, -1, -1, 1, 1]),
    },
}

ENGINES = tuple(_CONVENTIONS)


def convention_matrix(engine: str, l: int) -> np.ndarray:
    """Orthogonal ``C`` with ``Y_engine = C · Y_e3nn`` for one shell of angular momentum ``l``."""
    try:
        table = _CONVENTIONS[engine]
    except KeyError:
        raise ValueError(f"unknown orbital convention '{engine}'; known: {', '.join(ENGINES)}") from None
    if l not in table:
        if engine == "pyscf":
            return _pyscf_numeric_convention(l)
        raise NotImplementedError(f"orbital convention '{engine}' is tabulated for l ≤ 2 only, got l={l}")
    return table[l]


@lru_cache(maxsize=None)
def _pyscf_numeric_convention(l: int) -> np.ndarray:
    """pyscf's real harmonics in e3nn's, fitted on random directions (used for l ≥ 3)."""
    import torch
    from e3nn import o3
    from pyscf.symm.sph import real_sph_vec

    rng = np.random.default_rng(1234)
    r = rng.normal(size=(200, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    y_pyscf = real_sph_vec(r, l, reorder_p=True)[l].T  # (npts, 2l+1), unit-normalised on the sphere
    y_e3nn = o3.spherical_harmonics(l, torch.from_numpy(r), normalize=True, normalization="integral").numpy()
    c, *_ = np.linalg.lstsq(y_e3nn, y_pyscf, rcond=None)
    c = c.T
    if not np.allclose(c @ c.T, np.eye(2 * l + 1), atol=1e-8):
        raise RuntimeError(f"could not map pyscf's l={l} harmonics onto e3nn's")
    return np.where(np.abs(c) < 1e-12, 0.0, c)


def wigner_D(l: int, rotation: np.ndarray) -> np.ndarray:
    """Real Wigner-D of an orbital shell (parity (−1)^l) in e3nn order, for a 3×3 orthogonal matrix."""
    import torch
    from e3nn import o3

    # e3nn builds D from float32 constants unless the default dtype is float64 (errors ~3e-7 otherwise)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        R = torch.as_tensor(np.asarray(rotation), dtype=torch.float64)
        return o3.Irrep(l, (-1) ** l).D_from_matrix(R).numpy()
    finally:
        torch.set_default_dtype(previous)


@dataclass(frozen=True)
class Basis:
    """Shells per element: ``shells["Si"] == (0, 1, 2)`` means an s, a p and a d shell.

    ``name`` records where the basis comes from (e.g. ``"tblite:GFN2-xTB"``, ``"pyscf:gth-szv"``).
    """

    shells: dict[str, tuple[int, ...]]
    name: str = ""
    engine_order: str = "e3nn"  # the engine whose orbital order raw matrices arrive in
    extra: dict = field(default_factory=dict)

    # ---- sizes and maps --------------------------------------------------------------------
    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(sorted(self.shells, key=lambda s: atomic_numbers[s]))

    def norb(self, element: str) -> int:
        """Number of orbitals of one atom of ``element``."""
        return sum(2 * l + 1 for l in self.shells_of(element))

    def shells_of(self, element: str) -> tuple[int, ...]:
        try:
            return self.shells[element]
        except KeyError:
            raise KeyError(
                f"element {element} is not in basis '{self.name}' (has {', '.join(self.elements)})"
            ) from None

    def check_elements(self, numbers) -> None:
        """Raise a ``ValueError`` naming every element the basis does not cover."""
        missing = sorted({chemical_symbols[z] for z in np.unique(numbers)} - set(self.shells))
        if missing:
            raise ValueError(
                f"element(s) {', '.join(missing)} not covered by basis '{self.name}' "
                f"(covers {', '.join(self.elements)})"
            )

    def orbital_offsets(self, numbers) -> np.ndarray:
        """Start index of each atom's orbitals (length natoms+1; the last entry is the total)."""
        self.check_elements(numbers)
        counts = [self.norb(chemical_symbols[z]) for z in numbers]
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def shell_list(self, numbers) -> list[tuple[int, int, int]]:
        """(atom, l, first orbital index) for every shell of the structure, in matrix order."""
        out, start = [], 0
        for a, z in enumerate(numbers):
            for l in self.shells_of(chemical_symbols[z]):
                out.append((a, l, start))
                start += 2 * l + 1
        return out

    # ---- conventions and rotations -----------------------------------------------------------
    def engine_transform(self, numbers, engine: str | None = None) -> np.ndarray:
        """Block-diagonal ``T`` (engine order → e3nn order): ``H_internal = T.T @ H_engine @ T``."""
        engine = engine or self.engine_order
        return self._block_diag(numbers, lambda l: convention_matrix(engine, l))

    def to_internal(self, matrix: np.ndarray, numbers, engine: str | None = None) -> np.ndarray:
        """Convert a square (norb × norb) matrix (H, S, density matrix) to e3nn order."""
        T = self.engine_transform(numbers, engine)
        return T.T @ matrix @ T

    def rotation_matrix(self, numbers, rotation: np.ndarray) -> np.ndarray:
        """Block-diagonal Wigner-D of the whole structure's basis (e3nn order)."""
        cache: dict[int, np.ndarray] = {}

        def D(l):
            if l not in cache:
                cache[l] = wigner_D(l, rotation)
            return cache[l]

        return self._block_diag(numbers, D)

    def _block_diag(self, numbers, block_of_l) -> np.ndarray:
        offsets = self.orbital_offsets(numbers)
        T = np.zeros((offsets[-1], offsets[-1]))
        for _, l, s in self.shell_list(numbers):
            T[s : s + 2 * l + 1, s : s + 2 * l + 1] = block_of_l(l)
        return T

    # ---- serialisation ------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {"shells": {k: list(v) for k, v in self.shells.items()}, "name": self.name,
             "engine_order": self.engine_order, "extra": self.extra},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "Basis":
        d = json.loads(text)
        return cls(
            shells={k: tuple(v) for k, v in d["shells"].items()},
            name=d.get("name", ""),
            engine_order=d.get("engine_order", "e3nn"),
            extra=d.get("extra", {}),
        )

    def describe(self) -> str:
        names = "spdfg"
        return ", ".join(
            f"{el}: {''.join(names[l] for l in self.shells[el])} ({self.norb(el)} orb.)" for el in self.elements
        )
