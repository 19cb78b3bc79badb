"""pyscf adapter: Kohn–Sham DFT labels (PBE, HSE06, any pyscf functional).

Periodic structures are computed at Γ with GTH pseudopotentials and a GTH basis; isolated ones as
molecules with an all-electron Gaussian basis. H is the converged Kohn–Sham (Fock) matrix, S the
overlap; both Γ-folded for cells. Forces: analytic, for molecules and for periodic semilocal
functionals (pyscf's multigrid integration); pyscf has no periodic hybrid (HSE06) or HF gradients, so
those labels have energy, H and S but no forces.
Slow by nature (tens of seconds for a 2-atom cell): batches go through :mod:`n2amd_driver.data.generate`,
which shows progress and resumes without recomputing finished structures.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from ..core.structure import StructureError, check_structure, describe
from ..core.units import BOHR_ANG, HARTREE_EV
from ..orbitals.conventions import Basis
from ..orbitals.functions import load_pyscf_basis
from .base import EngineError, Labels, ReferenceEngine

def _shell_ls(formatted) -> list[int]:
    """l of every AO shell of a pyscf-formatted basis ([l, (kappa,) [exp, c1, c2, ...], ...]);
    a shell with k contraction columns gives k shells, as pyscf lays out its AOs."""
    out = []
    for shell in formatted:
        rows = [r for r in shell[1:] if isinstance(r, (list, tuple))]
        out += [int(shell[0])] * (len(rows[0]) - 1)
    return out


_HYBRIDS = {"hse06", "hse", "pbe0", "b3lyp", "hsesol"}


class PySCFEngine(ReferenceEngine):
    """Kohn–Sham DFT through pyscf.

    Parameters
    ----------
    method: exchange–correlation functional in pyscf syntax (``"PBE"``, ``"HSE06"``, ...), or ``"HF"``.
        DFT integrates XC on a grid fixed in space, so rotating a molecule changes its DFT H by ~1e-5 eV;
        Hartree–Fock uses analytic integrals only and is rotation-invariant to machine precision.
    basis: Gaussian basis; default ``gth-szv`` for cells and ``def2-svp`` for molecules.
    pseudo: GTH pseudopotential for cells (default ``gth-pbe``).
    ke_cutoff: plane-wave kinetic-energy cutoff for the periodic density grid, in hartree.
    conv_tol: SCF energy convergence (hartree); max_cycle: SCF iterations allowed.
    forces: compute analytic forces where pyscf can (default True).
    kmesh: Monkhorst–Pack mesh (Γ-centred, 3 ints) for cells; labels are then the real-space blocks H(R),
        S(R) between the cell and its images R on the Born–von Kármán supercell (``fold == "bvk"``), see
        :meth:`label`. None: Γ only.

    Settings that change the labels and must stay fixed between training and use, recorded by
    :meth:`describe`: exchange through Gaussian density fitting (GDF, pyscf's default auxiliary basis) for
    hybrids, pyscf's default ``exxdiv='ewald'`` (the G = 0 exchange term, which shifts hybrid band energies
    and depends on the k-mesh), multigrid XC for semilocal functionals, no linear-dependency pruning (a
    label whose S has an eigenvalue below ``lindep`` is refused).
    """

    name = "pyscf"

    def __init__(self, method: str = "PBE", basis: str | None = None, pseudo: str = "gth-pbe",
                 ke_cutoff: float | None = None, conv_tol: float = 1e-10, max_cycle: int = 100,
                 forces: bool = True, charge: int = 0, kmesh=None, lindep: float = 1e-6):
        self.method = method
        self.kmesh = None if kmesh is None else tuple(int(k) for k in kmesh)
        if self.kmesh is not None and (len(self.kmesh) != 3 or min(self.kmesh) < 1):
            raise ValueError(f"kmesh must be 3 positive integers, got {kmesh}")
        self.lindep = float(lindep)
        self.basis_name = basis
        self.pseudo = pseudo
        self.ke_cutoff = ke_cutoff
        self.conv_tol = float(conv_tol)
        self.max_cycle = int(max_cycle)
        self.forces = bool(forces)
        self.charge = int(charge)

    @property
    def hybrid(self) -> bool:
        return self.method.lower().replace("-", "") in _HYBRIDS

    def describe(self) -> dict:
        out = {"engine": self.name, "method": self.method, "basis": self.basis_name, "pseudo": self.pseudo,
               "ke_cutoff_hartree": self.ke_cutoff, "conv_tol_hartree": self.conv_tol,
               "exchange": "gdf" if self.hybrid or self.hartree_fock else None,
               "exxdiv": "ewald" if self.hybrid or self.hartree_fock else None,
               "xc_integration": None if self.hartree_fock else ("becke grids" if self.hybrid else "multigrid"),
               "lindep_refused_below": self.lindep}
        if self.kmesh is not None:
            out["kmesh"] = list(self.kmesh)
        return out

    def _basis_for(self, periodic: bool) -> str:
        return self.basis_name or ("gth-szv" if periodic else "def2-svp")

    # ---- basis -------------------------------------------------------------------------------
    def basis(self, elements, periodic: bool = True) -> Basis:
        """Shells per element as pyscf orders them (each contraction of a shell is its own shell)."""
        from pyscf import gto

        name = self._basis_for(periodic)
        shells = {}
        for el in sorted(set(elements)):
            try:
                raw = load_pyscf_basis(name, el, periodic)
            except KeyError as exc:
                raise StructureError(exc.args[0]) from None
            # pyscf lays out an atom's shells sorted by l (stably), whatever the order in the basis file
            shells[el] = tuple(sorted(_shell_ls(gto.format_basis({el: raw})[el])))
        return Basis(shells=shells, name=f"pyscf:{name}", engine_order="pyscf")

    # ---- labels ------------------------------------------------------------------------------
    def _build(self, atoms: Atoms):
        periodic = bool(np.all(atoms.pbc))
        geom = [(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)]
        if periodic:
            from pyscf.pbc import gto as pbcgto

            mol = pbcgto.Cell()
            mol.a = atoms.cell.array
            mol.pseudo = self.pseudo
            if self.ke_cutoff is not None:
                mol.ke_cutoff = self.ke_cutoff
        else:
            from pyscf import gto

            mol = gto.Mole()
        mol.atom = geom
        mol.unit = "A"
        name = self._basis_for(periodic)
        mol.basis = {el: load_pyscf_basis(name, el, periodic) for el in set(atoms.get_chemical_symbols())}
        mol.charge = self.charge
        mol.cart = False
        mol.verbose = 0
        mol.build()
        return mol, periodic

    @property
    def hartree_fock(self) -> bool:
        return self.method.upper() in ("HF", "RHF")

    def _scf(self, mol, periodic: bool):
        if self.hartree_fock:  # analytic integrals only: exactly rotation-invariant (no XC grid)
            if periodic:
                from pyscf.pbc import scf

                mf = (scf.KRHF(mol, kpts=mol.make_kpts(self.kmesh)) if self.kmesh else scf.RHF(mol)).density_fit()
            else:
                from pyscf import scf

                mf = scf.RHF(mol)
            mf.conv_tol = self.conv_tol
            mf.max_cycle = self.max_cycle
            mf.verbose = 0
            return mf
        if periodic:
            from pyscf.pbc import dft

            if self.kmesh is not None:
                mf = dft.KRKS(mol, kpts=mol.make_kpts(self.kmesh))
            else:
                mf = dft.RKS(mol)
            if self.hybrid:
                mf = mf.density_fit()  # exchange through Gaussian density fitting
            else:
                mf = mf.multigrid_numint()  # fast XC integration; also what pyscf's periodic gradients need
        else:
            from pyscf import dft

            mf = dft.RKS(mol)
        mf.xc = self.method
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf

    def label(self, atoms: Atoms, name: str | None = None) -> Labels:
        label = describe(atoms, name)
        check_structure(atoms, name=name)
        periodic = bool(np.all(atoms.pbc))
        basis = self.basis(set(atoms.get_chemical_symbols()), periodic=periodic)
        try:
            mol, periodic = self._build(atoms)
        except Exception as exc:
            raise EngineError(f"{label}: pyscf could not set up the structure: {exc}") from None
        if mol.nelectron % 2:
            raise EngineError(f"{label}: odd number of electrons ({mol.nelectron}); only closed shells are supported")
        if mol.nao != basis.orbital_offsets(atoms.numbers)[-1]:
            raise EngineError(f"{label}: pyscf built {mol.nao} orbitals, the basis description has "
                              f"{basis.orbital_offsets(atoms.numbers)[-1]}")
        mf = self._scf(mol, periodic)
        S = np.asarray(mf.get_ovlp())  # (n, n), or (nk, n, n) on a k-mesh
        self._check_lindep(S, label)
        energy = mf.kernel()
        if not mf.converged:
            raise EngineError(f"{label}: pyscf {self.method} SCF did not converge in {self.max_cycle} cycles")
        if periodic and self.kmesh is not None:
            return self._bvk_labels(mf, S, atoms, basis, float(energy), label)
        forces = None
        if self.forces and not (periodic and (self.hybrid or self.hartree_fock)):
            forces = -mf.nuc_grad_method().kernel() * (HARTREE_EV / BOHR_ANG)
        C, eps = np.asarray(mf.mo_coeff), np.asarray(mf.mo_energy)
        if C.shape[1] == C.shape[0]:
            # the Hamiltonian whose eigenpairs are exactly pyscf's converged orbitals (as for tblite)
            H = (S @ C) * eps @ (S @ C).T
        else:  # linearly dependent basis pruned by pyscf: fall back to the final Fock matrix
            H = np.asarray(mf.get_fock())
        scf_residual = float(np.abs(H - np.asarray(mf.get_fock(dm=mf.make_rdm1()))).max()) * HARTREE_EV
        H = 0.5 * (H + H.T)
        T = basis.engine_transform(atoms.numbers)
        return Labels(
            energy=float(energy) * HARTREE_EV,
            forces=forces,
            hamiltonian=T.T @ H @ T * HARTREE_EV,
            overlap=T.T @ S @ T,
            orbital_energies=eps * HARTREE_EV,
            occupations=np.asarray(mf.mo_occ),
            fold="gamma" if periodic else "none",
            meta={"basis": basis.to_json(), "forces_available": forces is not None,
                  "scf_residual_eV": scf_residual},
        )

    def _check_lindep(self, S: np.ndarray, label: str) -> None:
        w = float(np.linalg.eigvalsh(S).min())  # (n, n) or, over a k-mesh, (nk, n, n)
        if w < self.lindep:
            raise EngineError(f"{label}: the basis is nearly linearly dependent here (smallest S eigenvalue {w:.1e} "
                              f"< lindep {self.lindep:g}); use a basis without diffuse functions (e.g. NAME@0.12)")

    def _bvk_labels(self, mf, S_k: np.ndarray, atoms: Atoms, basis: Basis, energy: float, label: str) -> Labels:
        """Real-space blocks from the k-mesh: X(R) = (1/Nk) Σ_k e^(−ik·R) X(k) for the images R of the mesh
        (C order over ``np.ndindex(kmesh)``), where X(k) = Σ_T e^(ik·T) <φ_a(0)|X|φ_b(T)> — the convention of
        :func:`~n2amd_driver.orbitals.eigen.bloch_hamiltonian`. Each X(R) sums the blocks of all T ≡ R
        modulo the mesh, i.e. X(R) is the first block-row of the Γ matrix of the Born–von Kármán supercell
        ``atoms.repeat(kmesh)``; the blocks are unaliased for pairs closer than half the supercell width."""
        from ..orbitals import k_to_bvk

        frac = mf.cell.get_scaled_kpts(mf.kpts)
        H_k = []
        for S, C, eps in zip(S_k, mf.mo_coeff, mf.mo_energy):
            C, eps = np.asarray(C), np.asarray(eps)
            if C.shape[1] != C.shape[0]:
                raise EngineError(f"{label}: pyscf pruned linearly dependent orbitals; no k-mesh labels")
            SC = S @ C
            H_k.append((SC * eps) @ SC.conj().T)
        try:  # tolerances: 1e-6 eV on H, 1e-6 on S
            H_R = k_to_bvk(np.asarray(H_k), self.kmesh, frac, imag_tol=1e-6 / HARTREE_EV)
            S_R = k_to_bvk(S_k, self.kmesh, frac, imag_tol=1e-6)
        except ValueError as exc:
            raise EngineError(f"{label}: {exc}; the mesh must be Γ-centred and time-reversal symmetric") from exc
        T = basis.engine_transform(atoms.numbers)
        eps = np.concatenate([np.asarray(e) for e in mf.mo_energy]) * HARTREE_EV
        occ = np.concatenate([np.asarray(o) for o in mf.mo_occ])
        order = np.argsort(eps, kind="stable")
        forces = None
        if self.forces and not (self.hybrid or self.hartree_fock):
            from pyscf.pbc.dft.numint import KNumInt

            # pyscf's k-point gradients integrate XC on the regular grid, not with multigrid: the converged
            # density is the same, the XC integral differs by the grid quadrature (~1e-6 Ha here)
            mf._numint = KNumInt()
            forces = -mf.nuc_grad_method().kernel() * (HARTREE_EV / BOHR_ANG)
        return Labels(
            energy=energy * HARTREE_EV,
            forces=forces,
            hamiltonian=np.einsum("ai,rab,bj->rij", T, H_R, T) * HARTREE_EV,
            overlap=np.einsum("ai,rab,bj->rij", T, S_R, T),
            orbital_energies=eps[order],
            occupations=occ[order],
            fold="bvk",
            kmesh=self.kmesh,
            meta={"basis": basis.to_json(), "forces_available": forces is not None, "kmesh": list(self.kmesh)},
        )
