"""From equivariant features to Hamiltonian blocks, and from blocks to Γ-point matrices.

A block between a shell of angular momentum l1 (on atom i) and a shell l2 (on atom j) is built from
features of irreps L = |l1−l2| .. l1+l2 with parity (−1)^(l1+l2) through the Wigner-3j symbols:

    H[m1, m2] = Σ_L Σ_M  C^{l1 l2 L}_{m1 m2 M} · f_{L M}

so that H_ij(Q·R) = D_l1(Q) H_ij(R) D_l2(Q)ᵀ holds by construction. Different species pairs have
different shell lists; the output features are laid out in *slots* per shell-pair type (l1, l2), as
many as the species pair that needs most, and a table maps each species pair's shell pairs to slots.
"""
from __future__ import annotations

import torch
from e3nn import o3

from ..orbitals.conventions import Basis


class BlockLayout(torch.nn.Module):
    """Slot layout for a basis and the assembly of per-pair blocks into padded (nmax × nmax) tiles."""

    def __init__(self, basis: Basis, elements: list[str]):
        super().__init__()
        self.elements = list(elements)
        shells = [basis.shells_of(el) for el in self.elements]
        self.norb = [sum(2 * l + 1 for l in s) for s in shells]
        self.nmax = max(self.norb)
        S = len(self.elements)
        types: dict[tuple[int, int], int] = {}  # (l1, l2) -> number of slots
        placements = []  # (pair index, (l1, l2), slot, row0, col0)
        for si in range(S):
            for sj in range(S):
                count: dict[tuple[int, int], int] = {}
                r0 = 0
                for l1 in shells[si]:
                    c0 = 0
                    for l2 in shells[sj]:
                        k = count.get((l1, l2), 0)
                        count[(l1, l2)] = k + 1
                        placements.append((si * S + sj, (l1, l2), k, r0, c0))
                        c0 += 2 * l2 + 1
                    r0 += 2 * l1 + 1
                for key, c in count.items():
                    types[key] = max(types.get(key, 0), c)
        self.types = sorted(types)
        self.slots = [types[t] for t in self.types]
        irreps = []
        for (l1, l2), nslot in zip(self.types, self.slots):
            for _ in range(nslot):
                for L in range(abs(l1 - l2), l1 + l2 + 1):
                    irreps.append((1, (L, (-1) ** (l1 + l2))))
        self.irreps_out = o3.Irreps(irreps)
        # Wigner-3j per type, concatenated over L, built in float64 (e3nn uses the default dtype)
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            for t, (l1, l2) in enumerate(self.types):
                w = torch.cat([o3.wigner_3j(l1, l2, L) * (2 * L + 1) ** 0.5
                               for L in range(abs(l1 - l2), l1 + l2 + 1)], dim=-1)
                self.register_buffer(f"w3j_{t}", w.to(prev))
        finally:
            torch.set_default_dtype(prev)
        # destination of every (type, slot, pair) inside the padded tile; -1 = the pair has no such shell pair
        n_pairs = S * S
        for t, ((l1, l2), nslot) in enumerate(zip(self.types, self.slots)):
            dest = torch.full((nslot, n_pairs, 2), -1, dtype=torch.long)
            for pair, key, k, r0, c0 in placements:
                if key == (l1, l2):
                    dest[k, pair] = torch.tensor([r0, c0])
            self.register_buffer(f"dest_{t}", dest)

    def tiles(self, features: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Padded blocks (E, nmax, nmax) from output features (E, irreps_out.dim) and pair indices (E,)."""
        E, n = features.shape[0], self.nmax
        flat = torch.zeros(E, n * n + 1, dtype=features.dtype, device=features.device)  # last column: bin
        start = 0
        rows_e = torch.arange(E, device=features.device)
        for t, ((l1, l2), nslot) in enumerate(zip(self.types, self.slots)):
            w = getattr(self, f"w3j_{t}")
            width = w.shape[-1]
            f = features[:, start : start + nslot * width].reshape(E, nslot, width)
            start += nslot * width
            blocks = torch.einsum("ekM,abM->ekab", f, w)  # (E, nslot, 2l1+1, 2l2+1)
            dest = getattr(self, f"dest_{t}")[:, pair]  # (nslot, E, 2)
            a = torch.arange(2 * l1 + 1, device=features.device)
            b = torch.arange(2 * l2 + 1, device=features.device)
            for k in range(nslot):
                r0, c0 = dest[k, :, 0], dest[k, :, 1]
                pos = (r0[:, None, None] + a[None, :, None]) * n + (c0[:, None, None] + b[None, None, :])
                pos = torch.where((r0 >= 0)[:, None, None], pos, torch.full_like(pos, n * n))
                flat = flat.index_put((rows_e[:, None, None].expand_as(pos), pos), blocks[:, k], accumulate=True)
        return flat[:, : n * n].reshape(E, n, n)


def fold_to_gamma(tiles: torch.Tensor, row_atom: torch.Tensor, col_atom: torch.Tensor, norb_of_atom: torch.Tensor,
                  orb_offset: torch.Tensor, mat_offset: torch.Tensor, mat_size: torch.Tensor, batch_of_atom: torch.Tensor,
                  total: int, image: torch.Tensor | None = None) -> torch.Tensor:
    """Sum padded tiles into flattened Γ-point matrices: returns a vector holding every structure's
    (norb × norb) matrix row-major at ``mat_offset[structure]``. ``image``: per tile, the index of its
    image on a k-mesh's Born–von Kármán supercell: the tile then goes into that image's (norb × norb)
    matrix, stored after the previous images' (None: all into image 0, Γ)."""
    E, n, _ = tiles.shape
    m = torch.arange(n, device=tiles.device)
    valid_r = m[None, :] < norb_of_atom[row_atom][:, None]  # (E, n)
    valid_c = m[None, :] < norb_of_atom[col_atom][:, None]
    b = batch_of_atom[row_atom]
    size = mat_size[b]
    r = orb_offset[row_atom][:, None] + m[None, :]
    c = orb_offset[col_atom][:, None] + m[None, :]
    base = mat_offset[b] if image is None else mat_offset[b] + image * size * size
    idx = base[:, None, None] + r[:, :, None] * size[:, None, None] + c[:, None, :]
    valid = valid_r[:, :, None] & valid_c[:, None, :]
    out = torch.zeros(total, dtype=tiles.dtype, device=tiles.device)
    return out.index_add(0, idx[valid], tiles[valid])
