"""Shell potentials coupled through the overlap: the self-consistent-charge form of tight binding.

In GFN-xTB (and DFTB) the converged Hamiltonian is H0 plus the electrostatic term

    ΔH_ab = ½ (v_a + v_b) S_ab,        v_a = potential of the shell of orbital a (eV)

for every pair of orbitals, however far apart, as long as they overlap. The shell potentials come from
the shell charges through a long-ranged lattice sum: in a crystal, the s→p charge transfer of *every*
atom in the cell shifts all levels together. Measured on 45 GFN1-xTB Si64 frames
(``scripts/analyse_scc_shift.py``, docs/benchmarks.md): the cell-averaged 3p potential spreads over
97 meV from frame to frame against 19 meV from atom to atom within a frame (3s: 45 against 36 meV), and it
runs the other way with the bond lengths, so a model of local blocks alone sees it as a frame-dependent
rigid shift of the bands it cannot predict.

:class:`ShellPotential` gives v per atom and shell as

    v_{A,l} = local_l(h_A) + Σ_j response_{l j} z_j,     z = (G − μ) / σ,

a species-dependent linear function of the atom's invariant node features plus (``mean_field``) a linear
response to the cell-averaged bond-length distribution G: for every species pair, the Bessel radial
basis of the message-passing edges summed over the cell and divided by its atom count
(:func:`cell_radial_descriptor`), standardised with the training set's mean μ and spread σ. That is the
lowest Fourier component of the long-range sum; on the Si64 data a linear map of G predicts held-out
frames' cell-averaged potentials to 1–3 meV. (The cell average of *learned* features was tried first:
it varies between frames by a tiny fraction of its size, so the response learned far too slowly.)
v is a scalar, so the term is exactly covariant and Hermitian whenever S is; through S it also reaches
pairs beyond the block cutoff. S comes from the basis functions (training: the reference's S labels).
"""
from __future__ import annotations

import torch
from e3nn import o3


def cell_radial_descriptor(radial: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor, species: torch.Tensor,
                           batch: torch.Tensor, num_species: int) -> torch.Tensor:
    """Cell-averaged bond-length distribution (B, S·S·K): for each structure b and species pair (s, s'),
    (1/N_b) Σ_{A∈b, species s} Σ_{B of species s'} φ_k(r_AB), with φ the radial basis values (E, K) of
    the edges centre → neighbour."""
    E, K = radial.shape
    nstruct = int(batch.max()) + 1
    row = batch[centre] * num_species**2 + species[centre] * num_species + species[neighbour]
    total = torch.zeros(nstruct * num_species**2, K, dtype=radial.dtype, device=radial.device).index_add(0, row, radial)
    count = torch.bincount(batch, minlength=nstruct).to(radial.dtype)
    return total.reshape(nstruct, -1) / count[:, None]


class ShellPotential(torch.nn.Module):
    """Per-shell potentials v (eV) of every atom; zero at initialisation.

    ``descriptor_stats``: {"mean": [...], "std": [...]} of :func:`cell_radial_descriptor` over the training
    structures (required with ``mean_field``)."""

    def __init__(self, irreps_node: o3.Irreps, shells_per_species: list[tuple[int, ...]], mean_field: bool,
                 num_radial: int, descriptor_stats: dict | None = None):
        super().__init__()
        irreps_node = o3.Irreps(irreps_node)
        scalars = torch.cat([torch.arange(s.start, s.stop) for s, (_, ir) in
                             zip(irreps_node.slices(), irreps_node) if ir == o3.Irrep("0e")])
        self.register_buffer("scalar_index", scalars, persistent=False)
        S = len(shells_per_species)
        K = max(len(s) for s in shells_per_species)
        self.local = torch.nn.Parameter(torch.zeros(S, len(scalars), K))
        self.bias = torch.nn.Parameter(torch.zeros(S, K))
        self.mean_field = bool(mean_field)
        if self.mean_field:
            n = S * S * num_radial
            stats = descriptor_stats or {"mean": [0.0] * n, "std": [1.0] * n}
            if len(stats["mean"]) != n or len(stats["std"]) != n:
                raise ValueError(f"descriptor statistics need {n} entries (species pairs × radial functions)")
            self.register_buffer("descriptor_mean", torch.tensor(stats["mean"]), persistent=False)
            self.register_buffer("descriptor_std", torch.tensor(stats["std"]), persistent=False)
            self.response = torch.nn.Parameter(torch.zeros(S, n, K))
        # orbital → shell index, per species, padded to the largest orbital count
        nmax = max(sum(2 * l + 1 for l in s) for s in shells_per_species)
        table = torch.zeros(S, nmax, dtype=torch.long)
        for k, shells in enumerate(shells_per_species):
            table[k, : sum(2 * l + 1 for l in shells)] = torch.tensor(
                [n for n, l in enumerate(shells) for _ in range(2 * l + 1)])
        self.register_buffer("shell_of_orbital", table, persistent=False)

    def forward(self, h: torch.Tensor, species: torch.Tensor, batch: torch.Tensor,
                descriptor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(local part, cell-average part or None) of v per atom and orbital slot (N, nmax) in eV, constant
        within a shell; ``descriptor``: the structures' :func:`cell_radial_descriptor` (B, S·S·K), needed
        with ``mean_field``."""
        to_orbitals = lambda v: torch.gather(v, 1, self.shell_of_orbital[species])
        v = torch.einsum("nf,nfk->nk", h[:, self.scalar_index], self.local[species]) + self.bias[species]
        if not self.mean_field:
            return to_orbitals(v), None
        z = (descriptor - self.descriptor_mean) / self.descriptor_std
        return to_orbitals(v), to_orbitals(torch.einsum("nj,njk->nk", z[batch], self.response[species]))


def descriptor_statistics(descriptors: torch.Tensor) -> dict:
    """Mean and spread of cell descriptors (B, n) over a training set; a feature that does not vary gets
    σ = 1 (it then only adds a constant the bias already has)."""
    mean = descriptors.mean(0)
    std = descriptors.std(0, unbiased=False) if len(descriptors) > 1 else torch.zeros_like(mean)
    std = torch.where(std > 1e-8 * (1 + mean.abs()), std, torch.ones_like(std))
    return {"mean": mean.tolist(), "std": std.tolist()}


def overlap_coupled(v_orb: torch.Tensor, overlap: torch.Tensor) -> torch.Tensor:
    """½ (v_a + v_b) S_ab for one structure: v per orbital (n,), S (n, n) or S(k)."""
    return 0.5 * (v_orb[:, None] + v_orb[None, :]) * overlap
