"""Vision and distance helpers: ``pad`` (constant / reflect / replicate / circular),
``interpolate`` (nearest, linear, bilinear, trilinear, bicubic, area), ``unfold`` / ``fold``,
``pixel_shuffle``, ``one_hot``, ``normalize``, ``cosine_similarity``, ``pairwise_distance``."""

import itertools
import math

import numpy as np

from ... import _backend, _creation
from ... import _dtype as D
from ...amp.autocast_mode import autocast_op
from ...autograd.function import Primitive
from .conv import _ntuple, conv_out_size, pad_array, unpad_array

__all__ = ["pad", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "unfold",
           "fold", "pixel_shuffle", "pixel_unshuffle", "one_hot", "normalize",
           "cosine_similarity", "pairwise_distance", "pdist"]


# ------------------------------------------------------------------------------ pad
class _ConstantPad(Primitive):
    """Constant padding (negative amounts crop); backward slices the gradient."""

    backward_name = "ConstantPadNdBackward0"

    def forward(ctx, x, *, pads, value):
        crop = [(max(-lo, 0), max(-hi, 0)) for lo, hi in pads]
        grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
        ctx.meta = (x.shape, crop, grow)
        xc = unpad_array(x, crop)
        out = pad_array(ctx.xp, xc, grow, value)
        return out if out is not x else x.copy()

    def backward(ctx, g):
        shape, crop, grow = ctx.meta
        gc = unpad_array(g, grow)
        if not any(lo or hi for lo, hi in crop):
            return gc
        return pad_array(ctx.xp, gc, crop)


class _IndexPad(Primitive):
    """Reflect / replicate / circular padding as a gather along each padded dim (the index
    maps come from NumPy's ``pad`` of ``arange``); backward is the matching scatter-add."""

    backward_name = "ReflectionPad2DBackward0"

    def forward(ctx, x, *, maps):
        xp = ctx.xp
        nd = len(maps)
        idx = [None if m is None else xp.asarray(m) for m in maps]
        out = x
        for i, m in enumerate(idx):
            if m is not None:
                out = xp.take(out, m, axis=x.ndim - nd + i)
        ctx.meta = (x.shape, idx)
        return out if out is not x else x.copy()

    def backward(ctx, g):
        xp = ctx.xp
        shape, idx = ctx.meta
        nd = len(idx)
        for i in reversed(range(nd)):
            m = idx[i]
            if m is None:
                continue
            axis = g.ndim - nd + i
            tshape = list(g.shape)
            tshape[axis] = shape[axis]
            res = xp.zeros(tshape, dtype=g.dtype)
            key = (slice(None),) * axis + (m,)
            _backend.scatter_add_at(res, key, g)
            g = res
        return g


_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left_last, right_last, left_2nd_last,
    right_2nd_last, ...)`` as in PyTorch.

    Args:
        mode: ``'constant'`` (with ``value``, default 0; negative pads crop), ``'reflect'``
            (mirror without the edge), ``'replicate'`` (repeat the edge) or ``'circular'``.
    """
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    nd = len(pad) // 2
    if nd > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of dimension "
                           f"{input.ndim}")
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(nd)][::-1]  # first dim first
    if mode == "constant":
        return _ConstantPad.apply(input, pads=tuple(pairs), value=0 if value is None else value)
    if value is not None and value != 0:
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument.')
    if mode not in _NP_MODES:
        raise ValueError(f"Unrecognised padding mode {mode}")
    sizes = input.shape[input.ndim - nd:]
    maps = []
    for (lo, hi), size in zip(pairs, sizes):
        if mode == "reflect" and (lo >= size or hi >= size):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                               f"input dimension, but got: padding ({lo}, {hi}) at dimension of "
                               f"input {size}")
        if mode == "circular" and (lo > size or hi > size):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if lo == 0 and hi == 0:
            maps.append(None)
            continue
        base = np.arange(size)
        if lo < 0 or hi < 0:
            base = base[max(-lo, 0):size - max(-hi, 0)]
        m = np.pad(base, (max(lo, 0), max(hi, 0)), mode=_NP_MODES[mode])
        maps.append(m)
    return _IndexPad.apply(input, maps=tuple(maps))


# ------------------------------------------------------------------------------ interpolate
def _src_index(out, size, scale, align_corners):
    """Source coordinates (float) of each output position for the linear modes."""
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        return dst * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    s = (1.0 / scale) if scale is not None else size / out
    return np.maximum((dst + 0.5) * s - 0.5, 0.0)


def _linear_matrix(size, out, scale, align_corners):
    src = _src_index(out, size, scale, align_corners)
    lo = np.minimum(np.floor(src).astype(np.int64), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    m = np.zeros((out, size))
    rows = np.arange(out)
    np.add.at(m, (rows, lo), 1 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def _cubic_matrix(size, out, scale, align_corners, a=-0.75):
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        s = (1.0 / scale) if scale is not None else size / out
        src = (dst + 0.5) * s - 0.5
    base = np.floor(src)
    t = src - base

    def w1(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def w2(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = [w2(t + 1), w1(t), w1(1 - t), w2(2 - t)]
    m = np.zeros((out, size))
    rows = np.arange(out)
    for k, wk in enumerate(weights):
        col = np.clip(base.astype(np.int64) - 1 + k, 0, size - 1)
        np.add.at(m, (rows, col), wk)
    return m


def _nearest_index(size, out, scale, exact):
    s = (1.0 / scale) if scale is not None else size / out
    dst = np.arange(out, dtype=np.float64)
    src = np.floor((dst + 0.5) * s) if exact else np.floor(dst * s)
    return np.minimum(src.astype(np.int64), size - 1)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of ``(N, C, *)`` to ``size`` or by ``scale_factor``.

    Modes: ``'nearest'``, ``'nearest-exact'``, ``'linear'`` (3-D input), ``'bilinear'`` (4-D),
    ``'trilinear'`` (5-D), ``'bicubic'`` (4-D), ``'area'`` (adaptive average pooling).
    ``align_corners`` (linear modes only) maps corner pixel centres onto each other.
    """
    nd = input.ndim - 2
    if nd < 1:
        raise ValueError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got "
                         f"{input.ndim}D) for the modes: nearest | linear | bilinear | bicubic | "
                         f"trilinear | area | nearest-exact (got {mode})")
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes:"
                             " linear | bilinear | bicubic | trilinear")
    elif mode in linear_modes:
        if linear_modes[mode] != nd:
            raise ValueError(f"Got {input.ndim}D input, but {mode} mode needs "
                                      f"{linear_modes[mode] + 2}D input")
        align_corners = bool(align_corners)
    else:
        raise ValueError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.ndim}D) for the modes: nearest | linear | "
                                  f"bilinear | bicubic | trilinear | area | nearest-exact (got "
                                  f"{mode})")
    if antialias:
        raise ValueError("Anti-alias option is not supported by dtorch's interpolate")
    in_sizes = input.shape[2:]
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        out = _ntuple(size, nd, "size")
        scales = [None] * nd
    elif scale_factor is not None:
        sf = scale_factor if isinstance(scale_factor, (list, tuple)) else [scale_factor] * nd
        if len(sf) != nd:
            raise ValueError(f"Input and scale_factor must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(in_sizes)} and scale_factor of shape {list(sf)}.")
        out = tuple(int(math.floor(s * f)) for s, f in zip(in_sizes, sf))
        scales = [None] * nd if recompute_scale_factor else [float(f) for f in sf]
    else:
        raise ValueError("either size or scale_factor should be defined")
    if mode == "area":
        from .pooling import _adaptive_avg

        return _adaptive_avg(input, out, nd)
    x = input
    for dim in range(nd):
        axis = 2 + dim
        size_in, size_out = in_sizes[dim], out[dim]
        if mode in ("nearest", "nearest-exact"):
            if size_in == size_out and scales[dim] is None:
                continue
            idx = _nearest_index(size_in, size_out, scales[dim], mode == "nearest-exact")
            x = x.index_select(axis, _creation.tensor(idx, device=input.device))
            continue
        if mode == "bicubic":
            mat = _cubic_matrix(size_in, size_out, scales[dim], align_corners)
        else:
            mat = _linear_matrix(size_in, size_out, scales[dim], align_corners)
        m = _creation.tensor(mat.T, dtype=input.dtype, device=input.device)  # (in, out)
        x = x.movedim(axis, -1).matmul(m).movedim(-1, axis)
    return x if x is not input else input.clone()


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ------------------------------------------------------------------------------ unfold / fold
def _window_view(xp, x, kernel, stride, dilation, out):
    """Strided view ``(N, C, *kernel, *out)`` of ``x`` ``(N, C, *spatial)``: element
    ``[n, c, k..., o...]`` is ``x[n, c, o*stride + k*dilation ...]``. No copy."""
    st = x.strides
    sp = st[2:]
    shape = x.shape[:2] + tuple(kernel) + tuple(out)
    strides = st[:2] + tuple(s * d for s, d in zip(sp, dilation)) + \
        tuple(s * t for s, t in zip(sp, stride))
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def _im2col(xp, x, kernel, stride, dilation, out):
    """Column matrix ``(N, C * prod(kernel), prod(out))`` of ``x`` (padded)."""
    n, c = x.shape[:2]
    view = _window_view(xp, x, kernel, stride, dilation, out)
    return view.reshape(n, c * math.prod(kernel), math.prod(out))


def _col2im(xp, cols, shape, kernel, stride, dilation, out):
    """Adjoint of :func:`_im2col`: ``cols`` ``(N, C, *kernel, *out)`` scatter-added into a
    zero array of ``shape`` ``(N, C, *spatial)``; one strided add per kernel offset."""
    res = xp.zeros(shape, dtype=cols.dtype)
    for offs in itertools.product(*[range(k) for k in kernel]):
        idx = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(offs, dilation, out, stride))
        res[idx] += cols[(slice(None), slice(None)) + offs]
    return res


class _Unfold(Primitive):
    """im2col: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)`` (sliding local blocks)."""

    backward_name = "Im2ColBackward0"

    def forward(ctx, x, *, kernel, dilation, padding, stride):
        xp = ctx.xp
        pads = [(p, p) for p in padding]
        xpad = pad_array(xp, x, pads)
        out = tuple(conv_out_size(s, k, st, d, 0) for s, k, st, d in
                    zip(xpad.shape[2:], kernel, stride, dilation))
        ctx.meta = (xpad.shape, pads, kernel, dilation, stride, out)
        return _im2col(xp, xpad, kernel, stride, dilation, out)

    def backward(ctx, g):
        pshape, pads, kernel, dilation, stride, out = ctx.meta
        g = g.reshape(pshape[:2] + tuple(kernel) + tuple(out))
        return unpad_array(_col2im(ctx.xp, g, pshape, kernel, stride, dilation, out), pads)


class _Fold(Primitive):
    """col2im: ``(N, C*kh*kw, L)`` -> ``(N, C, H, W)``, overlapping values summed."""

    backward_name = "Col2ImBackward0"

    def forward(ctx, x, *, output_size, kernel, dilation, padding, stride, blocks):
        xp = ctx.xp
        n = x.shape[0]
        c = x.shape[1] // math.prod(kernel)
        pads = [(p, p) for p in padding]
        pshape = (n, c) + tuple(o + 2 * p for o, p in zip(output_size, padding))
        cols = x.reshape((n, c) + tuple(kernel) + tuple(blocks))
        ctx.meta = (pshape, pads, kernel, dilation, stride, blocks)
        full = _col2im(xp, cols, pshape, kernel, stride, dilation, blocks)
        return xp.ascontiguousarray(unpad_array(full, pads))

    def backward(ctx, g):
        pshape, pads, kernel, dilation, stride, blocks = ctx.meta
        gpad = pad_array(ctx.xp, g, pads)
        return _im2col(ctx.xp, gpad, kernel, stride, dilation, blocks)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding local blocks: ``(N, C, H, W)`` -> ``(N, C * prod(kernel_size), L)``."""
    if input.ndim not in (3, 4):
        raise ValueError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                                  f"{input.ndim}D)")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    out = _Unfold.apply(x, kernel=_ntuple(kernel_size, 2), dilation=_ntuple(dilation, 2),
                        padding=_ntuple(padding, 2), stride=_ntuple(stride, 2))
    return out.squeeze(0) if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding local blocks (summing overlaps): ``(N, C * prod(kernel_size), L)`` ->
    ``(N, C, *output_size)``; the inverse layout of :func:`unfold`."""
    if input.ndim not in (2, 3):
        raise ValueError(f"Input Error: Only unbatched (2D) or batched (3D) input "
                                  f"Tensors are supported (got {input.ndim}D)")
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    output_size, kernel = _ntuple(output_size, 2), _ntuple(kernel_size, 2)
    dilation, padding, stride = _ntuple(dilation, 2), _ntuple(padding, 2), _ntuple(stride, 2)
    if x.shape[1] % math.prod(kernel):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={x.shape[1]} and "
                           f"kernel_size={kernel}")
    blocks = tuple(conv_out_size(o, k, s, d, 2 * p) for o, k, s, d, p in
                   zip(output_size, kernel, stride, dilation, padding))
    if math.prod(blocks) != x.shape[2]:
        raise RuntimeError(f"Given output_size={output_size}, kernel_size={kernel}, "
                           f"dilation={dilation}, padding={padding}, stride={stride}, expected "
                           f"size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {' * '.join(map(str, blocks))} = "
                           f"{math.prod(blocks)}, but got input.size(2)={x.shape[2]}.")
    out = _Fold.apply(x, output_size=output_size, kernel=kernel, dilation=dilation,
                      padding=padding, stride=stride, blocks=blocks)
    return out.squeeze(0) if unbatched else out


# ------------------------------------------------------------------------------ misc
def pixel_shuffle(input, upscale_factor):
    """``(*, C*r^2, H, W)`` -> ``(*, C, H*r, W*r)``."""
    r = int(upscale_factor)
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                           f"is not divisible by {r * r}")
    oc = c // (r * r)
    x = input.reshape(tuple(lead) + (oc, r, r, h, w))
    n = len(lead)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(tuple(lead) + (oc, h * r, w * r))


def pixel_unshuffle(input, downscale_factor):
    """``(*, C, H*r, W*r)`` -> ``(*, C*r^2, H, W)``."""
    r = int(downscale_factor)
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but got {h}x{w} and {r}")
    n = len(lead)
    x = input.reshape(tuple(lead) + (c, h // r, r, w // r, r))
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(tuple(lead) + (c * r * r, h // r, w // r))


def one_hot(tensor, num_classes=-1):
    """``(*)`` int64 class indices -> ``(*, num_classes)`` int64 one-hot rows."""
    if tensor.dtype is not D.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    data = tensor._data
    xp = _backend.get_array_module(data)
    if num_classes == -1:
        if data.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(data.max()) + 1
    if data.size and (int(data.min()) < 0):
        raise RuntimeError("Class values must be non-negative.")
    if data.size and int(data.max()) >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = (data[..., None] == xp.arange(num_classes)).astype(xp.int64)
    from ..._tensor import Tensor

    return Tensor._wrap(out)


@autocast_op
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``v / max(||v||_p, eps)`` along ``dim``."""
    norm = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    return input / norm


@autocast_op
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``x1 . x2 / (max(||x1||, eps) * max(||x2||, eps))`` along ``dim`` (inputs broadcast)."""
    n1 = x1.norm(2, dim, keepdim=True).clamp_min(eps)
    n2 = x2.norm(2, dim, keepdim=True).clamp_min(eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``||x1 - x2 + eps||_p`` over the last dim."""
    d = x1 - x2 + eps
    dim = -1 if max(x1.ndim, x2.ndim) > 0 else 0
    return d.norm(p, dim, keepdim=keepdim)


@autocast_op
def pdist(input, p=2):
    """Distances between all pairs of rows of ``(N, M)``: the upper triangle, row by row."""
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    ti = _creation.tensor(i, device=input.device)
    tj = _creation.tensor(j, device=input.device)
    return (input.index_select(0, ti) - input.index_select(0, tj)).norm(p, -1)
