"""The dense tensor products equal e3nn's, values and gradients, in float64."""
import pytest
import torch
from e3nn import o3

from n2amd_driver.models.layers import weighted_tensor_product
from n2amd_driver.models.products import MixedEdgeProduct, ScalarMixing


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def e3nn_reference(tp):
    """The same product built by e3nn itself."""
    ins = [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, i.has_weight) for i in tp.instructions]
    return o3.TensorProduct(tp.irreps_in1, tp.irreps_in2, tp.irreps_out, ins, shared_weights=False,
                            internal_weights=False)


def e3nn_mixing(mix):
    ref = o3.FullyConnectedTensorProduct(mix.irreps_in1, mix.irreps_in2, mix.irreps_out)
    ref.load_state_dict(mix.state_dict())
    return ref


IN = o3.Irreps("6x0e+2x0o+4x1o+3x1e+2x2e+2x2o+1x3o")
SH = o3.Irreps.spherical_harmonics(3)
TARGETS = o3.Irreps("8x0e+2x0o+4x1o+4x1e+4x2e+2x2o+2x3o+1x3e")
BLOCKS = o3.Irreps("1x0e+1x1o+1x2e+1x1o+1x0e+2x1e+1x2e+1x2o+1x3o")  # repeated slots, as block layouts have


def inputs(tp, n=40, scalars=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, tp.irreps_in1.dim, generator=g, requires_grad=True)
    y = torch.randn(n, tp.irreps_in2.dim, generator=g, requires_grad=True)
    w = torch.randn(n, tp.weight_numel, generator=g, requires_grad=True)
    s = torch.randn(n, scalars, generator=g, requires_grad=True)
    return x, y, w, s


def grads(out, tensors):
    probe = torch.sin(torch.arange(out.numel(), dtype=out.dtype)).reshape(out.shape)
    return torch.autograd.grad((out * probe).sum(), tensors)


def test_edge_tensor_product_equals_e3nn():
    torch.manual_seed(1)
    tp, _ = weighted_tensor_product(IN, SH, TARGETS, 8)
    ref = e3nn_reference(tp)
    x, y, w, _ = inputs(tp)
    a, b = ref(x, y, w), tp(x, y, w)
    assert a.abs().max() > 1
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    for ga, gb in zip(grads(a, (x, y, w)), grads(b, (x, y, w))):
        assert torch.allclose(ga, gb, atol=1e-12, rtol=0)


@pytest.mark.parametrize("species", [1, 2])
def test_scalar_mixing_equals_e3nn(species):
    torch.manual_seed(2)
    mix = ScalarMixing(TARGETS, o3.Irreps(f"{species ** 2}x0e"), BLOCKS)
    ref = e3nn_mixing(mix)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, TARGETS.dim, generator=g, requires_grad=True)
    s = torch.randn(30, species**2, generator=g)
    a, b = ref(x, s), mix(x, s)
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    for ga, gb in zip(grads(a, (x, ref.weight)), grads(b, (x, mix.weight))):
        assert torch.allclose(ga, gb, atol=1e-12, rtol=0)


@pytest.mark.parametrize("species", [1, 2])
def test_mixed_edge_product_equals_e3nn_composition(species):
    """Values and gradients (inputs and the mixing weights) of mix(tp(x, y, w), s) without forming tp's output."""
    torch.manual_seed(4)
    tp, _ = weighted_tensor_product(IN, SH, TARGETS, 8)
    mix = ScalarMixing(tp.irreps_out.simplify(), o3.Irreps(f"{species ** 2}x0e"), BLOCKS)
    ref_tp, ref_mix = e3nn_reference(tp), e3nn_mixing(mix)
    fused = MixedEdgeProduct(tp, mix)
    x, y, w, s = inputs(tp, scalars=species**2)
    a, b = ref_mix(ref_tp(x, y, w), s), fused(x, y, w, s)
    assert a.abs().max() > 1
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    for ga, gb in zip(grads(a, (x, y, w, s, ref_mix.weight)), grads(b, (x, y, w, s, mix.weight))):
        assert torch.allclose(ga, gb, atol=1e-11, rtol=0)


def test_no_edges():
    """A structure without pairs in range (an isolated atom) gives empty outputs, not an error."""
    tp, _ = weighted_tensor_product(IN, SH, TARGETS, 8)
    mix = ScalarMixing(tp.irreps_out.simplify(), o3.Irreps("1x0e"), BLOCKS)
    x, y, w, s = (t[:0] for t in inputs(tp, scalars=1))
    assert tp(x, y, w).shape == (0, tp.irreps_out.dim)
    assert MixedEdgeProduct(tp, mix)(x, y, w, s).shape == (0, BLOCKS.dim)
    assert mix(x.new_zeros(0, mix.irreps_in1.dim), s).shape == (0, BLOCKS.dim)


@pytest.mark.parametrize("targets", [TARGETS, o3.Irreps("8x0e+2x0o")])  # a full and a scalars-only layer
def test_edge_tensor_product_scatter_equals_summed_forward(targets):
    """scatter() (the message-passing layers' path) = index_add of forward(), values and gradients."""
    torch.manual_seed(2)
    tp, _ = weighted_tensor_product(IN, SH, targets, 8)
    x, y, w, _ = inputs(tp, n=60)
    dst = torch.randint(0, 7, (60,), generator=torch.Generator().manual_seed(3))
    a = torch.zeros(9, tp.irreps_out.dim).index_add(0, dst, tp(x, y, w))
    b = tp.scatter(x, y, w, dst, 9)
    assert a.abs().max() > 1 and a[7:].abs().max() == 0  # nodes 7, 8 receive nothing
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    for ga, gb in zip(grads(a, (x, y, w)), grads(b, (x, y, w))):
        assert torch.allclose(ga, gb, atol=1e-12, rtol=0)
