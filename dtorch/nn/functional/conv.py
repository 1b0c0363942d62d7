"""Convolutions: ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d``.

A convolution is im2col + one matrix multiply: the (zero-padded) input is viewed through a
strided window view (no copy), the view is copied once into the column matrix, and one batched
matmul with the weight gives the output. The backward pass uses the same two pieces in the
other direction (col2im is a scatter-add over the kernel offsets: a loop over kernel positions,
never over pixels or batch elements). A transposed convolution is the adjoint: col2im forward,
im2col backward.
"""

import itertools
import math

from ...amp.autocast_mode import autocast_op
from ...autograd.function import Primitive

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d"]


def _ntuple(value, n, name="value"):
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and n > 1:
            return tuple(int(value[0]) for _ in range(n))
        if len(value) != n:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                               f"values to match the convolution dimensions, but got "
                               f"{name}={list(value)}")
        return tuple(int(v) for v in value)
    return (int(value),) * n


def pad_array(xp, x, pads, value=0):
    """``x`` with ``pads[i] = (lo, hi)`` zeros (or ``value``) added around spatial dim i (the
    last ``len(pads)`` dims); returns ``x`` itself when there is nothing to pad."""
    if not any(lo or hi for lo, hi in pads):
        return x
    nd = len(pads)
    lead = x.shape[:x.ndim - nd]
    shape = lead + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[-nd:], pads))
    out = xp.full(shape, value, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in
                            zip(x.shape[-nd:], pads))] = x
    return out


def unpad_array(x, pads):
    """The inverse of :func:`pad_array` (a view)."""
    if not any(lo or hi for lo, hi in pads):
        return x
    nd = len(pads)
    return x[(Ellipsis,) + tuple(slice(lo, s - hi) for s, (lo, hi) in
                                 zip(x.shape[-nd:], pads))]


def window_view(xp, x, kernel, stride, dilation, out):
    """Strided view ``(N, C, *kernel, *out)`` of ``x`` ``(N, C, *spatial)``: element
    ``[n, c, k..., o...]`` is ``x[n, c, o*stride + k*dilation ...]``. No copy."""
    st = x.strides
    nd = len(kernel)
    sp = st[2:]
    shape = x.shape[:2] + tuple(kernel) + tuple(out)
    strides = st[:2] + tuple(s * d for s, d in zip(sp, dilation)) + \
        tuple(s * t for s, t in zip(sp, stride))
    assert len(shape) == 2 + 2 * nd
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def im2col(xp, x, kernel, stride, dilation, out, groups=1):
    """Column matrix ``(N, groups, C/groups * prod(kernel), prod(out))`` of ``x`` (padded)."""
    n, c = x.shape[:2]
    view = window_view(xp, x, kernel, stride, dilation, out)
    return view.reshape(n, groups, (c // groups) * math.prod(kernel), math.prod(out))


def col2im(xp, cols, shape, kernel, stride, dilation, out):
    """Adjoint of :func:`im2col`: ``cols`` ``(N, C, *kernel, *out)`` scatter-added into a zero
    array of ``shape`` ``(N, C, *spatial)``; one strided add per kernel offset."""
    res = xp.zeros(shape, dtype=cols.dtype)
    nd = len(kernel)
    for offs in itertools.product(*[range(k) for k in kernel]):
        idx = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(offs, dilation, out, stride))
        res[idx] += cols[(slice(None), slice(None)) + offs]
    assert res.ndim == 2 + nd
    return res


def conv_out_size(size, k, s, d, pad_total):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


class _ConvNd(Primitive):
    """N-d convolution by im2col + one batched matmul, fused for measured speed: one strided
    copy and one GEMM per layer (no per-offset graph nodes); with it the seed CIFAR-10 CNN step
    (batch 64, one thread) runs at about PyTorch CPU speed (bench/bench_nn.py)."""

    def forward(ctx, x, w, b=None, *, stride, pads, dilation, groups):
        xp = ctx.xp
        kernel = w.shape[2:]
        xpad = pad_array(xp, x, pads)
        out = tuple(conv_out_size(s, k, st, d, 0) for s, k, st, d in
                    zip(xpad.shape[2:], kernel, stride, dilation))
        cols = im2col(xp, xpad, kernel, stride, dilation, out, groups)
        o = w.shape[0]
        w2 = w.reshape(groups, o // groups, -1)
        y = xp.matmul(w2, cols)  # (N, G, O/G, L)
        y = y.reshape((x.shape[0], o) + out)
        if b is not None:
            y += b.reshape((o,) + (1,) * len(out))
        ctx.meta = (x.shape, xpad.shape, kernel, out, stride, pads, dilation, groups,
                    b is not None)
        ctx.save_for_backward(cols, w)
        return y

    def backward(ctx, g):
        xp = ctx.xp
        xshape, pshape, kernel, out, stride, pads, dilation, groups, has_b = ctx.meta
        cols, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        n, o = g.shape[:2]
        g3 = g.reshape(n, groups, o // groups, -1)
        gx = gw = gb = None
        if needs[0]:
            w2 = w.reshape(groups, o // groups, -1)
            gcols = xp.matmul(w2.transpose(0, 2, 1), g3)  # (N, G, Cg*K, L)
            gcols = gcols.reshape((n, xshape[1]) + tuple(kernel) + tuple(out))
            gx = unpad_array(col2im(xp, gcols, pshape, kernel, stride, dilation, out), pads)
        if needs[1]:
            gw = xp.matmul(g3, cols.transpose(0, 1, 3, 2)).sum(0).reshape(w.shape)
        if has_b and needs[2]:
            gb = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
        return gx, gw, gb


class _ConvTransposeNd(Primitive):
    """N-d transposed convolution: the adjoint of :class:`_ConvNd` (col2im forward, im2col
    backward), fused for the same measured-speed reason."""

    def forward(ctx, x, w, b=None, *, stride, padding, dilation, groups, out_shape):
        xp = ctx.xp
        kernel = w.shape[2:]
        n, cin = x.shape[:2]
        cout = w.shape[1] * groups
        ins = x.shape[2:]
        full = (n, cout) + tuple(o + 2 * p for o, p in zip(out_shape, padding))
        w2 = w.reshape(groups, cin // groups, -1)  # (G, Cin/G, Cout/G*K)
        x3 = x.reshape(n, groups, cin // groups, -1)
        cols = xp.matmul(w2.transpose(0, 2, 1), x3)  # (N, G, Cout/G*K, L)
        cols = cols.reshape((n, cout) + tuple(kernel) + tuple(ins))
        y = unpad_array(col2im(xp, cols, full, kernel, stride, dilation, ins),
                        [(p, p) for p in padding])
        if b is not None:
            y = y + b.reshape((cout,) + (1,) * len(ins))
        else:
            y = xp.ascontiguousarray(y)
        ctx.meta = (kernel, ins, stride, padding, dilation, groups, b is not None)
        ctx.save_for_backward(x, w)
        return y

    def backward(ctx, g):
        xp = ctx.xp
        kernel, ins, stride, padding, dilation, groups, has_b = ctx.meta
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        n, cin = x.shape[:2]
        gpad = pad_array(xp, g, [(p, p) for p in padding])
        cols = im2col(xp, gpad, kernel, stride, dilation, ins, groups)  # (N, G, Cout/G*K, L)
        gx = gw = gb = None
        if needs[0]:
            w2 = w.reshape(groups, cin // groups, -1)
            gx = xp.matmul(w2, cols).reshape(x.shape)
        if needs[1]:
            x3 = x.reshape(n, groups, cin // groups, -1)
            gw = xp.matmul(x3, cols.transpose(0, 1, 3, 2)).sum(0).reshape(w.shape)
        if has_b and needs[2]:
            gb = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
        return gx, gw, gb


def _batchify(input, nd, name):
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    if input.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                           f"{name}, but got input of size: {list(input.shape)}")
    return input, False


def _check_dtypes(input, weight, bias):
    if input.dtype != weight.dtype or bias is not None and bias.dtype != weight.dtype:
        other = input if input.dtype != weight.dtype else bias
        raise RuntimeError(f"Input type ({other.type()}) and weight type ({weight.type()}) "
                           "should be the same")


def _conv(input, weight, bias, stride, padding, dilation, groups, nd):
    name = f"conv{nd}d"
    input, unbatched = _batchify(input, nd, name)
    if weight.ndim != nd + 2:
        raise RuntimeError(f"weight should have {nd + 2} dimensions for {name}, but got weight "
                           f"of size {list(weight.shape)}")
    _check_dtypes(input, weight, bias)
    stride = _ntuple(stride, nd, "stride")
    dilation = _ntuple(dilation, nd, "dilation")
    kernel = weight.shape[2:]
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if input.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
            f"input{list(input.shape)} to have {weight.shape[1] * groups} channels, but got "
            f"{input.shape[1]} channels instead")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} "
                           "instead")
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
        else:
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "{'valid', 'same'}")
    else:
        pads = [(p, p) for p in _ntuple(padding, nd, "padding")]
    padded = [a + lo + hi for a, (lo, hi) in zip(input.shape[2:], pads)]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(p < k for p, k in zip(padded, span)):
        raise RuntimeError(f"Calculated padded input size per channel: "
                           f"({' x '.join(map(str, padded))}). Kernel size: "
                           f"({' x '.join(map(str, span))}). Kernel size can't be greater than "
                           "actual input size")
    args = (input, weight) if bias is None else (input, weight, bias)
    out = _ConvNd.apply(*args, stride=stride, pads=tuple(pads), dilation=dilation,
                        groups=groups)
    return out.squeeze(0) if unbatched else out


@autocast_op
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) of ``(N, C_in, L)`` with ``(C_out, C_in/groups, k)``.

    ``padding`` is an int, a tuple, ``'valid'`` or ``'same'``.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


@autocast_op
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of ``(N, C_in, H, W)`` with ``(C_out, C_in/groups, kH, kW)``.

    Output size per dim: ``floor((in + 2*padding - dilation*(k-1) - 1) / stride) + 1``.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


@autocast_op
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution of ``(N, C_in, D, H, W)`` with ``(C_out, C_in/groups, kD, kH, kW)``."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3)


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation,
                    nd, output_size=None):
    name = f"conv_transpose{nd}d"
    input, unbatched = _batchify(input, nd, name)
    if weight.ndim != nd + 2:
        raise RuntimeError(f"weight should have {nd + 2} dimensions for {name}, but got weight "
                           f"of size {list(weight.shape)}")
    _check_dtypes(input, weight, bias)
    stride = _ntuple(stride, nd, "stride")
    padding = _ntuple(padding, nd, "padding")
    dilation = _ntuple(dilation, nd, "dilation")
    kernel = weight.shape[2:]
    if input.shape[1] != weight.shape[0]:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected "
            f"input{list(input.shape)} to have {weight.shape[0]} channels, but got "
            f"{input.shape[1]} channels instead")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)}")
    if output_size is not None:
        output_padding = _output_padding_for(input.shape[2:], output_size, stride, padding,
                                             kernel, dilation)
    output_padding = _ntuple(output_padding, nd, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise RuntimeError(f"output padding must be smaller than either stride or dilation, "
                               f"but got output_padding={list(output_padding)}, "
                               f"stride={list(stride)}, dilation={list(dilation)}")
    out_shape = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, d, k, op in
                      zip(input.shape[2:], stride, padding, dilation, kernel, output_padding))
    if any(o <= 0 for o in out_shape):
        raise RuntimeError(f"Given input size per channel: {list(input.shape[2:])}, calculated "
                           f"output size {list(out_shape)} is too small")
    args = (input, weight) if bias is None else (input, weight, bias)
    out = _ConvTransposeNd.apply(*args, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups, out_shape=out_shape)
    return out.squeeze(0) if unbatched else out


def _output_padding_for(in_sizes, output_size, stride, padding, kernel, dilation):
    nd = len(in_sizes)
    output_size = list(output_size)[-nd:]
    res = []
    for i in range(nd):
        min_size = (in_sizes[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (
            kernel[i] - 1) + 1
        if not min_size <= output_size[i] < min_size + stride[i]:
            raise ValueError(f"requested an output size of {output_size}, but valid sizes range "
                             f"from {min_size} to {min_size + stride[i] - 1} (for an input of "
                             f"{list(in_sizes)})")
        res.append(output_size[i] - min_size)
    return tuple(res)


@autocast_op
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution of ``(N, C_in, L)`` with ``(C_in, C_out/groups, k)``.

    Output size: ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)


@autocast_op
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution of ``(N, C_in, H, W)`` with ``(C_in, C_out/groups, kH, kW)``."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)


@autocast_op
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """3-D transposed convolution of ``(N, C_in, D, H, W)``."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 3)
