"""Generalised eigenpairs H c = ε S c of a large sparse pencil in a band window, warm-started along MD.

NAMD needs a few tens of states around the gap, not the n_orb of a dense ``eigh``. The window solver:

- factorises A = H − σS with a sparse symmetric-indefinite LDLᵀ (MKL Pardiso, through ``pypardiso``), σ
  between two bands at the window's centre;
- counts the eigenvalues below σ from the inertia of that factorisation (Sylvester: S is positive definite,
  so A has as many negative pivots as there are bands below σ). This fixes the band index of every state it
  returns without computing the others;
- finds the states nearest σ as the dominant eigenpairs of (H − σS)⁻¹S by implicitly restarted Lanczos
  (ARPACK's shift-invert mode through ``scipy.sparse.linalg.eigsh``), started from the previous snapshot's
  window (``start``: its states summed into the start vector, and as many nearest states asked for as it
  needed to cover the window). A first snapshot, or a start that does not cover the window, is a cold start,
  with σ found from the inertia counts;
- returns the window plus ``buffer`` states on each side, which let the couplings see a state that enters or
  leaves the window;
- checks every returned state's residual ‖H c − ε S c‖ against ``tol`` (eV) and raises
  :class:`WindowNotConverged` otherwise: no silently wrong states;
- reports an ill-conditioned S (smallest eigenvalue below ``s_min``, estimated on a cold start). Its
  near-null directions carry eigenvalues far from σ, which shift-invert never returns: they are projected out
  of the window by construction.

The dense :func:`dense_window` (LAPACK) is the reference. Energies eV; vectors are S-orthonormal columns in
the matrices' orbital order.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


class WindowNotConverged(RuntimeError):
    """The window states did not reach the residual tolerance."""


class IllConditionedOverlap(UserWarning):
    """S has eigenvalues so small that its near-null directions were projected out."""


@dataclass
class WindowStates:
    """Eigenpairs of bands ``first .. first + len(eps) − 1`` (0-based), ascending."""

    eps: np.ndarray  # (m,) eV
    C: np.ndarray  # (n_orb, m), S-orthonormal
    first: int
    sigma: float = np.nan  # eV, the shift of the last factorisation (nan: dense)
    factorizations: int = 0
    residual: float = 0.0  # eV, largest ‖H c − ε S c‖ over the returned states
    warm: bool = False
    seconds: dict = field(default_factory=dict)  # factorise, solve
    nearest: int = 0  # states nearest σ that ARPACK was asked for to cover the window (a warm start asks as many)

    @property
    def bands(self) -> tuple[int, int]:
        """(first, last) band index, 0-based inclusive."""
        return self.first, self.first + len(self.eps) - 1

    def select(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(eps, C) of bands lo..hi (0-based inclusive), which must be among the stored ones."""
        if lo < self.first or hi > self.bands[1]:
            raise ValueError(f"bands {lo}..{hi} are not among the computed {self.bands[0]}..{self.bands[1]}")
        s = slice(lo - self.first, hi - self.first + 1)
        return self.eps[s], self.C[:, s]


class ShiftInvert:
    """The LDLᵀ factorisation of A = H − σS (upper triangle, Pardiso ``mtype=-2``) and its inertia."""

    def __init__(self, H: sp.spmatrix, S: sp.spmatrix, sigma: float):
        try:
            import pypardiso
        except ImportError as exc:  # a dependency of the package; said plainly if an install lacks it
            raise ImportError("the sparse window eigensolver needs pypardiso (MKL Pardiso): pip install pypardiso") from exc
        self.sigma = float(sigma)
        self.A = sp.triu(sp.csr_matrix(H) - self.sigma * sp.csr_matrix(S), format="csr")
        self.A.sort_indices()
        self._solver = pypardiso.PyPardisoSolver(mtype=-2)
        self._solver.factorize(self.A)
        positive, negative = int(self._solver.get_iparm(22)), int(self._solver.get_iparm(23))
        n = self.A.shape[0]
        if positive + negative != n:  # a zero pivot: σ is an eigenvalue to working precision
            raise np.linalg.LinAlgError(f"H − σS is singular at σ = {self.sigma:.6f} eV ({n - positive - negative} "
                                        "zero pivots)")
        self.below = negative  # number of eigenvalues below σ

    def solve(self, B: np.ndarray) -> np.ndarray:
        return self._solver.solve(self.A, np.asfortranarray(B))

    def free(self) -> None:
        self._solver.free_memory(everything=True)


def fixed_signs(C: np.ndarray) -> np.ndarray:
    """The columns with the sign that makes each one's largest-magnitude coefficient positive: a gauge that
    does not depend on the eigensolver, so dense and sparse paths (and any rank count) give the same NAC."""
    idx = np.argmax(np.abs(C), axis=0)
    return C * np.where(C[idx, np.arange(C.shape[1])] < 0, -1.0, 1.0)


def dense_window(H, S, lo: int, hi: int) -> WindowStates:
    """Bands lo..hi (0-based inclusive) by dense LAPACK: the reference for :func:`window_eigh`."""
    from .eigen import eigh

    H = H.toarray() if sp.issparse(H) else np.asarray(H)
    S = S.toarray() if sp.issparse(S) else np.asarray(S)
    eps, C = eigh(H, S, (lo, hi))
    C = fixed_signs(C)
    r = H @ C - (S @ C) * eps
    return WindowStates(eps, C, lo, residual=float(np.linalg.norm(r, axis=0).max()))


def factorisation_memory(pattern: sp.spmatrix) -> tuple[int, int]:
    """(peak bytes, non-zeros of the factor) of the LDLᵀ factorisation of a matrix with ``pattern``'s non-zeros
    (the :class:`ShiftInvert` settings), from Pardiso's symbolic analysis alone: ordering and fill-in, no
    numerical work."""
    import pypardiso

    A = sp.triu(sp.csr_matrix(pattern), format="csr")
    A.data[:] = 1.0
    A.sort_indices()
    solver = pypardiso.PyPardisoSolver(mtype=-2)
    solver.set_iparm(18, -1)  # report the factor's non-zeros
    solver.set_phase(11)
    solver._call_pardiso(A, np.zeros((A.shape[0], 1)))  # pypardiso has no public analysis-only call
    kb = [int(solver.get_iparm(k)) for k in (15, 16, 17)]  # peak of the analysis; permanent; factorisation
    nonzeros = int(solver.get_iparm(18))
    solver.free_memory(everything=True)
    return 1024 * max(kb[0], kb[1] + kb[2]), nonzeros


def smallest_overlap_eigenvalue(S: sp.spmatrix, seed: int = 0, tol: float = 1e-8) -> float:
    """The smallest eigenvalue of S by LOBPCG (matrix–vector products only, diagonal preconditioner)."""
    from scipy.sparse.linalg import LinearOperator, lobpcg

    n = S.shape[0]
    d = S.diagonal()
    M = LinearOperator((n, n), matvec=lambda x: x / d.reshape((-1,) + (1,) * (np.ndim(x) - 1)), dtype=float)
    X = np.random.default_rng(seed).standard_normal((n, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lobpcg warns when it stops at maxiter: the estimate is still an upper bound
        vals = lobpcg(S, X, M=M, largest=False, tol=tol, maxiter=200)[0]
    return float(np.min(vals))


def window_eigh(H: sp.spmatrix, S: sp.spmatrix, lo: int, hi: int, buffer: int = 8, start: WindowStates | None = None,
                sigma: float | None = None, tol: float = 1e-8, seed: int = 0, s_min: float = 1e-6) -> WindowStates:
    """Bands lo − buffer .. hi + buffer (0-based inclusive, clipped to the spectrum) of the sparse pencil (H, S).

    ``start``: the previous snapshot's states (warm start); ``sigma`` (eV): a guess of the window centre's
    energy for a cold start (none: found from the inertia counts). ``tol`` (eV): the largest residual
    ‖H c − ε S c‖ accepted for any returned state.
    """
    n = H.shape[0]
    if not (0 <= lo <= hi < n):
        raise ValueError(f"band window {lo}..{hi} is outside the {n} bands of this system")
    want_lo, want_hi = max(lo - buffer, 0), min(hi + buffer, n - 1)
    centre = max((lo + hi + 1) // 2, 1)  # σ goes between bands centre − 1 and centre
    H, S = sp.csr_matrix(H), sp.csr_matrix(S)
    rng = np.random.default_rng(seed)
    warm = start is not None and start.first <= centre - 1 and start.bands[1] >= centre
    if warm:
        e = start.eps[centre - 1 - start.first : centre + 1 - start.first]
        sig = 0.5 * (e[0] + e[1])
    else:
        s_low = smallest_overlap_eigenvalue(S, seed)
        if s_low < s_min:
            warnings.warn(f"ill-conditioned overlap matrix: smallest eigenvalue {s_low:.2e} < {s_min:.0e}; its "
                          "near-null directions are projected out of the window states", IllConditionedOverlap,
                          stacklevel=2)
        # no guess: the orbitals' on-site energies filled up to the window's centre (the atoms' Fermi level)
        sig = sigma if sigma is not None else float(np.sort(H.diagonal() / S.diagonal())[centre])
    secs = {"factorise": 0.0, "solve": 0.0}
    t = time.perf_counter()
    F, factorizations = _place_shift(H, S, sig, centre, rng)
    secs["factorise"] += time.perf_counter() - t
    v0 = start.C.sum(axis=1) if warm and start.C.shape[0] == n else None
    # the nearest states must reach both ends of the window, and the spectrum is often denser on one side (Si:
    # six X-valley conduction states against three at the VBM); a warm start asks for as many as the previous
    # snapshot needed, since each ARPACK run costs about the same number of solves whatever k is
    k = min(max(2 * max(F.below - want_lo, want_hi - F.below + 1), start.nearest if warm else 0), n - 1)
    try:
        for attempt in range(6):
            t = time.perf_counter()
            eps, C = _nearest(H, S, F, k, v0, rng)
            secs["solve"] += time.perf_counter() - t
            first = F.below - int(np.sum(eps < F.sigma))  # band index of the lowest state found
            if first <= want_lo and first + len(eps) - 1 >= want_hi:
                break
            if k < n - 1 and (first <= want_lo or first + len(eps) - 1 >= want_hi):
                k = min(int(1.5 * k) + 1, n - 1)  # the spectrum is denser on one side: more states
                continue
            raise WindowNotConverged(f"the states nearest σ = {F.sigma:.4f} eV do not cover bands "
                                     f"{want_lo}..{want_hi}")
        else:
            raise WindowNotConverged(f"the {k} states nearest σ = {F.sigma:.4f} eV do not cover bands "
                                     f"{want_lo}..{want_hi}")
    finally:
        F.free()
    sel = slice(want_lo - first, want_hi - first + 1)
    eps, C = eps[sel], fixed_signs(C[:, sel])
    res = float(np.linalg.norm(H @ C - (S @ C) * eps, axis=0).max())
    if not np.isfinite(res) or res > tol:
        raise WindowNotConverged(f"window states not converged: largest residual ‖Hc − εSc‖ = {res:.2e} eV > tol "
                                 f"{tol:.0e} eV (σ = {F.sigma:.4f} eV, bands {want_lo}..{want_hi})")
    return WindowStates(eps, C, want_lo, F.sigma, factorizations, res, warm, secs, nearest=k)


def _nearest(H, S, F: ShiftInvert, k: int, v0, rng, tol: float = 0.0):
    """The k eigenpairs of (H, S) nearest F.sigma (ascending ε, S-orthonormal vectors) by ARPACK's
    shift-invert Lanczos with F's factorisation."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    n = H.shape[0]
    OPinv = LinearOperator((n, n), matvec=lambda x: F.solve(x.reshape(n, -1)).reshape(x.shape), dtype=float)
    if v0 is None:
        v0 = rng.standard_normal(n)
    try:
        eps, C = eigsh(H, k=k, M=S, sigma=F.sigma, OPinv=OPinv, v0=v0, ncv=min(n, 2 * k + 16), tol=tol)
    except ArpackNoConvergence as exc:
        raise WindowNotConverged(f"ARPACK did not converge for the {k} states nearest σ = {F.sigma:.4f} eV "
                                 f"({len(exc.eigenvalues)} converged)") from exc
    order = np.argsort(eps)
    return eps[order], C[:, order]


def _place_shift(H, S, sigma: float, centre: int, rng, tries: int = 12):
    """A factorisation at a σ between bands centre − 1 and centre (``centre`` bands below it), found from
    the inertia counts N(σ) (monotone in σ): steps by the local level spacing until σ is bracketed,
    safeguarded interpolation of N(σ) on the bracket, and near the target σ set between bands centre − 1 and
    centre from their energies."""
    n = H.shape[0]
    known = []  # (σ, N(σ))
    for k in range(1, tries + 1):
        F = ShiftInvert(H, S, sigma)
        off = centre - F.below
        if off == 0:
            return F, k
        known.append((sigma, F.below))
        lower = [s for s in known if s[1] < centre]
        upper = [s for s in known if s[1] >= centre]
        if abs(off) <= 24:  # the two bands are among the nearest few: go between them
            eps = _nearest(H, S, F, min(4 * abs(off) + 16, n - 1), None, rng, tol=1e-6)[0]
            found = dict(zip(range(F.below - int(np.sum(eps < sigma)), n), eps))
            if centre - 1 in found and centre in found:
                sigma = 0.5 * (found[centre - 1] + found[centre])
                F.free()
                continue
        if lower and upper:  # bracketed: interpolate the count, kept off the bracket's ends
            (s0, n0), (s1, n1) = max(lower), min(upper)
            x = np.clip((centre - 0.5 - n0) / (n1 - n0), 0.1, 0.9)
            sigma = s0 + x * (s1 - s0)
        else:  # one side only: step by the level spacing of a few states around σ
            eps = _nearest(H, S, F, min(8, n - 1), None, rng, tol=1e-4)[0]
            spacing = max(float(np.ptp(eps)) / (len(eps) - 1), 1e-3)
            sigma = sigma + 1.5 * off * spacing  # overshoot a little, to bracket
        F.free()
    raise WindowNotConverged(f"could not place the shift between bands {centre - 1} and {centre}: "
                             f"{'; '.join(f'{c} bands below {s:.4f} eV' for s, c in known)} after {tries} "
                             "factorisations")
