"""E(3)-equivariant neural-network Hamiltonian: structure → H_ij(R) blocks → Γ-point H.

Message passing (cutoff ``r_mp``) builds per-atom equivariant features; on-site blocks come from node
features, off-site blocks (every pair i, j, T within ``r_block``, images of an atom itself included)
from edge features h_i, h_j ⊗ Y(r̂_ij) with radial weights. Blocks are assembled from irreps with
Wigner-3j symbols (:mod:`.blocks`), so rotations (proper and improper) act on them exactly as on the
reference engine's blocks. Hermiticity H_ij(T) = H_ji(−T)ᵀ is imposed exactly by averaging each block
with its reverse; translation and permutation invariance follow from using only relative vectors and
sums over neighbours. Energies in eV, lengths in Å.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from ase import Atoms
from ase.data import chemical_symbols
from e3nn import o3

from ..core.graph import NeighbourGraph, neighbour_graph
from ..orbitals.conventions import Basis
from .batch import BATCH, EDGE_INDEX, EDGE_SHIFT, POSITIONS, SPECIES, edge_vectors, graph_batch
from .blocks import BlockLayout, fold_to_gamma
from .layers import BesselBasis, Interaction, weighted_tensor_product
from .potential import ShellPotential, cell_radial_descriptor, descriptor_statistics, overlap_coupled
from .products import MixedEdgeProduct, ScalarMixing

#: block pairs per pass of the off-site head when no gradient is taken: its intermediates take tens of kB per
#: pair, so a cell of thousands of atoms is done in passes of this many (memory then stays linear in the atoms)
BLOCK_CHUNK = 8192


@dataclass
class HamiltonianConfig:
    elements: list[str]
    basis_json: str
    r_mp: float = 5.0  # Å, message passing cutoff
    r_block: float = 8.0  # Å, pair cutoff for off-site blocks
    hidden: str = "16x0e+4x0o+8x1o+4x1e+4x2e+4x2o+2x3o+2x3e+2x4e"
    layers: int = 2
    lmax_sh: int = 2  # spherical harmonics in message passing
    lmax_edge: int = 4  # spherical harmonics of the bond direction in off-site blocks (d–d needs 4)
    num_basis: int = 8
    avg_neighbours: float = 16.0
    onsite_shift: dict = field(default_factory=dict)  # per element and orbital, eV: each shell's mean diagonal in the data
    # shell potentials coupled through the overlap, ½(v_a + v_b) S_ab (models/potential.py):
    # "none" | "local" | "mean-field" (local + response to the cell-averaged bond-length distribution:
    # the long-range charge term of GFN-xTB)
    shell_potential: str = "none"
    descriptor_stats: dict = field(default_factory=dict)  # mean-field input standardisation, from training data

    def to_dict(self) -> dict:
        return asdict(self)


class HamiltonianModel(torch.nn.Module):
    def __init__(self, config: HamiltonianConfig):
        super().__init__()
        self.config = config
        self.basis = Basis.from_json(config.basis_json)
        self.elements = list(config.elements)
        S = len(self.elements)
        self.z_to_species = {int(np.where(np.array(chemical_symbols) == el)[0][0]): k for k, el in enumerate(self.elements)}
        self.layout = BlockLayout(self.basis, self.elements)
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax_sh)
        self.irreps_edge_sh = o3.Irreps.spherical_harmonics(config.lmax_edge)
        self.embed = o3.Linear(o3.Irreps(f"{S}x0e"), o3.Irreps("32x0e"))
        self.rbf_mp = BesselBasis(config.r_mp, config.num_basis)
        self.rbf_block = BesselBasis(config.r_block, config.num_basis)
        irreps = o3.Irreps("32x0e")
        self.interactions = torch.nn.ModuleList()
        for _ in range(config.layers):
            layer = Interaction(irreps, self.irreps_sh, config.hidden, config.num_basis, S, config.avg_neighbours)
            self.interactions.append(layer)
            irreps = layer.irreps_out
        self.irreps_node = irreps
        out = self.layout.irreps_out
        self.onsite = ScalarMixing(irreps, o3.Irreps(f"{S}x0e"), out)
        # edge features: (h_i ⊕ h_j) ⊗ Y(r̂_ij), weighted by |r_ij|, then species-pair dependent mixing
        pair_in = (irreps + irreps).sort().irreps.simplify()
        self.register_buffer("pair_perm", _sort_permutation(irreps + irreps), persistent=False)
        self.edge_tp, self.edge_radial = weighted_tensor_product(pair_in, self.irreps_edge_sh,
                                                                 o3.Irreps(config.hidden), config.num_basis)
        self.edge_out = ScalarMixing(self.edge_tp.irreps_out.simplify(), o3.Irreps(f"{S * S}x0e"), out)
        self.edge_product = MixedEdgeProduct(self.edge_tp, self.edge_out)  # = edge_out(edge_tp(...)), faster
        self.pair_in_irreps = pair_in
        if config.shell_potential not in ("none", "local", "mean-field"):
            raise ValueError(f"shell_potential must be none, local or mean-field, not {config.shell_potential!r}")
        self.potential = None
        if config.shell_potential != "none":
            self.potential = ShellPotential(irreps, [self.basis.shells_of(el) for el in self.elements],
                                            mean_field=config.shell_potential == "mean-field",
                                            num_radial=config.num_basis,
                                            descriptor_stats=config.descriptor_stats or None)
        self.info: dict = {}  # what the model file says besides the weights (reference, valence electrons, ...)
        shift = torch.zeros(S, self.layout.nmax)
        config.onsite_shift = dict(config.onsite_shift)  # its values are made isotropic below: not the caller's dict
        for k, el in enumerate(self.elements):
            v = config.onsite_shift.get(el)
            if v is not None:
                iso = isotropic_onsite_shift(el, v, self.basis.shells_of(el))
                config.onsite_shift[el] = iso.tolist()  # what is saved with the model is what it applies
                shift[k, : len(v)] = torch.as_tensor(iso)
        self.register_buffer("onsite_shift", shift, persistent=False)  # from the config, not the weights

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files written before the per-shell rule stored the (per-orbital) shift with the weights: the
        # config's value, made isotropic above, is the one that counts
        state_dict.pop(prefix + "onsite_shift", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- inputs --------------------------------------------------------------------------------
    def species(self, numbers: np.ndarray) -> np.ndarray:
        try:
            return np.array([self.z_to_species[int(z)] for z in numbers])
        except KeyError as exc:
            raise ValueError(f"element {chemical_symbols[int(exc.args[0])]} is not in this model "
                             f"(elements: {', '.join(self.elements)})") from None

    def cell_descriptor(self, d: dict) -> torch.Tensor:
        """The structures' cell-averaged bond-length distributions (input of the mean-field potential)."""
        vec = edge_vectors(d, d[EDGE_INDEX], d[EDGE_SHIFT])
        ctr, nbr = d[EDGE_INDEX]
        return cell_radial_descriptor(self.rbf_mp(vec.norm(dim=1)), ctr, nbr, d[SPECIES], d[BATCH],
                                      len(self.elements))

    def fit_descriptor_stats(self, structures: list[Atoms], overlaps: list, kmeshes=None) -> dict:
        """Standardise the mean-field input on the training structures (their S matrices: the labels;
        ``kmeshes`` as in :meth:`prepare`); the statistics go into the config, so they are saved with the model."""
        kmeshes = [None] * len(structures) if kmeshes is None else kmeshes
        with torch.no_grad():
            G = torch.cat([self.cell_descriptor(self.prepare([a], overlaps=[S], kmeshes=[k]))
                           for a, S, k in zip(structures, overlaps, kmeshes)])
        stats = descriptor_statistics(G)
        self.config.descriptor_stats = stats
        self.potential.descriptor_mean.copy_(torch.as_tensor(stats["mean"]))
        self.potential.descriptor_std.copy_(torch.as_tensor(stats["std"]))
        return stats

    @property
    def needs_overlap(self) -> bool:
        """Whether H depends on S (the shell-potential term): then ``prepare`` needs or computes S."""
        return self.potential is not None

    def basis_functions(self, atoms: Atoms):
        """The basis functions of the model's basis for the elements of ``atoms``."""
        from ..orbitals.functions import basis_functions

        return basis_functions(self.basis.name, atoms.get_chemical_symbols(), periodic=bool(np.all(atoms.pbc)))

    def overlap(self, atoms: Atoms) -> np.ndarray:
        """S of ``atoms`` (Γ-folded, e3nn order) from the basis functions of the model's basis."""
        from ..orbitals.overlap import overlap_matrix

        return overlap_matrix(self.basis_functions(atoms), atoms)

    def n_electrons(self, atoms: Atoms) -> float:
        """Valence electrons of ``atoms`` from the per-element counts stored at training."""
        counts = self.info.get("valence_electrons") or {}
        missing = sorted(set(atoms.get_chemical_symbols()) - set(counts))
        if missing:
            raise ValueError(f"the model file has no valence-electron count for {missing}; give n_electrons "
                             "explicitly")
        return float(round(sum(counts[el] for el in atoms.get_chemical_symbols())))

    def prepare(self, structures: list[Atoms], device=None, overlaps=None, kmeshes=None, dense: bool = True) -> dict:
        """Batch of structures → tensors and both graphs: message passing (:mod:`.batch` keys, within ``r_mp``)
        and block pairs (``blk_*``, within ``r_block``), with the orbital layout of the Γ-point matrices.

        ``overlaps``: the structures' S matrices (Γ-folded, e3nn order), used by the shell-potential
        term; computed from the basis functions when not given (ignored by models without that term).
        ``kmeshes``: per structure None (Γ) or a k-mesh: that structure's H is then folded onto the images
        R of the mesh's Born–von Kármán supercell, (Nk, n, n) as in "bvk" labels, and its overlap must be
        S(R) of the same shape (:func:`~n2amd_driver.orbitals.overlap.bvk_overlaps`). ``dense=False``: no S
        and no dense H; the forward pass then returns the blocks and potentials only (sparse assembly)."""
        dtype = next(self.parameters()).dtype
        device = next(self.parameters()).device if device is None else device
        d = graph_batch(structures, self.config.r_mp, self.species, dtype, device)
        kmeshes = [None] * len(structures) if kmeshes is None else list(kmeshes)
        blk, blk_shift, blk_image, norb_atom, orb_off = [[], []], [], [], [], []
        mat_off, mat_size, mat_images = [], [], []
        n0, moff = 0, 0
        for atoms, kmesh in zip(structures, kmeshes):
            cell = atoms.cell.array if np.all(atoms.pbc) else np.zeros((3, 3))
            g = neighbour_graph(atoms.positions, cell, atoms.pbc, self.config.r_block)
            norb = np.array([self.layout.norb[s] for s in self.species(atoms.numbers)])
            blk[0].append(g.edge_index[0] + n0), blk[1].append(g.edge_index[1] + n0), blk_shift.append(g.shifts)
            m = (1, 1, 1) if kmesh is None else tuple(int(k) for k in kmesh)
            blk_image.append(np.ravel_multi_index((np.asarray(g.shifts, np.int64) % np.array(m)).T, m))
            norb_atom.append(norb), orb_off.append(np.concatenate([[0], np.cumsum(norb)])[:-1])
            mat_off.append(moff), mat_size.append(int(norb.sum())), mat_images.append(int(np.prod(m)))
            moff += int(np.prod(m)) * int(norb.sum()) ** 2
            n0 += len(atoms)
        cat = lambda xs: np.concatenate(xs)
        t = lambda x, dt=torch.long: torch.as_tensor(x, dtype=dt, device=device)
        blk_index = np.stack([cat(blk[0]), cat(blk[1])])
        d.update({"blk_index": t(blk_index), "blk_shift": t(cat(blk_shift), dtype), "blk_image": t(cat(blk_image)),
                  "blk_reverse": t(_reverse(blk_index, cat(blk_shift))), "norb_atom": t(cat(norb_atom)),
                  "orb_offset": t(cat(orb_off)), "mat_offset": t(mat_off), "mat_size": t(mat_size),
                  "mat_images": t(mat_images), "total": moff, "kmeshes": kmeshes})
        if self.needs_overlap and dense:
            if overlaps is None:
                if any(k is not None for k in kmeshes):
                    raise ValueError("structures on a k-mesh need their S(R) passed as overlaps")
                overlaps = [self.overlap(atoms) for atoms in structures]
            d["overlap_flat"] = torch.cat([torch.as_tensor(S).to(device=device, dtype=dtype).reshape(-1)
                                           for S in overlaps])
            if d["overlap_flat"].numel() != moff:
                raise ValueError("overlap matrices do not match the structures' orbital counts")
        return d

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, d: dict, mean_field: bool = True) -> dict:
        """Γ-point H of the batch (flat, see :meth:`matrices`), the blocks, and the shell potentials per
        orbital (eV). ``mean_field=False`` leaves the cell-average potential out of H (NNH band energies,
        :mod:`.nnh`); it is returned as ``potential_mean_field`` either way."""
        S = len(self.elements)
        onehot = torch.nn.functional.one_hot(d[SPECIES], S).to(d[POSITIONS].dtype)
        h = self.embed(onehot)
        vec = edge_vectors(d, d[EDGE_INDEX], d[EDGE_SHIFT])
        r = vec.norm(dim=1)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        basis = self.rbf_mp(r)
        ctr, nbr = d[EDGE_INDEX]
        for layer in self.interactions:
            h = layer(h, onehot, nbr, ctr, sh, basis)
        # on-site tiles (one per atom), made symmetric
        on = self.layout.tiles(self.onsite(h, onehot), d[SPECIES] * S + d[SPECIES])
        on = 0.5 * (on + on.transpose(1, 2)) + torch.diag_embed(self.onsite_shift[d[SPECIES]])
        # off-site tiles for every pair within r_block, averaged with their reverse (exact Hermiticity)
        i, j = d["blk_index"]
        vb = edge_vectors(d, d["blk_index"], d["blk_shift"])
        if torch.is_grad_enabled() or len(i) <= BLOCK_CHUNK:
            off = self._offsite(h, d[SPECIES], i, j, vb)
        else:  # inference on a large cell: the head in passes (module constant BLOCK_CHUNK)
            off = torch.cat([self._offsite(h, d[SPECIES], i[s:s + BLOCK_CHUNK], j[s:s + BLOCK_CHUNK],
                                           vb[s:s + BLOCK_CHUNK]) for s in range(0, len(i), BLOCK_CHUNK)])
        off = 0.5 * (off + off[d["blk_reverse"]].transpose(1, 2))
        args = (d["norb_atom"], d["orb_offset"], d["mat_offset"], d["mat_size"], d[BATCH], d["total"])
        n_atoms = torch.arange(len(d[SPECIES]), device=h.device)
        dense = "overlap_flat" in d or not self.needs_overlap
        H = (fold_to_gamma(on, n_atoms, n_atoms, *args) + fold_to_gamma(off, i, j, *args, image=d.get("blk_image"))
             if dense else None)
        out = {"H_flat": H, "onsite": on, "offsite": off}
        if self.potential is not None:
            G = None
            if self.potential.mean_field:
                G = cell_radial_descriptor(basis, ctr, nbr, d[SPECIES], d[BATCH], S)
            v, v_mf = self.potential(h, d[SPECIES], d[BATCH], G)
            valid = torch.arange(v.shape[1], device=v.device)[None, :] < d["norb_atom"][:, None]
            v = v[valid]  # per orbital, atoms (and structures) in order
            if v_mf is not None:
                out["potential_mean_field"] = v_mf[valid]
                if mean_field:
                    v = v + out["potential_mean_field"]
            out["potential"] = v
            if not dense:  # prepared without S (sparse assembly): blocks and potentials only
                return out
            start, terms = 0, []
            for moff, n, nk in zip(d["mat_offset"].tolist(), d["mat_size"].tolist(), d["mat_images"].tolist()):
                overlap = d["overlap_flat"][moff : moff + nk * n * n].reshape(nk, n, n)
                terms.append(overlap_coupled(v[start : start + n], overlap).reshape(-1))
                start += n
            out["H_flat"] = H + torch.cat(terms)
        return out

    def _offsite(self, h: torch.Tensor, species: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                 vb: torch.Tensor) -> torch.Tensor:
        """Padded off-site tiles (E, nmax, nmax) of the block pairs i → j with vectors vb (Å)."""
        S = len(self.elements)
        shb = o3.spherical_harmonics(self.irreps_edge_sh, vb, normalize=True, normalization="component")
        x = torch.cat([h[i], h[j]], dim=1)[:, self.pair_perm]
        w = self.edge_radial(self.rbf_block(vb.norm(dim=1)))
        pair = species[i] * S + species[j]
        pair_onehot = torch.nn.functional.one_hot(pair, S * S).to(x.dtype)
        return self.layout.tiles(self.edge_product(x, shb, w, pair_onehot), pair)

    # ---- convenience ---------------------------------------------------------------------------
    @staticmethod
    def matrices(out: dict, d: dict) -> list[torch.Tensor]:
        """Split the flat vector into per-structure matrices: (norb × norb) at Γ, (Nk, norb, norb) per image
        for structures prepared on a k-mesh."""
        mats = []
        for off, n, nk, m in zip(d["mat_offset"].tolist(), d["mat_size"].tolist(), d["mat_images"].tolist(),
                                 d.get("kmeshes") or [None] * len(d["mat_size"])):
            x = out["H_flat"][off : off + nk * n * n]
            mats.append(x.reshape(n, n) if m is None else x.reshape(nk, n, n))
        return mats

    def hamiltonian(self, atoms: Atoms, overlap: np.ndarray | None = None) -> np.ndarray:
        """Γ-point H (eV, e3nn orbital order) of one structure; ``overlap``: its S if already at hand
        (models with the shell-potential term need it and compute it otherwise)."""
        d = self.prepare([atoms], overlaps=None if overlap is None else [overlap])
        with torch.no_grad():
            return self.matrices(self(d), d)[0].cpu().numpy()


    def sparse_hamiltonian(self, atoms: Atoms, overlap=None):
        """Γ-point H (eV, e3nn order) of one structure as a scipy CSR matrix, assembled from the on-site and
        off-site blocks and ½(v_a + v_b) S_ab without ever forming a dense matrix; ``overlap``: its sparse S
        if at hand (computed from the basis functions otherwise, when the model needs it)."""
        from ..orbitals.overlap import overlap_matrix
        from ..orbitals.sparse import blocks_to_csr, pair_groups

        d = self.prepare([atoms], dense=False)
        with torch.no_grad():
            out = self(d)
        spc = d[SPECIES].cpu().numpy()
        norb = np.array([self.layout.norb[k] for k in range(len(self.elements))])
        offs = d["orb_offset"].cpu().numpy()
        n = int(d["mat_size"][0])
        i, j = (x.cpu().numpy() for x in d["blk_index"])
        atoms_idx = np.arange(len(spc))
        H = None
        for tiles, a, b in ((out["onsite"], atoms_idx, atoms_idx), (out["offsite"], i, j)):
            tiles = tiles.detach().cpu().numpy()
            for sa, sb, sel in pair_groups(spc[a], spc[b]):
                part = blocks_to_csr(tiles[sel, : norb[sa], : norb[sb]], a[sel], b[sel], offs, offs, (n, n))
                H = part if H is None else H + part
        if "potential" in out:
            S = overlap_matrix(self.basis_functions(atoms), atoms, sparse=True) if overlap is None else overlap
            v = out["potential"].detach().cpu().numpy()
            coupled = sp.csr_matrix(S, copy=True)  # ½(v_a + v_b) S_ab on S's own pattern, one copy of S
            rows = np.repeat(np.arange(coupled.shape[0]), np.diff(coupled.indptr))
            coupled.data *= 0.5 * (v[rows] + v[coupled.indices])
            H = H + coupled
        return H.tocsr()


def shell_means(values, shells) -> np.ndarray:
    """Per-orbital values (2l+1 per shell, e3nn order) replaced by each shell's mean over m: the only
    per-orbital constant that commutes with every rotation D_l(Q)."""
    values = np.asarray(values, dtype=float)
    out, start = np.empty_like(values), 0
    for l in shells:
        out[start : start + 2 * l + 1] = values[start : start + 2 * l + 1].mean()
        start += 2 * l + 1
    return out


def isotropic_onsite_shift(element: str, values, shells) -> np.ndarray:
    """The on-site shift of ``element`` as the model applies it: constant within each shell.

    Files written before this rule held one value per orbital, averaged over the training crystals in
    their orientation, which bakes a crystal field into a fixed diagonal and breaks rotation
    equivariance; those values are replaced by their shell means, with a warning, since the model's H
    then differs from what it was trained to give."""
    values = np.asarray(values, dtype=float)
    if len(values) != sum(2 * l + 1 for l in shells):
        raise ValueError(f"on-site shift of {element} has {len(values)} values, its shells {shells} "
                         f"have {sum(2 * l + 1 for l in shells)} orbitals")
    iso = shell_means(values, shells)
    spread = float(np.abs(values - iso).max(initial=0.0))
    if spread > 1e-12:
        warnings.warn(f"this Hamiltonian model's on-site shift of {element} varies within a shell by up to "
                      f"{spread:.3g} eV, which breaks rotation equivariance (a model file from before the "
                      "per-shell rule); it is replaced by each shell's mean, so H differs from the trained one "
                      f"by up to {spread:.3g} eV on the diagonal: retrain or fine-tune the model", stacklevel=3)
    return iso


def _reverse(index: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    return NeighbourGraph(index, shifts.astype(np.int64), np.zeros((index.shape[1], 3)), 0.0).reverse_edges()


def _sort_permutation(irreps: o3.Irreps) -> torch.Tensor:
    """Column permutation taking features laid out as ``irreps`` to ``irreps.sort()`` order."""
    _, p, _ = irreps.sort()
    slices = irreps.slices()
    order = [None] * len(irreps)
    for k, pk in enumerate(p):
        order[pk] = slices[k]
    return torch.cat([torch.arange(s.start, s.stop) for s in order])
