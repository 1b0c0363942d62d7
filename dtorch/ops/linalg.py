"""Matrix products: ``matmul`` (``@``) with NumPy's broadcasting rules, ``mm``, ``bmm``, ``mv``,
``dot``, ``outer`` and ``einsum``."""

import string

from .. import _dtype as D
from ..amp.autocast_mode import autocast_op
from ..autograd.function import Primitive
from . import register
from ._util import unbroadcast


def _check_same_dtype(a, b):
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{_cname(a)} != {_cname(b)}")


def _cname(t):
    return {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
            "int32": "int"}.get(t.dtype.name, t.dtype.name)


class Matmul(Primitive):
    """General matmul; 1-d operands are promoted to matrices and the added dims dropped."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.matmul(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        xp = ctx.xp
        if a.ndim == 1 and b.ndim == 1:
            return g * b if na else None, g * a if nb else None
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        ga = gb = None
        if na:
            ga = _shaped(unbroadcast(xp.matmul(g, xp.swapaxes(b2, -1, -2)), a2.shape), a.shape)
        if nb:
            gb = _shaped(unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g), b2.shape), b.shape)
        return ga, gb


def _shaped(grad, shape):
    # NOTE: no reshape when the shape is right: a fresh array (not a view) can become a leaf's
    # .grad without a copy (see autograd.engine._stealable).
    return grad if grad.shape == shape else grad.reshape(shape)


class Mm(Matmul):
    pass


class Bmm(Matmul):
    pass


class Mv(Matmul):
    pass


class Dot(Matmul):
    pass


@register(operators=("__matmul__",), reflected=("__rmatmul__",))
@autocast_op
def matmul(input, other):
    """Matrix product with broadcasting over batch dims (NumPy's ``matmul`` rules)."""
    if input.ndim == 0 or other.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{input.ndim}D and {other.ndim}D")
    _check_same_dtype(input, other)
    k1 = input.shape[-1]
    k2 = other.shape[-2] if other.ndim > 1 else other.shape[0]
    if k1 != k2:
        if input.ndim == 2 and other.ndim == 2:
            _mm_error(input, other)
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{k1}] but got: [{k2}]." if input.ndim > 2 else
                           f"size mismatch, got input ({list(input.shape)}), other "
                           f"({list(other.shape)}): inner dimensions {k1} and {k2} differ")
    return Matmul.apply(input, other)


def _mm_error(a, b):
    raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} "
                       f"and {b.shape[0]}x{b.shape[1]})")


@register()
@autocast_op
def mm(input, mat2):
    """Product of two matrices."""
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    _check_same_dtype(input, mat2)
    if input.shape[1] != mat2.shape[0]:
        _mm_error(input, mat2)
    return Mm.apply(input, mat2)


@register()
@autocast_op
def bmm(input, mat2):
    """Batched matrix product of ``(b, n, m)`` and ``(b, m, p)`` tensors."""
    if input.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    _check_same_dtype(input, mat2)
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: "
                           f"[{mat2.shape[0]}, {mat2.shape[1]}].")
    return Bmm.apply(input, mat2)


@register()
@autocast_op
def mv(input, vec):
    """Matrix-vector product."""
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {vec.ndim}")
    _check_same_dtype(input, vec)
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({input.shape[0]}), mat "
                           f"({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})")
    return Mv.apply(input, vec)


@register()
@autocast_op
def dot(input, tensor):
    """Inner product of two 1-d tensors."""
    if input.ndim != 1 or tensor.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {tensor.ndim}D "
                           "tensors")
    if input._data.dtype != tensor._data.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{_cname(input).capitalize()} and {_cname(tensor).capitalize()}")
    if input.shape[0] != tensor.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
                           f"[{tensor.shape[0]}] to have the same number of elements, but got "
                           f"{input.shape[0]} and {tensor.shape[0]} elements respectively")
    return Dot.apply(input, tensor)


inner = register("inner")(dot)


@register()
def outer(input, vec2):
    """Outer product of two 1-d tensors."""
    for name, t in (("self", input), ("vec2", vec2)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = register("ger")(outer)


class Einsum(Primitive):
    """Einstein summation. The gradient of each operand is itself one einsum of the output
    gradient with the other operands; letters repeated within the operand (diagonals, ``'ii'``)
    are renamed and tied back with identity matrices, and letters summed over in that operand
    alone are broadcast with vectors of ones."""

    def forward(ctx, *arrays, spec):
        ctx.save_for_backward(*arrays)
        ctx.spec = spec
        return ctx.xp.einsum(spec, *arrays)

    def backward(ctx, g):
        arrays = ctx.saved_tensors
        inputs, output = ctx.spec.split("->")
        subs = inputs.split(",")
        xp = ctx.xp
        grads = []
        for i, (sub, need) in enumerate(zip(subs, ctx.needs_input_grad)):
            if not need:
                grads.append(None)
                continue
            others = [(s, a) for j, (s, a) in enumerate(zip(subs, arrays)) if j != i]
            available = set(output).union(*[set(s) for s, _ in others])
            sizes = dict(zip(sub, arrays[i].shape))
            kept = "".join(c for c in dict.fromkeys(sub) if c in available)
            terms = [output] + [s for s, _ in others]
            operands = [g] + [a for _, a in others]
            free = iter(c for c in string.ascii_letters
                        if c not in ctx.spec)
            target = []
            for c in sub:
                if c in target:  # a repeated letter: a fresh one, tied by an identity matrix
                    n = next(free)
                    terms.append(c + n)
                    operands.append(xp.eye(sizes[c], dtype=g.dtype))
                    target.append(n)
                else:
                    target.append(c)
                    if c not in kept:  # summed in this operand only: broadcast back
                        terms.append(c)
                        operands.append(xp.ones(sizes[c], dtype=g.dtype))
            spec = ",".join(terms) + "->" + "".join(target)
            grads.append(xp.einsum(spec, *operands).astype(g.dtype, copy=False))
        return tuple(grads)


def _explicit_spec(equation, tensors):
    """Normalise an einsum equation: spaces removed, ``...`` expanded, output made explicit."""
    eq = equation.replace(" ", "")
    inputs, _, output = eq.partition("->")
    subs = inputs.split(",")
    if len(subs) != len(tensors):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if len(tensors) > len(subs) else
                           "einsum(): fewer operands were provided than specified in the equation")
    unused = [c for c in string.ascii_letters if c not in eq]
    ell = ""
    if "..." in eq:
        n = max(t.ndim - (len(s) - 3) for s, t in zip(subs, tensors) if "..." in s)
        ell = "".join(unused[:n])
        subs = [s.replace("...", ell[n - (t.ndim - (len(s) - 3)):]) for s, t in zip(subs, tensors)]
    if "->" not in eq:
        counts = {}
        for c in "".join(subs):
            counts[c] = counts.get(c, 0) + 1
        output = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        output = output.replace("...", ell)
    seen = {}
    for k, (s, t) in enumerate(zip(subs, tensors)):
        if len(s) != t.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(s)}) "
                               f"does not match the number of dimensions ({t.ndim}) for operand "
                               f"{k} and no ellipsis was given")
        for c, n in zip(s, t.shape):
            if seen.get(c, n) != n and 1 not in (n, seen[c]):
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {k} which "
                                   f"does not broadcast with previously seen size {seen[c]}")
            seen[c] = n if seen.get(c, 1) == 1 else seen[c]
    return ",".join(subs) + "->" + output


@register(method=False)
@autocast_op
def einsum(equation, *operands):
    """Einstein summation, e.g. ``einsum('bij,bjk->bik', a, b)``."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    dt = operands[0].dtype
    for t in operands[1:]:
        dt = D.promote_types(dt, t.dtype)
    operands = tuple(t if t.dtype is dt else t._to(None, dt) for t in operands)
    return Einsum.apply(*operands, spec=_explicit_spec(equation, operands))
