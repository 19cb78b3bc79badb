"""E(3)-equivariant machine-learned force field (NequIP class): structure → energy, forces, stress.

Per-atom energies come from equivariant message passing (the :class:`~.layers.Interaction` layers the
Hamiltonian model uses too) read out from the final scalars, scaled and shifted per species
(E_i = scale · ε_i + shift_Z, shift and scale fitted to the training data). The total energy is their
sum; forces are −∂E/∂x by autograd and the stress is (1/V) ∂E/∂ε for a homogeneous strain ε applied to
every edge vector (ASE sign convention), so all three are consistent by construction. Only relative
vectors enter, and the radial envelope makes energies, forces and their derivatives vanish smoothly at
``r_cut``. Energies in eV, lengths in Å, forces eV/Å, stress eV/Å³.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from e3nn import o3

from .batch import (BATCH, EDGE_INDEX, EDGE_SHIFT, NUM_STRUCTURES, POSITIONS, SPECIES, STRAIN, VOLUME, edge_vectors,
                    graph_batch)
from .layers import BesselBasis, Interaction


@dataclass
class ForceFieldConfig:
    elements: list[str]
    r_cut: float = 5.0  # Å
    hidden: str = "32x0e+8x1o+8x1e+4x2e+4x2o"
    layers: int = 3
    lmax_sh: int = 2
    num_basis: int = 8
    avg_neighbours: float = 16.0
    embedding: int = 32  # scalar channels of the species embedding (the first layer's input)
    # the readout sees only scalars, so the last layer need not make l > 0 features: its messages are the
    # few paths that end in scalars (NequIP does the same). False only for files written before this option.
    scalar_last_layer: bool = True
    energy_shift: dict = field(default_factory=dict)  # eV per atom of each element (least squares on data)
    energy_scale: float = 1.0  # eV (RMS force component of the data)

    def to_dict(self) -> dict:
        return asdict(self)


class ForceFieldModel(torch.nn.Module):
    def __init__(self, config: ForceFieldConfig):
        super().__init__()
        self.config = config
        self.elements = list(config.elements)
        S = len(self.elements)
        self.z_to_species = {atomic_numbers[el]: k for k, el in enumerate(self.elements)}
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax_sh)
        irreps = o3.Irreps(f"{config.embedding}x0e")
        self.embed = o3.Linear(o3.Irreps(f"{S}x0e"), irreps)
        self.rbf = BesselBasis(config.r_cut, config.num_basis)
        self.interactions = torch.nn.ModuleList()
        for k in range(config.layers):
            hidden = o3.Irreps(config.hidden)
            if config.scalar_last_layer and k == config.layers - 1:
                hidden = o3.Irreps([(m, ir) for m, ir in hidden if ir.l == 0])
            layer = Interaction(irreps, self.irreps_sh, hidden, config.num_basis, S, config.avg_neighbours)
            self.interactions.append(layer)
            irreps = layer.irreps_out
        self.readout1 = o3.Linear(irreps, o3.Irreps("16x0e"))
        self.readout2 = o3.Linear(o3.Irreps("16x0e"), o3.Irreps("1x0e"))
        shift = torch.tensor([float(config.energy_shift.get(el, 0.0)) for el in self.elements])
        self.register_buffer("shift", shift)
        self.register_buffer("scale", torch.tensor(float(config.energy_scale)))

    # ---- inputs --------------------------------------------------------------------------------
    def species(self, numbers) -> np.ndarray:
        try:
            return np.array([self.z_to_species[int(z)] for z in numbers], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"element {chemical_symbols[int(exc.args[0])]} is not in this force field "
                             f"(elements: {', '.join(self.elements)})") from None

    def prepare(self, structures: list[Atoms], device=None) -> dict:
        """Batch of structures → tensors with one disjoint periodic graph (edges within ``r_cut``)."""
        return graph_batch(structures, self.config.r_cut, self.species, self.shift.dtype, device)

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, d: dict, forces: bool = True, stress: bool = False) -> dict:
        """Energies (eV) per structure and per atom; forces (eV/Å) and stress (eV/Å³, (B,3,3)) by autograd.
        In training mode the derivatives keep their graph, so losses on forces can be back-propagated."""
        pos = d[POSITIONS]
        B = d[NUM_STRUCTURES]
        if forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        strain = torch.zeros(B, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=stress)
        i, j = d[EDGE_INDEX]
        vec = edge_vectors({**d, POSITIONS: pos, STRAIN: strain}, d[EDGE_INDEX], d[EDGE_SHIFT])  # r → r (1 + ε)
        e_atom = self.atomic_energies(d[SPECIES], i, j, vec)
        energy = torch.zeros(B, dtype=e_atom.dtype, device=e_atom.device).index_add(0, d[BATCH], e_atom)
        out = {"energy": energy, "energies": e_atom}
        wrt = ([pos] if forces else []) + ([strain] if stress else [])
        if wrt:
            grads = torch.autograd.grad(energy.sum(), wrt, create_graph=self.training)
            if forces:
                out["forces"] = -grads[0]
            if stress:
                g = grads[-1]
                out["stress"] = 0.5 * (g + g.transpose(1, 2)) / d[VOLUME][:, None, None]
        return out

    def atomic_energies(self, species, src, dst, vec) -> torch.Tensor:
        S = len(self.elements)
        onehot = torch.nn.functional.one_hot(species, S).to(vec.dtype)
        h = self.embed(onehot)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        basis = self.rbf(vec.norm(dim=1))
        for layer in self.interactions:
            h = layer(h, onehot, src, dst, sh, basis)
        eps = self.readout2(torch.nn.functional.silu(self.readout1(h)))[:, 0]
        return self.scale * eps + self.shift[species]

    # ---- convenience ---------------------------------------------------------------------------
    def evaluate(self, atoms: Atoms, stress: bool | None = None) -> dict[str, np.ndarray]:
        """Energy (eV), per-atom energies, forces (eV/Å) and, for fully periodic cells, stress (eV/Å³, 3×3)."""
        stress = bool(np.all(atoms.pbc)) if stress is None else stress
        d = self.prepare([atoms], self.shift.device)
        out = self(d, forces=True, stress=stress)
        res = {"energy": float(out["energy"][0].detach()), "energies": out["energies"].detach().cpu().numpy(),
               "forces": out["forces"].detach().cpu().numpy()}
        if stress:
            res["stress"] = out["stress"][0].detach().cpu().numpy()
        return res

