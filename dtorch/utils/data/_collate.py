"""``default_collate`` (a list of samples -> a batch) and ``default_convert`` (NumPy -> tensors),
with PyTorch's rules: tensors and arrays are stacked along a new first dimension, Python floats
become float64 tensors and ints int64 tensors, strings stay lists, and dicts, tuples and
namedtuples are collated field by field."""

import collections.abc
import copy

import numpy as np

from ... import _backend
from ..._tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _stack(arrays):
    xp = _backend.get_array_module(arrays[0])
    first = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != first:
            raise RuntimeError("stack expects each tensor to be equal size, but got "
                               f"{list(first)} at entry 0 and {list(a.shape)} at entry {i}")
    return xp.stack(arrays)


def _is_namedtuple(obj):
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def default_collate(batch):
    """Merge a list of samples into a batch.

    ========================  =============================================
    sample element            batch
    ========================  =============================================
    Tensor                    Tensor with a new first dimension (stacked)
    NumPy array / scalar      Tensor (stacked)
    float                     float64 Tensor
    int (bool)                int64 (bool) Tensor
    str / bytes               list, unchanged
    dict / Mapping            same type, collated per key
    namedtuple                same type, collated per field
    tuple / list / Sequence   list (tuple) or same type (list), per position
    ========================  =============================================

    Example:
        >>> default_collate([(dtorch.zeros(2), 0), (dtorch.ones(2), 1)])
        [tensor([[0., 0.], [1., 1.]]), tensor([0, 1])]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(_stack([b._data for b in batch]))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUO":
            raise TypeError(_ERR.format(elem.dtype))
        return _from_numpy(_stack([np.asarray(b) for b in batch]))
    if isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_)):
        return _from_numpy(np.asarray(batch))
    if isinstance(elem, bool):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, float):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, int):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(out)
            return clone
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return transposed
        try:
            return type(elem)(transposed)
        except TypeError:
            return transposed
    raise TypeError(_ERR.format(type(elem)))


def _from_numpy(arr):
    from ..._dtype import from_numpy_dtype

    from_numpy_dtype(arr.dtype)  # raises TypeError for a dtype dtorch has no tensor type for
    return Tensor._wrap(arr)


def default_convert(data):
    """Turn NumPy arrays and scalars (also inside dicts, namedtuples and sequences) into tensors;
    used instead of collation when automatic batching is off (``batch_size=None``)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "SaUO":
            return data
        return _from_numpy(data)
    if isinstance(data, np.generic) and not isinstance(data, (np.str_, np.bytes_)):
        return _from_numpy(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
