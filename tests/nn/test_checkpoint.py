"""Activation checkpointing: same gradients as without it (dropout included, via the replayed
random state), both variants, sequential helper, and activations actually dropped."""

import gc
import warnings
import weakref

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
from dtorch.utils.checkpoint import checkpoint, checkpoint_sequential


def _net():
    dtorch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 3)).double()


def _reference(net, x):
    dtorch.manual_seed(1)
    net.zero_grad()
    xi = x.clone().requires_grad_()
    net(xi).pow(2).sum().backward()
    return [p.grad.numpy().copy() for p in net.parameters()], xi.grad.numpy().copy()


@pytest.mark.parametrize("use_reentrant,input_grad", [(True, True), (False, True),
                                                      (False, False)])
def test_checkpoint_gradients_match(use_reentrant, input_grad):
    net = _net()
    x = dtorch.randn(4, 5, dtype=dtorch.float64)
    ref_p, ref_x = _reference(net, x)
    dtorch.manual_seed(1)
    net.zero_grad()
    xi = x.clone().requires_grad_(input_grad)
    y = checkpoint(net, xi, use_reentrant=use_reentrant)
    y.pow(2).sum().backward()
    for a, b in zip(ref_p, [p.grad.numpy() for p in net.parameters()]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    if input_grad:
        np.testing.assert_allclose(xi.grad.numpy(), ref_x, rtol=1e-12)


def test_checkpoint_advances_rng_like_plain_forward():
    net = _net()
    x = dtorch.randn(4, 5, dtype=dtorch.float64, requires_grad=True)
    dtorch.manual_seed(7)
    net(x)
    after_plain = dtorch.rand(1).item()
    dtorch.manual_seed(7)
    checkpoint(net, x, use_reentrant=False)
    assert dtorch.rand(1).item() == after_plain


def test_reentrant_default_warns_and_no_grad_passthrough():
    net = _net()
    x = dtorch.randn(2, 5, dtype=dtorch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed"):
        checkpoint(net, x)
    with dtorch.no_grad():
        assert checkpoint(net, x, use_reentrant=False).grad_fn is None
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        checkpoint(net, x.detach(), use_reentrant=True)
    assert any("None of the inputs have requires_grad=True" in str(w.message) for w in rec)


def test_checkpoint_sequential_and_kwargs():
    net = _net()
    x = dtorch.randn(4, 5, dtype=dtorch.float64)
    ref_p, _ = _reference(net, x)
    dtorch.manual_seed(1)
    net.zero_grad()
    checkpoint_sequential(net, 2, x.clone().requires_grad_(),
                          use_reentrant=False).pow(2).sum().backward()
    for a, b in zip(ref_p, [p.grad.numpy() for p in net.parameters()]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    out = checkpoint(lambda a, scale: a * scale, x.clone().requires_grad_(), scale=3.0,
                     use_reentrant=False)
    np.testing.assert_allclose(out.detach().numpy(), 3 * x.numpy())


def test_segment_activations_are_released():
    """The intermediate result inside the segment is not kept alive by the graph."""
    kept = []

    def seg(a):
        h = a * 2
        kept.append(weakref.ref(h))
        return h.exp()

    x = dtorch.randn(3, requires_grad=True)
    y = checkpoint(seg, x, use_reentrant=False)
    gc.collect()
    assert kept[0]() is None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2 * x.detach().numpy()), rtol=1e-6)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_recomputation_replays_the_autocast_region(use_reentrant):
    """Under autocast the segment ran in float16; its recomputation during backward (outside
    the region) must run in float16 too, giving exactly the gradients of the plain run."""
    dtorch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    x = dtorch.randn(8, 6, requires_grad=True)  # the reentrant variant needs a grad input

    def grads(use_checkpoint):
        net.zero_grad()
        x.grad = None
        with dtorch.autocast("cpu", dtype=dtorch.float16):
            y = checkpoint(net, x, use_reentrant=use_reentrant) if use_checkpoint else net(x)
            assert y.dtype == dtorch.float16
            loss = y.float().pow(2).sum()
        loss.backward()
        return [p.grad.numpy().copy() for p in net.parameters()] + [x.grad.numpy().copy()]

    for plain, ckpt in zip(grads(False), grads(True)):
        np.testing.assert_array_equal(ckpt, plain)
