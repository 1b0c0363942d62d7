"""Normalization layers: closed-form statistics, running averages (momentum and cumulative),
eval mode, gradient checks, state_dict entries."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


def _t(shape, device="cpu", seed=0, grad=True):
    rng = np.random.default_rng(seed)
    return dtorch.tensor(rng.standard_normal(shape) * 2 + 1, dtype=dtorch.float64,
                         device=device, requires_grad=grad)


def test_batchnorm2d_training_statistics_and_running_average():
    bn = nn.BatchNorm2d(3).double()
    x = _t((4, 3, 5, 6), grad=False)
    xn = x.numpy()
    y = bn(x).detach().numpy()
    mean = xn.mean((0, 2, 3))
    var = xn.var((0, 2, 3))
    ref = (xn - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, ref, atol=1e-10)
    n = 4 * 5 * 6
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, atol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var * n / (n - 1),
                               atol=1e-12)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    y_eval = bn(x).detach().numpy()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    np.testing.assert_allclose(
        y_eval, (xn - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5),
        atol=1e-10)
    assert bn.num_batches_tracked.item() == 1


def test_batchnorm_cumulative_average_momentum_none():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    batches = [_t((5, 2), seed=s, grad=False) for s in range(3)]
    for b in batches:
        bn(b)
    means = [b.numpy().mean(0) for b in batches]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, 0), atol=1e-12)
    assert bn.num_batches_tracked.item() == 3


def test_batchnorm_no_tracking_and_no_affine():
    bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False).double()
    assert bn.running_mean is None and list(bn.parameters()) == []
    assert list(bn.state_dict()) == []
    x = _t((6, 3, 4), grad=False)
    bn.eval()  # still uses batch statistics
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean((0, 2)), 0, atol=1e-12)
    assert list(nn.BatchNorm2d(2).state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(device, training):
    x = _t((3, 2, 3, 2), device, 1)
    w = _t((2,), device, 2)
    b = _t((2,), device, 3)
    rm = dtorch.zeros(2, dtype=dtorch.float64, device=device)
    rv = dtorch.ones(2, dtype=dtorch.float64, device=device)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm.clone(), rv.clone(), w, b,
                                                  training=training), (x, w, b))


def test_layer_norm_closed_form_and_gradcheck(device):
    x = _t((2, 3, 4), device)
    w = _t((3, 4), device, 1)
    b = _t((3, 4), device, 2)
    y = F.layer_norm(x, (3, 4), w, b).detach().cpu().numpy()
    xn = x.detach().cpu().numpy()
    mu = xn.mean((1, 2), keepdims=True)
    sd = np.sqrt(xn.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, (xn - mu) / sd * w.detach().cpu().numpy()
                               + b.detach().cpu().numpy(), atol=1e-10)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w[0], b[0]), (x, w, b))
    ln = nn.LayerNorm(4)
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"


def test_group_and_instance_norm(device):
    x = _t((2, 4, 3, 2), device)
    w = _t((4,), device, 1)
    b = _t((4,), device, 2)
    y = F.group_norm(x, 2, w, b).detach().cpu().numpy()
    xn = x.detach().cpu().numpy().reshape(2, 2, -1)
    ref = ((xn - xn.mean(2, keepdims=True)) / np.sqrt(xn.var(2, keepdims=True) + 1e-5))
    ref = ref.reshape(2, 4, 3, 2) * w.detach().cpu().numpy()[:, None, None] + \
        b.detach().cpu().numpy()[:, None, None]
    np.testing.assert_allclose(y, ref, atol=1e-10)
    assert gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), (x, w, b))
    inorm = F.instance_norm(x).detach().cpu().numpy()
    np.testing.assert_allclose(inorm.mean((2, 3)), 0, atol=1e-12)
    assert gradcheck(lambda x: F.instance_norm(x), (x,))


def test_instance_norm_running_stats():
    m = nn.InstanceNorm1d(2, track_running_stats=True).double()
    x = _t((3, 2, 5), grad=False)
    m(x)
    xn = x.numpy()
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * xn.mean(2).mean(0), atol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(),
                               0.9 + 0.1 * xn.var(2, ddof=1).mean(0), atol=1e-12)
    assert m(x[0]).shape == (2, 5)  # unbatched


def test_local_response_norm():
    x = _t((2, 5, 3, 3), grad=True)
    y = F.local_response_norm(x, 3, alpha=1e-2, beta=0.75, k=2.0).detach().numpy()
    xn = x.detach().numpy()
    sq = np.pad(xn ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    div = np.stack([sq[:, c:c + 3].sum(1) for c in range(5)], 1) / 3
    np.testing.assert_allclose(y, xn / (2.0 + 1e-2 * div) ** 0.75, atol=1e-12)
    assert gradcheck(lambda x: F.local_response_norm(x, 3, alpha=1e-2), (x,))


def test_norm_errors():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(dtorch.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(dtorch.randn(1, 3))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(dtorch.randn(2, 3), (4,))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(3, 4)
