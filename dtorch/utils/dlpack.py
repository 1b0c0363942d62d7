"""DLPack interchange: share tensors with NumPy, CuPy, PyTorch, JAX... without copying.

``from_dlpack(x)`` accepts any object with ``__dlpack__`` / ``__dlpack_device__`` (the array-API
protocol) or a raw DLPack capsule (``to_dlpack`` output of any library); a CPU result is a NumPy
array, a CUDA result a CuPy array, wrapped as a dtorch tensor that shares the producer's memory.
``to_dlpack(t)`` gives a legacy capsule (consumable once). Importing this module installs
``Tensor.__dlpack__`` and ``Tensor.__dlpack_device__``, so ``numpy.from_dlpack(t)`` and
``torch.from_dlpack(t)`` work on dtorch tensors.
"""

import ctypes

import numpy as np

from .. import _backend
from .._tensor import Tensor

__all__ = ["from_dlpack", "to_dlpack"]

# DLDeviceType values (dlpack.h)
_CPU, _CUDA, _CUDA_HOST, _CUDA_MANAGED = 1, 2, 3, 13

_capsule_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_valid.restype = ctypes.c_int
_capsule_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _tensor_dlpack(self, stream=None, *, max_version=None, dl_device=None, copy=None):
    """``Tensor.__dlpack__``: export the tensor's array as a DLPack capsule (no copy)."""
    if self.requires_grad:
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
    kwargs = {}
    if stream is not None:
        kwargs["stream"] = stream
    if max_version is not None:
        kwargs["max_version"] = max_version
    if dl_device is not None:
        kwargs["dl_device"] = dl_device
    if copy is not None:
        kwargs["copy"] = copy
    return self._data.__dlpack__(**kwargs)


def _tensor_dlpack_device(self):
    """``Tensor.__dlpack_device__``: ``(device_type, device_id)`` as DLPack numbers them."""
    kind, index = self._data.__dlpack_device__()
    return (int(kind), int(index))


Tensor.__dlpack__ = _tensor_dlpack
Tensor.__dlpack_device__ = _tensor_dlpack_device


def to_dlpack(tensor):
    """A DLPack capsule sharing ``tensor``'s memory (consume it once, e.g. with
    ``from_dlpack``)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dlpack expects a dtorch Tensor, got {type(tensor).__name__}")
    return _tensor_dlpack(tensor)


class _Capsule:
    """Presents a bare capsule through the ``__dlpack__`` protocol NumPy/CuPy consume."""

    def __init__(self, capsule, device):
        self._capsule, self._device = capsule, device

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        return self._capsule

    def __dlpack_device__(self):
        return self._device


def _capsule_device(capsule):
    if _capsule_valid(capsule, b"dltensor"):
        ptr = _capsule_pointer(capsule, b"dltensor")
        offset = 8  # DLManagedTensor -> DLTensor.device, after the data pointer
    elif _capsule_valid(capsule, b"dltensor_versioned"):
        ptr = _capsule_pointer(capsule, b"dltensor_versioned")
        offset = 40  # version(8) + manager_ctx(8) + deleter(8) + flags(8), then data(8)
    elif _capsule_valid(capsule, b"used_dltensor") or \
            _capsule_valid(capsule, b"used_dltensor_versioned"):
        raise RuntimeError("from_dlpack received a DLPack capsule that was already consumed; "
                           "a capsule can be used only once")
    else:
        raise TypeError("from_dlpack expects an object with __dlpack__ or a DLPack capsule, got "
                        f"{type(capsule).__name__}")
    dev = (ctypes.c_int32 * 2).from_address(ptr + offset)
    return (int(dev[0]), int(dev[1]))


def from_dlpack(ext_tensor):
    """A dtorch tensor sharing memory with ``ext_tensor`` (an object with ``__dlpack__``, e.g. a
    NumPy/CuPy array or a PyTorch tensor, or a DLPack capsule).

    Example:
        >>> a = numpy.arange(4.0)
        >>> t = dtorch.from_dlpack(a)
        >>> t[0] = 7.0          # a[0] is now 7.0 too
    """
    if isinstance(ext_tensor, Tensor):
        return ext_tensor
    if hasattr(ext_tensor, "__dlpack__"):
        device = tuple(int(v) for v in ext_tensor.__dlpack_device__())
        src = ext_tensor
    else:
        device = _capsule_device(ext_tensor)
        src = _Capsule(ext_tensor, device)
    kind = device[0]
    if kind in (_CPU, _CUDA_HOST):
        arr = np.from_dlpack(src)
    elif kind in (_CUDA, _CUDA_MANAGED):
        cp = _backend.cupy_module()
        with cp.cuda.Device(device[1]):
            arr = cp.from_dlpack(src)
    else:
        raise RuntimeError(f"from_dlpack: unsupported DLPack device type {kind} (dtorch handles "
                           "CPU and CUDA memory)")
    from .._dtype import from_numpy_dtype

    from_numpy_dtype(arr.dtype)
    return Tensor._wrap(arr)
