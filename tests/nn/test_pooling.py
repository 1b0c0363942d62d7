"""Pooling: gradient checks, closed forms, ceil_mode / padding / indices, adaptive and unpool."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


def _t(shape, device="cpu", seed=0, grad=True):
    rng = np.random.default_rng(seed)
    # NOTE: a permutation avoids ties, where max pooling is not differentiable.
    data = rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0
    return dtorch.tensor(data, dtype=dtorch.float64, device=device, requires_grad=grad)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                          ceil_mode=True),
                                dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2))])
def test_max_pool2d_gradcheck(device, kw):
    x = _t((2, 2, 7, 6), device)
    assert gradcheck(lambda x: F.max_pool2d(x, **kw), (x,))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                          ceil_mode=True,
                                                          count_include_pad=False),
                                dict(kernel_size=(3, 2), stride=(2, 3), padding=1,
                                     divisor_override=3)])
def test_avg_pool2d_gradcheck(device, kw):
    x = _t((2, 2, 7, 6), device)
    assert gradcheck(lambda x: F.avg_pool2d(x, **kw), (x,))


def test_pool_1d_3d_gradcheck():
    x = _t((2, 2, 9))
    assert gradcheck(lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), (x,))
    assert gradcheck(lambda x: F.avg_pool1d(x, 4, 3, 2, ceil_mode=True), (x,))
    x3 = _t((1, 2, 4, 5, 4))
    assert gradcheck(lambda x: F.max_pool3d(x, 2, ceil_mode=True), (x3,))
    assert gradcheck(lambda x: F.avg_pool3d(x, 3, 2, 1), (x3,))


def test_max_pool_values_and_indices():
    x = dtorch.arange(16.0).reshape(1, 1, 4, 4)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(idx.numpy(), [[[[5, 7], [13, 15]]]])
    assert idx.dtype is dtorch.int64
    # padding with -inf never wins; ceil_mode adds a last partial window
    out = F.max_pool2d(-x, 3, stride=2, padding=1, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out.numpy(), [[[[0, -1, -3], [-4, -5, -7],
                                                  [-12, -13, -15]]]])


def test_max_pool_nan_propagates_and_first_max_wins():
    x = dtorch.tensor([[[1.0, float("nan"), 0.0, 2.0]]])
    assert np.isnan(F.max_pool1d(x, 2).numpy()[0, 0, 0])
    x = dtorch.tensor([[[3.0, 3.0]]], requires_grad=True)
    out, idx = F.max_pool1d(x, 2, return_indices=True)
    out.sum().backward()
    assert idx.item() == 0 and x.grad.tolist() == [[[1.0, 0.0]]]


def test_max_pool_nan_index_is_the_last_nan():
    # PyTorch's kernel takes a value when it is greater or NaN: the last NaN of a window wins
    nan = float("nan")
    x = dtorch.tensor([[[nan, 1.0, nan, 0.0, 2.0, nan, 3.0, 4.0]]])
    out, idx = F.max_pool1d(x, 4, return_indices=True)
    assert np.isnan(out.numpy()).all() and idx.tolist() == [[[2, 5]]]
    x = dtorch.tensor([[[1.0, nan, 5.0, 0.0]]])
    assert F.max_pool1d(x, 4, return_indices=True)[1].item() == 1


def test_max_pool_ties_in_overlapping_windows_and_integers():
    x = dtorch.tensor([[[2.0, 2.0, 1.0, 2.0]]], requires_grad=True)
    out, idx = F.max_pool1d(x, 2, stride=1, return_indices=True)
    assert idx.tolist() == [[[0, 1, 3]]]
    out.sum().backward()
    assert x.grad.tolist() == [[[1.0, 1.0, 0.0, 1.0]]]
    xi = dtorch.tensor([[[[3, 1], [7, 7]]]])
    out, idx = F.max_pool2d(xi, 2, return_indices=True)
    assert out.item() == 7 and idx.item() == 2 and out.dtype is dtorch.int64


def test_max_pool_non_finite_gradient_reaches_only_the_argmax():
    x = dtorch.tensor([[[1.0, 3.0, 2.0, 0.0]]], requires_grad=True)
    F.max_pool1d(x, 2).backward(dtorch.tensor([[[float("inf"), float("nan")]]]))
    g = x.grad.numpy()[0, 0]
    assert g[0] == 0 and g[1] == np.inf and np.isnan(g[2]) and g[3] == 0


def test_avg_pool_divisors():
    x = dtorch.ones(1, 1, 3, 3)
    inc = F.avg_pool2d(x, 2, stride=2, padding=1)
    exc = F.avg_pool2d(x, 2, stride=2, padding=1, count_include_pad=False)
    np.testing.assert_allclose(inc.numpy(), [[[[0.25, 0.5], [0.5, 1.0]]]])
    np.testing.assert_allclose(exc.numpy(), np.ones((1, 1, 2, 2)))
    ceil = F.avg_pool2d(x, 2, stride=2, ceil_mode=True)  # last windows clipped at the border
    np.testing.assert_allclose(ceil.numpy(), np.ones((1, 1, 2, 2)))


def test_adaptive_pools():
    x = _t((2, 3, 7, 9))
    y = F.adaptive_avg_pool2d(x, (3, 4))
    # window [floor(i*7/3), ceil((i+1)*7/3)) x [floor(j*9/4), ceil((j+1)*9/4))
    xn = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy()[:, :, 1, 2], xn[:, :, 2:5, 4:7].mean((2, 3)))
    m, idx = F.adaptive_max_pool2d(x, (3, 4), return_indices=True)
    np.testing.assert_allclose(m.detach().numpy()[:, :, 1, 2], xn[:, :, 2:5, 4:7].max((2, 3)))
    flat = xn.reshape(2, 3, -1)
    np.testing.assert_allclose(np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2),
                               m.detach().numpy().reshape(2, 3, -1))
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 4)), (x,))
    assert gradcheck(lambda x: F.adaptive_max_pool2d(x, (3, 4)), (x,))
    x1 = _t((2, 2, 10))
    assert gradcheck(lambda x: F.adaptive_max_pool1d(x, 4), (x1,))
    assert gradcheck(lambda x: F.adaptive_avg_pool1d(x, 3), (x1,))
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (2, 3, 7, 2)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x).detach().numpy()[..., 0, 0],
                               xn.mean((2, 3)))


def test_max_unpool_roundtrip():
    x = _t((2, 2, 6, 5), grad=False)
    pooled, idx = nn.MaxPool2d(2, return_indices=True)(x)
    up = nn.MaxUnpool2d(2)(pooled, idx, output_size=x.shape)
    assert up.shape == x.shape
    un = up.numpy()
    assert (un != 0).sum() == pooled.numel()
    np.testing.assert_allclose(np.sort(un[un != 0]), np.sort(pooled.numpy().ravel()))
    assert F.max_pool2d(up, 2).numpy().tolist() == pooled.numpy().tolist()


def test_pool_module_repr_and_errors():
    assert repr(nn.MaxPool2d(2, 2)) == \
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.AvgPool2d(3)) == "AvgPool2d(kernel_size=3, stride=3, padding=0)"
    assert repr(nn.MaxUnpool2d(2)) == \
        "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(dtorch.randn(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.max_pool2d(dtorch.randn(1, 1, 1, 1), 2)
