"""Atomic basis functions themselves: contracted Gaussian shells of the reference engines.

The overlap S is not learned: it is computed from these functions (:mod:`.overlap`).

- **tblite GFN1/GFN2-xTB**: Slater-type orbitals expanded in ng Gaussians (STO-nG, Stewart 1970), with
  the published per-element Slater exponents and principal quantum numbers (data in
  ``assets/tblite_basis.json``). In GFN1, a second shell of the same l on an atom (H 2s) is
  Gram–Schmidt orthogonalised to the first, as tblite does. Contractions are *not* renormalised (tblite
  does not either: its 4s/4p 6G functions have norms 0.9999999 and 0.99999979).
- **pyscf bases**: any basis pyscf knows (GTH or all-electron), normalised the way pyscf does it.

Exponents are in bohr⁻²; a shell's coefficients multiply *normalised* primitive Gaussians.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from .conventions import Basis, convention_matrix

_ASSETS = Path(__file__).parents[1] / "assets"
_STO_INDEX = {(1, 0): 0, (2, 0): 1, (3, 0): 2, (4, 0): 3, (5, 0): 4, (2, 1): 5, (3, 1): 6, (4, 1): 7, (5, 1): 8,
              (3, 2): 9, (4, 2): 10, (5, 2): 11, (4, 3): 12, (5, 3): 13, (5, 4): 14}


@dataclass(frozen=True)
class GaussianShell:
    """One contracted shell: Σ_k c_k · g_k(r) · Y_lm, g_k normalised primitives with exponent α_k (bohr⁻²)."""

    l: int
    exponents: tuple[float, ...]
    coefficients: tuple[float, ...]


def _primitive_overlap_s(a: np.ndarray, b: np.ndarray, l: int) -> np.ndarray:
    """<g_a|g_b> of normalised same-centre primitives of angular momentum l."""
    return (2.0 * np.sqrt(np.outer(a, b)) / np.add.outer(a, b)) ** (1.5 + l)


@lru_cache(maxsize=None)
def _tblite_data() -> dict:
    return json.loads((_ASSETS / "tblite_basis.json").read_text())


def _sto_ng(n: int, l: int, ng: int, zeta: float) -> tuple[np.ndarray, np.ndarray]:
    table = _tblite_data()["stewart"]
    if ng == 6 and n == 6:
        t = table["6s" if l == 0 else "6p"]
        alpha, coeff = np.array(t["alpha"]), np.array(t["coeff"])
    else:
        k = _STO_INDEX[(n, l)]
        alpha, coeff = np.array(table[str(ng)]["alpha"][k]), np.array(table[str(ng)]["coeff"][k])
    return alpha * zeta**2, coeff


def tblite_shells(method: str, element: str) -> list[GaussianShell]:
    """The contracted shells of ``element`` in tblite's ``method`` (GFN1-xTB or GFN2-xTB)."""
    data = _tblite_data()
    if method not in data:
        raise ValueError(f"no tblite basis data for method '{method}' (have GFN1-xTB, GFN2-xTB)")
    z = atomic_numbers.get(element)
    if z is None or str(z) not in data[method]:
        raise ValueError(f"element {element} is not parametrised in {method} (tblite covers H–Rn)")
    raw = [(sh["l"], *_sto_ng(sh["n"], sh["l"], sh["ng"], sh["zeta"])) for sh in data[method][str(z)]]
    out: list[GaussianShell] = []
    first_of_l: dict[int, int] = {}
    for idx, (l, a, c) in enumerate(raw):
        if method == "GFN1-xTB" and l in first_of_l:
            # Gram–Schmidt against the first shell of this l (tblite: s shells only, e.g. H 2s ⟂ 1s)
            a0, c0 = raw[first_of_l[l]][1:]
            ov = c0 @ _primitive_overlap_s(a0, a, l) @ c
            a = np.concatenate([a, a0])
            c = np.concatenate([c, -ov * c0])
            c = c / np.sqrt(c @ _primitive_overlap_s(a, a, l) @ c)
        else:
            first_of_l.setdefault(l, idx)
        out.append(GaussianShell(int(l), tuple(map(float, a)), tuple(map(float, c))))
    return out


def load_pyscf_basis(basis_name: str, element: str, periodic: bool = True) -> list:
    """One element's basis in pyscf's raw format ``[[l, [exp, c1, ...], ...], ...]``.

    ``NAME[+lEXP...][@AMIN]``: pyscf basis NAME, then
    - ``+lEXP`` (l one of s, p, d, f): one more shell, a single primitive of exponent EXP bohr⁻²
      (a polarisation function), e.g. ``gth-szv+d0.275`` is gth-szv with gth-dzvp's d shell;
    - ``@AMIN``: every primitive exponent below AMIN bohr⁻² raised to AMIN, as solid-state Gaussian codes
      do with the diffuse functions of molecular bases: in a dense solid those make S nearly singular and
      H(R) long-ranged (docs/reference-data.md has the numbers for Si). E.g. ``gth-dzvp@0.12``.
    Raises ``KeyError`` naming the basis for an unknown element, ``ValueError`` for a malformed name.
    """
    import re

    from pyscf import gto
    from pyscf.pbc import gto as pbcgto

    spec, _, floor = basis_name.partition("@")
    name, *extra = spec.split("+")
    try:
        raw = (pbcgto.basis.load if periodic else gto.basis.load)(name, element)
    except Exception as exc:  # pyscf raises various types for a missing element or basis
        raise KeyError(f"element {element} is not available in pyscf basis '{name}': {exc}") from None
    if not raw:
        raise KeyError(f"element {element} is not available in pyscf basis '{name}'")
    raw = [list(shell) for shell in raw]
    for x in extra:
        m = re.fullmatch(r"([spdf])(\d*\.?\d+(?:[eE][-+]?\d+)?)", x)
        if not m or not float(m.group(2)) > 0:
            raise ValueError(f"basis '{basis_name}': expected +lEXP (l in s, p, d, f; EXP > 0 in bohr⁻²), got '+{x}'")
        raw.append(["spdf".index(m.group(1)), [float(m.group(2)), 1.0]])
    if not floor:
        return raw
    try:
        amin = float(floor)
    except ValueError:
        raise ValueError(f"basis '{basis_name}': expected NAME@EXPONENT (bohr⁻²) after '@', got '{floor}'") from None
    if not amin > 0:
        raise ValueError(f"basis '{basis_name}': the exponent floor must be > 0 bohr⁻²")

    def raised(shell):
        head = [x for x in shell if not isinstance(x, (list, tuple))]
        rows = [list(r) for r in shell if isinstance(r, (list, tuple))]
        return head + [[max(float(r[0]), amin)] + r[1:] for r in rows]

    return [raised(shell) for shell in raw]


def pyscf_shells(basis_name: str, element: str, periodic: bool = True) -> list[GaussianShell]:
    """Shells of a pyscf basis (GTH bases for cells, any basis for molecules, ``NAME@AMIN`` as in
    :func:`load_pyscf_basis`), pyscf-normalised."""
    from pyscf import gto

    raw = load_pyscf_basis(basis_name, element, periodic)
    mol = gto.Mole(atom=[[element, (0.0, 0.0, 0.0)]], basis={element: raw}, unit="Bohr", verbose=0)
    mol.spin = atomic_numbers[element] % 2
    mol.build(dump_input=False, parse_arg=False)
    out = []
    for b in range(mol.nbas):
        l = int(mol.bas_angular(b))
        exps = mol.bas_exp(b)
        cs = mol.bas_ctr_coeff(b)  # coefficients of normalised primitives (pyscf's contraction normalisation kept)
        for k in range(cs.shape[1]):
            out.append(GaussianShell(l, tuple(map(float, exps)), tuple(map(float, cs[:, k]))))
    return out


@dataclass(frozen=True)
class BasisFunctions:
    """Shells per element plus the orbital bookkeeping (:class:`~.conventions.Basis`)."""

    shells: dict[str, tuple[GaussianShell, ...]]
    name: str
    #: lattice-sum pair cutoff in bohr (None: converge to ~1e-12); tblite truncates its sums, see overlap.py
    pair_cutoff_bohr: float | None = None

    @classmethod
    def tblite(cls, method: str, elements) -> "BasisFunctions":
        shells = {el: tuple(tblite_shells(method, el)) for el in sorted(set(elements))}
        # tblite's neighbour cutoff: min(sqrt(2·intcut/α_min), 40 bohr) with intcut = 25 (basis/type.f90)
        a_min = min(min(sh.exponents) for s in shells.values() for sh in s)
        return cls(shells, f"tblite:{method}", min(np.sqrt(2 * 25.0 / a_min), 40.0))

    @classmethod
    def pyscf(cls, basis_name: str, elements, periodic: bool = True) -> "BasisFunctions":
        shells = {el: tuple(pyscf_shells(basis_name, el, periodic)) for el in sorted(set(elements))}
        return cls(shells, f"pyscf:{basis_name}")

    @classmethod
    def from_name(cls, name: str, elements, periodic: bool = True) -> "BasisFunctions":
        """The basis functions behind a :class:`~.conventions.Basis` name: ``"tblite:GFN1-xTB"``,
        ``"pyscf:gth-szv"`` (what the engines write into datasets and model files)."""
        kind, _, rest = name.partition(":")
        if kind == "tblite":
            return cls.tblite(rest, elements)
        if kind == "pyscf":
            return cls.pyscf(rest, elements, periodic)
        raise ValueError(f"no basis functions known for basis '{name}' (expected 'tblite:METHOD' or 'pyscf:BASIS')")

    @property
    def basis(self) -> Basis:
        """Orbital bookkeeping (shell l's per element, e3nn order)."""
        return Basis({el: tuple(sh.l for sh in s) for el, s in self.shells.items()}, name=self.name,
                     engine_order="e3nn")

    def min_exponent(self, numbers) -> float:
        return min(min(sh.exponents) for z in set(numbers) for sh in self.shells[chemical_symbols[z]])


@lru_cache(maxsize=None)
def _cached(name: str, elements: tuple[str, ...], periodic: bool) -> BasisFunctions:
    return BasisFunctions.from_name(name, elements, periodic)


def basis_functions(name: str, elements, periodic: bool = True) -> BasisFunctions:
    """The (cached) basis functions of basis ``name`` (``"tblite:GFN1-xTB"``, ``"pyscf:gth-dzvp"``) for a
    set of elements: every model, engine source and NNH evaluation shares one copy per basis."""
    return _cached(name, tuple(sorted(set(elements))), bool(periodic))


_SHELL_DATA: dict = {}


def shell_data(bf: BasisFunctions, element: str):
    """Per shell of an element: (l, exponents, weights, offset in the atom, M) with M = c2s · C (ncart × 2l+1)
    taking Cartesian components to the package's (e3nn) real spherical harmonics; weights are the
    contraction coefficients times the primitive normalisation, as libcint has them (no renormalisation)."""
    key = (element, bf.shells[element])
    if key not in _SHELL_DATA:
        from pyscf.gto import cart2sph
        from pyscf.gto.mole import gto_norm

        out, off = [], 0
        for sh in bf.shells[element]:
            e = np.asarray(sh.exponents, float)
            w = np.asarray(sh.coefficients, float) * np.array([gto_norm(sh.l, a) for a in e])
            out.append((sh.l, e, w, off, cart2sph(sh.l) @ convention_matrix("pyscf", sh.l)))
            off += 2 * sh.l + 1
        _SHELL_DATA[key] = tuple(out)
    return _SHELL_DATA[key]
