"""Dropout: ``dropout``, ``dropout1d/2d/3d`` (whole channels), ``alpha_dropout`` and
``feature_alpha_dropout``. Identity when ``training`` is False. Masks are drawn from the
tensor's device generator, so ``dtorch.manual_seed`` makes them reproducible."""

from ... import _backend
from ..._tensor import Tensor
from ...random import generator_for

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
           "feature_alpha_dropout"]

_SELU_ALPHA_PRIME = -1.7580993408473766  # -scale * alpha of SELU


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(input, shape, p):
    """A 0/1 array of ``shape`` (keep with probability ``1 - p``) on the input's device."""
    rng = generator_for(input.device)
    dtype = input._data.dtype
    draw = rng.random(shape, dtype="float32" if dtype.itemsize <= 4 else "float64")
    keep = (draw >= p).astype(dtype)
    return _backend.to_device(keep, _backend.device_index(input._data))


def _apply(input, scale_mask, inplace):
    mask = Tensor._wrap(scale_mask)
    if inplace:
        return input.mul_(mask)
    return input * mask


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input.mul_(0.0) if inplace else input * 0.0
    keep = _keep_mask(input, input.shape, p)
    keep *= 1.0 / (1.0 - p)
    return _apply(input, keep, inplace)


def _feature_dropout(input, p, training, inplace, nd, name):
    _check_p(p)
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D input, but received a "
                           f"{input.ndim}D input")
    if not training or p == 0.0:
        return input
    batched = input.ndim == nd + 2
    shape = tuple(input.shape[:2 if batched else 1]) + (1,) * nd
    keep = _keep_mask(input, shape, p)
    if p < 1.0:
        keep *= 1.0 / (1.0 - p)
    return _apply(input, keep, inplace)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, L)`` with probability ``p``."""
    return _feature_dropout(input, p, training, inplace, 1, "dropout1d")


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, H, W)`` with probability ``p``."""
    return _feature_dropout(input, p, training, inplace, 2, "dropout2d")


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, D, H, W)`` with probability ``p``."""
    return _feature_dropout(input, p, training, inplace, 3, "dropout3d")


def _alpha(input, p, training, shape):
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = _keep_mask(input, shape, p)
    a = ((1 - p) * (1 + p * _SELU_ALPHA_PRIME ** 2)) ** -0.5
    b = -a * _SELU_ALPHA_PRIME * p
    # out = a * (x * keep + alpha' * (1 - keep)) + b
    mult = Tensor._wrap(keep * a)
    add = Tensor._wrap((1 - keep) * (a * _SELU_ALPHA_PRIME) + b)
    return input * mult + add


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout that keeps the mean and variance of SELU activations: dropped elements become
    SELU's negative saturation value, then an affine map restores the statistics."""
    return _alpha(input, p, training, input.shape)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels."""
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _alpha(input, p, training, shape)
