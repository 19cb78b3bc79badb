"""Fast two-centre overlaps: every shell-pair block as radial functions times solid harmonics.

By rotational covariance the overlap block of two shells (la, lb) at displacement d = R_B − R_A is

    B_ab(d) = Σ_L g_L(r) Σ_M W^L_{abM} Y_LM(d̂),    L = |la−lb| … la+lb,  (−1)^L = (−1)^(la+lb)

(W: Wigner-3j symbols in e3nn's real basis; this is the Slater–Koster decomposition). For one pair of
Gaussian primitives (exponents α, β, μ = αβ/(α+β)) every term is

    g_L(r) Y_LM(d̂) = exp(−μ r²) · q_L(r²) · r^L Y_LM(d̂)

with q_L a polynomial of degree (la+lb−L)/2 and r^L Y_LM(d̂) a homogeneous polynomial of d (e3nn's
unnormalised spherical harmonics), so a block is a smooth function of d without square roots — safe for
autograd at d = 0. The coefficients of q_L are fitted once per basis by a linear solve on exact
Obara–Saika blocks along one axis (:mod:`.integrals`); the fit's residual is checked, so a wrong
assumption fails loudly. Blocks of all atom pairs are then a few vectorised torch operations: ~20× faster
than the per-pair recurrence and differentiable, which gives the Pulay force −Tr(W ∂S/∂R) and its stress
by one backward pass (:func:`overlap_trace_gradients`).

Lengths: d in bohr inside, Å at the public functions. Orbitals in e3nn order (:mod:`.conventions`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from ..core.graph import pairs_between
from ..core.units import BOHR_ANG
from .functions import shell_data
from .integrals import contracted_overlaps

#: primitive pairs with exp(−μ r²) below this are skipped (absolute contributions ≲ 1e-20)
_EXP_SKIP = 46.0


@dataclass
class _ShellPair:
    la: int
    lb: int
    offset_a: int  # first orbital of the shell in its atom
    offset_b: int
    mu: torch.Tensor  # (K,) bohr⁻², one per primitive pair, ascending
    Ls: tuple[int, ...]
    coeff: torch.Tensor  # (K, Σ_L n_L): coefficients of every q_L in powers of r² (bohr), L after L
    npow: tuple[int, ...]  # n_L per L
    wigner: list[torch.Tensor]  # per L: (2la+1, 2lb+1, 2L+1)

    @property
    def mu_min(self) -> float:
        return float(self.mu[0])

    def radial(self, r2: torch.Tensor) -> list[torch.Tensor]:
        """g_L(r)/r^L for squared distances r2 (p,) bohr²: one (p,) tensor per L.

        Far pairs need only the diffuse primitive pairs (μ r² < the skip threshold), so pairs are
        grouped by how many of the μ-sorted primitive pairs they need: fewer exponentials."""
        K = len(self.mu)
        need = torch.searchsorted(self.mu, _EXP_SKIP / r2.clamp_min(1e-300))
        caps = sorted({max(1, K // 8), max(1, K // 4), max(1, K // 2), K})
        EC = r2.new_zeros(len(r2), self.coeff.shape[1])
        lo = -1
        for cap in caps:
            idx = torch.nonzero((need > lo) & (need <= cap)).squeeze(1)
            lo = cap
            if len(idx):
                E = torch.exp(-r2[idx, None] * self.mu[None, :cap])
                EC = EC.index_copy(0, idx, E @ self.coeff[:cap])
        out, k = [], 0
        for n in self.npow:
            g = EC[:, k]
            for j in range(1, n):
                g = g + EC[:, k + j] * r2**j
            out.append(g)
            k += n
        return out


def _fit_shell_pair(la, ea, wa, Ma, lb, eb, wb, Mb) -> tuple[np.ndarray, list[int], list[np.ndarray], list]:
    """Per primitive pair: μ and the q_L coefficients (weights included) from exact blocks along z."""
    from e3nn import o3

    Ls = [L for L in range(abs(la - lb), la + lb + 1) if (L - la - lb) % 2 == 0]
    npow = [(la + lb - L) // 2 + 1 for L in Ls]
    zhat = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    W = [o3.wigner_3j(la, lb, L, dtype=torch.float64) for L in Ls]
    A = [np.einsum("abm,m->ab", w.numpy(), o3.spherical_harmonics(L, zhat, normalize=False)[0].numpy())
         for w, L in zip(W, Ls)]
    mus, coeffs = [], [[] for _ in Ls]
    for a, wa_i in zip(ea, wa):
        for b, wb_j in zip(eb, wb):
            mu = a * b / (a + b)
            t = np.linspace(0.2, 2.5, 2 * sum(npow) + 4)  # radii in units of 1/sqrt(μ): well conditioned
            r = t / np.sqrt(mu)
            d = np.zeros((len(r), 3))
            d[:, 2] = r
            cart = contracted_overlaps(la, np.array([a]), np.array([wa_i]), lb, np.array([b]), np.array([wb_j]), d)
            blk = np.einsum("xa,pxy,yb->pab", Ma, cart, Mb) / np.exp(-mu * r**2)[:, None, None]
            # unknowns c_{L,j}: blk(r) = Σ_L Σ_j c_{L,j} t^{2j} · r^L A_L   (fitted in t, converted to r below)
            cols = [(t ** (2 * j))[:, None, None] * (r**L)[:, None, None] * A_L[None]
                    for L, n, A_L in zip(Ls, npow, A) for j in range(n)]
            M = np.stack([c.ravel() for c in cols], axis=1)
            x, *_ = np.linalg.lstsq(M, blk.ravel(), rcond=None)
            resid = np.abs(M @ x - blk.ravel()).max()
            scale = max(np.abs(blk).max(), 1e-300)
            if resid > 1e-10 * scale:
                raise RuntimeError(f"radial overlap fit failed for l=({la},{lb}), α={a}, β={b}: "
                                   f"residual {resid:.2e} of {scale:.2e}")
            mus.append(mu)
            k = 0
            for iL, n in enumerate(npow):
                coeffs[iL].append([x[k + j] * mu**j for j in range(n)])  # t^{2j} = μ^j r^{2j}
                k += n
    return np.array(mus), Ls, [np.array(c) for c in coeffs], W


class RadialOverlap:
    """Overlap blocks of one basis (:class:`~.functions.BasisFunctions`) as radial × angular."""

    def __init__(self, bf):
        self.bf = bf
        self.pairs: dict[tuple[str, str], list[_ShellPair]] = {}
        for ela in bf.shells:
            for elb in bf.shells:
                out = []
                for la, ea, wa, oa, Ma in shell_data(bf, ela):
                    for lb, eb, wb, ob, Mb in shell_data(bf, elb):
                        mu, Ls, coeff, W = _fit_shell_pair(la, ea, wa, Ma, lb, eb, wb, Mb)
                        order = np.argsort(mu)
                        out.append(_ShellPair(la, lb, oa, ob, torch.from_numpy(mu[order]), tuple(Ls),
                                              torch.from_numpy(np.concatenate(coeff, axis=1)[order]),
                                              tuple(c.shape[1] for c in coeff), W))
                self.pairs[(ela, elb)] = out
        self.lmax = max(L for ps in self.pairs.values() for p in ps for L in p.Ls)
        self._cache: dict = {}

    def blocks(self, ela: str, elb: str, d_bohr: torch.Tensor) -> torch.Tensor:
        """Overlap blocks (P, norb_a, norb_b) for displacements d (P, 3) bohr from an ``ela`` to an ``elb`` atom."""
        from e3nn import o3

        P = d_bohr.shape[0]
        na, nb = self.bf.basis.norb(ela), self.bf.basis.norb(elb)
        if P == 0:
            return d_bohr.new_zeros(0, na, nb)
        r2 = (d_bohr * d_bohr).sum(-1)
        Y = o3.spherical_harmonics(list(range(self.lmax + 1)), d_bohr, normalize=False)  # r^L Y_LM(d̂)
        # Z[p, (shell pair, L, M)] = g_L(r)/r^L · r^L Y_LM(d̂); one matmul places every term in its block
        Z = torch.cat([g[:, None] * Y[:, L * L : (L + 1) * (L + 1)]
                       for sp in self.pairs[(ela, elb)] for L, g in zip(sp.Ls, sp.radial(r2))], dim=1)
        return (Z @ self._placement(ela, elb).to(Z.dtype)).reshape(P, na, nb)

    def _placement(self, ela: str, elb: str) -> torch.Tensor:
        """(Σ_{shell pairs, L} (2L+1), norb_a·norb_b): the Wigner-3j symbols at their block positions."""
        key = ("placement", ela, elb)
        if key not in self._cache:
            nb = self.bf.basis.norb(elb)
            rows = []
            for sp in self.pairs[(ela, elb)]:
                for W in sp.wigner:
                    R = torch.zeros(W.shape[2], self.bf.basis.norb(ela), nb, dtype=torch.float64)
                    R[:, sp.offset_a : sp.offset_a + W.shape[0], sp.offset_b : sp.offset_b + W.shape[1]] = \
                        W.permute(2, 0, 1)
                    rows.append(R.reshape(W.shape[2], -1))
            self._cache[key] = torch.cat(rows)
        return self._cache[key]


_CACHE: dict = {}


def radial_overlap(bf) -> RadialOverlap:
    """The (cached) fitted tables of a basis."""
    key = (bf.name, tuple(sorted((el, s) for el, s in bf.shells.items())))
    if key not in _CACHE:
        _CACHE[key] = RadialOverlap(bf)
    return _CACHE[key]


def _assemble(ro: RadialOverlap, numbers, i, j, d_ang: torch.Tensor, phase=None) -> torch.Tensor:
    """Σ over pairs of blocks into the (norb, norb) matrix (Γ-folded, or with Bloch phases)."""
    offs = ro.bf.basis.orbital_offsets(numbers)
    norb = int(offs[-1])
    dtype = d_ang.dtype if phase is None else torch.complex128
    flat = torch.zeros(norb * norb, dtype=dtype)
    for za, zb, sel, blk in _pair_blocks(ro, numbers, i, j, d_ang):
        na, nb = blk.shape[1:]
        if phase is not None:
            blk = blk * torch.from_numpy(phase[sel])[:, None, None]
        # sum the lattice images of each atom pair first, then place the atom-pair blocks
        atoms_a, atoms_b = np.flatnonzero(numbers == za), np.flatnonzero(numbers == zb)
        local = np.empty(len(numbers), np.int64)
        local[atoms_a] = np.arange(len(atoms_a))
        u = local[i[sel]] * len(atoms_b)
        local[atoms_b] = np.arange(len(atoms_b))
        u = torch.from_numpy(u + local[j[sel]])
        red = blk.new_zeros(len(atoms_a) * len(atoms_b), na * nb).index_add(0, u, blk.reshape(-1, na * nb))
        rows = offs[atoms_a][:, None] + np.arange(na)[None, :]  # (nA, na)
        cols = offs[atoms_b][:, None] + np.arange(nb)[None, :]  # (nB, nb)
        idx = rows[:, None, :, None] * norb + cols[None, :, None, :]  # (nA, nB, na, nb)
        flat = flat.index_add(0, torch.from_numpy(idx.reshape(-1)), red.reshape(-1).to(dtype))
    return flat.reshape(norb, norb)


def _pair_blocks(ro: RadialOverlap, numbers, i, j, d_ang: torch.Tensor):
    """(Z_a, Z_b, sel, blocks) per element pair: the overlap blocks (P, na, nb) of the pairs ``sel``."""
    from .sparse import pair_groups

    d_bohr = d_ang / BOHR_ANG
    for za, zb, sel in pair_groups(numbers[i], numbers[j]):
        yield za, zb, sel, ro.blocks(chemical_symbols[za], chemical_symbols[zb], d_bohr[torch.from_numpy(sel)])


#: atom pairs whose blocks are evaluated and placed together in a sparse assembly (bounds its memory)
_SPARSE_PAIRS = 32768


def _assemble_sparse(ro: RadialOverlap, numbers, i, j, d_ang: torch.Tensor):
    """As :func:`_assemble` at Γ, into a sparse CSR matrix: only the blocks of pairs within the cutoff, in
    passes of :data:`_SPARSE_PAIRS` pairs."""
    import scipy.sparse as sp

    from .sparse import blocks_to_csr, pair_groups

    offs = ro.bf.basis.orbital_offsets(numbers)
    norb = int(offs[-1])
    out = sp.csr_matrix((norb, norb))
    d_bohr = d_ang / BOHR_ANG
    for za, zb, group in pair_groups(numbers[i], numbers[j]):
        for start in range(0, len(group), _SPARSE_PAIRS):
            sel = group[start:start + _SPARSE_PAIRS]
            blk = ro.blocks(chemical_symbols[za], chemical_symbols[zb], d_bohr[torch.from_numpy(sel)])
            out = out + blocks_to_csr(blk.numpy(), i[sel], j[sel], offs, offs, (norb, norb))
    return out


def lattice_sum(bf, atoms1: Atoms, atoms2: Atoms, cutoff_ang: float, kpt=None, sparse: bool = False):
    """Σ_T <φ_a at R1 | φ_b at R2 + T> (e3nn order), by the radial tables; (norb, norb), dense, or with
    ``sparse`` a scipy CSR matrix (Γ only) that never forms the dense one."""
    i, j, S, d = pairs_between(atoms1, atoms2, cutoff_ang)
    if sparse:
        if kpt is not None:
            raise ValueError("sparse overlaps are Γ-point matrices (no kpt)")
        with torch.no_grad():
            return _assemble_sparse(radial_overlap(bf), atoms1.numbers, i, j, torch.from_numpy(d))
    phase = None if kpt is None else np.exp(2j * np.pi * S @ np.asarray(kpt, float))
    with torch.no_grad():
        return _assemble(radial_overlap(bf), atoms1.numbers, i, j, torch.from_numpy(d), phase).numpy()


def overlap_trace_gradients(bf, atoms: Atoms, W: np.ndarray, cutoff_ang: float,
                            stress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """∂/∂R_C of Σ_ab W_ab S_ab(R) (eV/Å when W is in eV; (N, 3)) and, with ``stress``, its derivative
    with respect to a homogeneous strain ε of positions and cell together ((3, 3), eV): the Pulay terms
    of band-energy forces and stress, by one backward pass through the radial tables."""
    i, j, S, _ = pairs_between(atoms, atoms, cutoff_ang)
    pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(atoms.cell.array if np.all(atoms.pbc) else np.zeros((3, 3)), dtype=torch.float64)
    d = pos[torch.from_numpy(j)] - pos[torch.from_numpy(i)] + torch.from_numpy(S).double() @ cell
    wrt = [pos]
    if stress:
        eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        d = d @ (torch.eye(3, dtype=torch.float64) + eps)
        wrt.append(eps)
    Smat = _assemble(radial_overlap(bf), atoms.numbers, i, j, d)
    grads = torch.autograd.grad((Smat * torch.from_numpy(np.asarray(W, float))).sum(), wrt)
    return grads[0].numpy(), (grads[1].numpy() if stress else None)
