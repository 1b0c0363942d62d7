"""Comparisons, logical and bitwise ops, and value tests. None of them is differentiable: their
outputs are bool (or integer) tensors."""

from ..autograd.function import Primitive
from . import register
from ._util import promote, raise_if_not_broadcastable


class _Compare(Primitive):
    differentiable = False
    ufunc = None

    def forward(ctx, a, b):
        return getattr(ctx.xp, ctx.ufunc)(a, b)


def _comparison(ufunc, name, op, reflected_op, doc):
    title = "".join(p.capitalize() for p in name.split("_"))
    cls = type(title, (_Compare,), {"ufunc": ufunc})

    def fn(input, other):
        a, b = promote(input, other)
        try:
            return cls.apply(a, b)
        except ValueError:
            raise_if_not_broadcastable(a, b)
            raise

    fn.__name__ = name
    fn.__doc__ = doc
    reflected = (reflected_op,) if reflected_op else ()
    return register(name, operators=(op,) if op else (), reflected=reflected,
                    inplace=True)(fn)


eq = _comparison("equal", "eq", "__eq__", None, "Elementwise ``input == other``.")
ne = _comparison("not_equal", "ne", "__ne__", None, "Elementwise ``input != other``.")
lt = _comparison("less", "lt", "__lt__", None, "Elementwise ``input < other``.")
le = _comparison("less_equal", "le", "__le__", None, "Elementwise ``input <= other``.")
gt = _comparison("greater", "gt", "__gt__", None, "Elementwise ``input > other``.")
ge = _comparison("greater_equal", "ge", "__ge__", None, "Elementwise ``input >= other``.")
register("greater", inplace=True)(gt)
register("less", inplace=True)(lt)
register("greater_equal", inplace=True)(ge)
register("less_equal", inplace=True)(le)
register("not_equal", inplace=True)(ne)

logical_and = _comparison("logical_and", "logical_and", None, None, "Elementwise AND.")
logical_or = _comparison("logical_or", "logical_or", None, None, "Elementwise OR.")
logical_xor = _comparison("logical_xor", "logical_xor", None, None, "Elementwise XOR.")
bitwise_and = _comparison("bitwise_and", "bitwise_and", "__and__", "__rand__",
                          "Bitwise AND of integer or bool tensors (``&``).")
bitwise_or = _comparison("bitwise_or", "bitwise_or", "__or__", "__ror__",
                         "Bitwise OR of integer or bool tensors (``|``).")
bitwise_xor = _comparison("bitwise_xor", "bitwise_xor", "__xor__", "__rxor__",
                          "Bitwise XOR of integer or bool tensors (``^``).")


class _Test(Primitive):
    differentiable = False
    ufunc = None

    def forward(ctx, a):
        return getattr(ctx.xp, ctx.ufunc)(a)


def _test(ufunc, name, op=None, doc=""):
    cls = type(name.capitalize(), (_Test,), {"ufunc": ufunc})

    def fn(input):
        return cls.apply(input)

    fn.__name__ = name
    fn.__doc__ = doc
    return register(name, operators=(op,) if op else (), inplace=name.startswith(("log", "bit")))(
        fn)


logical_not = _test("logical_not", "logical_not", doc="Elementwise NOT.")
bitwise_not = _test("invert", "bitwise_not", "__invert__", "Bitwise NOT (``~``).")
isnan = _test("isnan", "isnan", doc="True where the element is NaN.")
isinf = _test("isinf", "isinf", doc="True where the element is +/-inf.")
isfinite = _test("isfinite", "isfinite", doc="True where the element is neither inf nor NaN.")
signbit = _test("signbit", "signbit", doc="True where the sign bit is set.")


class IsClose(Primitive):
    differentiable = False

    def forward(ctx, a, b, rtol, atol, equal_nan):
        return ctx.xp.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


@register()
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|input - other| <= atol + rtol * |other|``."""
    a, b = promote(input, other)
    return IsClose.apply(a, b, rtol, atol, equal_nan)


@register()
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when every element of ``input`` is close to ``other`` (see ``isclose``)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


@register()
def equal(input, other):
    """True when both tensors have the same shape and elements."""
    return input.shape == other.shape and bool((input == other).all())
