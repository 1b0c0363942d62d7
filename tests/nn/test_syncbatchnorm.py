"""SyncBatchNorm without a multi-rank world: construction, repr, input checks, the plain
BatchNorm path (no process group, or a world of one), the synchronised math in a world of one
(gradcheck), and convert_sync_batchnorm. The multi-rank behaviour is in tests/nn/parallel."""

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
import dtorch.nn as nn
from dtorch.autograd import gradcheck
from dtorch.nn.functional.syncbatchnorm import sync_batch_norm


def _t(shape, device="cpu", seed=0, grad=True):
    rng = np.random.default_rng(seed)
    return dtorch.tensor(rng.standard_normal(shape) * 2 + 1, dtype=dtorch.float64,
                         device=device, requires_grad=grad)


@pytest.fixture
def world_of_one():
    dist.init_process_group(backend="single")
    yield
    dist.destroy_process_group()


def test_repr_matches_pytorch():
    # Pasted from torch 2.13.
    assert repr(nn.SyncBatchNorm(16)) == ("SyncBatchNorm(16, eps=1e-05, momentum=0.1, affine=True, "
                                          "bias=True, track_running_stats=True)")
    assert repr(nn.SyncBatchNorm(4, momentum=None, affine=False, track_running_stats=False)) == (
        "SyncBatchNorm(4, eps=1e-05, momentum=None, affine=False, bias=False, "
        "track_running_stats=False)")


def test_parameters_buffers_and_factory_kwargs():
    bn = nn.SyncBatchNorm(5, dtype=dtorch.float64, bias=False)
    assert bn.weight.dtype == dtorch.float64 and bn.bias is None
    assert bn.weight.tolist() == [1.0] * 5 and bn.running_var.tolist() == [1.0] * 5
    assert list(bn.state_dict()) == ["weight", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert bn.process_group is None


@pytest.mark.parametrize("shape, match", [
    ((4,), r"expected at least 2D input \(got 1D input\)"),
    ((4, 0, 2), "SyncBatchNorm number of input channels should be non-zero"),
    ((1, 3), r"Expected more than 1 value per channel when training, got input size \[1, 3\]"),
])
def test_input_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        nn.SyncBatchNorm(3)(dtorch.zeros(shape))


def test_weight_size_mismatch_raises_in_synchronised_math(world_of_one):
    with pytest.raises(RuntimeError, match="weight should contain 3 elements not 4"):
        sync_batch_norm(_t((4, 3)), None, None, dtorch.ones(4, dtype=dtorch.float64), None,
                        0.1, 1e-5)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 2, 3, 2, 2)])
def test_any_input_of_at_least_two_dims_closed_form(shape):
    bn = nn.SyncBatchNorm(3).double()
    x = _t(shape, grad=False)
    axes = (0,) + tuple(range(2, len(shape)))
    xn = x.numpy()
    pshape = (1, 3) + (1,) * (len(shape) - 2)
    mean, var = xn.mean(axes), xn.var(axes)
    want = (xn - mean.reshape(pshape)) / np.sqrt(var.reshape(pshape) + 1e-5)
    np.testing.assert_allclose(bn(x).detach().numpy(), want, rtol=0, atol=1e-10)
    n = xn.size // 3
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var * n / (n - 1), atol=1e-12)


def _compare_with_batchnorm(device, momentum, steps=3):
    sync = nn.SyncBatchNorm(3, momentum=momentum).double().to(device)
    ref = nn.BatchNorm2d(3, momentum=momentum).double().to(device)
    for step in range(steps):
        x = _t((4, 3, 2, 5), device, seed=step, grad=False)
        xs, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        ys, yr = sync(xs), ref(xr)
        np.testing.assert_allclose(ys.detach().cpu().numpy(), yr.detach().cpu().numpy(),
                                   rtol=0, atol=1e-12)
        (ys * ys.detach()).sum().backward()
        (yr * yr.detach()).sum().backward()
        for a, b in ((xs.grad, xr.grad), (sync.weight.grad, ref.weight.grad),
                     (sync.running_mean, ref.running_mean), (sync.running_var, ref.running_var)):
            np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=0, atol=1e-12)
    assert sync.num_batches_tracked.item() == steps
    sync.eval()
    ref.eval()
    x = _t((2, 3, 2, 5), device, seed=9, grad=False)
    with dtorch.no_grad():
        np.testing.assert_allclose(sync(x).cpu().numpy(), ref(x).cpu().numpy(), rtol=0,
                                   atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_without_process_group_is_batchnorm(device, momentum):
    assert not dist.is_initialized()
    _compare_with_batchnorm(device, momentum)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_world_of_one_is_batchnorm(world_of_one, momentum):
    _compare_with_batchnorm("cpu", momentum)


def test_gradcheck_plain_path(device):
    bn = nn.SyncBatchNorm(3).double().to(device)
    with dtorch.no_grad():
        bn.weight.copy_(_t((3,), device, seed=1, grad=False))
        bn.bias.copy_(_t((3,), device, seed=2, grad=False))
    assert gradcheck(lambda x, w, b: bn(x), (_t((3, 3, 4), device), bn.weight, bn.bias))


def test_gradcheck_synchronised_math(world_of_one):
    """The fused forward/backward of the synchronised path (run directly in a world of one)."""
    x, w, b = _t((3, 3, 4)), _t((3,), seed=1), _t((3,), seed=2)
    assert gradcheck(lambda x, w, b: sync_batch_norm(x, None, None, w, b, 0.1, 1e-5),
                     (x, w, b))
    assert gradcheck(lambda x: sync_batch_norm(x, None, None, None, None, 0.1, 1e-5), (x,))


def test_synchronised_math_matches_batchnorm_running_stats(world_of_one):
    rm, rv = dtorch.zeros(3, dtype=dtorch.float64), dtorch.ones(3, dtype=dtorch.float64)
    ref = nn.BatchNorm1d(3, momentum=0.3).double()
    x = _t((5, 3, 2), grad=False)
    y = sync_batch_norm(x, rm, rv, None, None, 0.3, 1e-5)
    ref.weight = None
    ref.bias = None
    np.testing.assert_allclose(y.numpy(), ref(x).detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), ref.running_mean.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rv.numpy(), ref.running_var.numpy(), rtol=0, atol=1e-12)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, momentum=None))
        self.norm3d = nn.BatchNorm3d(2, affine=False, track_running_stats=False)
        self.inorm = nn.InstanceNorm2d(2, affine=True, track_running_stats=True)


def _nested():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, eps=1e-3, bias=False), _Block())
    with dtorch.no_grad():
        for i, t in enumerate(list(model.parameters()) + list(model.buffers())):
            if t.dtype == dtorch.float32:
                t.copy_(dtorch.arange(t.numel(), dtype=dtorch.float32).reshape(t.shape) + i)
    model[1].num_batches_tracked.fill_(7)
    model[1].weight.requires_grad_(False)
    model[2].body[1].eval()
    return model


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_structure():
    model = _nested()
    before_names = [n for n, _ in model.named_modules()]
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    group = object()
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=group)
    assert out is model
    assert [n for n, _ in out.named_modules()] == before_names
    converted = {n: type(m).__name__ for n, m in out.named_modules()
                 if isinstance(m, nn.SyncBatchNorm)}
    assert converted == {"1": "SyncBatchNorm", "2.body.1": "SyncBatchNorm",
                         "2.norm3d": "SyncBatchNorm"}
    assert type(out[2].inorm) is nn.InstanceNorm2d
    assert all(out.get_submodule(n).process_group is group for n in converted)
    assert all(p is params[n] for n, p in out.named_parameters())
    assert set(dict(out.named_parameters())) == set(params)
    assert all(b is buffers[n] for n, b in out.named_buffers())
    new_state = out.state_dict()
    assert list(new_state) == list(state)
    for k, v in state.items():
        assert dtorch.equal(new_state[k], v), k
    bn = out[1]
    assert (bn.eps, bn.momentum, bn.bias, bn.weight.requires_grad) == (1e-3, 0.1, None, False)
    assert bn.num_batches_tracked.item() == 7
    body_bn = out[2].body[1]
    assert body_bn.momentum is None and not body_bn.training and out[1].training
    bare = out[2].norm3d
    assert (bare.affine, bare.track_running_stats, bare.running_mean) == (False, False, None)
    assert "SyncBatchNorm(2, eps=0.001, momentum=0.1, affine=True, bias=False" in repr(out)


def test_convert_a_single_layer_returns_a_new_syncbatchnorm():
    bn = nn.BatchNorm1d(3).double()
    x = _t((5, 3), grad=False)
    want = bn(x)
    bn.reset_running_stats()
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(bn)
    assert type(sync) is nn.SyncBatchNorm and sync is not bn
    assert sync.weight is bn.weight and sync.running_mean is bn.running_mean
    np.testing.assert_allclose(sync(x).detach().numpy(), want.detach().numpy(), rtol=0, atol=1e-12)
    assert bn.num_batches_tracked.item() == 1  # the buffers are shared
    again = nn.SyncBatchNorm.convert_sync_batchnorm(sync)
    assert type(again) is nn.SyncBatchNorm and again.weight is sync.weight
