"""DLPack interchange with NumPy (zero-copy both ways), raw capsules and the protocol methods."""

import numpy as np
import pytest

import dtorch
from dtorch.utils.dlpack import from_dlpack, to_dlpack


def test_from_numpy_array_shares_memory():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = dtorch.from_dlpack(a)
    assert t.shape == (2, 3) and t.dtype == dtorch.float32
    t[0, 0] = 42.0
    assert a[0, 0] == 42.0


def test_numpy_consumes_tensor_without_copy():
    t = dtorch.arange(5, dtype=dtorch.int64)
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t.numpy())
    assert t.__dlpack_device__() == (1, 0)


def test_capsule_roundtrip_and_single_use():
    t = dtorch.tensor([[1.0, 2.0], [3.0, 4.0]]).t()  # non-contiguous strides survive
    cap = to_dlpack(t)
    back = from_dlpack(cap)
    assert back.tolist() == t.tolist() and np.shares_memory(back.numpy(), t.numpy())
    with pytest.raises(RuntimeError, match="already consumed"):
        from_dlpack(cap)
    with pytest.raises(TypeError, match="__dlpack__ or a DLPack capsule"):
        from_dlpack(object())


def test_requires_grad_tensor_cannot_be_exported():
    t = dtorch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="require gradient"):
        np.from_dlpack(t)
    assert np.from_dlpack(t.detach()).tolist() == [1.0, 1.0]


@pytest.mark.cuda
@pytest.mark.skipif(not dtorch.cuda.is_available(), reason="needs CuPy and a GPU")
def test_cuda_exchange_with_cupy():
    import cupy

    c = cupy.arange(4, dtype=cupy.float32)
    t = dtorch.from_dlpack(c)
    assert t.is_cuda
    t[1] = 9.0
    assert float(c[1]) == 9.0
    back = cupy.from_dlpack(t)
    assert back.data.ptr == c.data.ptr
