"""Nuclear derivatives of a Hamiltonian model's H, projected on a few states: c_iᵀ (∂H/∂R_Kx) c_j.

The model's Γ-point H is a differentiable function of the positions; its projection on the window states
is a small (n, n) matrix, and one vector–Jacobian product per distinct pair (i ≤ j), batched, gives its
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
                                   mean_field: bool = True) -> np.ndarray:
    """h[i, j, K, x] = c_iᵀ (∂H/∂R_Kx) c_j (eV/Å), shape (n, n, N, 3), for the model's H (with the
    cell-average shell potential unless ``mean_field=False``).

    ``C``: (norb, n) states in e3nn orbital order; ``S``: the structure's overlap matrix; ``G``: its bra
    derivatives (:func:`~n2amd_driver.orbitals.overlap.overlap_gradient`, needed for shell potentials)."""
    d = model.prepare([atoms], overlaps=[S])
    pos = d[POSITIONS].detach().requires_grad_(True)
    d[POSITIONS] = pos
    out = model(d, mean_field=mean_field)
    H = model.matrices(out, d)[0]
    Ct = torch.as_tensor(np.asarray(C), dtype=H.dtype, device=H.device)
    n = Ct.shape[1]
    rows, cols = np.triu_indices(n)
    projected = (Ct.T @ H @ Ct)[rows, cols]
    basis = torch.eye(len(rows), dtype=H.dtype, device=H.device)
    try:
        grads = torch.autograd.grad(projected, pos, basis, is_grads_batched=True)[0]
    except (RuntimeError, NotImplementedError):  # an operation without a batching rule: one pair at a time
        grads = torch.stack([torch.autograd.grad(projected[p], pos, retain_graph=True)[0] for p in range(len(rows))])
    grads = grads.detach().cpu().numpy().astype(float)
    h = np.empty((n, n, len(atoms), 3))
    h[rows, cols] = grads
    h[cols, rows] = grads
    if "potential" in out:
        v = out["potential"].detach().cpu().numpy().astype(float)
        C = np.asarray(C, float)
        offsets = model.basis.orbital_offsets(atoms.numbers)
        VC = v[:, None] * C
        h += 0.5 * (overlap_derivative_forms(G, VC, C, offsets) + overlap_derivative_forms(G, C, VC, offsets))
    return h
