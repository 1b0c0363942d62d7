"""Indexing: ``t[index]`` (basic indexing gives a view, advanced indexing a copy) and
``t[index] = value``, both differentiable."""

import numpy as np

from .. import _backend
from ..autograd.function import Primitive
from . import register
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
        elif isinstance(it, slice):
            if it.step is not None and it.step <= 0:
                raise ValueError("step must be greater than zero")
            out.append(it)
        elif it is None or it is Ellipsis or isinstance(it, (int, np.integer)):
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
    try:
        return (Index if basic else AdvancedIndex).apply(t, idx)
    except IndexError as exc:
        raise index_error(exc, t, idx) from None


def index_error(exc, t, idx):
    """NumPy's IndexError in PyTorch's words (dimension, not axis; the mask shapes)."""
    msg = str(exc)
    if msg.startswith("too many indices"):
        return IndexError(f"too many indices for tensor of dimension {t.ndim}")
    if msg.startswith("boolean index did not match"):
        items = idx if isinstance(idx, tuple) else (idx,)
        pos = 0
        for it in items:
            if getattr(it, "dtype", None) is not None and it.dtype.kind == "b":
                shape = list(t.shape[pos:pos + it.ndim])
                if list(it.shape) != shape:
                    return IndexError(f"The shape of the mask {list(it.shape)} at index {pos} "
                                      f"does not match the shape of the indexed tensor "
                                      f"{list(t.shape)} at index {pos}")
            if it is not None:
                pos += getattr(it, "ndim", 1) if it is not Ellipsis else 0
    return IndexError(msg.replace(" axis ", " dimension "))


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


class Nonzero(Primitive):
    differentiable = False

    def forward(ctx, a):
        xp = ctx.xp
        return xp.stack(xp.nonzero(a), axis=-1).astype(np.int64, copy=False) if a.ndim else \
            xp.zeros((int(bool(a)), 0), dtype=np.int64)


@register()
def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero elements: an ``(n, input.ndim)`` int64 tensor, or with
    ``as_tuple=True`` one 1-d index tensor per dim (usable as ``t[idx]``)."""
    if as_tuple and input.ndim == 0:
        return (Nonzero.apply(input.reshape(1)).reshape(-1),)
    out = Nonzero.apply(input)
    if not as_tuple:
        return out
    return tuple(out[:, d] for d in range(input.ndim))


@register()
def argwhere(input):
    """``nonzero(input)``: the indices of the non-zero elements, one row each."""
    return nonzero(input)


@register()
def masked_select(input, mask):
    """The elements of ``input`` where the bool ``mask`` (broadcastable) is True, as a 1-d
    tensor (a copy; the gradient flows back to the selected positions)."""
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {mask.dtype}")
    shape = tuple(np.broadcast_shapes(input.shape, mask.shape))
    if input.shape != shape:
        input = input.expand(shape)
    if mask.shape != shape:
        mask = mask.expand(shape)
    return AdvancedIndex.apply(input, mask._data)
