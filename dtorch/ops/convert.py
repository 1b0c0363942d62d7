"""Copies between devices and dtypes (``to``, ``clone``, ``float()``...), differentiable."""

from .. import _backend
from ..autograd.function import Primitive


class ToCopy(Primitive):
    """Copy to another dtype and/or device; the gradient goes back to the source's."""

    def forward(ctx, a, index, np_dtype, move):
        ctx.src = (_backend.device_index(a), a.dtype)
        out = _backend.to_device(a, index) if move else a
        if np_dtype is not None and out.dtype != np_dtype:
            return out.astype(np_dtype)
        if out is a:
            return a.copy()
        return out

    def backward(ctx, grad):
        index, dtype = ctx.src
        g = _backend.to_device(grad, index)
        if dtype.kind == "f":
            return g.astype(dtype, copy=False)
        return None


class Clone(ToCopy):
    pass


def to_copy(t, index, dtype, move):
    """``t`` copied to device ``index`` (None: CPU) if ``move``, cast to ``dtype`` if given."""
    np_dtype = None if dtype is None else dtype.np
    if not move and np_dtype is None:
        return Clone.apply(t, None, None, False)
    return ToCopy.apply(t, index, np_dtype, move)
