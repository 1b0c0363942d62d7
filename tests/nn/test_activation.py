"""Activation functions and modules: values (reference numbers from PyTorch 2.x, pasted),
float64 gradient checks, gradients at the kinks, stability at +-1000, in-place forms, reprs."""

import math

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not dtorch.cuda.is_available(), reason="needs CuPy and a GPU"))])
def device(request):
    """CPU, and CUDA where CuPy and a GPU are present."""
    return request.param

ACT_X = [-3.0, -1.5, -0.5, 0.25, 1.0, 2.5]
ACT_CASES = [
    ("relu", {}, [0.0, 0.0, 0.0, 0.25, 1.0, 2.5]),
    ("relu6", {}, [0.0, 0.0, 0.0, 0.25, 1.0, 2.5]),
    ("leaky_relu", {"negative_slope": 0.2}, [-0.6, -0.3, -0.1, 0.25, 1.0, 2.5]),
    ("elu", {"alpha": 0.7}, [-0.665149052142, -0.543808887896, -0.275428538201, 0.25, 1.0, 2.5]),
    ("selu", {}, [-1.67056872877, -1.36581435337, -0.691758187803, 0.262675246839,
                  1.05070098736, 2.62675246839]),
    ("celu", {"alpha": 1.5}, [-1.29699707515, -0.948180838243, -0.425203034139, 0.25, 1.0,
                              2.5]),
    ("gelu", {}, [-0.00404969409489, -0.100210801903, -0.154268769363, 0.149676581421,
                  0.841344746069, 2.48447583669]),
    ("gelu", {"approximate": "tanh"}, [-0.00363739208177, -0.10042842302, -0.154285990175,
                                       0.149675350702, 0.841191990608, 2.48491573391]),
    ("silu", {}, [-0.142277619533, -0.27363828571, -0.188770334399, 0.140544125221,
                  0.73105857863, 2.31035454995]),
    ("mish", {}, [-0.145647461276, -0.298099742167, -0.220743774652, 0.169572409664,
                  0.865098388267, 2.47139230456]),
    ("sigmoid", {}, [0.0474258731776, 0.182425523806, 0.377540668798, 0.562176500886,
                     0.73105857863, 0.924141819979]),
    ("logsigmoid", {}, [-3.04858735157, -1.70141327798, -0.97407698418, -0.575939419879,
                        -0.313261687518, -0.0788897342925]),
    ("tanh", {}, [-0.995054753687, -0.905148253645, -0.46211715726, 0.244918662404,
                  0.761594155956, 0.986614298151]),
    ("hardtanh", {"min_val": -2.0, "max_val": 2.0}, [-2.0, -1.5, -0.5, 0.25, 1.0, 2.0]),
    ("hardsigmoid", {}, [0.0, 0.25, 0.416666666667, 0.541666666667, 0.666666666667,
                         0.916666666667]),
    ("hardswish", {}, [-0.0, -0.375, -0.208333333333, 0.135416666667, 0.666666666667,
                       2.29166666667]),
    ("softplus", {"beta": 2.0, "threshold": 3.0}, [0.00123784256887, 0.0242936757869,
                                                   0.156630843759, 0.48703849209,
                                                   1.06346400552, 2.5]),
    ("softsign", {}, [-0.75, -0.6, -0.333333333333, 0.2, 0.5, 0.714285714286]),
    ("softshrink", {"lambd": 0.6}, [-2.4, -0.9, -0.0, 0.0, 0.4, 1.9]),
    ("hardshrink", {"lambd": 0.6}, [-3.0, -1.5, 0.0, 0.0, 1.0, 2.5]),
    ("tanhshrink", {}, [-2.00494524631, -0.594851746355, -0.03788284274, 0.00508133759629,
                        0.238405844044, 1.51338570185]),
    ("threshold", {"threshold": 0.5, "value": -7.0}, [-7.0, -7.0, -7.0, -7.0, 1.0, 2.5]),
    ("rrelu", {"lower": 0.1, "upper": 0.3}, [-0.6, -0.3, -0.1, 0.25, 1.0, 2.5]),
]
SOFTMAX_X = [[1.0, 2.0, 3.0], [-1.0, 0.0, 1000.0]]
SOFTMAX_1 = [[0.0900305731704, 0.244728471055, 0.665240955775], [0.0, 0.0, 1.0]]
LOG_SOFTMAX_1 = [[-2.40760596444, -1.40760596444, -0.407605964444], [-1001.0, -1000.0, 0.0]]
SOFTMIN_1 = [[0.665240955775, 0.244728471055, 0.0900305731704],
             [0.73105857863, 0.26894142137, 0.0]]


def _ids(cases):
    return [f"{n}-{'-'.join(map(str, kw.values()))}" for n, kw, _ in cases]


@pytest.mark.parametrize("name,kw,expected", ACT_CASES, ids=_ids(ACT_CASES))
def test_values_match_pytorch(name, kw, expected, device):
    x = dtorch.tensor(ACT_X, dtype=dtorch.float64, device=device)
    y = getattr(F, name)(x, **kw)
    # NOTE: 1e-7 absolute covers dtorch.erf's ~1e-8 error (gelu).
    np.testing.assert_allclose(y.cpu().numpy(), expected, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("name,kw,expected", ACT_CASES, ids=_ids(ACT_CASES))
def test_gradcheck(name, kw, expected):
    # points away from the kinks
    x = dtorch.tensor([-2.7, -1.3, -0.4, 0.3, 1.1, 2.2], dtype=dtorch.float64,
                      requires_grad=True)
    assert gradcheck(lambda t: getattr(F, name)(t, **kw), (x,))


def test_float32_input_keeps_dtype():
    x = dtorch.randn(4, 3)
    for name, kw, _ in ACT_CASES:
        assert getattr(F, name)(x, **kw).dtype == dtorch.float32, name


def test_gradient_at_kinks_follows_pytorch():
    x = dtorch.tensor([0.0, 6.0, -3.0, 3.0], dtype=dtorch.float64, requires_grad=True)
    (g,) = dtorch.autograd.grad(F.relu6(x).sum(), x)
    assert g.tolist() == [0.0, 0.0, 0.0, 1.0]
    (g,) = dtorch.autograd.grad(F.hardsigmoid(x).sum(), x)
    assert g.tolist() == [1 / 6, 0.0, 0.0, 0.0]
    (g,) = dtorch.autograd.grad(F.softplus(x).sum(), x)
    assert g[0].item() == 0.5  # sigmoid(0), where max(x,0) + log1p(exp(-|x|)) would give 0
    (g,) = dtorch.autograd.grad(F.logsigmoid(x).sum(), x)
    assert g[0].item() == 0.5


@pytest.mark.parametrize("name", ["sigmoid", "logsigmoid", "softplus", "tanh", "elu", "selu",
                                  "celu", "silu", "mish", "gelu", "softsign", "hardswish"])
def test_stable_at_extremes(name):
    x = dtorch.tensor([-1000.0, -100.0, 100.0, 1000.0], dtype=dtorch.float64,
                      requires_grad=True)
    y = getattr(F, name)(x)
    (g,) = dtorch.autograd.grad(y.sum(), x)
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(g.numpy()).all()


def test_logsigmoid_and_softplus_extreme_values():
    x = dtorch.tensor([-1000.0, 1000.0], dtype=dtorch.float64)
    assert F.logsigmoid(x).tolist() == [-1000.0, 0.0]
    assert F.softplus(x).tolist() == [0.0, 1000.0]
    assert F.softplus(dtorch.tensor([-800.0]), beta=1.0, threshold=1e9).tolist() == [0.0]


def test_softmax_family_values(device):
    x = dtorch.tensor(SOFTMAX_X, dtype=dtorch.float64, device=device)
    np.testing.assert_allclose(F.softmax(x, 1).cpu().numpy(), SOFTMAX_1, rtol=1e-10)
    np.testing.assert_allclose(F.log_softmax(x, 1).cpu().numpy(), LOG_SOFTMAX_1, rtol=1e-10)
    np.testing.assert_allclose(F.softmin(x, 1).cpu().numpy(), SOFTMIN_1, rtol=1e-10)
    np.testing.assert_allclose(F.softmax(x, 0).sum(0).cpu().numpy(), [1.0, 1.0, 1.0])
    assert F.softmax(x.float(), 1, dtype=dtorch.float64).dtype == dtorch.float64


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax, F.softmin])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_gradcheck(fn, dim):
    x = dtorch.randn(3, 4, dtype=dtorch.float64, requires_grad=True)
    assert gradcheck(lambda t: fn(t, dim) * dtorch.arange(4.0, dtype=dtorch.float64), (x,))


def test_softmax_implicit_dim_warns():
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(dtorch.zeros(2, 4))
    assert y.tolist() == [[0.25] * 4] * 2  # dim 1 for 2-d input, as in PyTorch


def test_inplace_variants_write_into_input():
    for fn, kw in [(F.relu, {}), (F.elu, {}), (F.leaky_relu, {"negative_slope": 0.3}),
                   (F.hardtanh, {}), (F.relu6, {}), (F.selu, {}), (F.celu, {}), (F.silu, {}),
                   (F.mish, {}), (F.hardswish, {}), (F.hardsigmoid, {}),
                   (F.threshold, {"threshold": 0.1, "value": 2.0}), (F.rrelu, {})]:
        x = dtorch.tensor([-1.5, 0.5, 2.0])
        expected = fn(x.clone(), **kw)
        v = x._version
        out = fn(x, inplace=True, **kw)
        assert out is x and x._version > v, fn.__name__
        np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-6)
    x = dtorch.tensor([-1.0, 1.0])
    F.relu_(x)
    F.elu_(x)
    F.leaky_relu_(x)
    assert x.tolist() == [0.0, 1.0]


def test_inplace_on_nonleaf_backpropagates():
    w = dtorch.tensor([-1.0, 2.0], requires_grad=True)
    y = w * 3
    F.relu(y, inplace=True)
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 3.0]


def test_prelu_channels_and_gradcheck():
    x = dtorch.randn(2, 3, 4, dtype=dtorch.float64, requires_grad=True)
    w = dtorch.tensor([0.1, 0.2, 0.3], dtype=dtorch.float64, requires_grad=True)
    y = F.prelu(x, w)
    ref = np.where(x.detach().numpy() > 0, x.detach().numpy(),
                   x.detach().numpy() * np.array([0.1, 0.2, 0.3])[:, None])
    np.testing.assert_allclose(y.detach().numpy(), ref)
    assert gradcheck(F.prelu, (x, w))
    with pytest.raises(RuntimeError, match="channel size = 3"):
        F.prelu(x, dtorch.ones(2))
    m = nn.PReLU(3, init=0.5)
    assert m.weight.tolist() == [0.5, 0.5, 0.5] and repr(m) == "PReLU(num_parameters=3)"


def test_rrelu_train_and_eval():
    x = -dtorch.ones(1000)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    assert ((y >= -0.3) & (y <= -0.1)).all() and len(np.unique(y.numpy())) > 100
    np.testing.assert_allclose(F.rrelu(x, 0.1, 0.3, training=False).numpy(), -0.2, rtol=1e-6)
    m = nn.RReLU(0.1, 0.3)
    assert (m(x) != -0.2).any()
    m.eval()
    np.testing.assert_allclose(m(x).numpy(), -0.2, rtol=1e-6)
    xs = dtorch.tensor([-1.0, 2.0], dtype=dtorch.float64, requires_grad=True)
    assert gradcheck(lambda t: F.rrelu(t, 0.1, 0.3, training=False), (xs,))


def test_glu():
    x = dtorch.randn(2, 6, dtype=dtorch.float64, requires_grad=True)
    a, b = x.detach().numpy()[:, :3], x.detach().numpy()[:, 3:]
    np.testing.assert_allclose(F.glu(x).detach().numpy(), a / (1 + np.exp(-b)))
    assert gradcheck(lambda t: F.glu(t, 1), (x,))
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 0 "
                                           "is size 3"):
        F.glu(dtorch.zeros(3, 2), 0)
    assert nn.GLU(0)(dtorch.zeros(4, 1)).shape == (2, 1)


def test_gumbel_softmax():
    dtorch.manual_seed(0)
    logits = dtorch.randn(5, 4, requires_grad=True)
    y = F.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(y.sum(1).detach().numpy(), 1.0, rtol=1e-5)
    h = F.gumbel_softmax(logits, hard=True)
    assert sorted(h.sum(1).tolist()) == [1.0] * 5
    assert set(np.unique(h.detach().numpy())) <= {0.0, 1.0}
    (h * dtorch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


MODULE_REPRS = [
    (lambda: nn.ReLU(), "ReLU()"), (lambda: nn.ReLU(True), "ReLU(inplace=True)"),
    (lambda: nn.ReLU6(True), "ReLU6(inplace=True)"),
    (lambda: nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (lambda: nn.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda: nn.PReLU(), "PReLU(num_parameters=1)"),
    (lambda: nn.RReLU(), "RReLU(lower=0.125, upper=0.3333333333333333)"),
    (lambda: nn.RReLU(0.1, 0.3, True), "RReLU(lower=0.1, upper=0.3, inplace=True)"),
    (lambda: nn.ELU(), "ELU(alpha=1.0)"),
    (lambda: nn.ELU(0.5, True), "ELU(alpha=0.5, inplace=True)"),
    (lambda: nn.SELU(), "SELU()"), (lambda: nn.SELU(True), "SELU(inplace=True)"),
    (lambda: nn.CELU(2.0, True), "CELU(alpha=2.0, inplace=True)"),
    (lambda: nn.GELU(), "GELU(approximate='none')"),
    (lambda: nn.GELU("tanh"), "GELU(approximate='tanh')"),
    (lambda: nn.SiLU(True), "SiLU(inplace=True)"), (lambda: nn.Mish(), "Mish()"),
    (lambda: nn.Sigmoid(), "Sigmoid()"), (lambda: nn.LogSigmoid(), "LogSigmoid()"),
    (lambda: nn.Tanh(), "Tanh()"), (lambda: nn.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (lambda: nn.Hardtanh(-2, 2, True), "Hardtanh(min_val=-2, max_val=2, inplace=True)"),
    (lambda: nn.Hardsigmoid(True), "Hardsigmoid()"), (lambda: nn.Hardswish(True), "Hardswish()"),
    (lambda: nn.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (lambda: nn.Softplus(2, 10), "Softplus(beta=2, threshold=10)"),
    (lambda: nn.Softsign(), "Softsign()"), (lambda: nn.Softshrink(), "Softshrink(0.5)"),
    (lambda: nn.Hardshrink(0.3), "Hardshrink(0.3)"), (lambda: nn.Tanhshrink(), "Tanhshrink()"),
    (lambda: nn.Threshold(0.1, 20), "Threshold(threshold=0.1, value=20)"),
    (lambda: nn.Threshold(0.1, 20.0, True), "Threshold(threshold=0.1, value=20.0, inplace=True)"),
    (lambda: nn.GLU(), "GLU(dim=-1)"), (lambda: nn.Softmax(), "Softmax(dim=None)"),
    (lambda: nn.Softmax(dim=1), "Softmax(dim=1)"), (lambda: nn.Softmin(1), "Softmin(dim=1)"),
    (lambda: nn.LogSoftmax(1), "LogSoftmax(dim=1)"), (lambda: nn.Softmax2d(), "Softmax2d()"),
]


@pytest.mark.parametrize("make,text", MODULE_REPRS, ids=[t for _, t in MODULE_REPRS])
def test_module_repr(make, text):
    assert repr(make()) == text


@pytest.mark.parametrize("name,kw,expected", ACT_CASES, ids=_ids(ACT_CASES))
def test_modules_call_functional(name, kw, expected):
    cls = {"relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "elu": "ELU",
           "selu": "SELU", "celu": "CELU", "gelu": "GELU", "silu": "SiLU", "mish": "Mish",
           "sigmoid": "Sigmoid", "logsigmoid": "LogSigmoid", "tanh": "Tanh",
           "hardtanh": "Hardtanh", "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish",
           "softplus": "Softplus", "softsign": "Softsign", "softshrink": "Softshrink",
           "hardshrink": "Hardshrink", "tanhshrink": "Tanhshrink", "threshold": "Threshold",
           "rrelu": "RReLU"}[name]
    m = getattr(nn, cls)(**kw)
    m.eval()
    y = m(dtorch.tensor(ACT_X, dtype=dtorch.float64))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-7)


def test_softmax_modules_and_softmax2d():
    x = dtorch.randn(2, 3, 4, 5, dtype=dtorch.float64)
    np.testing.assert_allclose(nn.Softmax2d()(x).sum(1).numpy(), np.ones((2, 4, 5)))
    np.testing.assert_allclose(nn.Softmax2d()(x[0]).numpy(), F.softmax(x[0], 0).numpy())
    with pytest.raises(ValueError, match="expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(x[0, 0])
    np.testing.assert_allclose(nn.LogSoftmax(dim=-1)(x).exp().sum(-1).numpy(), 1.0)
    np.testing.assert_allclose(nn.Softmin(dim=2)(x).numpy(), F.softmax(-x, 2).numpy())


def test_hardtanh_validation_and_math():
    with pytest.raises(ValueError):
        F.hardtanh(dtorch.zeros(2), 1.0, -1.0)
    assert F.softshrink(dtorch.tensor([0.2, -2.0]), 0.5).tolist() == [0.0, -1.5]
    assert math.isclose(F.selu(dtorch.tensor([1.0])).item(), 1.0507009873554805, rel_tol=1e-6)
