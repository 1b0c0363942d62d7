"""Activation functions of ``dtorch.nn.functional``.

Most are composed from tensor ops, so they need no hand-written backward. Three are fused
Primitives, each for numerical stability: ``softmax`` / ``log_softmax`` (shift by the maximum,
never overflow) and ``softplus`` (``log1p(exp(x))`` overflows for large ``x`` and a composed
``max(x, 0) + log1p(exp(-|x|))`` has the wrong derivative at 0). ``logsigmoid``, ``mish``,
``binary_cross_entropy_with_logits`` and ``soft_margin_loss`` build on ``softplus``.
"""

import math
import warnings

import dtorch

from ...amp.autocast_mode import autocast_op
from ...autograd.function import Primitive
from ...ops import register
from ...ops._util import float_input, wrap_dim

__all__ = [
    "celu", "celu_", "elu", "elu_", "gelu", "glu", "gumbel_softmax", "hardshrink", "hardsigmoid",
    "hardswish", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "log_softmax",
    "logsigmoid", "mish", "prelu", "relu", "relu6", "relu_", "rrelu", "rrelu_", "selu", "selu_",
    "sigmoid", "silu", "softmax", "softmin", "softplus", "softshrink", "softsign", "tanh",
    "tanhshrink", "threshold", "threshold_",
]


# ----------------------------------------------------------------------------- fused primitives
class LogSoftmax(Primitive):
    """``x - logsumexp(x, dim)``: fused for stability (the maximum is subtracted before ``exp``)
    and speed (one pass, backward ``g - exp(out) * sum(g)``)."""

    def forward(ctx, a, dim):
        xp = ctx.xp
        z = a - a.max(axis=dim, keepdims=True)
        out = z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
        ctx.dim = dim
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - ctx.xp.exp(out) * g.sum(axis=ctx.dim, keepdims=True)


class Softmax(Primitive):
    """``exp(x) / sum(exp(x), dim)``: fused for stability (shift by the maximum) and speed
    (attention calls it on large tensors; backward ``y * (g - sum(g * y))``)."""

    def forward(ctx, a, dim):
        e = ctx.xp.exp(a - a.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        ctx.dim = dim
        ctx.save_for_backward(e)
        return e

    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        gy = g * y
        return gy - y * gy.sum(axis=ctx.dim, keepdims=True)


class Softplus(Primitive):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``. Fused for
    stability: computed as ``max(z, 0) + log1p(exp(-|z|))`` (no overflow), with the exact
    derivative ``sigmoid(z)`` (0.5 at 0, which the composed form would get wrong)."""

    def forward(ctx, a, beta, threshold):
        xp = ctx.xp
        z = a * beta if beta != 1 else a
        e = xp.exp(-xp.abs(z))
        soft = xp.maximum(z, 0) + xp.log1p(e)
        if beta != 1:
            soft = soft / beta
        out = xp.where(z > threshold, a, soft).astype(a.dtype, copy=False)
        ctx.save_for_backward(z, e)
        ctx.threshold = threshold
        return out

    def backward(ctx, g):
        xp = ctx.xp
        z, e = ctx.saved_tensors
        sig = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return (g * xp.where(z > ctx.threshold, 1, sig)).astype(g.dtype, copy=False), None, None


# ----------------------------------------------------------------------------- helpers
def _inplace(input, fn, inplace, *args):
    """``fn(input, *args)``, written into ``input`` when ``inplace``."""
    if inplace:
        return input._inplace(fn, *args)
    return fn(input, *args)


def _softmax_dim(name, ndim, stacklevel):
    # NOTE: +1 for the frame of the autocast_op wrapper around the softmax family.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                  "include dim=X as an argument.", UserWarning, stacklevel=stacklevel + 1)
    return 0 if ndim in (0, 1, 3) else 1


def _float_cast(input, dtype):
    input = float_input(input)
    return input.to(dtype) if dtype is not None else input


# ----------------------------------------------------------------------------- softmax family
@register()
@autocast_op
def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x_i) / sum_j exp(x_j)`` along ``dim``, computed stably (fused Primitive).

    Args:
        input: the input tensor.
        dim: the dimension the probabilities sum to 1 over.
        dtype: cast the input to this dtype first (avoids overflow in half precision).

    Example::

        >>> F.softmax(dtorch.tensor([1.0, 2.0, 3.0]), dim=0)
        tensor([0.0900, 0.2447, 0.6652])
    """
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim, _stacklevel)
    input = _float_cast(input, dtype)
    if input.ndim == 0:
        return Softmax.apply(input.reshape(1), 0).reshape(())
    return Softmax.apply(input, wrap_dim(dim, input.ndim))


@register()
@autocast_op
def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed as ``x - logsumexp(x)`` (fused Primitive, no
    overflow for large inputs; use it with :func:`nll_loss`)."""
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim, _stacklevel)
    input = _float_cast(input, dtype)
    if input.ndim == 0:
        return LogSoftmax.apply(input.reshape(1), 0).reshape(())
    return LogSoftmax.apply(input, wrap_dim(dim, input.ndim))


@autocast_op
def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """``softmax(-x)`` along ``dim``."""
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim, _stacklevel)
    return softmax(-_float_cast(input, dtype), dim)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Sample from the Gumbel-softmax distribution: ``softmax((logits + g) / tau)`` with
    ``g ~ Gumbel(0, 1)``; ``hard=True`` returns one-hot samples whose gradient is the soft one
    (straight-through estimator)."""
    u = dtorch.empty_like(logits).exponential_()
    y = softmax((logits - u.log()) / tau, dim)
    if not hard:
        return y
    index = y.argmax(dim, keepdim=True)
    y_hard = dtorch.zeros_like(logits).scatter(dim, index, 1.0)
    return y_hard - y.detach() + y


# ----------------------------------------------------------------------------- rectifiers
def relu(input, inplace=False):
    """``max(0, x)``."""
    return input.relu_() if inplace else dtorch.relu(input)


def relu_(input):
    return input.relu_()


def _hardtanh(x, min_val, max_val):
    # NOTE: written with `where` so that the gradient is zero at the kinks themselves, as in
    # PyTorch (relu6'(0) = 0, hardsigmoid'(3) = 0); clamp's gradient would be 1 there.
    x = float_input(x)
    return dtorch.where(x <= min_val, min_val, dtorch.where(x >= max_val, max_val, x))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``x`` clipped to ``[min_val, max_val]``."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _inplace(input, _hardtanh, inplace, min_val, max_val)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    """``min(max(0, x), 6)``."""
    return hardtanh(input, 0.0, 6.0, inplace)


def _leaky(x, slope):
    return dtorch.where(x > 0, x, x * slope)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    return _inplace(input, _leaky, inplace, negative_slope)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


@autocast_op
def prelu(input, weight):
    """``max(0, x) + weight * min(0, x)`` with a learnable ``weight`` of 1 or ``C`` entries
    (``C`` = size of dim 1, or of dim 0 for 1-d input)."""
    n = weight.numel()
    if weight.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                           f"ndim = {weight.ndim}")
    if n != 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim else 1)
        if input.ndim == 0 or channels != n:
            raise RuntimeError(
                f"Mismatch of parameter numbers and input channel size. Found parameter numbers "
                f"= {n} and channel size = {channels}.")
        cdim = 1 if input.ndim >= 2 else 0
        weight = weight.reshape([n] + [1] * (input.ndim - cdim - 1))
    return dtorch.where(input > 0, input, input * weight)


def _rrelu(x, lower, upper, training):
    if not training:
        return _leaky(x, (lower + upper) / 2)
    slopes = dtorch.empty_like(x).uniform_(lower, upper)
    return dtorch.where(x >= 0, x, x * slopes)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU: in training the negative slope of each element is drawn from
    ``U(lower, upper)``; in evaluation it is fixed at ``(lower + upper) / 2``."""
    return _inplace(input, _rrelu, inplace, lower, upper, training)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def _threshold(x, threshold, value):
    return dtorch.where(x > threshold, x, value)


def threshold(input, threshold, value, inplace=False):
    """``x`` where ``x > threshold``, else ``value``."""
    return _inplace(input, _threshold, inplace, threshold, value)


def threshold_(input, threshold, value):
    return _inplace(input, _threshold, True, threshold, value)


# ----------------------------------------------------------------------------- exponential units
def _elu(x, alpha, scale=1.0, input_scale=1.0):
    x = float_input(x)
    # NOTE: exp of the clamped value only: the unselected branch must stay finite, otherwise
    # where's zero gradient times an infinite derivative would give NaN.
    neg = dtorch.expm1(x.clamp(max=0) * input_scale) * alpha
    out = dtorch.where(x > 0, x, neg)
    return out * scale if scale != 1.0 else out


def elu(input, alpha=1.0, inplace=False):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _inplace(input, _elu, inplace, alpha)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """``scale * elu(x, alpha)`` with the self-normalising constants ``alpha = 1.6733``,
    ``scale = 1.0507``."""
    return _inplace(input, _elu, inplace, _SELU_ALPHA, _SELU_SCALE)


def selu_(input):
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _inplace(input, _elu, inplace, alpha, 1.0, 1.0 / alpha)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def gelu(input, approximate="none"):
    """``x * Phi(x)`` (``Phi`` the standard normal CDF); ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""
    x = float_input(input)
    if approximate == "none":
        return x * 0.5 * (1.0 + dtorch.erf(x * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        inner = (x + 0.044715 * x * x * x) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (1.0 + dtorch.tanh(inner))
    raise RuntimeError(f"approximate argument must be either none or tanh, but got "
                       f"'{approximate}'")


# ----------------------------------------------------------------------------- sigmoid family
def sigmoid(input):
    """``1 / (1 + exp(-x))``."""
    return dtorch.sigmoid(input)


def tanh(input):
    return dtorch.tanh(input)


@autocast_op
def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, reverting to ``x`` where ``beta * x > threshold``
    (fused Primitive, stable for any input)."""
    return Softplus.apply(float_input(input), beta, threshold)


def logsigmoid(input):
    """``log(sigmoid(x)) = -softplus(-x)``, finite for any input."""
    return -Softplus.apply(-float_input(input), 1.0, math.inf)


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (the swish function)."""
    return _inplace(input, lambda x: x * dtorch.sigmoid(x), inplace)


def mish(input, inplace=False):
    """``x * tanh(softplus(x))``."""
    return _inplace(input, lambda x: x * dtorch.tanh(softplus(x)), inplace)


def _hardsigmoid(x):
    return _hardtanh(x + 3.0, 0.0, 6.0) / 6.0


def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``."""
    return _inplace(input, _hardsigmoid, inplace)


def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6``."""
    return _inplace(input, lambda x: x * _hardsigmoid(x), inplace)


def softsign(input):
    """``x / (1 + |x|)``."""
    return input / (1 + input.abs())


def tanhshrink(input):
    """``x - tanh(x)``."""
    return input - dtorch.tanh(input)


def softshrink(input, lambd=0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    x = float_input(input)
    return dtorch.where(x > lambd, x - lambd, dtorch.where(x < -lambd, x + lambd, 0.0))


def hardshrink(input, lambd=0.5):
    """``x`` where ``|x| > lambd``, else 0."""
    x = float_input(input)
    return dtorch.where((x > lambd) | (x < -lambd), x, 0.0)


def glu(input, dim=-1):
    """Gated linear unit: split ``input`` in halves ``a, b`` along ``dim``; ``a * sigmoid(b)``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    a, b = input.split(n // 2, d)
    return a * dtorch.sigmoid(b)
