"""Reductions over all elements or over ``dim`` (with ``keepdim``), and cumulative ops."""

import builtins
import math

import numpy as np

from .. import _dtype as D
from .. import return_types
from ..amp.autocast_mode import autocast_op
from ..autograd.function import Primitive
from . import register
from ._util import expand_reduced, float_input, tensor_cls, wrap_dim, wrap_dims


class Sum(Primitive):
    def forward(ctx, a, dims, keepdim, np_dtype):
        ctx.meta = (a.shape, dims, keepdim)
        if np_dtype is None and a.dtype.kind in "biu":
            np_dtype = np.int64
        return a.sum(axis=dims, keepdims=keepdim, dtype=np_dtype)

    def backward(ctx, g):
        shape, dims, keepdim = ctx.meta
        return ctx.xp.broadcast_to(expand_reduced(g, shape, dims, keepdim), shape)


class SumDim(Sum):
    backward_name = "SumBackward1"


@register()
@autocast_op
def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001
    """Sum of all elements, or over ``dim`` (an int or a tuple of ints)."""
    dims = wrap_dims(dim, input.ndim)
    cls = Sum if dim is None else SumDim
    return cls.apply(input, dims, keepdim, None if dtype is None else D.as_dtype(dtype).np)


class Mean(Primitive):
    def forward(ctx, a, dims):
        n = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        ctx.meta = (a.shape, dims, n)
        return a.mean(axis=dims)

    def backward(ctx, g):
        shape, dims, n = ctx.meta
        return ctx.xp.broadcast_to(expand_reduced(g, shape, dims, False) / n, shape)


class MeanDim(Primitive):
    backward_name = "MeanBackward1"

    def forward(ctx, a, dims, keepdim):
        n = math.prod(a.shape[d] for d in dims)
        ctx.meta = (a.shape, dims, keepdim, n)
        return a.mean(axis=dims, keepdims=keepdim)

    def backward(ctx, g):
        shape, dims, keepdim, n = ctx.meta
        return ctx.xp.broadcast_to(expand_reduced(g, shape, dims, keepdim) / n, shape)


@register()
def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean of all elements, or over ``dim``."""
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind not in "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {_dtype_title(input)}")
    dims = wrap_dims(dim, input.ndim)
    if dims is None:
        if keepdim:
            return MeanDim.apply(input, tuple(range(input.ndim)), True)
        return Mean.apply(input, None)
    return MeanDim.apply(input, dims, keepdim)


def _dtype_title(t):
    return {"i": "Long", "u": "Byte", "b": "Bool"}.get(t._data.dtype.kind, str(t.dtype))


class Prod(Primitive):
    def forward(ctx, a, dim, keepdim):
        ctx.save_for_backward(a)
        ctx.meta = (dim, keepdim)
        out = a.prod(axis=dim, keepdims=keepdim)
        if a.dtype.kind in "biu":
            out = out.astype(np.int64)
        return out

    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        dim, keepdim = ctx.meta
        xp = ctx.xp
        if dim is None:
            flat = a.reshape(-1)
            return (g * _prod_others(xp, flat, 0)).reshape(a.shape)
        g = g if keepdim else xp.expand_dims(g, dim)
        return g * _prod_others(xp, a, dim)


def _prod_others(xp, a, dim):
    """For each element, the product of the other elements along ``dim`` (exact with zeros):
    exclusive cumulative products from the left and from the right."""
    ones = xp.ones_like(xp.take(a, [0], axis=dim))
    left = xp.cumprod(xp.concatenate([ones, xp.take(a, range(a.shape[dim] - 1), axis=dim)],
                                     axis=dim), axis=dim)
    rev = xp.flip(a, axis=dim)
    right = xp.cumprod(xp.concatenate([ones, xp.take(rev, range(a.shape[dim] - 1), axis=dim)],
                                      axis=dim), axis=dim)
    return left * xp.flip(right, axis=dim)


@register()
@autocast_op
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements, or over ``dim``."""
    if dtype is not None:
        input = input.to(dtype)
    return Prod.apply(input, None if dim is None else wrap_dim(dim, input.ndim), keepdim)


class _Extreme(Primitive):
    """max/min over all elements: the gradient is shared evenly between tied extremes."""

    reducer = None

    def forward(ctx, a, dims, keepdim):
        if a.size == 0:
            raise RuntimeError(f"{ctx.name_}(): Expected reduction dim to be specified for "
                               "input.numel() == 0. Specify the reduction dim with the 'dim' "
                               "argument.")
        out = getattr(a, ctx.reducer)(axis=dims, keepdims=keepdim)
        ctx.save_for_backward(a, out)
        ctx.meta = (dims, keepdim)
        return out

    def backward(ctx, g):
        a, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        out = expand_reduced(out, a.shape, dims, keepdim)
        g = expand_reduced(g, a.shape, dims, keepdim)
        mask = a == out
        count = mask.sum(axis=dims, keepdims=True)
        return (g * mask / count).astype(g.dtype, copy=False)


class Max(_Extreme):
    reducer, name_ = "max", "max"


class Min(_Extreme):
    reducer, name_ = "min", "min"


class Amax(_Extreme):
    reducer, name_ = "max", "amax"


class Amin(_Extreme):
    reducer, name_ = "min", "amin"


class _ExtremeDim(Primitive):
    """max/min over one dim, returning (values, indices); the gradient goes to the index."""

    arg = None

    def forward(ctx, a, dim, keepdim):
        xp = ctx.xp
        if a.ndim == 0:
            idx = xp.zeros((), dtype=np.int64)
            values = a.copy()
        else:
            if a.shape[dim] == 0:
                raise IndexError(f"{ctx.arg[3:]}(): Expected reduction dim {dim} to have non-zero "
                                 "size.")
            idx = getattr(xp, ctx.arg)(a, axis=dim, keepdims=True)
            values = xp.take_along_axis(a, idx, axis=dim)
            if not keepdim:
                idx, values = idx.squeeze(dim), values.squeeze(dim)
        ctx.meta = (a.shape, dim, keepdim)
        ctx.save_for_backward(idx)
        ctx.mark_non_differentiable(idx)
        return values, idx.astype(np.int64, copy=False)

    def backward(ctx, g, _g_idx):
        shape, dim, keepdim = ctx.meta
        (idx,) = ctx.saved_tensors
        xp = ctx.xp
        out = xp.zeros(shape, dtype=g.dtype)
        if len(shape) == 0:
            return g.copy()
        if not keepdim:
            idx, g = xp.expand_dims(idx, dim), xp.expand_dims(g, dim)
        xp.put_along_axis(out, idx, g, axis=dim)
        return out


class MaxDim(_ExtremeDim):
    arg = "argmax"
    backward_name = "MaxBackward0"


class MinDim(_ExtremeDim):
    arg = "argmin"
    backward_name = "MinBackward0"


def _extreme(input, dim, keepdim, other, full, per_dim, binary, result_type):
    T = tensor_cls()
    if isinstance(dim, T):
        other, dim = dim, None
    if other is not None:
        return binary(input, other)
    if dim is None:
        return full.apply(input, None, False)
    d = wrap_dim(dim, input.ndim)
    values, indices = per_dim.apply(input, d, keepdim)
    return result_type(values, indices)


@register()
def max(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    """Largest element; with ``dim``, ``(values, indices)`` along it; with a tensor, the
    elementwise maximum."""
    from .arith import maximum

    return _extreme(input, dim, keepdim, other, Max, MaxDim, maximum, return_types.max)


@register()
def min(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    """Smallest element; with ``dim``, ``(values, indices)`` along it; with a tensor, the
    elementwise minimum."""
    from .arith import minimum

    return _extreme(input, dim, keepdim, other, Min, MinDim, minimum, return_types.min)


@register()
def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim`` (all dims if empty); ties share the gradient."""
    return Amax.apply(input, wrap_dims(dim, input.ndim), keepdim)


@register()
def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim`` (all dims if empty); ties share the gradient."""
    return Amin.apply(input, wrap_dims(dim, input.ndim), keepdim)


class _Arg(Primitive):
    differentiable = False
    fn = None

    def forward(ctx, a, dim, keepdim):
        xp = ctx.xp
        if a.size == 0:
            raise IndexError(f"{ctx.fn}(): Expected reduction dim to be specified for "
                             "input.numel() == 0.")
        if dim is None:
            out = getattr(xp, ctx.fn)(a.reshape(-1))
            if keepdim:
                out = xp.asarray(out).reshape((1,) * a.ndim)
            return xp.asarray(out, dtype=np.int64)
        return getattr(xp, ctx.fn)(a, axis=dim, keepdims=keepdim).astype(np.int64)


class Argmax(_Arg):
    fn = "argmax"


class Argmin(_Arg):
    fn = "argmin"


@register()
def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (in the flattened tensor if ``dim`` is None)."""
    return Argmax.apply(input, None if dim is None else wrap_dim(dim, input.ndim), keepdim)


@register()
def argmin(input, dim=None, keepdim=False):
    """Index of the smallest element (in the flattened tensor if ``dim`` is None)."""
    return Argmin.apply(input, None if dim is None else wrap_dim(dim, input.ndim), keepdim)


class Var(Primitive):
    def forward(ctx, a, dims, correction, keepdim):
        n = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        m = a.mean(axis=dims, keepdims=True)
        diff = a - m
        out = (diff * diff).sum(axis=dims, keepdims=keepdim) / builtins.max(n - correction, 0)
        ctx.save_for_backward(diff)
        ctx.meta = (dims, keepdim, n - correction)
        return out

    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        dims, keepdim, denom = ctx.meta
        return expand_reduced(g, diff.shape, dims, keepdim) * (2 / denom) * diff


class Std(Primitive):
    """sqrt of :class:`Var`, fused so that the gradient where the deviation is 0 is 0 (as in
    PyTorch) rather than ``0 * inf = nan``."""

    def forward(ctx, a, dims, correction, keepdim):
        out = ctx.xp.sqrt(Var.forward(ctx, a, dims, correction, keepdim))
        ctx.save_for_backward(ctx.saved_tensors[0], out)
        return out

    def backward(ctx, g):
        diff, out = ctx.saved_tensors
        dims, keepdim, denom = ctx.meta
        xp = ctx.xp
        out = expand_reduced(out, diff.shape, dims, keepdim)
        scale = xp.where(out == 0, 0, expand_reduced(g, diff.shape, dims, keepdim) /
                         xp.where(out == 0, 1, out * denom))
        return (scale * diff).astype(diff.dtype, copy=False)


def _var_args(input, dim, unbiased, keepdim, correction):
    if input._data.dtype.kind != "f":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    if isinstance(dim, bool):  # var(input, unbiased)
        unbiased, dim = dim, None
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return wrap_dims(dim, input.ndim), correction, keepdim


@register()
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (1 by default; ``unbiased=False`` is
    ``correction=0``)."""
    dims, correction, keepdim = _var_args(input, dim, unbiased, keepdim, correction)
    return Var.apply(input, dims, correction, keepdim)


@register()
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation: ``sqrt(var(...))`` with the same arguments."""
    dims, correction, keepdim = _var_args(input, dim, unbiased, keepdim, correction)
    return Std.apply(input, dims, correction, keepdim)


@register()
def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim) if dim is not None else mean(input))


@register()
def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim) if dim is not None else mean(input))


class Norm(Primitive):
    """Vector p-norm. Written out (not composed) so the gradient at a zero vector is 0, not NaN."""

    def forward(ctx, a, p, dims, keepdim):
        xp = ctx.xp
        absa = xp.abs(a)
        if p == 2:
            out = xp.sqrt((a * a).sum(axis=dims, keepdims=keepdim))
        elif p == 1:
            out = absa.sum(axis=dims, keepdims=keepdim)
        elif p == math.inf:
            out = absa.max(axis=dims, keepdims=keepdim)
        elif p == -math.inf:
            out = absa.min(axis=dims, keepdims=keepdim)
        elif p == 0:
            out = (a != 0).sum(axis=dims, keepdims=keepdim).astype(a.dtype)
        else:
            out = ((absa ** p).sum(axis=dims, keepdims=keepdim)) ** (1.0 / p)
        ctx.save_for_backward(a, out)
        ctx.meta = (p, dims, keepdim)
        return out

    def backward(ctx, g):
        a, out = ctx.saved_tensors
        p, dims, keepdim = ctx.meta
        xp = ctx.xp
        g = expand_reduced(g, a.shape, dims, keepdim)
        out = expand_reduced(out, a.shape, dims, keepdim)
        if p == 0:
            return xp.zeros_like(a)
        if p == 1:
            return g * xp.sign(a)
        if p in (math.inf, -math.inf):
            mask = xp.abs(a) == out
            return (g * xp.sign(a) * mask / mask.sum(axis=dims, keepdims=True)).astype(a.dtype)
        safe = xp.where(out == 0, 1, out)
        if p == 2:
            grad = g * a / safe
        else:
            grad = g * a * xp.abs(a) ** (p - 2) / safe ** (p - 1)
        return xp.where(out == 0, 0, grad).astype(a.dtype, copy=False)


@register()
@autocast_op
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm of ``input`` (all elements, or over ``dim``); ``'fro'`` is the 2-norm."""
    if dtype is not None:
        input = input.to(dtype)
    if p in ("fro", None):
        p = 2
    if isinstance(p, str):
        raise RuntimeError(f"norm(): p='{p}' is only supported for matrix norms; use "
                           "dtorch.linalg.matrix_norm")
    return Norm.apply(float_input(input), float(p), wrap_dims(dim, input.ndim), keepdim)


class Logsumexp(Primitive):
    def forward(ctx, a, dims, keepdim):
        xp = ctx.xp
        m = a.max(axis=dims, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.exp(a - m).sum(axis=dims, keepdims=True)) + m
        ctx.save_for_backward(a, out)
        ctx.meta = dims
        if not keepdim:
            out = out.squeeze(axis=dims) if dims is not None else out.reshape(())
        return out

    def backward(ctx, g):
        a, out = ctx.saved_tensors
        dims = ctx.meta
        g = expand_reduced(g, a.shape, dims, g.ndim == a.ndim)
        return g * ctx.xp.exp(a - out)


@register()
def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input), dim))``, computed stably (rows of ``-inf`` give ``-inf``)."""
    dims = wrap_dims(dim, input.ndim)
    return Logsumexp.apply(float_input(input), dims if input.ndim else None, keepdim)


class Cumsum(Primitive):
    def forward(ctx, a, dim):
        ctx.dim = dim
        if a.dtype.kind in "biu":
            return a.cumsum(axis=dim, dtype=np.int64)
        return a.cumsum(axis=dim)

    def backward(ctx, g):
        xp = ctx.xp
        return xp.flip(xp.flip(g, ctx.dim).cumsum(axis=ctx.dim), ctx.dim)


@register(inplace=True)
@autocast_op
def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along ``dim``."""
    if dtype is not None:
        input = input.to(dtype)
    return Cumsum.apply(input, wrap_dim(dim, input.ndim))


class Cumprod(Primitive):
    def forward(ctx, a, dim):
        out = a.cumprod(axis=dim)
        ctx.save_for_backward(a, out)
        ctx.dim = dim
        return out

    def backward(ctx, g):
        a, out = ctx.saved_tensors
        xp, dim = ctx.xp, ctx.dim
        if bool((a != 0).all()):
            return xp.flip(xp.flip(g * out, dim).cumsum(axis=dim), dim) / a
        # NOTE: with zeros, d out_j / d a_i = prod_{k <= j, k != i} a_k; computed per position
        # (quadratic in the length of ``dim``, taken only when a zero is present).
        n = a.shape[dim]
        grad = xp.zeros_like(a)
        for i in range(n):
            others = a.copy()
            xp.moveaxis(others, dim, 0)[i] = 1
            partial = others.cumprod(axis=dim)
            mask_shape = [1] * a.ndim
            mask_shape[dim] = n
            after = (xp.arange(n) >= i).reshape(mask_shape)
            contrib = (g * partial * after).sum(axis=dim)
            xp.moveaxis(grad, dim, 0)[i] = contrib
        return grad


@register(inplace=True)
@autocast_op
def cumprod(input, dim, *, dtype=None):
    """Cumulative product along ``dim``."""
    if dtype is not None:
        input = input.to(dtype)
    return Cumprod.apply(input, wrap_dim(dim, input.ndim))


class _Logical(Primitive):
    differentiable = False
    fn = None

    def forward(ctx, a, dim, keepdim):
        return getattr(a.astype(bool, copy=False), ctx.fn)(axis=dim, keepdims=keepdim)


class All(_Logical):
    fn = "all"


class Any(_Logical):
    fn = "any"


@register()
def all(input, dim=None, keepdim=False):  # noqa: A001
    """True if every element (over ``dim``) is non-zero."""
    return All.apply(input, wrap_dims(dim, input.ndim), keepdim)


@register()
def any(input, dim=None, keepdim=False):  # noqa: A001
    """True if some element (over ``dim``) is non-zero."""
    return Any.apply(input, wrap_dims(dim, input.ndim), keepdim)


@register()
def count_nonzero(input, dim=None):
    return (input != 0).sum(dim)
