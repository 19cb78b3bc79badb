"""Building blocks shared by the equivariant models: radial basis, smooth cutoff, interaction layer."""
from __future__ import annotations

import math

import torch
from e3nn import nn as enn
from e3nn import o3

from .products import EdgeTensorProduct, ScalarMixing


class BesselBasis(torch.nn.Module):
    """sin(nπr/r_c)/r radial basis (n = 1..num), times a smooth polynomial envelope that vanishes
    with its first two derivatives at r_c (NequIP's p = 6 envelope): energies and H blocks go to zero
    smoothly at the cutoff."""

    def __init__(self, r_cut: float, num: int = 8, p: int = 6):
        super().__init__()
        self.r_cut = float(r_cut)
        self.p = p
        self.register_buffer("n", torch.arange(1, num + 1, dtype=torch.get_default_dtype()) * math.pi / r_cut)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.r_cut
        p = self.p
        env = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return env * (x < 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r[:, None]
        return torch.sin(self.n * r) / r * self.envelope(r[:, 0])[:, None] * math.sqrt(2 / self.r_cut)


def gated_irreps(hidden: str | o3.Irreps) -> tuple[o3.Irreps, enn.Gate]:
    """A gate nonlinearity whose output is ``hidden``: even scalars through SiLU, odd scalars through tanh
    (an odd function keeps the parity), every l > 0 irrep multiplied by a sigmoid-activated even scalar."""
    hidden = o3.Irreps(hidden).simplify()
    scalars = o3.Irreps([(m, ir) for m, ir in hidden if ir.l == 0])
    gated = o3.Irreps([(m, ir) for m, ir in hidden if ir.l > 0])
    acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    gate = enn.Gate(scalars, acts, gates, [torch.sigmoid] if gated.num_irreps else [], gated)
    return gate.irreps_out, gate


def weighted_tensor_product(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps, num_basis: int):
    """x ⊗ Y(r̂) → every irrep of ``targets`` it can reach ('uvu' paths), with per-edge weights from an MLP
    of the radial basis. Returns (tensor product, radial MLP)."""
    mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in targets:
                    instructions.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    mid = o3.Irreps(mid)
    irreps_mid, p, _ = mid.sort()
    instructions = [(i1, i2, p[i_out], mode, train) for i1, i2, i_out, mode, train in instructions]
    tp = EdgeTensorProduct(irreps_in, irreps_sh, irreps_mid, instructions)
    radial = enn.FullyConnectedNet([num_basis, 32, 32, tp.weight_numel], torch.nn.functional.silu)
    return tp, radial


class Interaction(torch.nn.Module):
    """One message-passing layer (NequIP-style): messages h_j ⊗ Y(r̂_ij) weighted by an MLP of |r_ij|,
    summed over neighbours, linear mixing, self-connection, gated nonlinearity."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, hidden: str, num_basis: int,
                 num_species: int, avg_neighbours: float):
        super().__init__()
        irreps_out, self.gate = gated_irreps(hidden)
        self.irreps_out = irreps_out
        self.tp, self.radial = weighted_tensor_product(irreps_in, irreps_sh, self.gate.irreps_in, num_basis)
        irreps_mid = self.tp.irreps_out
        self.linear = o3.Linear(irreps_mid.simplify(), self.gate.irreps_in)
        self.self_connection = ScalarMixing(irreps_in, o3.Irreps(f"{num_species}x0e"), self.gate.irreps_in)
        self.norm = 1.0 / math.sqrt(avg_neighbours)

    def forward(self, h, species_onehot, edge_src, edge_dst, edge_sh, edge_basis):
        w = self.radial(edge_basis)
        agg = self.tp.scatter(h[edge_src], edge_sh, w, edge_dst, h.shape[0])
        out = self.linear(agg * self.norm) + self.self_connection(h, species_onehot)
        return self.gate(out)
