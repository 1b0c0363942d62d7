"""Normalization: ``batch_norm``, ``layer_norm``, ``group_norm``, ``instance_norm``,
``local_response_norm``.

Batch and layer normalization share one fused node, :class:`_NormAffine` (normalize over some
axes, then scale and shift): fused for speed (one graph node and a closed-form backward instead
of about ten composed ops) and numerical stability (the variance is computed from centred
values).
"""

from ...amp.autocast_mode import autocast_op
from ...autograd import grad_mode
from ...autograd.function import Primitive

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"]


class _NormAffine(Primitive):
    """``y = (x - mean) / sqrt(var + eps) * w + b`` with the statistics over ``axes``
    (biased variance), or with given ``mean``/``var`` (evaluation mode: running statistics).
    ``w``/``b`` (or None) broadcast as ``pshape``. Also returns the batch mean and biased
    variance (non-differentiable) so callers can update running statistics."""

    backward_name = "NativeBatchNormBackward0"

    def forward(ctx, x, w, b, mean, var, *, axes, eps, pshape):
        xp = ctx.xp
        if mean is None:
            mean = x.mean(axis=axes, keepdims=True)
            xc = x - mean
            var = (xc * xc).mean(axis=axes, keepdims=True)
            ctx.batch_stats = True
        else:
            mean = mean.reshape(pshape)
            var = var.reshape(pshape)
            xc = x - mean
            ctx.batch_stats = False
        invstd = 1.0 / xp.sqrt(var + eps)
        xhat = xc * invstd
        y = xhat * w.reshape(pshape) if w is not None else xhat.copy()
        if b is not None:
            y += b.reshape(pshape)
        ctx.meta = (axes, pshape, None if b is None else b.shape)
        ctx.save_for_backward(xhat, invstd, w)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    def backward(ctx, g, _gm=None, _gv=None):
        axes, pshape, bshape = ctx.meta
        xhat, invstd, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = gw = gb = None
        red = tuple(i for i in range(g.ndim) if pshape[i] == 1)
        if w is not None and needs[1]:
            gw = (g * xhat).sum(axis=red).reshape(w.shape)
        if bshape is not None and needs[2]:
            gb = g.sum(axis=red).reshape(bshape)
        if needs[0]:
            gh = g * w.reshape(pshape) if w is not None else g
            if ctx.batch_stats:
                mg = gh.mean(axis=axes, keepdims=True)
                mgx = (gh * xhat).mean(axis=axes, keepdims=True)
                gx = (gh - mg - xhat * mgx) * invstd
            else:
                gx = gh * invstd
        return gx, gw, gb, None, None


def _norm(x, w, b, mean, var, axes, eps, pshape):
    return _NormAffine.apply(x, w, b, mean, var, axes=axes, eps=eps, pshape=pshape)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over the batch and spatial dims of ``(N, C, *)``.

    In training (or without running statistics) the batch statistics are used, and the running
    ones are updated in place: ``running = (1 - momentum) * running + momentum * batch`` (the
    running variance takes the unbiased batch variance). Otherwise the running statistics are
    used.
    """
    if input.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {input.ndim}D input)")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    pshape = (1, c) + (1,) * (input.ndim - 2)
    axes = (0,) + tuple(range(2, input.ndim))
    count = input.numel() // c
    if training:
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
        y, mean, var = _norm(input, weight, bias, None, None, axes, eps, pshape)
        if running_mean is not None or running_var is not None:
            with grad_mode.no_grad():
                if running_mean is not None:
                    rm = running_mean._data
                    rm *= 1 - momentum
                    rm += momentum * mean._data.reshape(-1).astype(rm.dtype, copy=False)
                    running_mean._vbox[0] += 1
                if running_var is not None:
                    rv = running_var._data
                    unbiased = var._data.reshape(-1) * (count / (count - 1))
                    rv *= 1 - momentum
                    rv += momentum * unbiased.astype(rv.dtype, copy=False)
                    running_var._vbox[0] += 1
        return y
    if running_mean is None or running_var is None:
        y, _, _ = _norm(input, weight, bias, None, None, axes, eps, pshape)
        return y
    y, _, _ = _norm(input, weight, bias, running_mean, running_var, axes, eps, pshape)
    return y


@autocast_op
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the last ``len(normalized_shape)`` dims, then scale by ``weight`` and
    shift by ``bias`` (both of ``normalized_shape``)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[input.ndim - k:]) != normalized_shape or input.ndim < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                           f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                           f"input of size{list(input.shape)}")
    axes = tuple(range(input.ndim - k, input.ndim))
    pshape = (1,) * (input.ndim - k) + normalized_shape
    y, _, _ = _norm(input, weight, bias, None, None, axes, eps, pshape)
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last ``len(normalized_shape)`` dims."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    dims = tuple(range(-len(normalized_shape), 0))
    if eps is None:
        import numpy as np

        eps = float(np.finfo(input._data.dtype).eps)
    y = input * (input.pow(2).mean(dims, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y


@autocast_op
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize ``(N, C, *)`` over each group of ``C / num_groups`` channels (and all spatial
    positions), then apply a per-channel affine map."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.ndim}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    y, _, _ = _norm(x, None, None, None, None, (2,), eps, (1, 1, 1))
    y = y.reshape(input.shape)
    if weight is not None or bias is not None:
        pshape = (1, c) + (1,) * (input.ndim - 2)
        if weight is not None:
            y = y * weight.reshape(pshape)
        if bias is not None:
            y = y + bias.reshape(pshape)
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalize each channel of each sample of ``(N, C, *)`` over its spatial positions.

    With running statistics, training updates them with the mean over the batch of the
    per-instance statistics; ``use_input_stats=False`` uses them instead."""
    n, c = input.shape[:2]
    spatial = input.numel() // (n * c) if n * c else 0
    if use_input_stats and spatial <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{list(input.shape)}")
    axes = tuple(range(2, input.ndim))
    pshape = (1, c) + (1,) * (input.ndim - 2)
    if not use_input_stats:
        y, _, _ = _norm(input, weight, bias, running_mean, running_var, axes, eps, pshape)
        return y
    x = input
    y, mean, var = _norm(x, None, None, None, None, axes, eps, (1, 1) + (1,) * len(axes))
    if running_mean is not None and running_var is not None:
        with grad_mode.no_grad():
            m = mean._data.reshape(n, c).mean(0)
            v = (var._data.reshape(n, c) * (spatial / (spatial - 1))).mean(0)
            rm, rv = running_mean._data, running_var._data
            rm *= 1 - momentum
            rm += momentum * m.astype(rm.dtype, copy=False)
            rv *= 1 - momentum
            rv += momentum * v.astype(rv.dtype, copy=False)
            running_mean._vbox[0] += 1
            running_var._vbox[0] += 1
    if weight is not None:
        y = y * weight.reshape(pshape)
    if bias is not None:
        y = y + bias.reshape(pshape)
    return y


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``b_c = a_c / (k + alpha/n * sum_{c' near c} a_{c'}^2)^beta`` over ``size`` neighbouring
    channels (zero-padded), as in AlexNet."""
    from .pooling import avg_pool2d, avg_pool3d
    from .vision import pad

    dim = input.ndim
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    div = (input * input).unsqueeze(1)
    if dim == 3:
        div = pad(div, (0, 0, size // 2, (size - 1) // 2))
        div = avg_pool2d(div, (size, 1), stride=1).squeeze(1)
    else:
        sizes = input.shape
        div = div.reshape(sizes[0], 1, sizes[1], sizes[2], -1)
        div = pad(div, (0, 0, 0, 0, size // 2, (size - 1) // 2))
        div = avg_pool3d(div, (size, 1, 1), stride=1).squeeze(1)
        div = div.reshape(sizes)
    div = (div * alpha + k).pow(beta)
    return input / div

