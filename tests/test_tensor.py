"""Tensor construction, attributes, conversion, views and in-place semantics."""

import copy
import pickle

import numpy as np
import pytest

import dtorch as torch


def test_tensor_infers_pytorch_dtypes():
    assert torch.tensor([1.0, 2.0]).dtype == torch.float32
    assert torch.tensor([1, 2]).dtype == torch.int64
    assert torch.tensor([True]).dtype == torch.bool
    assert torch.tensor(np.zeros(2)).dtype == torch.float64
    assert torch.tensor(np.zeros(2, dtype=np.int32)).dtype == torch.int32
    assert torch.tensor(3.5).shape == () and torch.tensor(3.5).item() == 3.5
    assert torch.tensor([[1, 2]], dtype=torch.float64).dtype == torch.float64
    assert torch.tensor([torch.tensor(1.0), torch.tensor(2.0)]).tolist() == [1.0, 2.0]


def test_set_default_dtype_changes_float_results():
    try:
        torch.set_default_dtype(torch.float64)
        assert torch.tensor([1.5]).dtype == torch.float64
        assert torch.zeros(2).dtype == torch.float64
        assert (torch.arange(3) * 0.5).dtype == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(TypeError):
        torch.set_default_dtype(torch.int64)


def test_factories():
    assert torch.zeros(2, 3).shape == (2, 3) and torch.zeros((2, 3)).shape == (2, 3)
    assert torch.ones(2, dtype=torch.int32).dtype == torch.int32
    assert torch.full((2,), 7).dtype == torch.int64
    assert torch.full((2,), 7.0).dtype == torch.float32
    assert torch.eye(2, 3).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert torch.arange(5).tolist() == [0, 1, 2, 3, 4] and torch.arange(5).dtype == torch.int64
    assert torch.arange(0, 1, 0.25).tolist() == [0, 0.25, 0.5, 0.75]
    assert torch.linspace(0, 1, 5).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert torch.zeros_like(torch.ones(2, dtype=torch.int32)).dtype == torch.int32
    assert torch.empty(0, 3).shape == (0, 3)
    with pytest.raises(RuntimeError, match="negative dimension"):
        torch.zeros(-1)
    x = torch.randint(0, 3, (100,))
    assert x.dtype == torch.int64 and set(x.tolist()) <= {0, 1, 2}
    assert sorted(torch.randperm(6).tolist()) == list(range(6))
    assert torch.normal(2.0, 0.0, size=(3,)).tolist() == [2.0, 2.0, 2.0]


def test_random_state_is_reproducible():
    torch.manual_seed(123)
    a = torch.randn(5)
    torch.manual_seed(123)
    assert torch.equal(a, torch.randn(5))
    state = torch.get_rng_state()
    b = torch.rand(4)
    torch.set_rng_state(state)
    assert torch.equal(b, torch.rand(4))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    assert torch.initial_seed() == 123


def test_attributes():
    x = torch.zeros(2, 3, 4)
    assert x.shape == torch.Size([2, 3, 4]) and repr(x.shape) == "dtorch.Size([2, 3, 4])"
    assert x.size(1) == 3 and x.size(-1) == 4 and x.dim() == x.ndim == 3
    assert x.numel() == 24 and len(x) == 2
    assert x.device == torch.device("cpu") and not x.is_cuda
    assert x.is_leaf and x.grad_fn is None and not x.requires_grad
    assert x.stride() == (12, 4, 1) and x.is_contiguous()
    assert not x.transpose(0, 1).is_contiguous()
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.size(3)


def test_item_tolist_bool_and_errors():
    assert torch.tensor([2.5]).item() == 2.5
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        torch.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(torch.ones(2))
    assert bool(torch.tensor([1]))
    assert int(torch.tensor(3.7)) == 3 and float(torch.tensor(2)) == 2.0
    assert [1, 2, 3][torch.tensor(1)] == 2


def test_numpy_errors_follow_pytorch():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_conversions():
    x = torch.tensor([1.7, -2.2])
    assert x.long().tolist() == [1, -2] and x.long().dtype == torch.int64
    assert x.int().dtype == torch.int32 and x.double().dtype == torch.float64
    assert x.half().dtype == torch.float16 and x.bool().tolist() == [True, True]
    assert x.to(torch.float64).dtype == torch.float64
    assert x.to("cpu") is x and x.to(torch.float32) is x
    assert x.to(torch.ones(1, dtype=torch.int32)).dtype == torch.int32
    assert x.type() == "dtorch.FloatTensor"
    assert x.type(torch.float64).dtype == torch.float64
    assert x.type("torch.LongTensor").dtype == torch.int64
    assert isinstance(x, torch.FloatTensor) and not isinstance(x, torch.LongTensor)


def test_cuda_without_gpu_raises_clearly():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert torch.cuda.device_count() == 0
    with pytest.raises(RuntimeError):
        torch.ones(2).cuda()


def test_clone_and_detach_storage():
    x = torch.ones(3)
    c = x.clone()
    c[0] = 5
    assert x[0].item() == 1
    d = x.detach()
    d[0] = 7
    assert x[0].item() == 7


def test_views_share_storage_and_version():
    base = torch.zeros(3, 4)
    row = base[1]
    row[2] = 5
    assert base[1, 2].item() == 5
    flat = base.view(12)
    flat.add_(1)
    assert base.sum().item() == 17
    t = base.t()
    t[0, 0] = 9
    assert base[0, 0].item() == 9
    assert base._version == row._version == flat._version > 0
    e = torch.ones(3, 1).expand(3, 4)
    assert e.shape == (3, 4)
    with pytest.raises(RuntimeError, match="more than one element"):
        e.add_(1)


def test_setitem_forms():
    x = torch.zeros(3, 3)
    x[:, 1] = 1
    x[x == 0] = 2
    x[0] = torch.tensor([7.0, 8.0, 9.0])
    assert x.tolist() == [[7, 8, 9], [2, 1, 2], [2, 1, 2]]
    x[[1, 2], [0, 0]] = -1
    assert x[:, 0].tolist() == [7, -1, -1]


def test_inplace_int_from_float_raises():
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.arange(3).add_(1.5)


def test_mixed_device_message_names_both(monkeypatch):
    from dtorch import _backend

    class FakeCudaArray:  # stands in for a CuPy array (no GPU here)
        dtype, shape, ndim = np.dtype(np.float32), (2,), 1

    monkeypatch.setattr(_backend, "device_index",
                        lambda a: 0 if isinstance(a, FakeCudaArray) else None)
    with pytest.raises(RuntimeError, match="two devices, cpu and cuda:0"):
        torch.ones(2) + torch.Tensor._wrap(FakeCudaArray())


def test_deepcopy_and_pickle():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = copy.deepcopy(x)
    assert y.requires_grad and torch.equal(x, y) and y._data is not x._data
    z = pickle.loads(pickle.dumps(torch.arange(4).view(2, 2)))
    assert z.tolist() == [[0, 1], [2, 3]]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)


def test_iteration_and_unbind():
    rows = list(torch.arange(6).view(3, 2))
    assert [r.tolist() for r in rows] == [[0, 1], [2, 3], [4, 5]]


def test_requires_grad_rules():
    with pytest.raises(RuntimeError, match="floating point"):
        torch.ones(2, dtype=torch.int64).requires_grad_()
    y = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad = False
    assert torch.ones(2).requires_grad_().requires_grad


def test_numpy_operands_mix_as_tensors():
    x = torch.ones(2)
    r = np.ones(2) * x
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float64
    assert (x + np.float64(2)).dtype == torch.float32  # a NumPy scalar acts as a Python scalar
    assert np.asarray(torch.arange(3)).tolist() == [0, 1, 2]


def test_device_parametrized_creation(device):
    x = torch.arange(6, device=device).view(2, 3).float()
    assert x.device.type == device
    assert (x * 2).sum().item() == 30.0
    assert x.cpu().tolist() == [[0, 1, 2], [3, 4, 5]]
