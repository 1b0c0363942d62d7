"""Convolutions: ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d``.

Three array kernels do all the work (forward, weight gradient, input gradient: batched GEMMs
over a blocked buffer, see the note above :class:`_Plan`); the input gradient is a scatter-add over
the kernel offsets, a loop over kernel positions, never over pixels or batch elements. A
transposed convolution is the adjoint: the input-gradient kernel forward, the other two
backward.
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


def conv_out_size(size, k, s, d, pad_total):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


# A convolution here is a batch of GEMMs over one "blocked" axis B of the input, all other
# spatial dims unfolded once into a buffer laid out
#     R = (G, B, C/G, K1.., N, P1..)     (K: kernel, P: output sizes; G groups)
# so that the column matrix of output position b is the block of R rows b*s .. b*s + K0 - 1:
# an overlapping strided view, never a copy.
# - Row blocks (2-d and up, where windows overlap at least twice along the first dim:
#   kernel[0] >= 2 * stride[0]): B is the first spatial dim, so R is about kernel[0]/stride[0]
#   times smaller than im2col's column matrix and each GEMM reads a cache-sized block.
#   Measured (one thread, fwd+bwd): the seed CIFAR-10 CNN's conv1 forward 4.7 -> 2.4-3.0 ms
#   and conv2 input gradient 4.6 -> 3.0 ms (batch 64); 3-d 8 -> 16 channels 3x3x3 at 16^3,
#   batch 4: 22-24 -> 14-19 ms; ResNet 64x64 3x3 at 32x32, batch 32: the same (193-203 ms).
# - Sample blocks (otherwise: 1-d, 1x1, strided with little overlap): B is the batch (kernel
#   1, N = 1): classic im2col, one GEMM per sample writing the output in place, and for a
#   1x1 convolution no copy at all. The buffer's transpose and the output's would cost more
#   than they save there (measured with row blocks: 1x1 256 -> 64 channels 4.5 -> 14.5 ms
#   forward; conv1d 16 -> 32, length 1000, batch 8: 0.6 -> 2.0 ms; ResNet 3x3 stride 2:
#   24-29 -> 32-39 ms forward).
# Sample blocks are row blocks of the view (1, C, N, S..) of the input with a unit kernel
# dim in front (`_Plan`), so both run through the same three kernels.
# With row blocks and fewer than 32 output channels per group, one GEMM computes two output
# rows: its column matrix spans the rows both read and its weight is banded (zeros where a
# row is not read; dilation along the first dim is zeros too). That doubles the GEMM's short
# side for 1/K0 more multiplies; measured on the seed CNN's conv1 (6 outputs, batch 64): the
# forward GEMMs 2.4 -> 1.3 ms, the weight gradient's 2.7 -> 1.5 ms.
# The transposed convolution is the adjoint and uses the kernels with forward and input
# gradient swapped.

class _Plan:
    """How one convolution maps onto the kernels: the geometry with the blocked axis first,
    how many output positions along it one GEMM computes (``per_block``), and :meth:`lift`,
    the view of an ``(N, C, S..)`` array (input, output or a gradient) in that geometry."""

    def __init__(self, n, kernel, stride, dilation, out, groups, out_per_group):
        self.by_rows = len(kernel) > 1 and kernel[0] >= 2 * stride[0]
        self.groups = groups
        if self.by_rows:
            kernel, stride, dilation, out = (tuple(kernel), tuple(stride), tuple(dilation),
                                             tuple(out))
        else:
            kernel, stride = (1,) + tuple(kernel), (1,) + tuple(stride)
            dilation, out = (1,) + tuple(dilation), (n,) + tuple(out)
        self.kernel, self.stride, self.dilation, self.out = kernel, stride, dilation, out
        self.per_block = 2 if self.by_rows and out_per_group < 32 and out[0] > 1 else 1
        self.blocks = -(-out[0] // self.per_block)
        # buffer rows one block reads, and the buffer's rows
        self.span = (self.per_block - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
        self.extent = (self.blocks - 1) * self.per_block * stride[0] + self.span

    def lift(self, a):
        return a if self.by_rows else a.swapaxes(0, 1)[None]

    def lift_weight(self, w):
        return w if self.by_rows else w[:, :, None]

    def taps(self, i):
        """The buffer rows, within a block's span, of the kernel taps of its i-th output."""
        s0, d0, k0 = self.stride[0], self.dilation[0], self.kernel[0]
        return slice(i * s0, i * s0 + (k0 - 1) * d0 + 1, d0)


def _by_row(a, groups):
    """The view ``(G, S0, C/G, N, S1..)`` of ``a`` ``(N, C, S0, S1..)``: the layout of the
    buffer, the gradient rows and the GEMM results."""
    n, c = a.shape[:2]
    rest = a.ndim - 3
    return a.reshape((n, groups, c // groups) + a.shape[2:]).transpose(
        (1, 3, 2, 0) + tuple(range(4, 4 + rest)))


def _with_rows(xp, src, rows):
    """``src`` as a contiguous array with ``rows`` entries along axis 1: extra ones dropped,
    missing ones zero."""
    if src.shape[1] == rows:
        return xp.ascontiguousarray(src)
    used = min(src.shape[1], rows)
    out = xp.empty((src.shape[0], rows) + src.shape[2:], dtype=src.dtype)
    out[:, :used] = src[:, :used]
    out[:, used:] = 0
    return out


def _rows(xp, x, plan):
    """The buffer ``R`` (contiguous, ``plan.extent`` rows) of ``x`` ``(N, C, S0, S1..)``,
    already in the plan's geometry (padded)."""
    kernel, stride, dilation, out, groups = (plan.kernel, plan.stride, plan.dilation,
                                             plan.out, plan.groups)
    n, c = x.shape[:2]
    rest = len(kernel) - 1
    st = x.strides
    shape = (n, groups, c // groups, x.shape[2]) + kernel[1:] + out[1:]
    strides = (st[0], st[1] * (c // groups), st[1], st[2]) + \
        tuple(s * d for s, d in zip(st[3:], dilation[1:])) + \
        tuple(s * t for s, t in zip(st[3:], stride[1:]))
    view = xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)
    perm = (1, 3, 2) + tuple(range(4, 4 + rest)) + (0,) + tuple(range(4 + rest, 4 + 2 * rest))
    # rows no window reads are dropped; rows a padded last block reads past the end are 0
    return _with_rows(xp, view.transpose(perm), plan.extent)


def _blocks(xp, rows, plan):
    """``(G, blocks, span*C/G*K1.., N*P1..)``: the column matrix of every block, a view."""
    g = rows.shape[0]
    per_row = rows[0, 0].size
    cols = math.prod(rows.shape[2 + len(plan.kernel):])
    item = rows.itemsize
    return xp.lib.stride_tricks.as_strided(
        rows, shape=(g, plan.blocks, plan.span * per_row // cols, cols),
        strides=(rows.strides[0], plan.per_block * plan.stride[0] * per_row * item,
                 cols * item, item))


def _weight_rows(xp, w, plan):
    """``w`` ``(O, C/G, K0, K1..)`` as ``(G, 1, per_block*O/G, span*C/G*K1..)``: the row order
    of :func:`_blocks`; with two outputs per block (or dilation) a banded matrix."""
    groups, per_block = plan.groups, plan.per_block
    og = w.shape[0] // groups
    wv = w.reshape((groups, og) + w.shape[1:]).swapaxes(2, 3)  # (G, O/G, K0, C/G, K1..)
    wv = wv.reshape(groups, og, w.shape[2], -1)
    if plan.span == w.shape[2]:
        return wv.reshape(groups, 1, og, -1)
    band = xp.zeros((groups, per_block, og, plan.span, wv.shape[-1]), dtype=w.dtype)
    for i in range(per_block):
        band[:, i, :, plan.taps(i)] = wv
    return band.reshape(groups, 1, per_block * og, -1)


def _grad_rows(xp, g, plan):
    """``g`` ``(N, O, P0, P1..)`` as ``(G, blocks, per_block*O/G, N*P1..)`` (contiguous; rows
    past P0 are 0)."""
    groups, per_block = plan.groups, plan.per_block
    gt = _with_rows(xp, _by_row(g, groups), plan.blocks * per_block)
    return gt.reshape(groups, plan.blocks, per_block * (g.shape[1] // groups), -1)


def _conv_forward(xp, rows, w, b, plan, y):
    """Writes the convolution whose buffer is ``rows`` into ``y`` ``(N, O, *out)`` (a view
    in the plan's geometry), adding the bias ``b`` if given."""
    n, o = y.shape[:2]
    groups, out = plan.groups, plan.out
    og = o // groups
    rest = len(out) - 1
    wr, blocks = _weight_rows(xp, w, plan), _blocks(xp, rows, plan)
    dst = y.reshape((n, groups, og) + out)
    bias = None if b is None else b.reshape((groups, og) + (1,) * len(out))
    if n == 1 and plan.per_block == 1:  # sample blocks (or one sample): GEMMs write y in place
        xp.matmul(wr, blocks, out=dst[0].swapaxes(1, 2).reshape(groups, out[0], og, -1))
        if bias is not None:
            dst += bias
        return
    # NOTE: transposing the GEMM result to y's own layout (not writing through the by-row view
    # of y) keeps the copy's writes contiguous: conv1 of the seed CNN 2.0-2.4 vs 2.4-3.3 ms
    # forward in three interleaved runs.
    yt = xp.matmul(wr, blocks).reshape((groups, plan.blocks * plan.per_block, og, n) +
                                       out[1:])
    yt = yt[:, :out[0]].transpose((3, 0, 2, 1) + tuple(range(4, 4 + rest)))
    if bias is None:
        dst[...] = yt
    else:
        xp.add(yt, bias, out=dst)


def _conv_weight_grad(xp, g, rows, wshape, plan):
    """Gradient of the weight (``wshape``, the plan's geometry) from the output gradient
    ``g`` and the forward's buffer."""
    groups, kernel = plan.groups, plan.kernel
    og = wshape[0] // groups
    m = xp.matmul(_grad_rows(xp, g, plan), _blocks(xp, rows, plan).swapaxes(-1, -2)).sum(1)
    m = m.reshape(groups, plan.per_block, og, plan.span, -1)
    gw = m[:, 0, :, plan.taps(0)]
    for i in range(1, plan.per_block):
        gw = gw + m[:, i, :, plan.taps(i)]
    gw = gw.reshape((groups, og, kernel[0], wshape[1]) + kernel[1:])
    return xp.ascontiguousarray(gw.swapaxes(2, 3)).reshape(wshape)


def _conv_input_grad(xp, g, w, plan, gx):
    """Adds the gradient of the padded input to ``gx`` ``(N, C, S0, S1..)`` (zeros; a view in
    the plan's geometry): the GEMMs' adjoint, scatter-added along the blocked axis in the
    buffer, then over the other kernel offsets."""
    groups, kernel, stride, dilation = plan.groups, plan.kernel, plan.stride, plan.dilation
    n, c = gx.shape[:2]
    out = g.shape[2:]
    gcols = xp.matmul(_weight_rows(xp, w, plan).swapaxes(-1, -2), _grad_rows(xp, g, plan))
    gcols = gcols.reshape(groups, plan.blocks, plan.span, -1)
    step = plan.per_block * stride[0]
    if plan.span == 1 and step == 1:
        grows = gcols[:, :, 0]
    else:
        grows = xp.zeros((groups, plan.extent, gcols.shape[-1]), dtype=gcols.dtype)
        for e in range(plan.span):
            grows[:, e:e + (plan.blocks - 1) * step + 1:step] += gcols[:, :, e]
    used = min(gx.shape[2], plan.extent)
    grows = grows.reshape((groups, plan.extent, c // groups) + kernel[1:] + (n,) + out[1:])
    gxt = _by_row(gx, groups)
    lead = (slice(None), slice(0, used), slice(None), slice(None))
    for offs in itertools.product(*[range(k) for k in kernel[1:]]):
        idx = lead + tuple(slice(k * d, k * d + (p - 1) * s + 1, s)
                           for k, d, p, s in zip(offs, dilation[1:], out[1:], stride[1:]))
        gxt[idx] += grows[(slice(None), slice(0, used), slice(None)) + offs]


class _ConvNd(Primitive):
    """N-d convolution (cross-correlation) by blocked GEMMs (see the note above)."""

    def forward(ctx, x, w, b=None, *, stride, pads, dilation, groups):
        xp = ctx.xp
        kernel = w.shape[2:]
        xpad = pad_array(xp, x, pads)
        out = tuple(conv_out_size(s, k, st, d, 0) for s, k, st, d in
                    zip(xpad.shape[2:], kernel, stride, dilation))
        plan = _Plan(x.shape[0], kernel, stride, dilation, out, groups,
                     w.shape[0] // groups)
        rows = _rows(xp, plan.lift(xpad), plan)
        y = xp.empty((x.shape[0], w.shape[0]) + out, dtype=rows.dtype)
        _conv_forward(xp, rows, plan.lift_weight(w), b, plan, plan.lift(y))
        ctx.meta = (xpad.shape, plan, pads, b is not None)
        ctx.save_for_backward(rows, w)
        return y

    def backward(ctx, g):
        xp = ctx.xp
        pshape, plan, pads, has_b = ctx.meta
        rows, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = gw = gb = None
        if needs[0]:
            gx = xp.zeros(pshape, dtype=g.dtype)
            _conv_input_grad(xp, plan.lift(g), plan.lift_weight(w), plan, plan.lift(gx))
            gx = unpad_array(gx, pads)
        if needs[1]:
            lifted = plan.lift_weight(w).shape
            gw = _conv_weight_grad(xp, plan.lift(g), rows, lifted, plan).reshape(w.shape)
        if has_b and needs[2]:
            gb = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
        return gx, gw, gb


class _ConvTransposeNd(Primitive):
    """N-d transposed convolution: the adjoint of :class:`_ConvNd` (its input gradient
    forward; the convolution and its weight gradient backward)."""

    def forward(ctx, x, w, b=None, *, stride, padding, dilation, groups, out_shape):
        xp = ctx.xp
        kernel = w.shape[2:]
        n = x.shape[0]
        cout = w.shape[1] * groups
        plan = _Plan(n, kernel, stride, dilation, x.shape[2:], groups, w.shape[0] // groups)
        full = xp.zeros((n, cout) + tuple(o + 2 * p for o, p in zip(out_shape, padding)),
                        dtype=x.dtype)
        _conv_input_grad(xp, plan.lift(x), plan.lift_weight(w), plan, plan.lift(full))
        pads = [(p, p) for p in padding]
        y = unpad_array(full, pads)
        if b is not None:
            y = y + b.reshape((cout,) + (1,) * len(out_shape))
        else:
            y = xp.ascontiguousarray(y)
        ctx.meta = (plan, pads, b is not None)
        ctx.save_for_backward(x, w)
        return y

    def backward(ctx, g):
        xp = ctx.xp
        plan, pads, has_b = ctx.meta
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        rows = _rows(xp, plan.lift(pad_array(xp, g, pads)), plan)
        gx = gw = gb = None
        if needs[0]:
            gx = xp.empty(x.shape, dtype=rows.dtype)
            _conv_forward(xp, rows, plan.lift_weight(w), None, plan, plan.lift(gx))
        if needs[1]:
            lifted = plan.lift_weight(w).shape
            gw = _conv_weight_grad(xp, plan.lift(x), rows, lifted, plan).reshape(w.shape)
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
