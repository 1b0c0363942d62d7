"""Helpers shared by the op definitions: broadcasting undo, dims, dtype promotion."""

import numpy as np

from .. import _dtype as D


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape`` (undoes NumPy broadcasting in backward)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def wrap_dim(dim, ndim):
    """A non-negative dim; IndexError in PyTorch's words when out of range."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def raise_if_not_broadcastable(*operands):
    """Raise PyTorch's RuntimeError when the operands' shapes do not broadcast together (called
    after NumPy refused, so the common path pays nothing); return quietly otherwise."""
    shapes = [tuple(getattr(x, "shape", ())) for x in operands]
    n = max(len(s) for s in shapes)
    padded = [(1,) * (n - len(s)) + s for s in shapes]
    acc = padded[0]
    for other in padded[1:]:
        for i in range(n - 1, -1, -1):
            if acc[i] != other[i] and acc[i] != 1 and other[i] != 1:
                raise RuntimeError(f"The size of tensor a ({acc[i]}) must match the size of "
                                   f"tensor b ({other[i]}) at non-singleton dimension {i}")
        acc = tuple(x if x != 1 else y for x, y in zip(acc, other))


def wrap_dims(dim, ndim):
    """``dim`` (None, int or sequence) as a tuple of non-negative dims, or None for all."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        return (wrap_dim(int(dim), ndim),)
    dims = tuple(wrap_dim(int(d), ndim) for d in dim)
    if len(set(dims)) != len(dims):
        dup = next(d for d in dims if dims.count(d) > 1)
        raise RuntimeError(f"dim {dup} appears multiple times in the list of dims")
    return dims if dims else None


def expand_reduced(grad, shape, dims, keepdim):
    """Reshape the gradient of a reduction over ``dims`` so that it broadcasts against ``shape``."""
    if keepdim or dims is None and grad.ndim == 0:
        return grad
    if dims is None:
        return grad.reshape((1,) * len(shape))
    out = list(grad.shape)
    for d in sorted(dims):
        out.insert(d, 1)
    return grad.reshape(out)


_TENSOR = []


def tensor_cls():
    """The Tensor class (imported on first use: ``_tensor`` imports the ops). Cached, because an
    import statement on every call cost about a microsecond per op."""
    if _TENSOR:
        return _TENSOR[0]
    from .._tensor import Tensor

    _TENSOR.append(Tensor)
    return Tensor


def _operand_dtype(x, Tensor):
    if isinstance(x, Tensor):
        return D._FROM_NP[x._data.dtype]
    return D.scalar_dtype(x)


def result_dtype(*operands):
    """PyTorch's result type of an op on tensors and Python scalars."""
    Tensor = tensor_cls()
    dim_t = zero_t = scalar = None
    for x in operands:
        if isinstance(x, Tensor):
            d = D._FROM_NP[x._data.dtype]
            if x._data.ndim:
                dim_t = d if dim_t is None else D.promote_types(dim_t, d)
            else:
                zero_t = d if zero_t is None else D.promote_types(zero_t, d)
        elif x is not None:
            d = D.scalar_dtype(x)
            scalar = d if scalar is None else D.promote_types(scalar, d)
    return D.combine(dim_t, D.combine(zero_t, scalar))


def promote(a, b):
    """Cast the tensor operands of a binary op to their PyTorch result dtype. Python scalars stay
    scalars (NumPy treats them as weakly typed, as PyTorch does) unless they raise the category."""
    Tensor = tensor_cls()
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb and a._data.dtype == b._data.dtype:
        return a, b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        # NOTE: NumPy arrays mix with tensors as tensors (``np_array * t`` is a Tensor).
        a = Tensor._wrap(a) if isinstance(a, np.ndarray) else a
        b = Tensor._wrap(b) if isinstance(b, np.ndarray) else b
        return promote(a, b)
    if ta != tb:
        t, s = (a, b) if ta else (b, a)
        kind = t._data.dtype.kind
        if type(s) is float and kind == "f" or type(s) is int and kind == "f":
            return a, b
        if type(s) is int and kind in "iu":
            lo, hi = _INT_RANGE[t._data.dtype]
            if not lo <= s <= hi:
                # NOTE: PyTorch wraps an out-of-range scalar around (uint8 + 1000 stays uint8).
                s = np.array(s).astype(t._data.dtype)
                return (a, s) if ta else (s, b)
            return a, b
    target = result_dtype(a, b)
    return _cast(a, target, Tensor), _cast(b, target, Tensor)


_INT_RANGE = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
              for t in (np.int8, np.int16, np.int32, np.int64, np.uint8)}


def _cast(x, target, Tensor):
    if isinstance(x, Tensor):
        if x._data.dtype != target.np:
            return x._to(None, target)
        return x
    if isinstance(x, (bool, int, float)):
        if target.is_floating_point:
            return float(x)
        if target is D.bool_:
            return bool(x)
        return int(x)
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"unsupported operand type {type(x).__name__}")


def float_input(x):
    """Integer and bool tensors promote to the default float dtype for float-valued ops
    (``sqrt``, ``exp``, ``mean``...), as in PyTorch."""
    if x._data.dtype.kind in "biu":
        return x._to(None, D.get_default_dtype())
    return x
