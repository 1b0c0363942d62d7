"""nn.init: gains, fan computation, distribution bounds and moments, structured inits."""

import math

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
from dtorch.nn import init


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 1e-4)))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")


def test_uniform_normal_constant_keep_identity():
    p = nn.Parameter(dtorch.empty(300, 200))
    data = p._data
    assert init.uniform_(p, -2, 3) is p and p._data is data
    v = p.detach().numpy()
    assert v.min() >= -2 and v.max() < 3 and abs(v.mean() - 0.5) < 0.05
    init.normal_(p, 1.0, 0.5)
    v = p.detach().numpy()
    assert abs(v.mean() - 1) < 0.01 and abs(v.std() - 0.5) < 0.01
    assert not p.grad_fn and p.requires_grad
    init.constant_(p, 0.25)
    assert (p.detach().numpy() == 0.25).all()
    init.ones_(p)
    init.zeros_(p)
    assert not p.detach().numpy().any()


def test_xavier_and_kaiming_moments():
    t = dtorch.empty(400, 300)
    init.xavier_uniform_(t, gain=2.0)
    a = 2.0 * math.sqrt(6 / 700)
    v = t.numpy()
    assert np.abs(v).max() <= a and abs(v.std() - a / math.sqrt(3)) < 0.02 * a
    init.xavier_normal_(t)
    assert abs(t.numpy().std() - math.sqrt(2 / 700)) < 0.02 * math.sqrt(2 / 700)
    w = dtorch.empty(256, 64, 3, 3)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    std = math.sqrt(2) / math.sqrt(256 * 9)
    assert abs(w.numpy().std() - std) < 0.02 * std
    init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(64 * 9)
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(dtorch.empty(3))


def test_trunc_normal_bounds():
    t = init.trunc_normal_(dtorch.empty(10000), mean=0.5, std=1.0, a=-0.5, b=1.0)
    v = t.numpy()
    assert v.min() >= -0.5 and v.max() <= 1.0 and v.std() > 0.3


def test_eye_dirac_orthogonal_sparse():
    e = init.eye_(dtorch.empty(3, 5))
    np.testing.assert_array_equal(e.numpy(), np.eye(3, 5))
    w = init.dirac_(dtorch.empty(4, 2, 3, 3), groups=2)
    x = dtorch.randn(1, 2, 5, 5)
    y = nn.functional.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y[:, 0].numpy(), x[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(y[:, 3].numpy(), x[:, 1].numpy(), rtol=1e-6)
    q = init.orthogonal_(dtorch.empty(4, 6, dtype=dtorch.float64), gain=2.0).numpy()
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(4), atol=1e-10)
    s = init.sparse_(dtorch.empty(10, 6), sparsity=0.3).numpy()
    assert ((s == 0).sum(0) >= 3).all()
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.eye_(dtorch.empty(2, 2, 2))


def test_generator_argument_reproducible():
    g1, g2 = dtorch.Generator().manual_seed(5), dtorch.Generator().manual_seed(5)
    a = init.kaiming_uniform_(dtorch.empty(3, 4), generator=g1).numpy()
    b = init.kaiming_uniform_(dtorch.empty(3, 4), generator=g2).numpy()
    np.testing.assert_array_equal(a, b)
