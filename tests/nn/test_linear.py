"""Linear and Bilinear: closed forms, gradient checks, init distribution, errors."""

import math

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


def _t(shape, device="cpu", seed=0):
    rng = np.random.default_rng(seed)
    return dtorch.tensor(rng.standard_normal(shape), dtype=dtorch.float64, device=device,
                         requires_grad=True)


def test_linear_closed_form_and_gradcheck(device):
    x, w, b = _t((2, 3, 4), device), _t((5, 4), device, 1), _t((5,), device, 2)
    y = F.linear(x, w, b)
    ref = x.detach().cpu().numpy() @ w.detach().cpu().numpy().T + b.detach().cpu().numpy()
    np.testing.assert_allclose(y.detach().cpu().numpy(), ref, atol=1e-12)
    assert gradcheck(F.linear, (x, w, b))
    assert gradcheck(lambda x, w: F.linear(x, w), (x[0, 0], w))  # 1-D input, no bias
    assert y.grad_fn.name() == "AddmmBackward0"


def test_bilinear_closed_form_and_gradcheck():
    x1, x2 = _t((3, 2)), _t((3, 4), seed=1)
    w, b = _t((5, 2, 4), seed=2), _t((5,), seed=3)
    y = F.bilinear(x1, x2, w, b).detach().numpy()
    ref = np.einsum("ni,oij,nj->no", x1.detach().numpy(), w.detach().numpy(),
                    x2.detach().numpy()) + b.detach().numpy()
    np.testing.assert_allclose(y, ref, atol=1e-12)
    assert gradcheck(F.bilinear, (x1, x2, w, b))
    m = nn.Bilinear(2, 4, 5)
    assert m(dtorch.randn(3, 2), dtorch.randn(3, 4)).shape == (3, 5)
    assert np.abs(m.weight.detach().numpy()).max() <= 1 / math.sqrt(2)


def test_linear_module_init_and_repr():
    dtorch.manual_seed(0)
    lin = nn.Linear(400, 120)
    assert repr(lin) == "Linear(in_features=400, out_features=120, bias=True)"
    w = lin.weight.detach().numpy()
    bound = 1 / math.sqrt(400)
    assert np.abs(w).max() <= bound
    # U(-b, b) has variance b^2 / 3
    assert abs(w.var() - bound ** 2 / 3) < 0.05 * bound ** 2
    assert np.abs(lin.bias.detach().numpy()).max() <= bound
    assert nn.Linear(3, 2, bias=False).bias is None
    lin64 = nn.Linear(3, 2, dtype=dtorch.float64)
    assert lin64.weight.dtype is dtorch.float64


def test_linear_errors():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and "
                                           r"4x5\)"):
        F.linear(dtorch.randn(2, 3), dtorch.randn(5, 4))
    with pytest.raises(RuntimeError, match="same dtype"):
        F.linear(dtorch.randn(2, 4, dtype=dtorch.float64), dtorch.randn(5, 4))
