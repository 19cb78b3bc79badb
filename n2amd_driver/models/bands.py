"""Bands of a Hamiltonian model: its real-space blocks, H(k) along a k-path, and ``n2amd bands`` (the
model against its reference engine at Γ, as a PNG). Energies eV, k in fractional coordinates."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg as sl
from ase import Atoms

from ..orbitals.eigen import band_edges, bloch_hamiltonian, dos, eigh
from ..orbitals.functions import basis_functions
from ..orbitals.overlap import overlap_matrix


def model_blocks(model, atoms: Atoms):
    """Real-space blocks of a Hamiltonian model: (on-site (N, n, n), off-site (E, n, n), edge index (2, E),
    shifts (E, 3), norb per atom, shell potential per orbital or None); tiles are padded to the largest
    atom's orbital count. The potential enters H(k) as ½(v_a + v_b) S_ab(k) (:mod:`.potential`)."""
    import torch

    d = model.prepare([atoms])
    with torch.no_grad():
        out = model(d)
    v = out["potential"].cpu().numpy() if "potential" in out else None
    return (out["onsite"].cpu().numpy(), out["offsite"].cpu().numpy(), d["blk_index"].cpu().numpy(),
            d["blk_shift"].cpu().numpy().round().astype(int), d["norb_atom"].cpu().numpy(), v)


def bands_at(model, basis_functions, atoms: Atoms, kpts) -> np.ndarray:
    """Model bands at k-points (fractional, (nk, 3)) of the cell ``atoms``: energies (nk, norb), eV."""
    blocks = model_blocks(model, atoms)
    energies = []
    for k in np.asarray(kpts, float):
        Sk = overlap_matrix(basis_functions, atoms, kpt=k)
        Hk = bloch_hamiltonian(blocks, k, Sk)
        energies.append(sl.eigh(Hk, Sk, eigvals_only=True))
    return np.array(energies)


def band_structure(model, basis_functions, atoms: Atoms, npoints: int = 60, path: str | None = None):
    """Model bands along a high-symmetry path (ASE's for the lattice): (bandpath, energies (nk, norb))."""
    bp = atoms.cell.bandpath(path, npoints=npoints)
    return bp, bands_at(model, basis_functions, atoms, bp.kpts)


def compare_bands(model, atoms, output: Path, npoints: int = 60, window_eV: float = 2.0) -> dict:
    """Model bands along the lattice's path + model vs reference Γ levels and DOS; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..engines import get_engine

    ref_info = model.info["reference"]
    engine = get_engine(ref_info["engine"], method=ref_info["method"])
    bf = basis_functions(model.basis.name, atoms.get_chemical_symbols(), periodic=True)
    ref = engine.label(atoms, name="reference")
    nel = float(np.sum(ref.occupations))
    S = overlap_matrix(bf, atoms)
    eps_model = eigh(model.hamiltonian(atoms, S), S)[0]
    vbm_r, cbm_r = band_edges(ref.orbital_energies, nel)
    vbm_m, cbm_m = band_edges(eps_model, nel)
    sel = (ref.orbital_energies > vbm_r - window_eV) & (ref.orbital_energies < cbm_r + window_eV)
    stats = {"vbm_error_meV": 1000 * (vbm_m - vbm_r), "cbm_error_meV": 1000 * (cbm_m - cbm_r),
             "gap_model_eV": cbm_m - vbm_m, "gap_reference_eV": cbm_r - vbm_r,
             "eig_mae_window_meV": 1000 * float(np.abs(eps_model[sel] - ref.orbital_energies[sel]).mean())}
    bp, bands = band_structure(model, bf, atoms, npoints=npoints)
    x, xs, labels = bp.get_linear_kpoint_axis()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4.5), dpi=120, gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
    ax.plot(x, bands - vbm_m, color="C0", lw=1)
    ax.axhline(0, color="k", lw=0.6, ls=":")
    gamma = [xx for xx, lab in zip(xs, labels) if lab in ("G", "Γ")]
    for g in gamma:
        ax.plot([g] * int(sel.sum()), ref.orbital_energies[sel] - vbm_r, "r_", ms=12, mew=1.5)
    ax.set_xticks(xs, ["Γ" if lab == "G" else lab for lab in labels])
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(-window_eV - 2, cbm_r - vbm_r + window_eV + 1)
    ax.set_ylabel("E − VBM (eV)")
    ax.set_title(f"{atoms.get_chemical_formula()}: model bands (blue), {ref_info['method']} at Γ (red)", fontsize=9)
    grid = np.linspace(-window_eV - 2, cbm_r - vbm_r + window_eV + 1, 400)
    ax2.plot(dos(eps_model - vbm_m, grid, 0.08), grid, label="model (Γ)")
    ax2.plot(dos(ref.orbital_energies - vbm_r, grid, 0.08), grid, "--", label="reference (Γ)")
    ax2.set_xlabel("DOS (states/eV)")
    ax2.legend(fontsize=7)
    ax2.set_title(f"gap {stats['gap_model_eV']:.3f} / {stats['gap_reference_eV']:.3f} eV", fontsize=9)
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return stats
