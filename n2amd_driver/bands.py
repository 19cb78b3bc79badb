"""``n2amd bands``: band structure of a Hamiltonian model, compared with the reference engine at Γ."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def compare_bands(model, atoms, output: Path, npoints: int = 60, window_eV: float = 2.0) -> dict:
    """Model bands along the lattice's path + model vs reference Γ levels and DOS; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .electronic import band_edges, band_structure, dos, eigh
    from .engines import get_engine
    from .orbitals import BasisFunctions
    from .overlap import overlap_matrix

    ref_info = model.info["reference"]
    engine = get_engine(ref_info["engine"], method=ref_info["method"])
    bf = BasisFunctions.tblite(ref_info["method"], set(atoms.get_chemical_symbols())) \
        if ref_info["engine"] == "tblite" else None
    if bf is None:
        raise NotImplementedError("band comparison is implemented for tblite-labelled models")
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
