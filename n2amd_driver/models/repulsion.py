"""The screened-Coulomb pair repulsion of GFN1-xTB: the physical prior of the NNH remainder.

    E_rep = Σ_{A<B} Z_A Z_B exp(−√(α_A α_B) R_AB^k) / R_AB        (R in bohr, E in hartree, k = 1.5)

summed over periodic images. In tight binding the band energy binds and this term keeps atoms apart;
the two change by similar amounts (~0.1 eV/atom) and with opposite signs when bonds stretch or squeeze.
A remainder MLFF that has to learn this term from ~50 near-equilibrium frames extrapolates it
(docs/models.md: the first NNH model ran downhill through its remainder in NVE); with the exact term in
place it only learns what is left (dispersion, charge terms, the Hamiltonian model's band-energy error).

Parameters per element (α in bohr^−k, Z_eff) are GFN1-xTB's (Grimme, Bannwarth, Shushkov, JCTC 13, 1989
(2017), as tabulated in tblite); the file of an NNH model stores the ones it uses. Units at the boundary:
eV, Å, eV/Å, eV/Å³ (ASE sign).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from ..core.units import BOHR_ANG, HARTREE_EV

#: GFN1-xTB repulsion (α [bohr^−1.5], Z_eff) for the elements this package ships data for
GFN1_REPULSION: dict[int, tuple[float, float]] = {
    1: (2.209700, 1.116244),  # H
    6: (1.281954, 4.428763),  # C
    8: (2.004253, 5.171786),  # O
    14: (0.948165, 16.898359),  # Si
    22: (0.828638, 17.084130),  # Ti
    31: (1.047536, 33.128619),  # Ga
    32: (1.129480, 35.493164),  # Ge
    33: (1.233641, 36.125762),  # As
}

#: pairs are dropped where α R^k > this: the pair energy is then below Z_A Z_B e^−40 / R ≈ 1e−15 hartree
_EXPONENT_CUT = 40.0


class PairRepulsion:
    """E_rep of one xTB method for the elements in ``params`` ({Z: (α, Z_eff)})."""

    def __init__(self, params: dict, kexp: float = 1.5, rexp: float = 1.0, method: str = "GFN1-xTB"):
        self.params = {int(z): (float(a), float(q)) for z, (a, q) in params.items()}
        self.kexp, self.rexp, self.method = float(kexp), float(rexp), method

    @classmethod
    def for_method(cls, method: str, elements) -> "PairRepulsion":
        from ase.data import atomic_numbers

        if method != "GFN1-xTB":
            raise ValueError(f"the repulsion prior has GFN1-xTB parameters only, not {method}")
        zs = [atomic_numbers[e] for e in elements]
        missing = [e for e, z in zip(elements, zs) if z not in GFN1_REPULSION]
        if missing:
            raise ValueError(f"no GFN1-xTB repulsion parameters for {missing} here; "
                             f"known: {sorted(GFN1_REPULSION)} (atomic numbers)")
        return cls({z: GFN1_REPULSION[z] for z in zs}, method=method)

    def state(self) -> dict:
        return {"kind": "xtb-repulsion", "method": self.method, "kexp": self.kexp, "rexp": self.rexp,
                "params": {str(z): list(p) for z, p in self.params.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "PairRepulsion":
        return cls({int(z): tuple(p) for z, p in state["params"].items()}, state["kexp"], state["rexp"], state["method"])

    def cutoff_ang(self, numbers) -> float:
        """Distance (Å) beyond which every pair of these elements is below ~1e−15 hartree."""
        alpha_min = min(self._param(z)[0] for z in set(np.asarray(numbers).tolist()))
        return (_EXPONENT_CUT / alpha_min) ** (1.0 / self.kexp) * BOHR_ANG

    def _param(self, z: int) -> tuple[float, float]:
        if z not in self.params:
            raise ValueError(f"the repulsion prior has no parameters for atomic number {z}")
        return self.params[z]

    def evaluate(self, atoms: Atoms, stress: bool | None = None) -> dict:
        """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³, ASE sign)."""
        stress = bool(np.all(atoms.pbc)) if stress is None else stress
        z = atoms.numbers
        i, j, D = neighbor_list("ijD", atoms, self.cutoff_ang(z))  # both directions of every pair
        table = {zz: self._param(zz) for zz in set(z.tolist())}
        alpha = np.array([table[zz][0] for zz in z])
        zeff = np.array([table[zz][1] for zz in z])
        r = np.linalg.norm(D, axis=1) / BOHR_ANG  # bohr
        a_ij = np.sqrt(alpha[i] * alpha[j])
        rk = r ** self.kexp
        e_pair = zeff[i] * zeff[j] * np.exp(-a_ij * rk) / r ** self.rexp  # hartree
        de_dr = -(a_ij * self.kexp * rk + self.rexp) / r * e_pair  # hartree/bohr
        # each pair appears twice: ½ of each; dE/dD for the (i, j) entry, D = R_j − R_i (+ image)
        g = (0.5 * de_dr * HARTREE_EV / BOHR_ANG / (r * BOHR_ANG))[:, None] * D  # eV/Å per unit of D
        forces = np.zeros((len(atoms), 3))
        np.add.at(forces, i, g)
        np.add.at(forces, j, -g)
        out = {"energy": 0.5 * float(e_pair.sum()) * HARTREE_EV, "forces": forces}
        if stress:
            out["stress"] = (D.T @ g) / atoms.get_volume()
        return out
