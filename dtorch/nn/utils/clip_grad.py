"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_``."""

import math

from ... import _backend
from ..._tensor import Tensor
from ...autograd import grad_mode

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of all ``tensors`` together (as if concatenated)."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = [t for t in tensors if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        from ... import _creation

        return _creation.tensor(0.0)
    xp = _backend.get_array_module(tensors[0]._data)
    if norm_type == math.inf:
        total = max(float(xp.abs(t._data).max()) if t._data.size else 0.0 for t in tensors)
    elif norm_type == -math.inf:
        total = min(float(xp.abs(t._data).min()) for t in tensors if t._data.size)
    elif norm_type == 0:
        total = float(sum(int((t._data != 0).sum()) for t in tensors))
    else:
        acc = 0.0
        for t in tensors:
            a = xp.abs(t._data.astype(xp.float64, copy=False))
            acc += float((a * a).sum()) if norm_type == 2 else float((a ** norm_type).sum())
        total = acc ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    dtype = tensors[0]._data.dtype
    return Tensor._wrap(xp.asarray(total, dtype=dtype))


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of ``parameters`` by ``max_norm / (total_norm + 1e-6)`` when that is
    below 1."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    coef = float(max_norm) / (float(total_norm) + 1e-6)
    if coef < 1.0:
        with grad_mode.no_grad():
            for g in grads:
                g._data *= g._data.dtype.type(coef)
                g._vbox[0] += 1


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Rescale gradients in place so that their total ``norm_type``-norm is at most
    ``max_norm``; returns the total norm before clipping (a 0-d tensor).

    ``total = ||concat(grads)||_p``; every gradient is multiplied by
    ``min(1, max_norm / (total + 1e-6))``. ``norm_type`` may be ``inf``. With
    ``error_if_nonfinite`` a NaN/inf total raises RuntimeError.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient in place to ``[-clip_value, clip_value]``."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    clip_value = float(clip_value)
    with grad_mode.no_grad():
        for p in parameters:
            g = p.grad
            if g is None:
                continue
            xp = _backend.get_array_module(g._data)
            xp.clip(g._data, -clip_value, clip_value, out=g._data)
            g._vbox[0] += 1


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of :func:`clip_grad_norm_`."""
    import warnings

    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`torch.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)
