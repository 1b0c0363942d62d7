"""Indexing: ``t[index]`` (basic indexing gives a view, advanced indexing a copy) and
``t[index] = value``, both differentiable."""

import numpy as np

from .. import _backend
from ..autograd.function import Primitive
from ._util import tensor_cls, unbroadcast


def convert_index(index, xp):
    """Turn Tensors/lists inside an index into arrays; report whether it is basic (a view)."""
    T = tensor_cls()
    items = index if isinstance(index, tuple) else (index,)
    out = []
    basic = True
    for it in items:
        if isinstance(it, T):
            arr = it._data
            if arr.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if arr.dtype == np.uint8:
                arr = arr.astype(bool)
            out.append(arr)
            basic = False
        elif isinstance(it, (list, np.ndarray)):
            arr = xp.asarray([x.item() if isinstance(x, T) else x for x in it]
                             if isinstance(it, list) else it)
            out.append(arr)
            basic = False
        elif it is None or it is Ellipsis or isinstance(it, (int, np.integer, slice)):
            if isinstance(it, bool):
                basic = False
            out.append(it)
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(it).__name__})")
    return (out[0] if not isinstance(index, tuple) else tuple(out)), basic


class Index(Primitive):
    """Basic indexing: a view of the input."""

    backward_name = "SliceBackward0"
    is_view = True

    def forward(ctx, a, index):
        ctx.meta = (a.shape, index)
        return a[index]

    def backward(ctx, g):
        shape, index = ctx.meta
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        out[index] = g
        return out


class AdvancedIndex(Primitive):
    """Advanced indexing (integer/bool arrays): a copy; repeated indices accumulate in backward."""

    backward_name = "IndexBackward0"

    def forward(ctx, a, index):
        ctx.meta = (a.shape, index)
        return a[index]

    def backward(ctx, g):
        shape, index = ctx.meta
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        _backend.scatter_add_at(out, index, g)
        return out


def getitem(t, index):
    idx, basic = convert_index(index, _backend.get_array_module(t._data))
    return (Index if basic else AdvancedIndex).apply(t, idx)


class IndexPut(Primitive):
    """``out = input.clone(); out[index] = value`` (what ``input[index] = value`` records)."""

    backward_name = "IndexPutBackward0"

    def forward(ctx, a, value, index):
        out = a.copy()
        out[index] = value
        ctx.meta = (index, getattr(value, "shape", None))
        return out

    def backward(ctx, g):
        index, vshape = ctx.meta
        ga = g.copy()
        ga[index] = 0
        gv = None
        if vshape is not None and ctx.needs_input_grad[1]:
            gv = unbroadcast(g[index], vshape)
        return ga, gv


def index_put(t, index, value):
    """``t`` with ``t[index]`` replaced by ``value`` (out of place; ``t[index] = value`` runs it
    in place through ``Tensor._inplace``)."""
    T = tensor_cls()
    idx, _ = convert_index(index, _backend.get_array_module(t._data))
    if isinstance(value, T):
        if value._data.dtype != t._data.dtype:
            value = value._to(None, t.dtype)
    elif not isinstance(value, (int, float, bool, np.generic)):
        value = T._wrap(_backend.get_array_module(t._data).asarray(value, dtype=t._data.dtype))
    return IndexPut.apply(t, value, idx)
