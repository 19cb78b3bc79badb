"""Overlap integrals of contracted Cartesian Gaussians by the Obara–Saika recurrence, vectorised over
atom pairs (the hot path of S(R), the cross-time overlap S(R1; R2) and <∂φ|φ>).

A primitive Cartesian Gaussian on centre A is x_A^i y_A^j z_A^k exp(−α r_A²). Along one axis, with
p = α + β, P = (αA + βB)/p:

    S_00 = sqrt(π/p) exp(−αβ/p · X_AB²)
    S_{i+1,j} = X_PA S_ij + (i S_{i−1,j} + j S_{i,j−1}) / 2p,   S_{i,j+1} = X_PB S_ij + (same) / 2p

and the 3D overlap is the product of the three axes. The bra derivative (electron coordinate)
∂_x (x^i e^{−αx²}) = i x^{i−1} e^{−αx²} − 2α x^{i+1} e^{−αx²} needs one more order on the bra.
Lengths in bohr here (the caller converts); Cartesian components in pyscf's order (xx, xy, xz, yy, yz, zz).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def cartesian_powers(l: int) -> np.ndarray:
    """(ncart, 3) exponents (i, j, k) with i + j + k = l, in pyscf/libcint order."""
    return np.array([(lx, ly, l - lx - ly) for lx in range(l, -1, -1) for ly in range(l - lx, -1, -1)], dtype=int)


def _os_tables(imax: int, jmax: int, xpa: np.ndarray, xpb: np.ndarray, s00: np.ndarray, inv2p: np.ndarray):
    """1D tables T[i][j] (arrays shaped like s00) for i ≤ imax, j ≤ jmax."""
    T = [[None] * (jmax + 1) for _ in range(imax + 1)]
    T[0][0] = s00
    for i in range(imax + 1):
        for j in range(jmax + 1):
            if i == 0 and j == 0:
                continue
            if i > 0:  # raise i from (i−1, j)
                v = xpa * T[i - 1][j]
                if i > 1:
                    v = v + (i - 1) * inv2p * T[i - 2][j]
                if j > 0:
                    v = v + j * inv2p * T[i - 1][j - 1]
            else:  # raise j from (0, j−1)
                v = xpb * T[0][j - 1]
                if j > 1:
                    v = v + (j - 1) * inv2p * T[0][j - 2]
            T[i][j] = v
    return T


def contracted_overlaps(la: int, ea: np.ndarray, wa: np.ndarray, lb: int, eb: np.ndarray, wb: np.ndarray,
                        d: np.ndarray, derivative: bool = False) -> np.ndarray:
    """Overlaps <a|b> of two contracted Cartesian shells for many centre pairs.

    ``ea``/``wa``: exponents and weights (contraction coefficient × primitive normalisation) of shell a;
    ``d`` (P, 3): B − A in bohr. Returns (P, ncart_a, ncart_b), or with ``derivative`` the bra
    derivative <∂_x a|b> as (3, P, ncart_a, ncart_b).
    """
    ea, eb, wa, wb = (np.asarray(v, float) for v in (ea, eb, wa, wb))
    p = ea[:, None] + eb[None, :]  # (na, nb)
    mu = ea[:, None] * eb[None, :] / p
    inv2p = 0.5 / p
    # per axis x_PA = (β/p)·d, x_PB = −(α/p)·d, with d = B − A; arrays (P, na, nb)
    xpa = d[:, None, None, :] * (eb[None, :] / p)[None, :, :, None]
    xpb = -d[:, None, None, :] * (ea[:, None] / p)[None, :, :, None]
    s00 = np.sqrt(np.pi / p)[None, :, :, None] * np.exp(-mu[None, :, :, None] * d[:, None, None, :] ** 2)
    extra = 1 if derivative else 0
    tabs = [_os_tables(la + extra, lb, xpa[..., k], xpb[..., k], s00[..., k], inv2p[None]) for k in range(3)]
    ca, cb = cartesian_powers(la), cartesian_powers(lb)
    w = wa[:, None] * wb[None, :]

    def block(table_of_axis):
        out = np.empty((d.shape[0], len(ca), len(cb)))
        for u, (i, j, k) in enumerate(ca):
            for v, (i2, j2, k2) in enumerate(cb):
                prim = table_of_axis(0, i, i2) * table_of_axis(1, j, j2) * table_of_axis(2, k, k2)
                out[:, u, v] = np.einsum("pab,ab->p", prim, w)
        return out

    if not derivative:
        return block(lambda ax, i, j: tabs[ax][i][j])
    two_a = 2 * ea[None, :, None]
    grads = []
    for axis in range(3):
        def t(ax, i, j, axis=axis):
            if ax != axis:
                return tabs[ax][i][j]
            v = -two_a * tabs[ax][i + 1][j]
            return v + i * tabs[ax][i - 1][j] if i > 0 else v
        grads.append(block(t))
    return np.stack(grads)
