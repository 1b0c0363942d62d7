"""Convolutions: float64 gradient checks over stride/padding/dilation/groups combinations,
closed forms, shapes, padding modes and errors."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


def _t(shape, device, seed=0, grad=True):
    rng = np.random.default_rng(seed)
    return dtorch.tensor(rng.standard_normal(shape), dtype=dtorch.float64, device=device,
                         requires_grad=grad)


CONV2D_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
    dict(groups=2, stride=(1, 2)),
]


@pytest.mark.parametrize("kw", CONV2D_CASES)
def test_conv2d_gradcheck(device, kw):
    groups = kw.get("groups", 1)
    x = _t((2, 4, 6, 5), device, 1)
    w = _t((4, 4 // groups, 3, 2), device, 2)
    b = _t((4,), device, 3)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("kw", [dict(stride=3, padding=1, groups=2), dict(padding="same"),
                                dict(dilation=2)])
def test_conv1d_gradcheck(device, kw):
    x = _t((2, 4, 9), device, 1)
    w = _t((2, 4 // kw.get("groups", 1), 3), device, 2)
    assert gradcheck(lambda x, w: F.conv1d(x, w, None, **kw), (x, w))


def test_conv3d_gradcheck(device):
    x = _t((1, 2, 4, 5, 4), device, 1)
    w = _t((2, 2, 2, 3, 2), device, 2)
    b = _t((2,), device, 3)
    assert gradcheck(lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=1),
                     (x, w, b))


@pytest.mark.parametrize("kw", [dict(stride=2), dict(stride=(2, 3), padding=(1, 0),
                                                     output_padding=(1, 2), groups=2),
                                dict(stride=2, padding=1, dilation=2, output_padding=1),
                                dict(padding=1), dict(dilation=(2, 1), groups=2)])
def test_conv_transpose2d_gradcheck(device, kw):
    groups = kw.get("groups", 1)
    x = _t((2, 4, 3, 3), device, 1)
    w = _t((4, 6 // groups, 3, 2), device, 2)
    b = _t((6,), device, 3)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), (x, w, b))


def test_conv_transpose1d_gradcheck_and_shape(device):
    x = _t((2, 2, 4), device, 1)
    w = _t((2, 3, 3), device, 2)
    y = F.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1)
    assert y.shape == (2, 3, (4 - 1) * 2 - 2 + 2 + 1 + 1)
    assert gradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=2, output_padding=1), (x, w))


def test_conv2d_matches_direct_sum():
    """The im2col result equals the textbook cross-correlation sum."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    y = F.conv2d(dtorch.tensor(x), dtorch.tensor(w), dtorch.tensor(b), stride=(2, 1),
                 dilation=(1, 2)).numpy()
    oh, ow = (6 - 3) // 2 + 1, (7 - 2 - 1) // 1 + 1
    ref = np.zeros((2, 4, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, 2 * i:2 * i + 3, j:j + 3:2]
            ref[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w) + b
    np.testing.assert_allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,by_rows", [((5, 5), (1, 1), True),
                                                   ((3, 2), (1, 2), True),
                                                   ((3, 3), (2, 2), False),
                                                   ((1, 1), (1, 1), False),
                                                   ((1, 3), (1, 1), False)])
def test_both_blocking_plans_match_the_direct_sum(kernel, stride, by_rows):
    """Row blocks and sample blocks (conv.py's two plans) give the textbook sum, forward and
    both gradients, with groups and bias."""
    from dtorch.nn.functional.conv import _Plan

    assert _Plan(3, kernel, stride, (1, 1), (2, 2), 2, 3).by_rows is by_rows
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 9, 8))
    w = rng.standard_normal((6, 2) + kernel)
    b = rng.standard_normal(6)
    oh, ow = [(s - k) // t + 1 for s, k, t in zip(x.shape[2:], kernel, stride)]
    ref = np.zeros((3, 6, oh, ow))
    for g in range(2):
        xs, ws = x[:, 2 * g:2 * g + 2], w[3 * g:3 * g + 3]
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * stride[0]:i * stride[0] + kernel[0],
                           j * stride[1]:j * stride[1] + kernel[1]]
                ref[:, 3 * g:3 * g + 3, i, j] = np.einsum("nckl,ockl->no", patch, ws)
    ref += b[:, None, None]
    xt, wt, bt = (dtorch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride=stride, groups=2)
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, groups=2),
                     (xt, wt, bt))


def test_one_and_two_output_rows_per_gemm_agree():
    """64 output channels take one output row per GEMM, 16 take two (a banded weight; with
    an odd number of rows the last block is padded): the convolution by four 16-channel
    slices of the weight equals the 64-channel one, forward and backward."""
    from dtorch.nn.functional.conv import _Plan

    assert _Plan(2, (3, 3), (1, 1), (1, 1), (5, 5), 1, 64).per_block == 1
    assert _Plan(2, (3, 3), (1, 1), (1, 1), (5, 5), 1, 16).per_block == 2
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((64, 3, 3, 2))
    r = dtorch.tensor(rng.standard_normal((2, 64, 5, 4)))
    grads = []
    for parts in (1, 4):
        xt, wt = dtorch.tensor(x, requires_grad=True), dtorch.tensor(w, requires_grad=True)
        y = dtorch.cat([F.conv2d(xt, wc, dilation=(1, 2)) for wc in wt.chunk(parts)], 1)
        (y * r).sum().backward()
        grads.append((y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    for one, four in zip(*grads):
        np.testing.assert_allclose(one, four, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [12, 10])
def test_row_buffer_drops_unread_rows_and_pads_missing_ones(rows):
    """Stride 2 with a 5-row kernel: with 12 input rows the last is read by no window (the
    buffer drops it, its gradient is 0); with 10 the padded last block reads past the end."""
    from dtorch.nn.functional.conv import _Plan

    out_rows = (rows - 5) // 2 + 1
    plan = _Plan(1, (5, 3), (2, 1), (1, 1), (out_rows, 2), 1, 2)
    assert plan.by_rows and (plan.extent < rows if rows == 12 else plan.extent > rows)
    x = _t((1, 2, rows, 4), "cpu", 7)
    w = _t((2, 2, 5, 3), "cpu", 8)
    assert gradcheck(lambda x, w: F.conv2d(x, w, stride=(2, 1)), (x, w))
    if rows == 12:
        F.conv2d(x, w, stride=(2, 1)).sum().backward()
        assert (x.grad.numpy()[:, :, -1] == 0).all()


def test_conv_transpose_is_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for the same weight."""
    rng = np.random.default_rng(1)
    x = dtorch.tensor(rng.standard_normal((2, 4, 7, 6)))
    w = dtorch.tensor(rng.standard_normal((6, 2, 3, 3)))
    kw = dict(stride=2, padding=1, groups=2)
    y = F.conv2d(x, w, **kw)
    r = dtorch.tensor(rng.standard_normal(tuple(y.shape)))
    back = F.conv_transpose2d(r, w, output_padding=(0, 1), **kw)
    assert back.shape == x.shape
    np.testing.assert_allclose((y * r).sum().item(), (x * back).sum().item(), rtol=1e-10)


def test_conv_output_is_contiguous_and_viewable():
    y = nn.Conv2d(1, 6, 5)(dtorch.randn(2, 1, 32, 32))
    assert y.shape == (2, 6, 28, 28) and y.is_contiguous()
    assert y.view(2, -1).shape == (2, 6 * 28 * 28)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_modes(mode):
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode).double()
    x = _t((1, 2, 5, 4), "cpu", 4)
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), conv.weight, conv.bias)
    np.testing.assert_allclose(conv(x).detach().numpy(), ref.detach().numpy())
    assert f"padding_mode={mode}" in repr(conv)
    assert gradcheck(lambda x: conv(x), (x,))


def test_conv_same_even_kernel_pads_right():
    x = dtorch.ones(1, 1, 4)
    w = dtorch.ones(1, 1, 2)
    np.testing.assert_allclose(F.conv1d(x, w, padding="same").numpy(), [[[2, 2, 2, 1]]])


def test_unbatched_input_and_module_defaults():
    torch_like = nn.Conv2d(3, 8, 3, stride=2, bias=False)
    assert repr(torch_like) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), bias=False)"
    assert torch_like(dtorch.randn(3, 9, 9)).shape == (8, 4, 4)
    c = nn.Conv1d(4, 6, 3, groups=2, dilation=2, padding=1)
    assert repr(c) == "Conv1d(4, 6, kernel_size=(3,), stride=(1,), padding=(1,), " \
                      "dilation=(2,), groups=2)"
    assert c.weight.shape == (6, 2, 3)
    ct = nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1, groups=2)
    assert ct.weight.shape == (4, 3, 3, 3)
    assert ct(dtorch.randn(1, 4, 5, 5)).shape == (1, 6, 12, 12)
    assert ct(dtorch.randn(1, 4, 5, 5), output_size=(11, 11)).shape == (1, 6, 11, 11)
    assert "output_padding=(1, 1)" in repr(ct)


def test_default_init_bounds():
    dtorch.manual_seed(0)
    conv = nn.Conv2d(6, 16, 5)
    bound = 1 / np.sqrt(6 * 25)  # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), ..)
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound


def test_conv_errors():
    w = dtorch.randn(6, 1, 5, 5)
    with pytest.raises(RuntimeError, match=r"Given groups=1, weight of size \[6, 1, 5, 5\], "
                                           r"expected input\[1, 3, 32, 32\] to have 1 channels"):
        F.conv2d(dtorch.randn(1, 3, 32, 32), w)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        F.conv2d(dtorch.randn(1, 1, 3, 3), w)
    with pytest.raises(ValueError, match="strided"):
        F.conv2d(dtorch.randn(1, 1, 8, 8), w, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(RuntimeError, match="Input type"):
        F.conv2d(dtorch.randn(1, 1, 8, 8, dtype=dtorch.float64), w)
