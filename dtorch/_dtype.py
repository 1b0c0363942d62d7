"""dtypes with PyTorch's names, and PyTorch's type-promotion rules.

A :class:`dtype` wraps a NumPy dtype (CuPy uses the same dtype objects). Promotion follows
PyTorch, not NumPy: operands are ranked dimensioned tensors > zero-dim tensors > Python scalars,
and a lower-ranked operand only changes the result when it is of a higher category
(bool < integer < floating). So ``int_tensor * 2.5`` is float32 and ``uint8_tensor + 1000`` stays
uint8, where NumPy would say float64 and int64.
"""

import builtins

import numpy as np


class dtype:
    """A tensor element type (``dtorch.float32``, ``dtorch.int64``, ...)."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self._category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.is_signed = category == 2 or self.np.kind == "i"
        self.itemsize = self.np.itemsize

    @property
    def is_complex(self):
        return False

    def to_real(self):
        return self

    def __repr__(self):
        return f"dtorch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
uint8 = dtype("uint8", np.uint8, 1)
bool_ = dtype("bool", np.bool_, 0)

half, float, double = float16, float32, float64  # noqa: A001 - PyTorch's aliases
short, int, long = int16, int32, int64  # noqa: A001

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
_FROM_NP = {d.np: d for d in ALL}
_NAMES = {d.name: d for d in ALL}


def _by_name(name):
    return _NAMES[name]


def from_numpy_dtype(np_dtype):
    """The dtorch dtype for a NumPy dtype; TypeError for types dtorch does not support."""
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types "
            "are: float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


_default = [float32]


def get_default_dtype():
    """The dtype of floating-point tensors created from Python floats (float32 by default)."""
    return _default[0]


def set_default_dtype(d):
    """Set the default floating-point dtype (float32 or float64, as in PyTorch)."""
    d = as_dtype(d)
    if d not in (float16, float32, float64):
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default[0] = d


def as_dtype(d):
    """Accept a dtorch dtype, a NumPy dtype/type or the Python types float, int and bool."""
    if d is None or isinstance(d, dtype):
        return d
    if d is builtins.float:
        return _default[0]
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool_
    return from_numpy_dtype(d)


def promote_types(a, b):
    """The smallest dtype to which both ``a`` and ``b`` can be cast, by PyTorch's table."""
    if a is b:
        return a
    if a._category != b._category:
        hi, lo = (a, b) if a._category > b._category else (b, a)
        return hi
    if a._category == 2:
        return a if a.itemsize >= b.itemsize else b
    return _FROM_NP[np.promote_types(a.np, b.np)]


def scalar_dtype(value):
    """The dtype PyTorch gives a Python scalar when it is wrapped in a tensor."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (builtins.int, np.integer)):
        return int64
    return _default[0]


def combine(dim_dtype, other):
    """Let a lower-priority operand's dtype ``other`` act on ``dim_dtype`` only if of a higher
    category (PyTorch's ``combine_categories``)."""
    if dim_dtype is None:
        return other
    if other is None or other._category <= dim_dtype._category:
        return dim_dtype
    if other._category == 2 and dim_dtype._category < 2:
        return other
    return promote_types(dim_dtype, other)
