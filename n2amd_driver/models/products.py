"""Two e3nn tensor products in a dense form: same parameters, same results, fewer and larger operations.

e3nn's generic code evaluates a tensor product one path at a time (an einsum, a copy and a concatenation
per path); the models here have ~100 paths over ~7000 edges, so that bookkeeping, not arithmetic, took most
of a forward pass. Both classes below subclass the e3nn module they replace, so parameters, state-dict keys
and saved models are unchanged, and compute the same sums (checked against e3nn in tests/test_products.py):

- :class:`EdgeTensorProduct` — x ⊗ Y(r̂) with per-edge weights ('uvu' paths, one spherical harmonic per l):
  per input irrep, the Clebsch–Gordan coefficients of all its paths are contracted with Y once, giving a
  (2l₁+1) × K matrix per edge, and the channels are multiplied by it in one batched matmul. Its
  ``scatter`` (what the message-passing layers call) also sums the messages over edges per input irrep,
  so the per-edge output is never laid out in e3nn's slot order.
- :class:`ScalarMixing` — a fully connected product with scalars (species one-hot): a linear map of each
  irrep's channels whose matrix depends linearly on the scalars, evaluated as one matmul per input irrep.
"""
from __future__ import annotations

import math

import torch
from e3nn import o3


class EdgeTensorProduct(o3.TensorProduct):
    """``o3.TensorProduct`` restricted to 'uvu' paths with external per-sample weights, a second input of
    multiplicity one per irrep (spherical harmonics) and one path per output slot; forward(x, y, weight)
    equals e3nn's."""

    def __init__(self, irreps_in1, irreps_in2, irreps_out, instructions, **kwargs):
        super().__init__(irreps_in1, irreps_in2, irreps_out, instructions, shared_weights=False,
                         internal_weights=False, **kwargs)
        assert all(mul == 1 for mul, _ in self.irreps_in2), "one spherical harmonic per l"
        assert all(ins.connection_mode == "uvu" and ins.has_weight for ins in self.instructions)
        assert sorted(ins.i_out for ins in self.instructions) == list(range(len(self.irreps_out))), \
            "one path per output slot"
        slices_in2 = self.irreps_in2.slices()
        w_offsets = [0]
        for ins in self.instructions:
            w_offsets.append(w_offsets[-1] + math.prod(ins.path_shape))
        self._groups = []  # per input irrep: its paths as (instruction index, output irrep dim)
        self._slot_piece = [None] * len(self.irreps_out)  # output slot → (group, path) index
        for i1, (mul, ir1) in enumerate(self.irreps_in1):
            paths = [k for k, ins in enumerate(self.instructions) if ins.i_in1 == i1]
            if not paths or mul == 0:
                continue
            dims = [self.irreps_out[self.instructions[k].i_out].ir.dim for k in paths]
            cg = torch.zeros(ir1.dim, self.irreps_in2.dim, sum(dims), dtype=torch.float64)
            k0, entries = 0, []
            for k, d3 in zip(paths, dims):
                ins = self.instructions[k]
                l2, l3 = self.irreps_in2[ins.i_in2].ir.l, self.irreps_out[ins.i_out].ir.l
                cg[:, slices_in2[ins.i_in2], k0 : k0 + d3] = ins.path_weight * o3.wigner_3j(ir1.l, l2, l3, dtype=torch.float64)
                self._slot_piece[ins.i_out] = (len(self._groups), len(entries))
                entries.append((k, d3))
                k0 += d3
            # (J, i·K): contracting Y with it gives every path's (2l₁+1) × (2l₃+1) matrix at once
            self.register_buffer(f"_cg_{i1}", cg.permute(1, 0, 2).reshape(self.irreps_in2.dim, -1)
                                 .to(torch.get_default_dtype()), persistent=False)
            self._groups.append((i1, entries))
            self.register_buffer(f"_path_of_col_{i1}", torch.cat([torch.full((d3,), p) for p, d3 in enumerate(dims)]),
                                 persistent=False)

        # scatter() walks the path weights group by group: the groups' paths must tile the instructions
        starts = [sum(len(e) for _, e in self._groups[:g]) for g in range(len(self._groups))]
        assert all([k for k, _ in e] == list(range(s, s + len(e))) for s, (_, e) in zip(starts, self._groups))

    def forward(self, x, y, weight):
        # torch.split, not slicing: the backward of a slice allocates a zero tensor of the full input
        z = x.shape[0]
        xs = torch.split(x, [mul * ir.dim for mul, ir in self.irreps_in1], dim=1)
        ws = torch.split(weight, [math.prod(ins.path_shape) for ins in self.instructions], dim=1)
        pieces = []
        for i1, entries in self._groups:
            mul, ir1 = self.irreps_in1[i1]
            cg = getattr(self, f"_cg_{i1}")
            m = (y @ cg).reshape(z, ir1.dim, cg.shape[1] // ir1.dim)  # (z, i, K)
            t = torch.bmm(xs[i1].reshape(z, mul, ir1.dim), m)  # (z, u, K)
            ts = torch.split(t, [d for _, d in entries], dim=2)
            pieces.append([(tk * ws[k][:, :, None]).reshape(z, mul * d) for tk, (k, d) in zip(ts, entries)])
        return torch.cat([pieces[g][p] for g, p in self._slot_piece], dim=1)

    def scatter(self, x, y, weight, dst, num_nodes: int):
        """``zeros(num_nodes, dim).index_add(0, dst, forward(x, y, weight))`` without forming the per-edge
        output in e3nn's slot order: per input irrep, the messages of all its paths in one layout, one sum
        over edges, and the reordering into slots on the (far fewer) nodes. How the messages are formed
        depends on the input irrep (measured to be the faster form on CPU):

        - scalars (l₁ = 0): an outer product of x_u w_up with Y, channels u last where they are contiguous;
        - one path, or a path to a scalar: path weights on x first, then one batched matmul with the path
          matrix (a dot product when it ends in one scalar, as in a force field's last layer);
        - several paths from l₁ > 0: one batched matmul for all paths, then the weights.

        Same sums as forward, so the same values and gradients (tests/test_products.py)."""
        z = x.shape[0]
        xs = torch.split(x, [mul * ir.dim for mul, ir in self.irreps_in1], dim=1)
        ws = torch.split(weight, [math.prod(ins.path_shape) for ins in self.instructions], dim=1)
        node_pieces, k = [], 0
        for i1, entries in self._groups:
            mul, ir1 = self.irreps_in1[i1]
            P, i = len(entries), ir1.dim
            path_of_col = getattr(self, f"_path_of_col_{i1}")
            if i == 1:
                m = y @ getattr(self, f"_cg_{i1}")  # (z, K)
                K = m.shape[1]
                a = torch.stack(ws[k : k + P], dim=1) * xs[i1][:, None, :]  # (z, P, u)
                t = a.index_select(1, path_of_col) * m[:, :, None]  # (z, K, u)
                agg = t.new_zeros(num_nodes, K * mul).index_add_(0, dst, t.reshape(z, K * mul))
                agg = agg.view(num_nodes, K, mul).transpose(1, 2)
            else:
                w = torch.stack(ws[k : k + P], dim=2)  # (z, u, P): path p's weight for channel u
                cg = getattr(self, f"_cg_{i1}")
                K = cg.shape[1] // i
                mk = (y @ cg).view(z, i, K)
                if P > 1:
                    t = torch.bmm(xs[i1].view(z, mul, i), mk) * w.index_select(2, path_of_col)
                else:
                    xw = xs[i1].view(z, mul, i) * w
                    t = (xw * mk.view(z, 1, i)).sum(2, keepdim=True) if K == 1 else torch.bmm(xw, mk)  # (z, u, K)
                agg = t.new_zeros(num_nodes, mul * K).index_add_(0, dst, t.reshape(z, mul * K)).view(num_nodes, mul, K)
            k += P
            node_pieces.append([p.reshape(num_nodes, mul * d)
                                for p, (_, d) in zip(torch.split(agg, [d for _, d in entries], dim=2), entries)])
        return torch.cat([node_pieces[g][p] for g, p in self._slot_piece], dim=1)


class ScalarMixing(o3.FullyConnectedTensorProduct):
    """``o3.FullyConnectedTensorProduct(irreps_in1, "Sx0e", irreps_out)`` (internal weights), evaluated
    densely: out = Σ_v y_v · (x ↦ x A_v) per irrep; forward(x, y) equals e3nn's."""

    def __init__(self, irreps_in1, irreps_in2, irreps_out, **kwargs):
        super().__init__(irreps_in1, irreps_in2, irreps_out, **kwargs)
        assert len(self.irreps_in2) == 1 and self.irreps_in2[0].ir == o3.Irrep("0e"), "scalars only"
        assert self.internal_weights and all(ins.connection_mode == "uvw" for ins in self.instructions)
        slices_out = self.irreps_out.slices()
        offsets = [0]
        for ins in self.instructions:
            offsets.append(offsets[-1] + math.prod(ins.path_shape))
        self._groups = []  # per input irrep: [(weight offset, path shape, scale, output slot start)]
        for i1, (mul, ir) in enumerate(self.irreps_in1):
            paths = [(offsets[k], ins.path_shape, ins.path_weight / math.sqrt(ir.dim), slices_out[ins.i_out].start)
                     for k, ins in enumerate(self.instructions) if ins.i_in1 == i1]
            if paths and mul > 0:
                cols = torch.cat([start + torch.arange(shape[2] * ir.dim) for _, shape, _, start in paths])
                self.register_buffer(f"_ocols_{i1}", cols, persistent=False)
                self._groups.append((i1, paths))

    def forward(self, x, y, weight=None):
        weight = self.weight if weight is None else weight
        z, S = x.shape[0], y.shape[1]
        xs = torch.split(x, [mul * ir.dim for mul, ir in self.irreps_in1], dim=1)
        out = x.new_zeros(z, self.irreps_out.dim)
        for i1, paths in self._groups:
            mul, ir = self.irreps_in1[i1]
            # A: (u·v, Σw) — the paths of this input irrep side by side
            a = torch.cat([scale * weight[off : off + math.prod(shape)].reshape(shape).reshape(mul * S, shape[2])
                           for off, shape, scale, _ in paths], dim=1)
            x1 = xs[i1].reshape(z, mul, ir.dim)
            xy = (x1[:, :, None, :] * y[:, None, :, None]).reshape(z, mul * S, ir.dim)  # (z, u·v, m)
            t = torch.matmul(xy.transpose(1, 2), a)  # (z, m, Σw)
            # output slots are laid out [w, m]: per path, (m, w) → (w, m)
            ts = torch.split(t, [shape[2] for _, shape, _, _ in paths], dim=2)
            pieces = [tk.transpose(1, 2).reshape(z, shape[2] * ir.dim) for tk, (_, shape, _, _) in zip(ts, paths)]
            out = out.index_add(1, getattr(self, f"_ocols_{i1}"), torch.cat(pieces, dim=1))
        return out


class MixedEdgeProduct:
    """``mix(tp(x, y, weight), scalars)`` for an :class:`EdgeTensorProduct` followed by a
    :class:`ScalarMixing`, without forming the tensor product's output (~4400 numbers per edge in the
    Hamiltonian model, against 81 for the block itself).

    With paths q (input irrep g, output irrep r), per-edge path weights w_q and mixing matrices A:
        out_r[w, k] = Σ_q Σ_u A_q[u, w] w_q[u] Σ_i x_g[u, i] M_q[i, k],   M_q[i, k] = Σ_j C_q[i, j, k] y_j,
    evaluated as G_q[w, i] = Σ_u A_q[u, w] w_q[u] x_g[u, i] (one batched matmul per input irrep) and then
    out_r = Σ_q G_q M_q (one batched matmul per output irrep). Not a module: it holds no parameters of its
    own and reads the two modules' parameters at every call, so training through it is exact.
    """

    def __init__(self, tp: EdgeTensorProduct, mix: ScalarMixing):
        self.tp, self.mix = tp, mix
        assert mix.irreps_in1 == tp.irreps_out.simplify()
        S2 = mix.irreps_in2.dim
        # tp output slot q → (irrep type in mix's input, channel offset in that type)
        type_of, chan_of, t, c = {}, {}, -1, 0
        prev = None
        for q, (mul, ir) in enumerate(tp.irreps_out):
            if ir != prev:
                t, c, prev = t + 1, 0, ir
            type_of[q], chan_of[q] = t, c
            c += mul
        # output irreps r: their slots and column ranges w within r
        out_types = []  # [(ir, [(slot o, w0, w1)])]
        for o, (mul, ir) in enumerate(mix.irreps_out):
            entry = next((e for e in out_types if e[0] == ir), None)
            if entry is None:
                entry = (ir, [])
                out_types.append(entry)
            w0 = entry[1][-1][2] if entry[1] else 0
            entry[1].append((o, w0, w0 + mul))
        self.wmax = max(e[1][-1][2] for e in out_types)
        mix_offsets, off = {}, 0
        for ins in mix.instructions:  # (type t, output slot o) → (weight offset, shape, scale)
            mix_offsets[(ins.i_in1, ins.i_out)] = (off, ins.path_shape, ins.path_weight / math.sqrt(mix.irreps_out[ins.i_out].ir.dim))
            off += math.prod(ins.path_shape)
        zero = off  # index of an appended zero: padding and paths the mixing does not use
        tp_offsets = [0]
        for ins in tp.instructions:
            tp_offsets.append(tp_offsets[-1] + math.prod(ins.path_shape))
        slices_in2 = tp.irreps_in2.slices()
        self.groups = []  # per input irrep g: (g, tp weight range, mixing index, scale, [q])
        for g, (mul, ir1) in enumerate(tp.irreps_in1):
            ks = [k for k, ins in enumerate(tp.instructions) if ins.i_in1 == g]
            if not ks or mul == 0:
                continue
            assert ks == list(range(ks[0], ks[-1] + 1)), "a group's paths must be consecutive"
            idx = torch.full((mul, len(ks), S2, self.wmax), zero, dtype=torch.long)
            scale = torch.zeros(mul, len(ks), S2, self.wmax, dtype=torch.float64)
            for j, k in enumerate(ks):
                q = tp.instructions[k].i_out
                ir = tp.irreps_out[q].ir
                entry = next((e for e in out_types if e[0] == ir), None)
                for o, w0, w1 in entry[1] if entry else []:  # a path to an irrep the blocks lack adds nothing
                    if (type_of[q], o) not in mix_offsets:
                        continue
                    moff, (U, _, W), s = mix_offsets[(type_of[q], o)]
                    full = moff + torch.arange(U * S2 * W).reshape(U, S2, W)
                    idx[:, j, :, w0:w1] = full[chan_of[q] : chan_of[q] + mul]
                    scale[:, j, :, w0:w1] = s
            self.groups.append((g, (tp_offsets[ks[0]], tp_offsets[ks[-1] + 1]), idx, scale, [tp.instructions[k].i_out for k in ks]))
        # per output irrep r: the (group, path) pieces and the CG matrix (J, Σ_q (2l_g+1) · d_r)
        self.outputs = []
        for ir, slots in out_types:
            pieces, cgs = [], []
            for gi, (g, _, _, _, qs) in enumerate(self.groups):
                ir1 = tp.irreps_in1[g].ir
                for j, q in enumerate(qs):
                    if tp.irreps_out[q].ir != ir:
                        continue
                    ins = next(i for i in tp.instructions if i.i_out == q)
                    cg = torch.zeros(tp.irreps_in2.dim, ir1.dim, ir.dim, dtype=torch.float64)
                    cg[slices_in2[ins.i_in2]] = ins.path_weight * o3.wigner_3j(
                        ir1.l, tp.irreps_in2[ins.i_in2].ir.l, ir.l, dtype=torch.float64).transpose(0, 1)
                    pieces.append((gi, j))
                    cgs.append(cg)
            cg = torch.cat(cgs, dim=1).reshape(tp.irreps_in2.dim, -1) if cgs else None
            self.outputs.append((ir, slots, pieces, cg))
        ranges = [r for _, r, _, _, _ in self.groups]
        assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])) \
            and ranges[-1][1] == tp.weight_numel, "groups' path weights must tile the weight vector"
        self.weight_sizes = [w1 - w0 for w0, w1 in ranges]
        self._cache = {}

    def _constants(self, dtype, device):
        key = (dtype, device)
        if key not in self._cache:
            to = lambda t: None if t is None else t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
            self._cache[key] = ([(to(idx), to(scale)) for _, _, idx, scale, _ in self.groups],
                                [to(cg) for *_, cg in self.outputs])
        return self._cache[key]

    def __call__(self, x, y, weight, scalars):
        # torch.split / unbind, not slicing: the backward of a slice allocates a zero tensor of the full input
        z, wmax = x.shape[0], self.wmax
        (group_consts, cgs) = self._constants(x.dtype, x.device)
        wpad = torch.cat([self.mix.weight, self.mix.weight.new_zeros(1)])
        xs = torch.split(x, [mul * ir.dim for mul, ir in self.tp.irreps_in1], dim=1)
        ws = torch.split(weight, self.weight_sizes, dim=1)
        G = []
        for gi, ((g, _, _, _, qs), (idx, scale)) in enumerate(zip(self.groups, group_consts)):
            mul, ir1 = self.tp.irreps_in1[g]
            P = len(qs)
            a = (wpad[idx] * scale).permute(2, 0, 1, 3).reshape(scalars.shape[1], -1)  # (S2, u·P·W)
            b = (scalars @ a).view(z, mul, P, wmax) * ws[gi].view(z, P, mul).transpose(1, 2)[..., None]
            g_ = torch.bmm(b.view(z, mul, P * wmax).transpose(1, 2), xs[g].reshape(z, mul, ir1.dim))
            G.append(g_.view(z, P, wmax, ir1.dim).unbind(1))  # per path: (z, W, i)
        pieces = []
        for (ir, slots, paths, _), cg in zip(self.outputs, cgs):
            if paths:  # rows beyond this irrep's width are zero (zero mixing weights)
                gcat = torch.cat([G[gi][j] for gi, j in paths], dim=2)  # (z, W, Σi)
                m = (y @ cg).view(z, cg.shape[1] // ir.dim, ir.dim)  # (z, Σi, d)
                out_r = torch.bmm(gcat, m)  # (z, W, d)
            else:
                out_r = x.new_zeros(z, wmax, ir.dim)
            sizes = [w1 - w0 for _, w0, w1 in slots]
            parts = torch.split(out_r, sizes + [wmax - sum(sizes)], dim=1)
            pieces += [(o, p.reshape(z, n * ir.dim)) for (o, _, _), p, n in zip(slots, parts, sizes)]
        return torch.cat([p for _, p in sorted(pieces, key=lambda op: op[0])], dim=1)
