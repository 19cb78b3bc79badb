"""A model's training domain, measured by one number per element pair: the closest distance at which the
pair occurs in the structures the model was trained on (Å). It is written into the model file at training
time (``domain``) and read by every route that evaluates a model: the calculator, couplings, LAMMPS, i-PI.

A structure with a pair closer than ``DOMAIN_FACTOR`` × that minimum lies outside what the model has seen:
its energies, forces and Hamiltonian are extrapolations, and they get a warning (once per run). A pair that
never came within ``cutoff_A`` in training (Ga–Ga at 2.5 Å in a zinc-blende GaAs model) counts as having
that cutoff for its minimum. The measure is deliberately simple: it catches compressed bonds and atoms
pushed together, not every unfamiliar environment (a wrong coordination at normal bond lengths passes).

    domain = training_domain(frames, source="data_si64_train.yaml")
    text = out_of_domain(atoms, domain)          # None, or one line naming the atoms and distances
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from ase import Atoms

#: a pair closer than this fraction of its training minimum is outside the domain. Thermal MD at the
#: training temperatures stays above it: the closest pairs of 300-600 K Si MD spread by ~0.1 Å (5 %)
DOMAIN_FACTOR = 0.9
#: pairs are scanned up to this distance (Å) in the training structures
SCAN_CUTOFF_A = 5.0


def pair_key(a: str, b: str) -> str:
    """``"As-Ga"``: the two symbols in alphabetical order."""
    return "-".join(sorted((a, b)))


def _codes(symbols) -> tuple[list[str], np.ndarray]:
    els, code = np.unique(np.asarray(symbols), return_inverse=True)
    return [str(e) for e in els], code


def edge_minima(symbols_i, symbols_j, d: np.ndarray) -> dict[str, float]:
    """The smallest distance (Å) per element pair over edges with end symbols ``symbols_i``, ``symbols_j``."""
    els, code = _codes(np.concatenate([np.asarray(symbols_i), np.asarray(symbols_j)]))
    n = len(els)
    a, b = code[: len(d)], code[len(d):]
    m = np.full((n, n), np.inf)
    np.minimum.at(m, (np.minimum(a, b), np.maximum(a, b)), d)
    return {pair_key(els[p], els[q]): float(m[p, q]) for p in range(n) for q in range(p, n) if np.isfinite(m[p, q])}


def _edges(atoms: Atoms, cutoff: float):
    from ..core.graph import graph_from_atoms

    g = graph_from_atoms(atoms, cutoff, self_images=True)
    i, j = g.edge_index
    keep = i <= j
    return i[keep], j[keep], g.distances[keep]


def training_domain(structures: Iterable[Atoms], source: str = "", cutoff: float = SCAN_CUTOFF_A) -> dict:
    """The ``domain`` entry of a model file: per element pair, the closest distance (Å) in ``structures``."""
    minima: dict[str, float] = {}
    n = 0
    for atoms in structures:
        n += 1
        s = np.array(atoms.get_chemical_symbols())
        i, j, d = _edges(atoms, cutoff)
        for k, v in edge_minima(s[i], s[j], d).items():
            minima[k] = min(v, minima.get(k, np.inf))
    elements = sorted({el for k in minima for el in k.split("-")})
    return {"pair_min_A": minima, "cutoff_A": float(cutoff), "factor": DOMAIN_FACTOR, "frames": n,
            "elements": elements, "source": source}


def pair_limits(domain: dict, symbols: Iterable[str]) -> dict[str, float]:
    """Distance (Å) below which each pair of ``symbols`` is outside ``domain``."""
    els = sorted(set(symbols))
    f, mins = float(domain.get("factor", DOMAIN_FACTOR)), domain["pair_min_A"]
    return {pair_key(a, b): f * mins.get(pair_key(a, b), domain["cutoff_A"])
            for n, a in enumerate(els) for b in els[n:]}


def edges_out_of_domain(i: np.ndarray, j: np.ndarray, d: np.ndarray, symbols, domain: dict | None,
                        labels=None) -> str | None:
    """One line about the worst edge i[k]–j[k] (distance ``d`` Å) below its pair's domain limit, or None.
    ``symbols`` per atom; ``labels`` name the atoms in the message (default: their indices). Elements the
    model does not know are left to the model's own error."""
    symbols = np.asarray(symbols)
    if not domain or not len(d) or not set(symbols.tolist()) <= set(domain["elements"]):
        return None
    els, code = _codes(symbols)
    limits = pair_limits(domain, els)
    table = np.array([[limits[pair_key(a, b)] for b in els] for a in els])
    ratio = d / table[code[i], code[j]]
    k = int(np.argmin(ratio))
    if ratio[k] >= 1.0:
        return None
    key = pair_key(symbols[i[k]], symbols[j[k]])
    labels = np.arange(len(symbols)) if labels is None else np.asarray(labels)
    mins = domain["pair_min_A"]
    seen = (f"the closest {key} pair in its training structures is {mins[key]:.3f} Å"
            if key in mins else f"its training structures have no {key} pair within {domain['cutoff_A']:g} Å")
    return (f"atoms {labels[i[k]]} ({symbols[i[k]]}) and {labels[j[k]]} ({symbols[j[k]]}) are {d[k]:.3f} Å apart, "
            f"outside the model's training domain: {seen} (warned below {limits[key]:.3f} Å = "
            f"{domain.get('factor', DOMAIN_FACTOR):g} × that); energies, forces and H there are extrapolations")


def out_of_domain(atoms: Atoms, domain: dict | None) -> str | None:
    """One line naming the pair of ``atoms`` furthest below its domain limit, or None (inside, or no domain)."""
    s = atoms.get_chemical_symbols()
    if not domain or len(atoms) < 2 and not np.any(atoms.pbc) or not set(s) <= set(domain["elements"]):
        return None
    i, j, d = _edges(atoms, max(pair_limits(domain, s).values()))
    return edges_out_of_domain(i, j, d, s, domain)


def model_domain(model) -> dict | None:
    """The training domain recorded in a loaded model (an NNH model: its Hamiltonian's), or None for files
    written before domains were recorded."""
    info = getattr(model, "info", None) or getattr(getattr(model, "h", None), "info", None) or {}
    return info.get("domain")


class DomainWatch:
    """Checks structures against a model's domain and warns the first time one is outside (a long MD would
    otherwise repeat the warning every step)."""

    def __init__(self, model_or_domain, where: str = ""):
        self.domain = model_or_domain if isinstance(model_or_domain, dict) else model_domain(model_or_domain)
        self.where = where
        self.warned = False

    def check(self, atoms: Atoms, name: str | None = None) -> str | None:
        if self.warned or not self.domain:
            return None
        return self._warn(out_of_domain(atoms, self.domain), name)

    def check_edges(self, i, j, d, symbols, labels=None, name: str | None = None) -> str | None:
        if self.warned or not self.domain:
            return None
        return self._warn(edges_out_of_domain(i, j, d, symbols, self.domain, labels), name)

    def _warn(self, text: str | None, name: str | None) -> str | None:
        if text is None:
            return None
        import warnings

        where = ", ".join(x for x in (self.where, name) if x)
        text = f"{where}: {text}" if where else text
        warnings.warn(text + " (warned once)", stacklevel=3)
        self.warned = True
        return text
