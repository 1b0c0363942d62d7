"""Elementwise arithmetic: binary ops with broadcasting and PyTorch's type promotion, and the
unary math functions. Each Primitive saves only what its backward reads; ops whose derivative is
written in their output (exp, tanh, sigmoid, relu, sqrt...) save the output."""

import math

from .. import _backend
from .. import _dtype as D
from ..amp.autocast_mode import autocast_op
from ..autograd.function import Primitive
from . import register
from ._util import (
    float_input,
    promote,
    raise_if_not_broadcastable,
    result_dtype,
    tensor_cls,
    unbroadcast,
)


def _shape(x):
    return getattr(x, "shape", ())


def _apply2(cls, a, b, *args, **kwargs):
    """``cls.apply(a, b, ...)``, turning NumPy's broadcasting ValueError into PyTorch's
    RuntimeError (try costs nothing on the common path)."""
    try:
        return cls.apply(a, b, *args, **kwargs)
    except ValueError:
        raise_if_not_broadcastable(a, b)
        raise


# ----------------------------------------------------------------------------- binary ops
class Add(Primitive):
    def forward(ctx, a, b, alpha=1):
        ctx.shapes, ctx.alpha = (getattr(a, "shape", ()), getattr(b, "shape", ())), alpha
        return a + b if alpha == 1 else a + alpha * b

    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        gb = g if ctx.alpha == 1 else g * ctx.alpha
        return unbroadcast(g, sa) if na else None, unbroadcast(gb, sb) if nb else None


@register(operators=("__add__",), reflected=("__radd__",), inplace=True,
          inplace_operators=("__iadd__",))
def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    a, b = promote(input, other)
    try:
        return Add.apply(a, b, alpha=alpha)
    except ValueError:
        raise_if_not_broadcastable(a, b)
        raise


class Sub(Primitive):
    def forward(ctx, a, b, alpha=1):
        ctx.shapes, ctx.alpha = (getattr(a, "shape", ()), getattr(b, "shape", ())), alpha
        return a - b if alpha == 1 else a - alpha * b

    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None,
                unbroadcast(-g if ctx.alpha == 1 else -ctx.alpha * g, sb) if nb else None)


@register(operators=("__sub__",), reflected=("__rsub__",), inplace=True,
          inplace_operators=("__isub__",))
def sub(input, other, *, alpha=1):
    """``input - alpha * other`` with broadcasting."""
    a, b = promote(input, other)
    if getattr(a, "dtype", None) is D.bool_ and getattr(b, "dtype", D.bool_) is D.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    try:
        return Sub.apply(a, b, alpha=alpha)
    except ValueError:
        raise_if_not_broadcastable(a, b)
        raise


subtract = register("subtract", inplace=True)(sub)


class Mul(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g * b, _shape(a)) if na else None,
                unbroadcast(g * a, _shape(b)) if nb else None)


@register(operators=("__mul__",), reflected=("__rmul__",), inplace=True,
          inplace_operators=("__imul__",))
def mul(input, other):
    """Elementwise product with broadcasting."""
    a, b = promote(input, other)
    try:
        return Mul.apply(a, b)
    except ValueError:
        raise_if_not_broadcastable(a, b)
        raise


multiply = register("multiply", inplace=True)(mul)


class Div(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        gb = None
        if nb:
            gb = unbroadcast(-g * a / (b * b), _shape(b))
        return unbroadcast(g / b, _shape(a)) if na else None, gb


class DivRounded(Primitive):
    """``div`` with ``rounding_mode``: piecewise constant, so the gradient is zero (PyTorch)."""

    def forward(ctx, a, b, mode):
        xp = ctx.xp
        ctx.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        if mode == "floor":
            return xp.floor_divide(a, b)
        if xp.result_type(a, b).kind in "iu":
            # NOTE: integer truncating division without a float round trip (exact for int64).
            q = xp.floor_divide(a, b)
            return q + ((q < 0) & (q * b != a))
        q = a / b
        return xp.trunc(q).astype(q.dtype) if hasattr(q, "dtype") else math.trunc(q)

    def backward(ctx, g):
        na, nb = ctx.needs_input_grad[:2]
        xp = ctx.xp
        return (xp.zeros(ctx.shapes[0], g.dtype) if na else None,
                xp.zeros(ctx.shapes[1], g.dtype) if nb else None)


@register(operators=("__truediv__",), reflected=("__rtruediv__",), inplace=True,
          inplace_operators=("__itruediv__",))
def div(input, other, *, rounding_mode=None):
    """``input / other``; ``rounding_mode`` ``'trunc'`` or ``'floor'`` rounds the quotient."""
    a, b = promote(input, other)
    if rounding_mode is not None:
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                             f"but found '{rounding_mode}'")
        return _apply2(DivRounded, a, b, rounding_mode)
    if result_dtype(a, b)._category < 2:
        T = tensor_cls()
        a = float_input(a) if isinstance(a, T) else float(a)
        b = float_input(b) if isinstance(b, T) else float(b)
    try:
        return Div.apply(a, b)
    except ValueError:
        raise_if_not_broadcastable(a, b)
        raise


divide = register("divide", inplace=True)(div)
true_divide = register("true_divide", inplace=True)(div)


@register(operators=("__floordiv__",), reflected=("__rfloordiv__",), inplace=True,
          inplace_operators=("__ifloordiv__",))
def floor_divide(input, other):
    """``floor(input / other)`` (not differentiable, as in PyTorch)."""
    return div(input, other, rounding_mode="floor")


class Remainder(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.remainder(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        gb = unbroadcast(-g * ctx.xp.floor(a / b), _shape(b)) if nb else None
        return unbroadcast(g, _shape(a)) if na else None, gb


@register(operators=("__mod__",), reflected=("__rmod__",), inplace=True,
          inplace_operators=("__imod__",))
def remainder(input, other):
    """Python-style modulus: the result has the sign of ``other``."""
    return _apply2(Remainder, *promote(input, other))


class Pow(Primitive):
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        xp = ctx.xp
        ga = gb = None
        if na:
            # NOTE: masked where the exponent is 0, so that 0 ** 0 has gradient 0 (PyTorch's rule).
            ga = unbroadcast(xp.where(xp.asarray(b) == 0, 0, g * b * a ** (b - 1)), _shape(a))
        if nb:
            # d(a**b)/db = a**b * log(a), taken as 0 where a == 0 and b >= 0, as in PyTorch.
            base = xp.asarray(a, dtype=out.dtype)
            gb = xp.where((base == 0) & (xp.asarray(b) >= 0), 0, g * out * xp.log(base))
            gb = unbroadcast(gb, _shape(b))
        return (None if ga is None else ga.astype(g.dtype, copy=False),
                None if gb is None else gb.astype(g.dtype, copy=False))


@register(operators=("__pow__",), reflected=("__rpow__",), inplace=True,
          inplace_operators=("__ipow__",))
@autocast_op
def pow(input, exponent):
    """``input ** exponent`` (either may be a scalar)."""
    a, b = promote(input, exponent)
    T = tensor_cls()
    if isinstance(b, T) and isinstance(a, T) and b._data.dtype.kind in "iu" and (
            b._data < 0).any():
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    if isinstance(a, T) and isinstance(b, int) and b < 0 and a._data.dtype.kind in "iu":
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return _apply2(Pow, a, b)


class Maximum(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _minmax_grads(ctx, g, a > b, a == b, a, b)


class Minimum(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _minmax_grads(ctx, g, a < b, a == b, a, b)


def _minmax_grads(ctx, g, a_wins, tie, a, b):
    # NOTE: ties split the gradient evenly, as PyTorch does.
    na, nb = ctx.needs_input_grad
    xp = ctx.xp
    wa = xp.where(tie, 0.5, a_wins.astype(g.dtype)).astype(g.dtype, copy=False)
    return (unbroadcast(g * wa, _shape(a)) if na else None,
            unbroadcast(g * (1 - wa), _shape(b)) if nb else None)


@register()
def maximum(input, other):
    """Elementwise maximum (ties share the gradient)."""
    return _apply2(Maximum, *promote(input, other))


@register()
def minimum(input, other):
    """Elementwise minimum (ties share the gradient)."""
    return _apply2(Minimum, *promote(input, other))


class Atan2(Primitive):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.arctan2(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        d = a * a + b * b
        return (unbroadcast(g * b / d, _shape(a)) if na else None,
                unbroadcast(-g * a / d, _shape(b)) if nb else None)


@register(inplace=True)
def atan2(input, other):
    """Elementwise ``atan(input / other)`` in the right quadrant."""
    a, b = promote(input, other)
    return _apply2(Atan2, float_input(a), float_input(b))


@register(inplace=True)
def lerp(input, end, weight):
    """``input + weight * (end - input)``."""
    return input + weight * (end - input)


# ----------------------------------------------------------------------------- unary ops
class Neg(Primitive):
    def forward(ctx, a):
        if a.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return -a

    def backward(ctx, g):
        return -g


@register(operators=("__neg__",), inplace=True)
def neg(input):
    """``-input``."""
    return Neg.apply(input)


negative = register("negative", inplace=True)(neg)


@register(operators=("__pos__",))
def positive(input):
    return input


class Exp(Primitive):
    def forward(ctx, a):
        out = ctx.xp.exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        return g * ctx.saved_tensors[0]


class Log(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.log(a)

    def backward(ctx, g):
        return g / ctx.saved_tensors[0]


class Log1p(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.log1p(a)

    def backward(ctx, g):
        return g / (1 + ctx.saved_tensors[0])


class Expm1(Primitive):
    def forward(ctx, a):
        out = ctx.xp.expm1(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        return g * (ctx.saved_tensors[0] + 1)


class Sqrt(Primitive):
    def forward(ctx, a):
        out = ctx.xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        return g / (2 * ctx.saved_tensors[0])


class Rsqrt(Primitive):
    def forward(ctx, a):
        out = 1 / ctx.xp.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        out = ctx.saved_tensors[0]
        return -0.5 * g * out * out * out


class Abs(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.abs(a)

    def backward(ctx, g):
        return g * ctx.xp.sign(ctx.saved_tensors[0])


class Sin(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.sin(a)

    def backward(ctx, g):
        return g * ctx.xp.cos(ctx.saved_tensors[0])


class Cos(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.cos(a)

    def backward(ctx, g):
        return -g * ctx.xp.sin(ctx.saved_tensors[0])


class Tan(Primitive):
    def forward(ctx, a):
        out = ctx.xp.tan(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        out = ctx.saved_tensors[0]
        return g * (1 + out * out)


class Asin(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.arcsin(a)

    def backward(ctx, g):
        a = ctx.saved_tensors[0]
        return g / ctx.xp.sqrt(1 - a * a)


class Acos(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.arccos(a)

    def backward(ctx, g):
        a = ctx.saved_tensors[0]
        return -g / ctx.xp.sqrt(1 - a * a)


class Atan(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.arctan(a)

    def backward(ctx, g):
        a = ctx.saved_tensors[0]
        return g / (1 + a * a)


class Sinh(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.sinh(a)

    def backward(ctx, g):
        return g * ctx.xp.cosh(ctx.saved_tensors[0])


class Cosh(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.cosh(a)

    def backward(ctx, g):
        return g * ctx.xp.sinh(ctx.saved_tensors[0])


class Tanh(Primitive):
    def forward(ctx, a):
        out = ctx.xp.tanh(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        out = ctx.saved_tensors[0]
        return g * (1 - out * out)


class Sigmoid(Primitive):
    def forward(ctx, a):
        xp = ctx.xp
        # NOTE: exp of a non-positive argument only, so large |a| neither overflows nor warns.
        e = xp.exp(-xp.abs(a))
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        out = ctx.saved_tensors[0]
        return g * out * (1 - out)


class Relu(Primitive):
    def forward(ctx, a):
        out = ctx.xp.maximum(a, 0).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        return g * (ctx.saved_tensors[0] > 0)


class Erf(Primitive):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _backend.erf(a)

    def backward(ctx, g):
        a = ctx.saved_tensors[0]
        return g * (2 / math.sqrt(math.pi)) * ctx.xp.exp(-a * a)


class Reciprocal(Primitive):
    def forward(ctx, a):
        out = 1 / a
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        out = ctx.saved_tensors[0]
        return -g * out * out


class _Rounding(Primitive):
    """floor, ceil, round, trunc, sign: piecewise constant, so the gradient is zero."""

    def backward(ctx, g):
        return ctx.xp.zeros_like(g)


class Floor(_Rounding):
    def forward(ctx, a):
        return ctx.xp.floor(a) if a.dtype.kind == "f" else a.copy()


class Ceil(_Rounding):
    def forward(ctx, a):
        return ctx.xp.ceil(a) if a.dtype.kind == "f" else a.copy()


class Trunc(_Rounding):
    def forward(ctx, a):
        return ctx.xp.trunc(a) if a.dtype.kind == "f" else a.copy()


class Round(_Rounding):
    def forward(ctx, a, decimals=0):
        return ctx.xp.round(a, decimals) if a.dtype.kind == "f" else a.copy()


class Sign(_Rounding):
    def forward(ctx, a):
        return ctx.xp.sign(a) if a.dtype.kind != "b" else a.copy()


class Clamp(Primitive):
    """``min(max(a, lo), hi)``; ``lo``/``hi`` are None, scalars or broadcastable arrays. The
    gradient goes to ``a`` inside the closed interval and to the bound that was taken outside
    it (ties go to ``a``, as in PyTorch)."""

    def forward(ctx, a, lo, hi):
        xp = ctx.xp
        out = a if lo is None else xp.maximum(a, lo)
        below = None if lo is None else a < lo
        above = None if hi is None else out > hi
        if hi is not None:
            out = xp.minimum(out, hi)
        ctx.masks = (below, above)
        ctx.shapes = (a.shape, _shape(lo), _shape(hi))
        return out.astype(a.dtype, copy=False) if out is not a else a.copy()

    def backward(ctx, g):
        below, above = ctx.masks
        sa, slo, shi = ctx.shapes
        na, nlo, nhi = ctx.needs_input_grad
        xp = ctx.xp
        zero = g.dtype.type(0)
        ga = glo = ghi = None
        if below is not None and above is not None:
            below = below & ~above
        if na:
            outside = below if above is None else above if below is None else below | above
            ga = unbroadcast(xp.where(outside, zero, g), sa)
        if nlo:
            glo = unbroadcast(xp.where(below, g, zero), slo)
        if nhi:
            ghi = unbroadcast(xp.where(above, g, zero), shi)
        return ga, glo, ghi


def _unary(cls, name, float_only=True, doc=""):
    def op(input):
        return cls.apply(float_input(input) if float_only else input)

    op.__name__ = name
    op.__doc__ = doc or f"Elementwise ``{name}``."
    return register(name, inplace=True)(autocast_op(op))


exp = _unary(Exp, "exp")
log = _unary(Log, "log", doc="Natural logarithm.")
log1p = _unary(Log1p, "log1p", doc="``log(1 + input)``, accurate for small input.")
expm1 = _unary(Expm1, "expm1", doc="``exp(input) - 1``, accurate for small input.")
sqrt = _unary(Sqrt, "sqrt")
rsqrt = _unary(Rsqrt, "rsqrt", doc="``1 / sqrt(input)``.")
sin = _unary(Sin, "sin")
cos = _unary(Cos, "cos")
tan = _unary(Tan, "tan")
asin = _unary(Asin, "asin")
acos = _unary(Acos, "acos")
atan = _unary(Atan, "atan")
sinh = _unary(Sinh, "sinh")
cosh = _unary(Cosh, "cosh")
tanh = _unary(Tanh, "tanh")
sigmoid = _unary(Sigmoid, "sigmoid", doc="``1 / (1 + exp(-input))``, stable for large |input|.")
erf = _unary(Erf, "erf", doc="The error function.")
reciprocal = _unary(Reciprocal, "reciprocal", doc="``1 / input``.")
abs = _unary(Abs, "abs", float_only=False)  # noqa: A001
relu = _unary(Relu, "relu", float_only=False, doc="``max(input, 0)``.")
floor = _unary(Floor, "floor", float_only=False)
ceil = _unary(Ceil, "ceil", float_only=False)
trunc = _unary(Trunc, "trunc", float_only=False)
sign = _unary(Sign, "sign", float_only=False)
register("__abs__", method=True, function=False)(abs)
register("absolute", inplace=True)(abs)
register("arcsin", inplace=True)(asin)
register("arccos", inplace=True)(acos)
register("arctan", inplace=True)(atan)
register("fix", inplace=True)(trunc)


@register(inplace=True)
def round(input, *, decimals=0):  # noqa: A001
    """Round half to even, as PyTorch does; ``decimals`` rounds to that many digits."""
    return Round.apply(input, decimals=decimals)


@register(inplace=True)
@autocast_op
def log2(input):
    return log(input) / math.log(2.0)


@register(inplace=True)
@autocast_op
def log10(input):
    return log(input) / math.log(10.0)


@register(inplace=True)
def square(input):
    return mul(input, input)


@register(inplace=True)
def frac(input):
    """``input - trunc(input)``."""
    return input - trunc(input)


@register(inplace=True)
def clamp(input, min=None, max=None):  # noqa: A002
    """Limit values to ``[min, max]``; the gradient is zero outside the interval."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    T = tensor_cls()
    if isinstance(min, T) or isinstance(max, T):
        dt = result_dtype(input, min, max)
        input, min, max = (x._to(None, dt) if isinstance(x, T) else x for x in (input, min, max))
        try:
            return Clamp.apply(input, min, max)
        except ValueError:
            raise_if_not_broadcastable(*(x for x in (input, min, max) if x is not None))
            raise
    if input._data.dtype.kind in "iub" and (isinstance(min, float) or isinstance(max, float)):
        input = float_input(input)
    return Clamp.apply(input, min, max)


clip = register("clip", inplace=True)(clamp)
register("clamp_min", inplace=True)(lambda input, min: clamp(input, min=min))
register("clamp_max", inplace=True)(lambda input, max: clamp(input, max=max))


class Where(Primitive):
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (_shape(a), _shape(b))
        return ctx.xp.where(cond, a, b)

    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        _, na, nb = ctx.needs_input_grad
        zero = g.dtype.type(0)
        return (None,
                unbroadcast(ctx.xp.where(cond, g, zero), ctx.shapes[0]) if na else None,
                unbroadcast(ctx.xp.where(cond, zero, g), ctx.shapes[1]) if nb else None)


@register()
def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; with only ``condition``, the indices
    of its non-zero elements (``nonzero(as_tuple=True)``)."""
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if condition._data.dtype.kind != "b":
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {_dtype_word(condition)}")
    a, b = promote(input, other)
    T = tensor_cls()
    if not isinstance(a, T) and not isinstance(b, T):
        a = condition.new_full((), a, dtype=result_dtype(a, b))
    try:
        return Where.apply(condition, a, b)
    except ValueError:
        raise_if_not_broadcastable(condition, a, b)
        raise


def _dtype_word(t):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
            "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte"}.get(
        t._data.dtype.name, t._data.dtype.name)
