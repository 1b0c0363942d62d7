"""Pooling: max / average (1-3 d), adaptive average / max, max-unpooling.

Max and average pooling read the (padded) input through one strided slice per kernel offset and
combine them elementwise: a loop over kernel positions, never over pixels or batch elements, and
no copy of the K-times larger window matrix. Adaptive pooling averages with two small
interpolation-style matrices (one matmul per spatial dim) or takes maxima over gathered windows.
"""

import itertools
import math

from ... import _creation
from ...amp.autocast_mode import autocast_op
from ...autograd.function import Primitive
from .conv import _ntuple

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "max_unpool1d", "max_unpool2d", "max_unpool3d", "lp_pool1d",
    "lp_pool2d",
]


def _pool_out(size, k, s, p, d, ceil_mode):
    num = size + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _offset_slices(offs, dilation, out, stride):
    return (Ellipsis,) + tuple(slice(o * d, o * d + (m - 1) * s + 1, s)
                               for o, d, m, s in zip(offs, dilation, out, stride))


def _padded(xp, x, pads_lo, extents, value):
    """``x`` placed at offset ``pads_lo`` inside an array of spatial ``extents`` filled with
    ``value`` (the right side may be longer than the left: ceil_mode windows)."""
    nd = len(extents)
    sp = x.shape[-nd:]
    if all(p == 0 for p in pads_lo) and tuple(extents) == tuple(sp):
        return x
    ext = [max(e, p + s) for e, p, s in zip(extents, pads_lo, sp)]
    out = xp.full(x.shape[:-nd] + tuple(ext), value, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(p, p + s) for p, s in zip(pads_lo, sp))] = x
    return out


def _crop(x, pads_lo, sizes):
    return x[(Ellipsis,) + tuple(slice(p, p + s) for p, s in zip(pads_lo, sizes))]


class _MaxPoolNd(Primitive):
    """Max pooling: an elementwise running maximum over the kernel offsets (NaN propagates, as
    in PyTorch), then each window's argmax as a small-integer array; backward routes each
    gradient to its window's argmax. Three cheap passes per offset instead of masked copies:
    forward + backward of the seed CNN's 2x2 pools measured 4x faster (bench/bench_nn.py)."""

    def forward(ctx, x, *, kernel, stride, padding, dilation, out, return_indices):
        xp = ctx.xp
        nd = len(kernel)
        extents = [(m - 1) * s + d * (k - 1) + 1 for m, s, d, k in
                   zip(out, stride, dilation, kernel)]
        low = -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        xpad = _padded(xp, x, padding, extents, low)
        views = [xpad[_offset_slices(offs, dilation, out, stride)]
                 for offs in itertools.product(*[range(k) for k in kernel])]
        best = views[0].copy()
        for v in views[1:]:
            xp.maximum(best, v, out=best)
        arg = _window_argmax(xp, views, best)
        ctx.meta = (x.shape, xpad.shape, kernel, stride, padding, dilation, out)
        ctx.save_for_backward(arg)
        if not return_indices:
            return best
        koffs = xp.unravel_index(arg, kernel)
        sizes = x.shape[-nd:]
        flat = xp.zeros(arg.shape, dtype=xp.int64)
        for dim in range(nd):
            shape = [1] * arg.ndim
            shape[arg.ndim - nd + dim] = out[dim]
            pos = (xp.arange(out[dim]) * stride[dim] - padding[dim]).reshape(shape)
            flat = flat * sizes[dim] + pos + koffs[dim] * dilation[dim]
        ctx.mark_non_differentiable(flat)
        return best, flat

    def backward(ctx, g, g_idx=None):
        xp = ctx.xp
        xshape, pshape, kernel, stride, padding, dilation, out = ctx.meta
        (arg,) = ctx.saved_tensors
        gx = xp.zeros(pshape, dtype=g.dtype)
        # NOTE: disjoint windows write their slices; overlapping ones accumulate. g * mask is
        # the fast route, but inf * 0 would put NaN where PyTorch puts 0: non-finite g
        # takes where().
        disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel))
        finite = bool(xp.isfinite(g).all())
        for i, offs in enumerate(itertools.product(*[range(k) for k in kernel])):
            dst = gx[_offset_slices(offs, dilation, out, stride)]
            routed = xp.multiply(g, arg == i) if finite else xp.where(arg == i, g, 0)
            if disjoint:
                dst[...] = routed
            else:
                dst += routed
        return _crop(gx, padding, xshape[-len(kernel):])


def _window_argmax(xp, views, best):
    """Kernel-offset index of each window's maximum, PyTorch's choice: the first of tied
    maxima, the last NaN where a window holds NaN. ``views`` are the strided slices of the
    kernel offsets, ``best`` their elementwise maximum.

    From the back, ``d = (view_i != best) * (d + 1)`` counts the offsets from ``i`` to the
    first maximum at or after ``i``; at ``i = 0`` it is the index itself."""
    arg = xp.zeros(best.shape, dtype=xp.uint8 if len(views) <= 256 else xp.int32)
    differs = xp.empty(best.shape, dtype=bool)
    for v in reversed(views[:-1]):
        xp.not_equal(v, best, out=differs)
        arg += 1
        arg *= differs
    if best.dtype.kind == "f":
        nan = xp.isnan(best)
        if nan.any():
            for i, v in enumerate(views):
                arg[nan & xp.isnan(v)] = i
    return arg


class _AvgPoolNd(Primitive):
    """Average pooling: the sum of the strided slices at every kernel offset over a divisor
    computed per output position (``count_include_pad``, ``ceil_mode``, ``divisor_override``)."""

    def forward(ctx, x, *, kernel, stride, padding, out, divisor):
        xp = ctx.xp
        extents = [(m - 1) * s + k for m, s, k in zip(out, stride, kernel)]
        xpad = _padded(xp, x, padding, extents, 0)
        dil = (1,) * len(kernel)
        acc = None
        for offs in itertools.product(*[range(k) for k in kernel]):
            v = xpad[_offset_slices(offs, dil, out, stride)]
            acc = v.astype(x.dtype, copy=True) if acc is None else acc.__iadd__(v)
        div = xp.asarray(divisor, dtype=x.dtype)
        ctx.meta = (x.shape, xpad.shape, kernel, stride, padding, out, div)
        return acc / div

    def backward(ctx, g):
        xp = ctx.xp
        xshape, pshape, kernel, stride, padding, out, div = ctx.meta
        gq = g / div
        gx = xp.zeros(pshape, dtype=g.dtype)
        dil = (1,) * len(kernel)
        for offs in itertools.product(*[range(k) for k in kernel]):
            gx[_offset_slices(offs, dil, out, stride)] += gq
        return _crop(gx, padding, xshape[-len(kernel):])


def _batched(input, nd, name):
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D input tensor, but got "
                           f"input of size: {list(input.shape)}")


def _pool_args(input, nd, kernel_size, stride, padding, dilation, ceil_mode, name):
    _batched(input, nd, name)
    kernel = _ntuple(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
        else _ntuple(stride, nd, "stride")
    padding = _ntuple(padding, nd, "padding")
    dilation = _ntuple(dilation, nd, "dilation")
    if any(k <= 0 for k in kernel):
        raise RuntimeError(f"{name}: kernel_size must be greater than zero, but got "
                           f"{list(kernel)}")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{name}: stride must be greater than zero, but got {list(stride)}")
    for k, p, d in zip(kernel, padding, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    sizes = input.shape[-nd:]
    out = tuple(_pool_out(s, k, st, p, d, ceil_mode) for s, k, st, p, d in
                zip(sizes, kernel, stride, padding, dilation))
    if any(o <= 0 for o in out):
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, input.shape[-nd - 1:]))}). "
                           f"Calculated output size: ({input.shape[-nd - 1]}x"
                           f"{'x'.join(map(str, out))}). Output size is too small")
    return kernel, stride, padding, dilation, out


def _max_pool(input, nd, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    name = f"max_pool{nd}d"
    kernel, stride, padding, dilation, out = _pool_args(
        input, nd, kernel_size, stride, padding, dilation, ceil_mode, name)
    res = _MaxPoolNd.apply(input, kernel=kernel, stride=stride, padding=padding,
                           dilation=dilation, out=out, return_indices=bool(return_indices))
    return res


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling over ``(N, C, L)``; with ``return_indices`` also the argmax positions."""
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling over ``(N, C, H, W)``; ``stride`` defaults to ``kernel_size``.

    Output size per dim: ``floor((in + 2*padding - dilation*(k-1) - 1) / stride) + 1`` (ceil
    with ``ceil_mode``). With ``return_indices``, returns ``(output, indices)`` where indices
    are flat positions in each input plane (for ``max_unpool2d``).
    """
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@autocast_op
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """3-D max pooling over ``(N, C, D, H, W)``."""
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_divisor(sizes, kernel, stride, padding, out, ceil_mode, count_include_pad, override,
                 lead):
    import numpy as np

    if override is not None:
        if override == 0:
            raise RuntimeError("divisor must be not zero")
        return np.asarray(float(override))
    per_dim = []
    for size, k, s, p, m in zip(sizes, kernel, stride, padding, out):
        start = np.arange(m) * s - p
        end = np.minimum(start + k, size + p)
        pool = end - start
        if not count_include_pad:
            pool = np.minimum(end, size) - np.maximum(start, 0)
        per_dim.append(pool.astype(np.float64))
    div = per_dim[0]
    for d in per_dim[1:]:
        div = np.multiply.outer(div, d)
    return div.reshape((1,) * lead + div.shape)


def _avg_pool(input, nd, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    name = f"avg_pool{nd}d"
    kernel, stride, padding, _, out = _pool_args(input, nd, kernel_size, stride, padding, 1,
                                                 ceil_mode, name)
    sizes = input.shape[-nd:]
    div = _avg_divisor(sizes, kernel, stride, padding, out, ceil_mode, count_include_pad,
                       divisor_override, input.ndim - nd)
    from ..._backend import device_index, to_device

    div = to_device(div, device_index(input._data))
    return _AvgPoolNd.apply(input, kernel=kernel, stride=stride, padding=padding, out=out,
                            divisor=div)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling over ``(N, C, L)``."""
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling over ``(N, C, H, W)``; padded zeros count in the divisor unless
    ``count_include_pad=False``; ``divisor_override`` replaces the divisor."""
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


@autocast_op
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-D average pooling over ``(N, C, D, H, W)``."""
    return _avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling: ``(sum x^p)^(1/p)`` over each window of ``(N, C, L)``."""
    k = _ntuple(kernel_size, 1)[0]
    out = avg_pool1d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * out.abs().relu()).mul(k).pow(1.0 / norm_type)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over each window of ``(N, C, H, W)``."""
    kh, kw = _ntuple(kernel_size, 2)
    out = avg_pool2d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * out.abs().relu()).mul(kh * kw).pow(1.0 / norm_type)


# ------------------------------------------------------------------------------ adaptive
def _adaptive_bounds(size, out):
    starts = [(i * size) // out for i in range(out)]
    ends = [-(-((i + 1) * size) // out) for i in range(out)]
    return starts, ends


def _out_sizes(input, output_size, nd, name):
    _batched(input, nd, name)
    sizes = _ntuple(output_size, nd, "output_size") if not isinstance(output_size, (
        list, tuple)) or None not in output_size else tuple(output_size)
    sizes = tuple(input.shape[-nd + i] if s is None else int(s) for i, s in enumerate(sizes))
    for s in input.shape[-nd:]:
        if s == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(input.shape)}")
    return sizes


def _avg_matrix(size, out, like):
    import numpy as np

    starts, ends = _adaptive_bounds(size, out)
    m = np.zeros((out, size))
    for i, (s, e) in enumerate(zip(starts, ends)):
        m[i, s:e] = 1.0 / (e - s)
    t = _creation.tensor(m, dtype=like.dtype, device=like.device)
    return t


def _adaptive_avg(input, output_size, nd):
    sizes = _out_sizes(input, output_size, nd, f"adaptive_avg_pool{nd}d")
    x = input
    for dim in range(nd):
        axis = x.ndim - nd + dim
        size = x.shape[axis]
        if size == sizes[dim]:
            continue
        if size % sizes[dim] == 0 and nd == 1:
            k = size // sizes[dim]
            x = avg_pool1d(x, k, k)
            continue
        mat = _avg_matrix(size, sizes[dim], input)  # (out, in)
        x = x.movedim(axis, -1).matmul(mat.t()).movedim(-1, axis)
    return x if x is not input else input.clone()


def adaptive_avg_pool1d(input, output_size):
    """Average pooling to a fixed output length (windows ``[floor(i*L/out), ceil((i+1)*L/out))``
    as in PyTorch)."""
    return _adaptive_avg(input, output_size, 1)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling of ``(N, C, H, W)`` to ``output_size`` (an int, a pair, None keeps a
    dim)."""
    return _adaptive_avg(input, output_size, 2)


@autocast_op
def adaptive_avg_pool3d(input, output_size):
    """Average pooling of ``(N, C, D, H, W)`` to ``output_size``."""
    return _adaptive_avg(input, output_size, 3)


def _adaptive_max(input, output_size, return_indices, nd):
    import numpy as np

    sizes = _out_sizes(input, output_size, nd, f"adaptive_max_pool{nd}d")
    insz = input.shape[-nd:]
    if all(i % o == 0 for i, o in zip(insz, sizes)):
        k = tuple(i // o for i, o in zip(insz, sizes))
        return _MaxPoolNd.apply(input, kernel=k, stride=k, padding=(0,) * nd,
                                dilation=(1,) * nd, out=sizes,
                                return_indices=bool(return_indices))
    # NOTE: windows of unequal length are padded by repeating their last element (max-neutral).
    idx = []
    for dim in range(nd):
        starts, ends = _adaptive_bounds(insz[dim], sizes[dim])
        kmax = max(e - s for s, e in zip(starts, ends))
        rows = [[min(s + j, e - 1) for j in range(kmax)] for s, e in zip(starts, ends)]
        idx.append(np.asarray(rows, dtype=np.int64))
    lead = input.ndim - nd
    if nd == 1:
        ih = idx[0]
        win = input[(Ellipsis, _creation.tensor(ih, device=input.device))]  # (.., O, K)
        flat_pos = ih
    else:
        ih, iw = idx
        kh, kw = ih.shape[1], iw.shape[1]
        th = _creation.tensor(ih[:, None, :, None], device=input.device)
        tw = _creation.tensor(iw[None, :, None, :], device=input.device)
        win = input[(Ellipsis, th, tw)]  # (.., Oh, Ow, kh, kw)
        win = win.reshape(win.shape[:-2] + (kh * kw,))
        flat_pos = (ih[:, None, :, None] * insz[1] + iw[None, :, None, :]).reshape(
            sizes[0], sizes[1], kh * kw)
    values, arg = win.max(-1)
    if not return_indices:
        return values
    pos = _creation.tensor(flat_pos, device=input.device)
    pos = pos.expand(arg.shape[:lead] + pos.shape)
    return values, pos.gather(-1, arg.unsqueeze(-1)).squeeze(-1)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max pooling to a fixed output length; with ``return_indices`` also the argmax."""
    return _adaptive_max(input, output_size, return_indices, 1)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling of ``(N, C, H, W)`` to ``output_size``; with ``return_indices`` also the
    flat argmax positions."""
    return _adaptive_max(input, output_size, return_indices, 2)


# ------------------------------------------------------------------------------ unpooling
def _max_unpool(input, indices, kernel_size, stride, padding, output_size, nd):
    kernel = _ntuple(kernel_size, nd)
    stride = kernel if stride is None else _ntuple(stride, nd)
    padding = _ntuple(padding, nd)
    insz = input.shape[-nd:]
    default = [(i - 1) * s - 2 * p + k for i, s, p, k in zip(insz, stride, padding, kernel)]
    if output_size is None:
        out = default
    else:
        out = list(output_size)[-nd:]
        for o, d, s in zip(out, default, stride):
            if not d - s < o < d + s:
                raise ValueError(f"invalid output_size {list(output_size)} (dim must be between "
                                 f"{[a - b + 1 for a, b in zip(default, stride)]} and "
                                 f"{[a + b - 1 for a, b in zip(default, stride)]})")
    if indices.shape != input.shape:
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(input.shape)}) but got indices tensor with shape: "
                           f"{list(indices.shape)}")
    lead = input.shape[:-nd]
    n_out = math.prod(out)
    flat_in = input.reshape(lead + (-1,))
    flat_idx = indices.reshape(lead + (-1,))
    if flat_idx.numel() and (int(flat_idx.max()) >= n_out or int(flat_idx.min()) < 0):
        raise RuntimeError(f"Found an invalid max index: {int(flat_idx.max())} (output volumes "
                           f"are of size {'x'.join(map(str, out))}")
    zeros = _creation.zeros(lead + (n_out,), dtype=input.dtype, device=input.device)
    return zeros.scatter(-1, flat_idx, flat_in).reshape(lead + tuple(out))


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool1d``: values placed at their indices, zeros elsewhere."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 1)


@autocast_op
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool2d`` (given its ``return_indices`` output)."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 2)


@autocast_op
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool3d``."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 3)

