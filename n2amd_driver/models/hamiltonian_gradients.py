"""Nuclear derivatives of a Hamiltonian model's H, projected on a few states: c_iᵀ (∂H/∂R_Kx) c_j.

The model's Γ-point H is a differentiable function of the positions; its projection on the window states
is a small (n, n) matrix, and one vector–Jacobian product per distinct pair (i ≤ j) gives its
derivative for all atoms and directions at once — never the n_orb² × 3N Jacobian of H itself. A model with
shell potentials, H ∋ ½(VS + SV) (:mod:`.potential`), depends on S as well: autograd (S held fixed) gives
the v(R) part, and the S part ½[(Vc_i)ᵀ ∂S c_j + c_iᵀ ∂S (Vc_j)] comes from the analytic basis-function
derivatives (:mod:`n2amd_driver.orbitals.derivative_couplings`). Energies eV, lengths Å.
"""
from __future__ import annotations

import numpy as np
import torch
from ase import Atoms

from ..orbitals.derivative_couplings import overlap_derivative_forms
from .batch import POSITIONS


def projected_hamiltonian_gradient(model, atoms: Atoms, C: np.ndarray, S: np.ndarray, G: np.ndarray,
                                   mean_field: bool = True, diagonal: bool = True) -> np.ndarray:
    """h[i, j, K, x] = c_iᵀ (∂H/∂R_Kx) c_j (eV/Å), shape (n, n, N, 3), for the model's H (with the
    cell-average shell potential unless ``mean_field=False``); ``diagonal=False`` leaves the i = j entries
    (the levels' gradients) out as NaN, one backward pass less per state.

    ``C``: (norb, n) states in e3nn orbital order; ``S``: the structure's overlap matrix; ``G``: its bra
    derivatives (:func:`~n2amd_driver.orbitals.overlap.overlap_gradient`, needed for shell potentials).
    The projection is contracted tile by tile (c_Aᵀ B c_B over the model's blocks), so neither the forward
    nor the backward pass touches an n_orb² matrix."""
    d = model.prepare([atoms], dense=False)
    pos = d[POSITIONS].detach().requires_grad_(True)
    d[POSITIONS] = pos
    out = model(d, mean_field=mean_field)
    dtype, device = out["onsite"].dtype, out["onsite"].device
    C = np.asarray(C, float)
    n = C.shape[1]
    # coefficients per atom in the tiles' padded slots: (N, nmax, n)
    norb, offs = d["norb_atom"].cpu().numpy(), d["orb_offset"].cpu().numpy()
    nmax = out["onsite"].shape[1]
    padded = np.zeros((len(atoms), nmax, n))
    slot = np.arange(nmax)[None, :] < norb[:, None]
    padded[slot] = C[(offs[:, None] + np.arange(nmax)[None, :])[slot]]
    Cp = torch.as_tensor(padded, dtype=dtype, device=device)
    i, j = d["blk_index"]
    projected = (torch.einsum("kai,kab,kbj->ij", Cp, out["onsite"], Cp)
                 + torch.einsum("eai,eab,ebj->ij", Cp[i], out["offsite"], Cp[j]))
    if "potential" in out:  # ½(VS + SV) with S held fixed: Σ_a v_a ½(c_ai (Sc_j)_a + (Sc_i)_a c_aj)
        SC = S @ C
        w = 0.5 * (np.einsum("ai,aj->aij", C, SC) + np.einsum("ai,aj->aij", SC, C))
        projected = projected + torch.einsum("a,aij->ij", out["potential"], torch.as_tensor(w, dtype=dtype,
                                                                                           device=device))
    rows, cols = np.triu_indices(n, k=0 if diagonal else 1)
    projected = projected[rows, cols]
    # one backward pass per pair: torch's vmapped backward (is_grads_batched) is slower for this network
    grads = np.array([torch.autograd.grad(projected[p], pos, retain_graph=p < len(rows) - 1)[0].cpu().numpy()
                      for p in range(len(rows))], dtype=float).reshape(len(rows), len(atoms), 3)
    h = np.full((n, n, len(atoms), 3), np.nan)
    h[rows, cols] = grads
    h[cols, rows] = grads
    if "potential" in out:  # the S part of ½(VS + SV): ½[(Vc_i)ᵀ ∂S c_j + c_iᵀ ∂S (Vc_j)]
        v = out["potential"].detach().cpu().numpy().astype(float)
        offsets = model.basis.orbital_offsets(atoms.numbers)
        VC = v[:, None] * C
        h += 0.5 * (overlap_derivative_forms(G, VC, C, offsets) + overlap_derivative_forms(G, C, VC, offsets))
    return h
