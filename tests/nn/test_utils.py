"""nn.utils (clip_grad_norm_, clip_grad_value_, vector conversion) and the vision functionals
(pad, interpolate, unfold/fold, pixel_shuffle, one_hot, normalize, distances)."""

import math

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck
from dtorch.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def _params_with_grads():
    ps = [nn.Parameter(dtorch.zeros(3)), nn.Parameter(dtorch.zeros(2, 2))]
    ps[0].grad = dtorch.tensor([3.0, -4.0, 0.0])
    ps[1].grad = dtorch.tensor([[1.0, 2.0], [-2.0, 0.0]])
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3])
def test_clip_grad_norm(norm_type):
    ps = _params_with_grads()
    flat = np.concatenate([p.grad.numpy().ravel() for p in ps])
    total = np.abs(flat).max() if norm_type == math.inf else \
        (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    got = clip_grad_norm_(ps, 1.0, norm_type=norm_type)
    assert got.item() == pytest.approx(total, rel=1e-6)
    clipped = np.concatenate([p.grad.numpy().ravel() for p in ps])
    np.testing.assert_allclose(clipped, flat / (total + 1e-6), rtol=1e-6)
    ps = _params_with_grads()
    clip_grad_norm_(ps, 100.0, norm_type=norm_type)  # no-op below the threshold
    np.testing.assert_array_equal(np.concatenate([p.grad.numpy().ravel() for p in ps]), flat)


def test_clip_grad_norm_nonfinite_and_value():
    ps = _params_with_grads()
    ps[0].grad[0] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    ps = _params_with_grads()
    clip_grad_value_(ps, 1.5)
    np.testing.assert_array_equal(ps[0].grad.numpy(), [1.5, -1.5, 0.0])
    assert clip_grad_norm_(nn.Parameter(dtorch.zeros(1)), 1.0).item() == 0.0


def test_parameters_vector_round_trip():
    lin = nn.Linear(3, 2)
    vec = parameters_to_vector(lin.parameters())
    assert vec.shape == (8,)
    w = lin.weight
    vector_to_parameters(dtorch.arange(8.0), lin.parameters())
    assert lin.weight is w
    np.testing.assert_array_equal(lin.weight.detach().numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(lin.bias.detach().numpy(), [6.0, 7.0])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_modes(device, mode):
    x = dtorch.tensor(np.arange(12.0).reshape(1, 1, 3, 4), device=device, requires_grad=True)
    y = F.pad(x, (2, 1, 1, 2), mode=mode)
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}[mode]
    ref = np.pad(np.arange(12.0).reshape(3, 4), ((1, 2), (2, 1)), mode=np_mode)
    np.testing.assert_array_equal(y.detach().cpu().numpy()[0, 0], ref)
    assert gradcheck(lambda x: F.pad(x, (2, 1, 1, 2), mode=mode), (x,))


def test_pad_negative_and_errors():
    x = dtorch.arange(5.0).reshape(1, 5)
    np.testing.assert_array_equal(F.pad(x, (-1, 2), value=9).numpy(), [[1, 2, 3, 4, 9, 9]])
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        F.pad(x.reshape(1, 1, 5), (5, 0), mode="reflect")


def test_interpolate_modes():
    x = dtorch.arange(4.0).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2).numpy()[0, 0],
                                  np.kron([[0, 1], [2, 3]], np.ones((2, 2))))
    y = F.interpolate(x, size=(3, 3), mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(y, [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).numpy()[0, 0]
    np.testing.assert_allclose(y[0], [0, 0.25, 0.75, 1])
    xg = dtorch.tensor(np.random.default_rng(0).standard_normal((1, 2, 3, 4)),
                       requires_grad=True)
    for mode in ["nearest", "bilinear", "bicubic", "area"]:
        assert gradcheck(lambda x, m=mode: F.interpolate(x, size=(5, 3), mode=m), (xg,))
    up = nn.Upsample(scale_factor=2, mode="nearest")
    assert repr(up) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert up(x).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)


def test_unfold_fold():
    x = dtorch.tensor(np.random.default_rng(1).standard_normal((2, 3, 5, 4)), requires_grad=True)
    cols = F.unfold(x, (2, 3), padding=1, stride=(2, 1))
    assert cols.shape == (2, 3 * 6, 3 * 4)
    xn = np.pad(x.detach().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_allclose(cols.detach().numpy()[:, :, 0], xn[:, :, 0:2, 0:3].reshape(2, -1))
    assert gradcheck(lambda x: F.unfold(x, (2, 3), padding=1, stride=(2, 1)), (x,))
    ones = F.fold(F.unfold(dtorch.ones(1, 1, 4, 4), 2), (4, 4), 2)
    np.testing.assert_array_equal(ones.numpy()[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2],
                                                       [2, 4, 4, 2], [1, 2, 2, 1]])
    c = dtorch.tensor(np.random.default_rng(2).standard_normal((1, 4, 9)), requires_grad=True)
    assert gradcheck(lambda c: F.fold(c, (4, 4), 2, stride=1), (c,))


def test_pixel_shuffle_round_trip_and_misc():
    x = dtorch.randn(2, 8, 3, 4)
    y = F.pixel_shuffle(x, 2)
    assert y.shape == (2, 2, 6, 8)
    assert y[0, 1, 1, 0].item() == x[0, 4 + 2, 0, 0].item()
    np.testing.assert_array_equal(F.pixel_unshuffle(y, 2).numpy(), x.numpy())
    oh = F.one_hot(dtorch.tensor([0, 2, 1]), 4)
    assert oh.dtype is dtorch.int64 and oh.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0],
                                                        [0, 1, 0, 0]]
    assert F.one_hot(dtorch.tensor([[1], [3]])).shape == (2, 1, 4)
    v = dtorch.tensor([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(F.normalize(v).numpy(), [[0.6, 0.8], [0, 0]])
    a, b = dtorch.tensor([[1.0, 0.0], [1.0, 1.0]]), dtorch.tensor([[0.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(F.cosine_similarity(a, b).numpy(), [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(F.pairwise_distance(a, b, eps=0).numpy(),
                               [math.sqrt(5), math.sqrt(2)], rtol=1e-6)
    xg = dtorch.tensor(np.random.default_rng(3).standard_normal((3, 4)), requires_grad=True)
    yg = dtorch.tensor(np.random.default_rng(4).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(F.cosine_similarity, (xg, yg))
    assert gradcheck(lambda x: F.normalize(x, dim=0), (xg,))
