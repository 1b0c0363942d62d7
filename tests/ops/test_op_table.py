"""The op table: one list of cases drives the tests of every registered op.

Each :class:`Case` names a registered op, its arguments (NumPy arrays become tensors) and a NumPy
reference. From it the tests check

* forward: every way to call the op (``dtorch.add(a, b)``, ``a.add(b)``, ``a + b``, and the
  in-place ``a.clone().add_(b)`` where the result fits ``a``) against the reference;
* backward: autograd's gradient of ``sum(w * op(x))`` (random fixed ``w``) against float64
  central finite differences, and the in-place variant's gradient against the function's;
* coverage: every name in ``dtorch.ops.registered()`` has at least one case.

Tables of dtypes (PyTorch's promotion, values learned from PyTorch 2.x) and of errors (types and
messages) follow. Ties, kinks and random ops have explicit tests at the end.
"""

import math

import numpy as np
import pytest

import dtorch as dt
from dtorch.ops import _REGISTRY

_rng = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- input makers
def R(*shape, lo=-2.0, hi=2.0):
    """float64 values in [lo, hi], at least 0.1 away from 0 (no kinks at 0 for abs, relu...)."""
    x = _rng.uniform(lo, hi, shape)
    return np.where(np.abs(x) < 0.1, 0.1 + np.abs(x), x)


def P(*shape):
    """Positive float64 values."""
    return _rng.uniform(0.5, 2.0, shape)


def U(*shape):
    """float64 values in (-0.8, 0.8) (asin, acos, tan)."""
    return _rng.uniform(-0.8, 0.8, shape)


def S(*shape):
    """Distinct float64 values (no ties for max, sort, topk...)."""
    n = math.prod(shape)
    return (_rng.permutation(n) * 0.37 - 0.2 * n + _rng.uniform(0, 0.05, n)).reshape(shape)


def I(*shape, lo=-5, hi=6):  # noqa: E743
    return _rng.integers(lo, hi, shape).astype(np.int64)


def B(*shape):
    return _rng.random(shape) < 0.5


def Z(*shape):
    """Values with zeros (prod, cumprod, norm)."""
    x = R(*shape)
    x.reshape(-1)[::3] = 0.0
    return x


class Case:
    """One op call: ``op`` (registered name), positional ``args`` (NumPy arrays become tensors,
    also inside lists), keyword ``kw``, and ``ref(*numpy_args, **kw)`` giving the expected result
    (an array, a scalar or a tuple of them). ``call`` replaces the generic call when the op needs
    it; ``grad=False`` skips the finite-difference check."""

    def __init__(self, op, args, ref, kw=None, *, call=None, grad=True, rtol=1e-7, atol=1e-9,
                 fd_atol=1e-5, tag=""):
        self.op, self.args, self.ref, self.kw = op, args, ref, kw or {}
        self.call, self.grad, self.rtol, self.atol, self.fd_atol = call, grad, rtol, atol, fd_atol
        self.tag = tag

    def __repr__(self):
        shapes = ",".join("x".join(map(str, a.shape)) or "0d" if isinstance(a, np.ndarray)
                          else type(a).__name__ for a in self.args)
        return f"{self.op}[{shapes}{',' if self.kw else ''}{self.tag or _kw_id(self.kw)}]"


def _kw_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


def C(op, args, ref, **kw_and_opts):
    opts = {k: kw_and_opts.pop(k) for k in ("call", "grad", "rtol", "atol", "fd_atol", "tag")
            if k in kw_and_opts}
    return Case(op, args, ref, kw_and_opts, **opts)


def _unary(op, ref, make=R, grad=True, shapes=((2, 3), (), (4,)), **opts):
    return [C(op, (make(*s),), ref, grad=grad, **opts) for s in shapes]


def _binary(op, ref, make=(R, R), shapes=(((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)),
                                          ((), (2, 2)), ((3,), ())), **opts):
    return [C(op, (make[0](*sa), make[1](*sb)), ref, **opts) for sa, sb in shapes]


def _np_erf(x):
    return np.vectorize(math.erf)(x)


def _np_var(x, axis=None, correction=1, keepdims=False):
    return np.var(x, axis=axis, ddof=correction, keepdims=keepdims)


def _lse(x, dim, keepdim=False):
    m = np.max(x, axis=dim, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=dim)


def _np_gather(x, dim, idx):
    grids = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)])
    grids[dim] = idx
    return x[tuple(grids)]


def _np_scatter(x, dim, idx, src, reduce=None):
    out = x.copy()
    grids = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)])
    grids[dim] = idx
    vals = src[tuple(slice(0, s) for s in idx.shape)] if np.ndim(src) else src
    if reduce == "add":
        np.add.at(out, tuple(grids), vals)
    else:
        out[tuple(grids)] = vals
    return out


def _np_split(x, sizes, axis=0):
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _np_sort(x, axis=-1, descending=False):
    idx = np.argsort(-x if descending else x, axis=axis, kind="stable")
    return np.take_along_axis(x, idx, axis=axis), idx


def _perm_idx(*shape, dim_size):
    """int64 indices in [0, dim_size) without repeats along the last axis (for scatter)."""
    rows = [_rng.permutation(dim_size)[:shape[-1]] for _ in range(math.prod(shape[:-1]))]
    return np.array(rows, dtype=np.int64).reshape(shape)


_GATHER_IDX = np.array([[0, 2, 1, 0], [3, 3, 0, 1]], dtype=np.int64)
_SCATTER_IDX = np.array([[0, 2, 1], [3, 1, 0]], dtype=np.int64)
_SCATTER_ADD_IDX = np.array([[0, 2, 0], [3, 3, 0]], dtype=np.int64)
_MASK23 = np.array([[True, False, True], [False, False, True]])

# ----------------------------------------------------------------------------- the table
CASES = [
    # ---- binary arithmetic (broadcasting, 0-d operands, scalars, reflected operators)
    *_binary("add", np.add),
    C("add", (R(2, 3), R(3)), lambda a, b, alpha: a + alpha * b, alpha=2.5),
    C("add", (R(2, 3), 3), np.add), C("add", (R(2, 3), 1.5), np.add),
    *_binary("sub", np.subtract),
    C("sub", (R(2, 3), R(2, 3)), lambda a, b, alpha: a - alpha * b, alpha=-2),
    C("sub", (2, R(2, 3)), lambda a, b: a - b, call=lambda a, b: 2 - b, tag="rsub"),
    C("subtract", (R(2, 3), R(3)), np.subtract),
    *_binary("mul", np.multiply),
    C("mul", (R(3), 2.5), np.multiply),
    C("mul", (R(3),), lambda a: 2.5 * a, call=lambda a: 2.5 * a, tag="rmul"),
    C("multiply", (R(2, 3), R(3)), np.multiply),
    *_binary("div", np.divide),
    C("div", (R(2, 3),), lambda a: 2 / a, call=lambda a: 2 / a, tag="rdiv"),
    C("div", (R(2, 3), R(3)), lambda a, b, rounding_mode: np.trunc(a / b),
      rounding_mode="trunc"),
    C("div", (R(2, 3), R(3)), lambda a, b, rounding_mode: np.floor(a / b),
      rounding_mode="floor"),
    C("div", (I(2, 3), I(3, lo=1)), lambda a, b, rounding_mode: np.trunc(a / b).astype(np.int64),
      rounding_mode="trunc"),
    C("divide", (R(2, 3), R(3)), np.divide), C("true_divide", (R(2, 3), R(3)), np.divide),
    C("floor_divide", (I(2, 3), I(3, lo=1)), np.floor_divide),
    C("floor_divide", (R(2, 3), 0.7), np.floor_divide, grad=False),
    C("floor_divide", (R(3),), lambda a: np.floor_divide(3, a), call=lambda a: 3 // a,
      grad=False, tag="rfloordiv"),
    C("remainder", (R(2, 3), P(3) + 1.0), np.remainder),
    C("remainder", (I(2, 3), I(3, lo=1)), np.remainder),
    C("remainder", (I(4), -3), np.remainder),
    C("remainder", (R(3),), lambda a: np.remainder(5.0, a), call=lambda a: 5.0 % a, tag="rmod"),
    *_binary("pow", np.power, make=(P, R)),
    C("pow", (R(2, 3), 2), np.power), C("pow", (P(2, 3), 0.5), np.power),
    C("pow", (R(2, 3),), lambda a: 2.0 ** a, call=lambda a: 2 ** a, tag="rpow"),
    C("pow", (I(4, lo=0, hi=4), 3), np.power),
    *_binary("maximum", np.maximum, make=(S, S)),
    *_binary("minimum", np.minimum, make=(S, S)),
    *_binary("atan2", np.arctan2),
    C("lerp", (R(2, 3), R(2, 3), 0.3), lambda a, b, w: a + w * (b - a)),
    C("lerp", (R(2, 3), R(3), R(2, 1)), lambda a, b, w: a + w * (b - a)),
    # ---- unary math
    *_unary("neg", np.negative), *_unary("negative", np.negative, shapes=((3,),)),
    C("neg", (I(3),), np.negative),
    *_unary("positive", lambda x: x, shapes=((3,),)),
    *_unary("exp", np.exp), *_unary("log", np.log, make=P), *_unary("log1p", np.log1p, make=P),
    *_unary("expm1", np.expm1), *_unary("sqrt", np.sqrt, make=P),
    *_unary("rsqrt", lambda x: 1 / np.sqrt(x), make=P),
    *_unary("abs", np.abs), C("abs", (I(4),), np.abs),
    *_unary("__abs__", np.abs, shapes=((3,),)), *_unary("absolute", np.abs, shapes=((3,),)),
    *_unary("sin", np.sin), *_unary("cos", np.cos), *_unary("tan", np.tan, make=U),
    *_unary("asin", np.arcsin, make=U), *_unary("acos", np.arccos, make=U),
    *_unary("atan", np.arctan), *_unary("arcsin", np.arcsin, make=U, shapes=((3,),)),
    *_unary("arccos", np.arccos, make=U, shapes=((3,),)),
    *_unary("arctan", np.arctan, shapes=((3,),)),
    *_unary("sinh", np.sinh), *_unary("cosh", np.cosh), *_unary("tanh", np.tanh),
    *_unary("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    C("sigmoid", (np.array([-800.0, -30.0, 0.0, 30.0, 800.0]),), lambda x: 1 / (1 + np.exp(-x)),
      grad=False),
    *_unary("erf", _np_erf, rtol=1e-6, atol=1e-7),
    *_unary("reciprocal", np.reciprocal), *_unary("relu", lambda x: np.maximum(x, 0)),
    C("relu", (I(5),), lambda x: np.maximum(x, 0)),
    C("exp", (I(3, lo=0, hi=3),), lambda x: np.exp(x).astype(np.float32), rtol=1e-6),
    *_unary("floor", np.floor), *_unary("ceil", np.ceil), *_unary("trunc", np.trunc),
    *_unary("fix", np.trunc, shapes=((3,),)), *_unary("round", np.round),
    C("round", (np.array([0.5, 1.5, 2.5, -0.5, 1.2345]),), lambda x, decimals: np.round(x, 2),
      decimals=2),
    *_unary("sign", np.sign), C("sign", (I(5),), np.sign),
    *_unary("frac", lambda x: x - np.trunc(x)),
    *_unary("log2", np.log2, make=P), *_unary("log10", np.log10, make=P),
    *_unary("square", np.square), C("square", (I(3),), np.square),
    C("clamp", (R(2, 3),), lambda x, min, max: np.clip(x, min, max), min=-0.5, max=0.5),
    C("clamp", (R(2, 3),), lambda x, min: np.maximum(x, min), min=0.3),
    C("clamp", (R(2, 3),), lambda x, max: np.minimum(x, max), max=0.3),
    C("clamp", (S(2, 3), S(3), S(2, 3) + 100), lambda x, lo, hi: np.clip(x, lo, hi)),
    C("clamp", (I(2, 3),), lambda x, min, max: np.clip(x, min, max), min=-1, max=2),
    C("clip", (R(2, 3),), lambda x, min, max: np.clip(x, min, max), min=-0.5, max=0.5),
    C("clamp_min", (R(2, 3), 0.2), np.maximum), C("clamp_max", (R(2, 3), 0.2), np.minimum),
    C("where", (_MASK23, R(2, 3), R(3)), np.where),
    C("where", (_MASK23, R(2, 3), 0.5), np.where),
    C("where", (_MASK23[0], R(2, 1), R(2, 3)), np.where),
    C("where", (_MASK23,), lambda m: np.nonzero(m)),
    # ---- comparisons, logic, tests
    *[c for op, ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                        ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal))
      for c in _binary(op, ref, make=(I, I), shapes=(((2, 3), (2, 3)), ((2, 3), (3,))))],
    C("eq", (R(2, 3), 0.5), np.equal), C("lt", (R(2, 3), R(3)), np.less),
    C("gt", (R(3),), lambda a: 0.0 > a, call=lambda a: 0.0 > a, tag="rgt"),
    C("greater", (I(3), I(3)), np.greater), C("less", (I(3), I(3)), np.less),
    C("greater_equal", (I(3), I(3)), np.greater_equal),
    C("less_equal", (I(3), I(3)), np.less_equal), C("not_equal", (I(3), I(3)), np.not_equal),
    C("logical_and", (B(2, 3), I(3)), np.logical_and),
    C("logical_or", (B(2, 3), R(2, 3)), np.logical_or),
    C("logical_xor", (I(2, 3), B(3)), np.logical_xor), C("logical_not", (I(5),), np.logical_not),
    C("bitwise_and", (I(2, 3), I(3)), np.bitwise_and),
    C("bitwise_and", (B(2, 3), B(2, 3)), np.bitwise_and),
    C("bitwise_or", (I(2, 3), I(2, 3)), np.bitwise_or),
    C("bitwise_xor", (B(2, 3), B(3)), np.bitwise_xor),
    C("bitwise_not", (I(4),), np.invert), C("bitwise_not", (B(4),), np.invert),
    C("isnan", (np.array([1.0, np.nan, np.inf]),), np.isnan),
    C("isinf", (np.array([1.0, np.nan, -np.inf]),), np.isinf),
    C("isfinite", (np.array([1.0, np.nan, np.inf]),), np.isfinite),
    C("signbit", (np.array([1.0, -0.0, -2.0]),), np.signbit),
    C("isclose", (np.array([1.0, 2.0, np.nan]), np.array([1.0 + 1e-9, 2.1, np.nan])),
      np.isclose),
    C("isclose", (np.array([1.0, np.nan]), np.array([1.05, np.nan]), 0.1, 1e-8, True),
      np.isclose),
    C("allclose", (np.array([1.0, 2.0]), np.array([1.0 + 1e-9, 2.0])), np.allclose),
    C("allclose", (np.array([1.0, 2.0]), np.array([1.0, 2.1])), np.allclose),
    C("equal", (np.array([1.0, 2.0]), np.array([1.0, 2.0])), np.array_equal),
    C("equal", (np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])), np.array_equal),
    # ---- reductions
    C("sum", (R(2, 3),), np.sum), C("sum", (R(),), np.sum),
    C("sum", (R(2, 3),), lambda x, dim: x.sum(dim), dim=1),
    C("sum", (R(2, 3, 4),), lambda x, dim, keepdim: x.sum(dim, keepdims=True), dim=(0, -1),
      keepdim=True),
    C("sum", (R(2, 3),), lambda x, dim: x.sum(dim), dim=-2),
    C("sum", (I(2, 3),), np.sum), C("sum", (B(2, 3),), lambda x, dim: x.sum(dim), dim=0),
    C("mean", (R(2, 3),), np.mean), C("mean", (R(),), np.mean),
    C("mean", (R(2, 3, 4),), lambda x, dim, keepdim: x.mean(dim, keepdims=True), dim=(-1, 0),
      keepdim=True),
    C("mean", (R(2, 3),), lambda x, dim: x.mean(dim), dim=-1),
    C("prod", (R(2, 3),), np.prod), C("prod", (Z(2, 3),), np.prod),
    C("prod", (Z(3, 4),), lambda x, dim: x.prod(dim), dim=1),
    C("prod", (R(3, 4),), lambda x, dim, keepdim: x.prod(dim, keepdims=True), dim=-2,
      keepdim=True),
    C("prod", (I(2, 3),), np.prod), C("prod", (R(),), np.prod),
    C("max", (S(2, 3),), np.max), C("max", (S(),), np.max),
    C("max", (S(2, 3),), lambda x, dim: (x.max(dim), x.argmax(dim)), dim=1),
    C("max", (S(2, 3),), lambda x, dim, keepdim: (x.max(dim, keepdims=True),
                                                  x.argmax(dim, keepdims=True)),
      dim=-2, keepdim=True),
    C("max", (S(2, 3), S(3)), np.maximum),
    C("min", (S(2, 3),), np.min),
    C("min", (S(2, 3),), lambda x, dim: (x.min(dim), x.argmin(dim)), dim=0),
    C("min", (S(2, 3), S(2, 3)), np.minimum),
    C("amax", (S(2, 3, 4),), lambda x, dim: x.max(dim), dim=(0, 2)),
    C("amax", (S(2, 3),), np.max),
    C("amin", (S(2, 3, 4),), lambda x, dim, keepdim: x.min(dim, keepdims=True), dim=-1,
      keepdim=True),
    C("argmax", (S(2, 3),), np.argmax),
    C("argmax", (S(2, 3),), lambda x, dim, keepdim: x.argmax(dim, keepdims=True), dim=1,
      keepdim=True),
    C("argmin", (S(2, 3),), lambda x, dim: x.argmin(dim), dim=-2),
    C("var", (R(2, 3),), lambda x: np.var(x, ddof=1)),
    C("var", (R(3, 4),), lambda x, dim: np.var(x, dim, ddof=1), dim=1),
    C("var", (R(3, 4),), lambda x, dim, correction, keepdim: _np_var(x, dim, 0, True),
      dim=(0, 1), correction=0, keepdim=True),
    C("var", (R(3, 4),), lambda x, dim, unbiased: np.var(x, dim, ddof=0), dim=0,
      unbiased=False),
    C("std", (R(2, 3),), lambda x: np.std(x, ddof=1)),
    C("std", (R(3, 4),), lambda x, dim, keepdim: np.std(x, dim, ddof=1, keepdims=True), dim=-1,
      keepdim=True),
    C("var_mean", (R(3, 4),), lambda x, dim: (np.var(x, dim, ddof=1), np.mean(x, dim)), dim=1),
    C("std_mean", (R(3, 4),), lambda x: (np.std(x, ddof=1), np.mean(x))),
    C("norm", (R(2, 3),), np.linalg.norm), C("norm", (Z(3, 4),), np.linalg.norm),
    C("norm", (R(3, 4),), lambda x, p, dim: np.linalg.norm(x, 1, dim), p=1, dim=1),
    C("norm", (R(3, 4),), lambda x, p, dim, keepdim: np.sum(np.abs(x) ** 3, dim, keepdims=True)
      ** (1 / 3), p=3, dim=-1, keepdim=True),
    C("norm", (S(3, 4),), lambda x, p: np.abs(x).max(), p=math.inf),
    C("logsumexp", (R(3, 4),), _lse, dim=1),
    C("logsumexp", (R(3, 4),), _lse, dim=(0, -1), keepdim=True),
    C("logsumexp", (R(),), lambda x, dim: x, dim=0),
    C("softmax", (R(3, 4),), lambda x, dim: np.exp(x - _lse(x, dim, True)), dim=1),
    C("softmax", (R(2, 3, 2),), lambda x, dim: np.exp(x - _lse(x, dim, True)), dim=-3),
    C("log_softmax", (R(3, 4),), lambda x, dim: x - _lse(x, dim, True), dim=0),
    C("log_softmax", (R(5),), lambda x, dim: x - _lse(x, dim, True), dim=-1),
    C("repeat_interleave", (R(2, 3),), lambda x, repeats, dim: np.repeat(x, repeats, dim),
      repeats=2, dim=1),
    C("repeat_interleave", (R(3, 2),), lambda x, repeats, dim: np.repeat(x, [1, 0, 2], dim),
      call=lambda x: x.repeat_interleave(dt.tensor([1, 0, 2]), dim=0), repeats=None, dim=0),
    C("repeat_interleave", (R(2, 2),), lambda x, repeats: np.repeat(x.reshape(-1), repeats),
      repeats=3),
    C("unique", (np.array([3.0, 1.0, 3.0, 2.0]),), lambda x: np.unique(x), grad=False),
    C("unique", (np.array([[1, 2], [1, 2], [0, 5]]),),
      lambda x, dim, return_counts: (np.unique(x, axis=0), np.array([1, 2])),
      dim=0, return_counts=True, grad=False),
    C("cumsum", (R(3, 4),), lambda x, dim: np.cumsum(x, dim), dim=1),
    C("cumsum", (R(3, 4),), lambda x, dim: np.cumsum(x, dim), dim=-2),
    C("cumsum", (I(5),), lambda x, dim: np.cumsum(x, dim), dim=0),
    C("cumprod", (R(3, 4),), lambda x, dim: np.cumprod(x, dim), dim=1),
    C("cumprod", (Z(3, 4),), lambda x, dim: np.cumprod(x, dim), dim=-1),
    C("cumprod", (np.array([2.0, 0.0, 3.0, 0.0, 1.5]),), lambda x, dim: np.cumprod(x), dim=0),
    C("all", (B(2, 3),), np.all), C("all", (I(2, 3),), lambda x, dim: np.all(x, dim), dim=1),
    C("any", (B(2, 3),), np.any),
    C("any", (R(2, 3),), lambda x, dim, keepdim: np.any(x, dim, keepdims=True), dim=0,
      keepdim=True),
    C("count_nonzero", (I(3, 4, lo=0, hi=2),), np.count_nonzero),
    C("count_nonzero", (I(3, 4, lo=0, hi=2),), lambda x, dim: np.count_nonzero(x, dim), dim=1),
    # ---- shape ops
    C("view", (R(2, 6), 3, 4), lambda x, *s: x.reshape(s)),
    C("view", (R(2, 6), (-1, 3)), lambda x, s: x.reshape(s)),
    C("view", (R(), 1), lambda x, s: x.reshape(s)),
    C("reshape", (R(2, 6), (4, -1)), lambda x, s: x.reshape(s)),
    C("reshape", (R(2, 3), -1), lambda x, s: x.T.reshape(s),
      call=lambda x, s: x.t().reshape(s), tag="noncontig"),
    C("view_as", (R(2, 6), R(3, 4)), lambda x, y: x.reshape(y.shape)),
    C("reshape_as", (R(2, 6), R(4, 3)), lambda x, y: x.reshape(y.shape)),
    C("flatten", (R(2, 3, 4),), lambda x: x.reshape(-1)),
    C("flatten", (R(2, 3, 4),), lambda x, start_dim: x.reshape(2, -1), start_dim=1),
    C("flatten", (R(),), lambda x: x.reshape(1)),
    C("unflatten", (R(2, 6), 1, (2, -1)), lambda x, d, s: x.reshape(2, 2, 3)),
    C("squeeze", (R(2, 1, 3, 1),), np.squeeze),
    C("squeeze", (R(2, 1, 3),), lambda x, dim: x.squeeze(dim), dim=-2),
    C("squeeze", (R(2, 1, 1),), lambda x, dim: x.reshape(2), dim=(1, 2)),
    C("squeeze", (R(2, 3),), lambda x, dim: x, dim=0),
    C("unsqueeze", (R(2, 3), -1), np.expand_dims), C("unsqueeze", (R(), 0), np.expand_dims),
    C("permute", (R(2, 3, 4), 2, 0, 1), lambda x, *d: x.transpose(d)),
    C("permute", (R(2, 3, 4), (-1, 0, 1)), lambda x, d: x.transpose(2, 0, 1)),
    C("transpose", (R(2, 3, 4), 0, -1), np.swapaxes),
    C("swapaxes", (R(2, 3), 0, 1), np.swapaxes), C("swapdims", (R(2, 3), 1, 0), np.swapaxes),
    C("t", (R(2, 3),), np.transpose), C("t", (R(3),), lambda x: x),
    C("movedim", (R(2, 3, 4), 0, -1), np.moveaxis),
    C("moveaxis", (R(2, 3, 4), (0, 1), (2, 0)), np.moveaxis),
    C("expand", (R(3, 1), 2, 3, 4), lambda x, *s: np.broadcast_to(x, s)),
    C("expand", (R(3, 1), (-1, 4)), lambda x, s: np.broadcast_to(x, (3, 4))),
    C("expand", (R(), (2,)), lambda x, s: np.broadcast_to(x, s)),
    C("expand_as", (R(1, 3), R(2, 3)), lambda x, y: np.broadcast_to(x, y.shape)),
    C("broadcast_to", (R(3), (2, 3)), np.broadcast_to),
    C("repeat", (R(2, 3), 2, 1), lambda x, *r: np.tile(x, r)),
    C("repeat", (R(3), (2, 2)), lambda x, r: np.tile(x, r)),
    C("tile", (R(2, 3), (2,)), lambda x, r: np.tile(x, r)),
    C("cat", ([R(2, 3), R(1, 3)],), np.concatenate),
    C("cat", ([R(2, 3), R(2, 1)], -1), lambda ts, d: np.concatenate(ts, d)),
    C("cat", ([R(2), I(3)],), lambda ts: np.concatenate([ts[0], ts[1].astype(np.float64)])),
    C("concat", ([R(2, 3), R(2, 3)], 1), lambda ts, d: np.concatenate(ts, d)),
    C("concatenate", ([R(2), R(0), R(1)],), np.concatenate),
    C("stack", ([R(2, 3), R(2, 3)],), np.stack),
    C("stack", ([R(2, 3), R(2, 3)], -1), lambda ts, d: np.stack(ts, d)),
    C("hstack", ([R(2, 3), R(2, 1)],), np.hstack), C("vstack", ([R(3), R(2, 3)],), np.vstack),
    C("split", (R(5, 2), 2), lambda x, s: _np_split(x, [2, 2, 1])),
    C("split", (R(2, 5), [1, 4], -1), lambda x, s, d: _np_split(x, s, 1)),
    C("chunk", (R(5, 2), 3), lambda x, c: _np_split(x, [2, 2, 1])),
    C("tensor_split", (R(5, 2), 3), lambda x, c: _np_split(x, [2, 2, 1])),
    C("tensor_split", (R(2, 6), [1, 4], 1), lambda x, i, d: tuple(np.split(x, i, axis=d))),
    C("unbind", (R(3, 2),), lambda x: tuple(x)),
    C("unbind", (R(3, 2), -1), lambda x, d: tuple(x.T)),
    C("narrow", (R(4, 5), 1, 1, 3), lambda x, d, s, n: x[:, 1:4]),
    C("narrow", (R(4, 5), -2, -2, 2), lambda x, d, s, n: x[2:4]),
    C("flip", (R(2, 3, 4), (0, -1)), lambda x, d: np.flip(x, d)),
    C("flip", (R(3), 0), lambda x, d: np.flip(x, d)),
    C("fliplr", (R(2, 3),), np.fliplr), C("flipud", (R(2, 3),), np.flipud),
    C("roll", (R(3, 4), 1), lambda x, s: np.roll(x, s)),
    C("roll", (R(3, 4), (1, -1), (0, 1)), np.roll),
    C("roll", (R(3, 4), 2, -1), np.roll),
    C("gather", (R(4, 3), 0, _GATHER_IDX.T.copy()), _np_gather),
    C("gather", (R(2, 5), 1, _GATHER_IDX), _np_gather),
    C("gather", (R(2, 5), -1, _GATHER_IDX[:, :2]), _np_gather),
    C("scatter", (R(2, 5), 1, _SCATTER_IDX, R(2, 4)), _np_scatter),
    C("scatter", (R(5, 2), 0, _perm_idx(2, 2, dim_size=5).T.copy(), R(2, 2)), _np_scatter),
    C("scatter", (R(2, 5), -1, _SCATTER_IDX), lambda x, d, i, value: _np_scatter(x, d, i, 0.5),
      value=0.5),
    C("scatter_add", (R(2, 5), 1, _SCATTER_ADD_IDX, R(2, 3)),
      lambda x, d, i, s: _np_scatter(x, d, i, s, "add")),
    C("index_select", (R(4, 3), 0, np.array([3, 0, 3])), lambda x, d, i: np.take(x, i, d)),
    C("index_select", (R(4, 3), -1, np.array([2, 1])), lambda x, d, i: np.take(x, i, d)),
    C("masked_fill", (R(2, 3), _MASK23, 0.5), lambda x, m, v: np.where(m, v, x)),
    C("masked_fill", (R(2, 3), _MASK23[1], R()), lambda x, m, v: np.where(m, v, x)),
    C("tril", (R(3, 4),), np.tril), C("tril", (R(2, 3, 3), -1), np.tril),
    C("triu", (R(3, 4),), np.triu), C("triu", (R(4, 3), 1), np.triu),
    C("sort", (S(3, 4),), _np_sort),
    C("sort", (S(3, 4), 0, True), lambda x, d, desc: _np_sort(x, d, True)),
    C("sort", (np.array([2, 1, 2, 0, 1]),), lambda x: _np_sort(x)),
    C("argsort", (S(3, 4),), lambda x: np.argsort(x, -1)),
    C("argsort", (S(3, 4), 0, True), lambda x, d, desc: np.argsort(-x, 0)),
    C("msort", (S(3, 2),), lambda x: np.sort(x, 0)),
    C("topk", (S(3, 5), 2), lambda x, k: tuple(a[:, :2] for a in _np_sort(x, -1, True))),
    C("topk", (S(5, 3), 2, 0, False), lambda x, k, d, lg: tuple(a[:2] for a in _np_sort(x, 0))),
    # ---- matrix products
    C("matmul", (R(2, 3), R(3, 4)), np.matmul), C("matmul", (R(3), R(3, 4)), np.matmul),
    C("matmul", (R(2, 3), R(3)), np.matmul), C("matmul", (R(3), R(3)), np.matmul),
    C("matmul", (R(2, 2, 3), R(3, 4)), np.matmul),
    C("matmul", (R(2, 1, 2, 3), R(3, 3, 2)), np.matmul),
    C("matmul", (R(4), R(2, 4, 3)), np.matmul),
    C("mm", (R(2, 3), R(3, 4)), np.matmul), C("bmm", (R(2, 2, 3), R(2, 3, 2)), np.matmul),
    C("mv", (R(2, 3), R(3)), np.matmul), C("dot", (R(3), R(3)), np.dot),
    C("inner", (R(3), R(3)), np.inner), C("outer", (R(3), R(2)), np.outer),
    C("ger", (R(3), R(2)), np.outer),
    C("einsum", ("ij,jk->ik", R(2, 3), R(3, 4)), np.einsum),
    C("einsum", ("bij,bjk", R(2, 2, 3), R(2, 3, 2)), np.einsum),
    C("einsum", ("i,j->ij", R(3), R(2)), np.einsum),
    C("einsum", ("ij->", R(2, 3)), np.einsum),
    C("einsum", ("ij->j", R(2, 3)), np.einsum),
    C("einsum", ("ii->i", R(3, 3)), np.einsum),
    C("einsum", ("ii", R(3, 3)), np.einsum),
    C("einsum", ("...ij,...jk->...ik", R(2, 2, 3), R(3, 2)), np.einsum),
    C("einsum", ("ij,ij->i", R(2, 3), R(2, 3)), np.einsum),
    C("einsum", ("i,i,i->", R(3), R(3), R(3)), np.einsum),
    # ---- index helpers
    C("nonzero", (I(3, 4, lo=0, hi=2),), lambda x: np.argwhere(x)),
    C("nonzero", (B(2, 3),), lambda x, as_tuple: np.nonzero(x), as_tuple=True),
    C("nonzero", (np.array(2.0),), lambda x: np.zeros((1, 0), np.int64)),
    C("argwhere", (R(2, 3) > 0,), np.argwhere),
    C("masked_select", (R(2, 3), _MASK23), lambda x, m: x[m]),
    C("masked_select", (R(2, 3), _MASK23[0]), lambda x, m: x[np.broadcast_to(m, x.shape)]),
]

# Random ops are checked by their own tests below (distribution, shape, dtype, seeding).
RANDOM_OPS = {"bernoulli", "multinomial"}


# ----------------------------------------------------------------------------- machinery
def _to_tensors(args, device, requires_grad):
    def conv(a):
        if isinstance(a, np.ndarray):
            t = dt.tensor(a).to(device)
            if requires_grad and a.dtype.kind == "f":
                t.requires_grad_()
            return t
        if isinstance(a, list) and any(isinstance(x, np.ndarray) for x in a):
            return [conv(x) for x in a]
        return a

    return [conv(a) for a in args]


def _leaves(targs):
    out = []
    for a in targs:
        if isinstance(a, dt.Tensor) and a.requires_grad:
            out.append(a)
        elif isinstance(a, list):
            out += [x for x in a if isinstance(x, dt.Tensor) and x.requires_grad]
    return out


def _as_np(x):
    if isinstance(x, dt.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (tuple, list)):
        return tuple(_as_np(v) for v in x)
    return x


def _assert_match(got, want, case, what):
    got = _as_np(got)
    if isinstance(want, (tuple, list)):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: {got!r} vs {want!r}"
        for g, w in zip(got, want):
            _assert_match(g, w, case, what)
        return
    if isinstance(want, bool):
        assert got is bool(want), f"{what}: {got!r} is not {bool(want)}"
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}, want an array"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, want {want.dtype}"
    np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol, err_msg=what)


def _variants(case):
    """(description, callable) for every way of calling the op that the registry installs."""
    spec = _REGISTRY[case.op]
    name, kw = case.op, case.kw
    if case.call is not None:
        return [("call", case.call)]
    out = []
    first_is_tensor = isinstance(case.args[0], np.ndarray)
    if spec["function"]:
        out.append((f"dtorch.{name}", lambda *a: getattr(dt, name)(*a, **kw)))
    if spec["method"] and first_is_tensor:
        out.append((f"Tensor.{name}", lambda *a: getattr(a[0], name)(*a[1:], **kw)))
    if not kw and first_is_tensor and len(case.args) <= 2:
        for op in spec["operators"]:
            out.append((op, lambda *a, op=op: getattr(a[0], op)(*a[1:])))
        if len(case.args) == 2 and isinstance(case.args[1], np.ndarray):
            for op in spec["reflected"]:
                out.append((op, lambda *a, op=op: getattr(a[1], op)(a[0])))
    return out


def _inplace_variants(case):
    spec = _REGISTRY[case.op]
    if case.call is not None or not spec["inplace"] or not isinstance(case.args[0], np.ndarray):
        return []
    out = [(f"{case.op}_", lambda *a: getattr(a[0], case.op + "_")(*a[1:], **case.kw))]
    if not case.kw and len(case.args) == 2:
        for op in spec["inplace_operators"]:
            out.append((op, lambda *a, op=op: getattr(a[0], op)(a[1])))
    return out


def _fits_inplace(result, first):
    return (isinstance(result, dt.Tensor) and result.shape == first.shape
            and result.dtype._category <= first.dtype._category)


def _weighted_loss(out, weights):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    loss = None
    for o, w in zip(outs, weights):
        if isinstance(o, dt.Tensor) and o.requires_grad:
            term = (o * dt.tensor(w).to(o.device)).sum()
            loss = term if loss is None else loss + term
    return loss


def _weights_for(out, seed):
    rng = np.random.default_rng(seed)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [rng.uniform(0.5, 1.5, tuple(o.shape)) if isinstance(o, dt.Tensor) else None
            for o in outs]


def _numeric_grads(fn, targs, leaves, weights, eps=1e-6):
    """Central differences of ``sum(w * fn(*targs))`` w.r.t. every element of ``leaves``."""
    grads = []
    with dt.no_grad():
        for t in leaves:
            flat = t._data.reshape(-1)  # a view: leaves are fresh contiguous tensors
            g = np.zeros(flat.size)
            for k in range(flat.size):
                orig = float(flat[k])
                flat[k] = orig + eps
                plus = _loss_value(fn(*targs), weights)
                flat[k] = orig - eps
                minus = _loss_value(fn(*targs), weights)
                flat[k] = orig
                g[k] = (plus - minus) / (2 * eps)
            grads.append(g.reshape(t.shape))
    return grads


def _loss_value(out, weights):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(float((_as_np(o).astype(np.float64) * w).sum()) for o, w in zip(outs, weights)
               if isinstance(o, dt.Tensor) and o.dtype.is_floating_point)


def _autograd_grads(out, weights, leaves):
    for t in leaves:
        t.grad = None
    loss = _weighted_loss(out, weights)
    if loss is None:
        return None
    loss.backward()
    return [np.zeros(t.shape) if t.grad is None else t.grad.cpu().numpy() for t in leaves]


# ----------------------------------------------------------------------------- tests
_IDS = [repr(c) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_forward(case, device):
    """Every way to call the op gives the NumPy reference (values, shape and dtype)."""
    want = case.ref(*case.args, **case.kw)
    for what, fn in _variants(case):
        targs = _to_tensors(case.args, device, False)
        _assert_match(fn(*targs), want, case, what)
    for what, fn in _inplace_variants(case):
        targs = _to_tensors(case.args, device, False)
        first = targs[0]
        result = getattr(dt, case.op)(*targs, **case.kw) if _REGISTRY[case.op]["function"] \
            else getattr(first, case.op)(*targs[1:], **case.kw)
        if not _fits_inplace(result, first):
            continue
        ret = fn(*targs)
        assert ret is first, f"{what} must return self"
        _assert_match(first, np.asarray(want).astype(first.dtype.np), case, what)


_GRAD_CASES = [c for c in CASES if c.grad and any(
    isinstance(a, np.ndarray) and a.dtype.kind == "f" or isinstance(a, list) for a in c.args)]


@pytest.mark.parametrize("case", _GRAD_CASES, ids=[repr(c) for c in _GRAD_CASES])
def test_backward(case, device):
    """Autograd matches float64 central differences; in-place variants give the same grads."""
    variants = _variants(case)
    what, fn = variants[0]
    targs = _to_tensors(case.args, device, True)
    leaves = _leaves(targs)
    out = fn(*targs)
    weights = _weights_for(out, 7)
    analytic = _autograd_grads(out, weights, leaves)
    if analytic is None:  # e.g. an integer result: nothing is differentiable
        return
    numeric = _numeric_grads(fn, targs, leaves, weights)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(a, n, rtol=1e-4, atol=case.fd_atol,
                                   err_msg=f"{what}: gradient of input {i}")
    for what, ifn in _inplace_variants(case):
        first = targs[0]
        if not (first.requires_grad and _fits_inplace(out, first)
                and out.dtype == first.dtype):
            continue
        ip_out = ifn(first.clone(), *targs[1:])
        got = _autograd_grads(ip_out, weights, leaves)
        for i, (a, g) in enumerate(zip(analytic, got)):
            np.testing.assert_allclose(g, a, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{what}: gradient of input {i}")


# ----------------------------------------------------------------------------- dtypes
def _i(T, dt="int64"):
    return T.tensor([1, 2, 3], dtype=getattr(T, dt))


def _f(T, dt="float32"):
    return T.tensor([1.5, -2.0, 3.0], dtype=getattr(T, dt))


def _b(T):
    return T.tensor([True, False, True])


i, f, b = _i, _f, _b
# (what, expression on the module T, the dtype PyTorch 2.x gives)
DTYPES = [
    ("int*2.5", lambda T: i(T) * 2.5, "float32"),
    ("int32*2.5", lambda T: i(T, "int32") * 2.5, "float32"),
    ("uint8+1000", lambda T: i(T, "uint8") + 1000, "uint8"),
    ("uint8+int8", lambda T: i(T, "uint8") + i(T, "int8"), "int16"),
    ("int32+int64 0d", lambda T: i(T, "int32") + T.tensor(5), "int32"),
    ("int32+float64 0d", lambda T: i(T, "int32") + T.tensor(5.0, dtype=T.float64), "float64"),
    ("f32*f64 0d", lambda T: f(T) * T.tensor(2.0, dtype=T.float64), "float32"),
    ("f32 0d*f64 0d", lambda T: T.tensor(1.0) * T.tensor(2.0, dtype=T.float64), "float64"),
    ("f16+f32 0d", lambda T: f(T, "float16") + T.tensor(2.0), "float16"),
    ("f16+f64", lambda T: f(T, "float16") + f(T, "float64"), "float64"),
    ("bool+bool", lambda T: b(T) + b(T), "bool"),
    ("bool*bool", lambda T: b(T) * b(T), "bool"),
    ("bool+1", lambda T: b(T) + 1, "int64"),
    ("bool+1.5", lambda T: b(T) + 1.5, "float32"),
    ("bool+True", lambda T: b(T) + True, "bool"),
    ("int/int", lambda T: i(T) / i(T), "float32"),
    ("int/2", lambda T: i(T) / 2, "float32"),
    ("int32/int32", lambda T: i(T, "int32") / i(T, "int32"), "float32"),
    ("f64/int", lambda T: f(T, "float64") / i(T), "float64"),
    ("int//int", lambda T: i(T) // 2, "int64"),
    ("int%int", lambda T: i(T) % 2, "int64"),
    ("int%2.5", lambda T: i(T) % 2.5, "float32"),
    ("2**int", lambda T: 2 ** i(T), "int64"),
    ("2.0**int", lambda T: 2.0 ** i(T), "float32"),
    ("int**2", lambda T: i(T) ** 2, "int64"),
    ("int**0.5", lambda T: i(T) ** 0.5, "float32"),
    ("2-int", lambda T: 2 - i(T), "int64"),
    ("2.5-int", lambda T: 2.5 - i(T), "float32"),
    ("sum int", lambda T: i(T).sum(), "int64"),
    ("sum int32", lambda T: i(T, "int32").sum(), "int64"),
    ("sum bool", lambda T: b(T).sum(), "int64"),
    ("sum uint8 dim", lambda T: i(T, "uint8").sum(0), "int64"),
    ("sum f16", lambda T: f(T, "float16").sum(), "float16"),
    ("sum dtype", lambda T: i(T).sum(dtype=T.float64), "float64"),
    ("prod int32", lambda T: i(T, "int32").prod(), "int64"),
    ("cumsum int32", lambda T: i(T, "int32").cumsum(0), "int64"),
    ("cumsum bool", lambda T: b(T).cumsum(0), "int64"),
    ("cumprod int32", lambda T: i(T, "int32").cumprod(0), "int64"),
    ("mean f64", lambda T: f(T, "float64").mean(), "float64"),
    ("mean int dtype", lambda T: i(T).mean(dtype=T.float32), "float32"),
    ("max int", lambda T: i(T).max(), "int64"),
    ("amax uint8", lambda T: i(T, "uint8").amax(), "uint8"),
    ("argmax", lambda T: f(T).argmax(), "int64"),
    ("max dim idx", lambda T: f(T).max(0)[1], "int64"),
    ("eq", lambda T: i(T) == 2, "bool"),
    ("lt f", lambda T: f(T) < i(T), "bool"),
    ("isnan", lambda T: f(T).isnan(), "bool"),
    ("logical_and", lambda T: i(T).logical_and(f(T)), "bool"),
    ("bitwise int32&int64", lambda T: i(T, "int32") & i(T), "int64"),
    ("bool&bool", lambda T: b(T) & b(T), "bool"),
    ("~bool", lambda T: ~b(T), "bool"),
    ("~uint8", lambda T: ~i(T, "uint8"), "uint8"),
    ("sqrt int", lambda T: i(T).sqrt(), "float32"),
    ("exp bool", lambda T: b(T).exp(), "float32"),
    ("sigmoid int", lambda T: i(T).sigmoid(), "float32"),
    ("abs int32", lambda T: i(T, "int32").abs(), "int32"),
    ("neg int8", lambda T: -i(T, "int8"), "int8"),
    ("floor int", lambda T: i(T).floor(), "int64"),
    ("round int", lambda T: i(T).round(), "int64"),
    ("sign int", lambda T: i(T).sign(), "int64"),
    ("relu int", lambda T: i(T).relu(), "int64"),
    ("clamp int int", lambda T: i(T).clamp(0, 2), "int64"),
    ("clamp int float", lambda T: i(T).clamp(0.5, 2), "float32"),
    ("clamp f16", lambda T: f(T, "float16").clamp(0, 1), "float16"),
    ("square int", lambda T: i(T).square(), "int64"),
    ("reciprocal int", lambda T: i(T).reciprocal(), "float32"),
    ("log2 int", lambda T: i(T).log2(), "float32"),
    ("frac f64", lambda T: f(T, "float64").frac(), "float64"),
    ("maximum int f", lambda T: T.maximum(i(T), f(T)), "float32"),
    ("maximum int32 int64", lambda T: T.maximum(i(T, "int32"), i(T)), "int64"),
    ("atan2 int", lambda T: T.atan2(i(T), i(T)), "float32"),
    ("where 1 2.5", lambda T: T.where(b(T), 1, 2.5), "float32"),
    ("where int 2.5", lambda T: T.where(b(T), i(T), 2.5), "float32"),
    ("where 1 2", lambda T: T.where(b(T), 1, 2), "int64"),
    ("where f32 f64", lambda T: T.where(b(T), f(T), f(T, "float64")), "float64"),
    ("where int32 f16", lambda T: T.where(b(T), i(T, "int32"), f(T, "float16")), "float16"),
    ("cat int f", lambda T: T.cat([i(T), f(T)]), "float32"),
    ("cat uint8 int8", lambda T: T.cat([i(T, "uint8"), i(T, "int8")]), "int16"),
    ("stack bool int", lambda T: T.stack([b(T), i(T, "int32")]), "int32"),
    ("lerp f64", lambda T: T.lerp(f(T, "float64"), f(T, "float64"), 0.5), "float64"),
    ("var f16", lambda T: f(T, "float16").var(), "float16"),
    ("norm f64", lambda T: f(T, "float64").norm(), "float64"),
    ("logsumexp int", lambda T: i(T).logsumexp(0), "float32"),
    ("matmul int", lambda T: i(T) @ i(T), "int64"),
    ("outer int f", lambda T: T.outer(i(T), i(T)), "int64"),
    ("einsum f64", lambda T: T.einsum("i,i->", f(T, "float64"), f(T, "float64")), "float64"),
    ("masked_fill int 2.5", lambda T: i(T).masked_fill(b(T), 2), "int64"),
    ("gather int32", lambda T: i(T, "int32").gather(0, T.tensor([0, 0])), "int32"),
    ("sort uint8", lambda T: i(T, "uint8").sort()[0], "uint8"),
    ("topk idx", lambda T: f(T).topk(2)[1], "int64"),
    ("count_nonzero", lambda T: f(T).count_nonzero(), "int64"),
    ("nonzero", lambda T: f(T).nonzero(), "int64"),
    ("float_div int trunc", lambda T: i(T).div(2, rounding_mode="floor"), "int64"),
    ("f32 / 0d int", lambda T: f(T) / T.tensor(2), "float32"),
    ("int iadd 0d f", lambda T: i(T) + T.tensor(2.5), "float32"),
    ("remainder bool int", lambda T: i(T, "int16") % 3, "int16"),
    ("int f16 0d", lambda T: i(T) * T.tensor(1.0, dtype=T.float16), "float16"),
]


@pytest.mark.parametrize("what,expr,want", DTYPES, ids=[d[0] for d in DTYPES])
def test_result_dtype(what, expr, want):
    """PyTorch's type promotion and result dtypes (values learned from PyTorch)."""
    assert expr(dt).dtype is getattr(dt, want)


def test_out_of_range_scalar_wraps_like_pytorch():
    assert (dt.tensor([1, 2], dtype=dt.uint8) + 1000).tolist() == [233, 234]
    assert (dt.tensor([1, 2], dtype=dt.int8) * -300).tolist() == [-44, -88]


# ----------------------------------------------------------------------------- errors
def _o(*shape):
    return dt.ones(*shape)


ERRORS = [
    (lambda: dt.mm(_o(2, 3), _o(4, 5)), RuntimeError,
     "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
    (lambda: _o(2, 3) @ _o(4, 5), RuntimeError, "(2x3 and 4x5)"),
    (lambda: dt.matmul(dt.tensor(1.0), _o(3)), RuntimeError, "at least 1D, but they are 0D"),
    (lambda: dt.bmm(_o(2, 2, 3), _o(2, 4, 2)), RuntimeError, "batch2 tensor to be: [2, 3]"),
    (lambda: dt.mv(_o(2, 3), _o(4)), RuntimeError, "mat (2x3), vec (4)"),
    (lambda: dt.dot(_o(3), _o(4)), RuntimeError, "expected tensor [3] and src [4]"),
    (lambda: dt.mm(_o(2, 3), dt.ones(3, 2, dtype=dt.float64)), RuntimeError, "float != double"),
    (lambda: dt.outer(_o(2, 2), _o(2)), RuntimeError, "Expected 1-D argument self, but got 2-D"),
    (lambda: dt.cat([_o(2, 3), _o(2, 4)]), RuntimeError,
     "Sizes of tensors must match except in dimension 0. Expected size 3 but got size 4 for "
     "tensor number 1 in the list."),
    (lambda: dt.cat([_o(2, 3), _o(3)]), RuntimeError,
     "Tensors must have same number of dimensions: got 2 and 1"),
    (lambda: dt.cat([]), ValueError, "expected a non-empty list of Tensors"),
    (lambda: dt.stack([_o(2, 3), _o(3, 2)]), RuntimeError, "[2, 3] at entry 0 and [3, 2] at "),
    (lambda: _o(2, 3).t().view(6), RuntimeError, "view size is not compatible with input "
     "tensor's size and stride"),
    (lambda: _o(2, 3).view(4), RuntimeError, "shape '[4]' is invalid for input of size 6"),
    (lambda: _o(2, 3).view(-1, -1), RuntimeError, "only one dimension can be inferred"),
    (lambda: _o(2, 3).reshape(5, -1), RuntimeError, "shape '[5, -1]' is invalid"),
    (lambda: _o(2, 3).expand(4, 3), RuntimeError, "The expanded size of the tensor (4) must "
     "match the existing size (2) at non-singleton dimension 0.  Target sizes: [4, 3].  Tensor "
     "sizes: [2, 3]"),
    (lambda: _o(2, 6).unflatten(1, (4, 2)), RuntimeError, "Provided sizes [4, 2] don't multiply"),
    (lambda: _o(2, 3).sum(2), IndexError, "Dimension out of range (expected to be in range of "
     "[-2, 1], but got 2)"),
    (lambda: _o(2, 3).sum(-3), IndexError, "but got -3)"),
    (lambda: _o(2, 3).sum((0, 0)), RuntimeError, "dim 0 appears multiple times"),
    (lambda: _o(2, 3).max(5), IndexError, "Dimension out of range"),
    (lambda: _o(2, 3).transpose(0, 2), IndexError, "Dimension out of range"),
    (lambda: _o(2, 3).unsqueeze(3), IndexError, "[-3, 2], but got 3"),
    (lambda: _o(2, 3).cumsum(2), IndexError, "Dimension out of range"),
    (lambda: _o(3).prod(1), IndexError, "[-1, 0], but got 1"),
    (lambda: _o(2, 3).movedim(0, 2), IndexError, "Dimension out of range"),
    (lambda: _o(2, 3).permute(0, 0), RuntimeError, "duplicate dims are not allowed"),
    (lambda: _o(2, 3) + _o(4), RuntimeError, "The size of tensor a (3) must match the size of "
     "tensor b (4) at non-singleton dimension 1"),
    (lambda: _o(2, 3) * _o(2, 2), RuntimeError, "must match the size of tensor b (2)"),
    (lambda: _o(2, 3) < _o(2), RuntimeError, "must match the size of tensor b (2)"),
    (lambda: dt.where(_o(3) > 0, _o(3), _o(2)), RuntimeError, "must match the size"),
    (lambda: dt.where(_o(3), _o(3), _o(3)), RuntimeError, "where expected condition to be a "
     "boolean tensor, but got a tensor with dtype Float"),
    (lambda: dt.ones(3, dtype=dt.int64).add_(1.5), RuntimeError,
     "result type Float can't be cast to the desired output type Long"),
    (lambda: _o(3).add_(_o(2, 3)), RuntimeError, "output with shape [3] doesn't match the "
     "broadcast shape [2, 3]"),
    (lambda: dt.ones(3, dtype=dt.int64).mean(), RuntimeError, "mean(): could not infer output "
     "dtype. Input dtype must be either a floating point or complex dtype. Got: Long"),
    (lambda: dt.ones(3, dtype=dt.int64).var(), RuntimeError, "std and var only support floating"),
    (lambda: dt.ones(3, dtype=dt.int64).std(), RuntimeError, "std and var only support floating"),
    (lambda: dt.ones(3, dtype=dt.bool) - dt.ones(3, dtype=dt.bool), RuntimeError,
     "Subtraction, the `-` operator, with two bool tensors is not supported"),
    (lambda: -dt.ones(3, dtype=dt.bool), RuntimeError, "Negation, the `-` operator, on a bool"),
    (lambda: dt.ones(3, dtype=dt.int64) ** -1, RuntimeError,
     "Integers to negative integer powers are not allowed."),
    (lambda: _o(3).div(2, rounding_mode="round"), RuntimeError, "but found 'round'"),
    (lambda: _o(3).clamp(), RuntimeError, "At least one of 'min' or 'max' must not be None"),
    (lambda: _o(4).narrow(0, 2, 3), RuntimeError, "start (2) + length (3) exceeds dimension "
     "size (4)."),
    (lambda: _o(4).split([1, 2]), RuntimeError, "split_sizes to sum exactly to 4"),
    (lambda: _o(4).chunk(0), RuntimeError, "chunk expects `chunks` to be greater than 0"),
    (lambda: _o(2, 3).gather(1, dt.zeros(2, dtype=dt.int64)), RuntimeError,
     "Index tensor must have the same number of dimensions as input tensor"),
    (lambda: _o(2, 3).gather(1, dt.full((2, 1), 5)), RuntimeError,
     "index 5 is out of bounds for dimension 1 with size 3"),
    (lambda: _o(2, 3).gather(1, dt.zeros(2, 1)), RuntimeError, "Expected dtype int32/int64"),
    (lambda: _o(2, 3).gather(1, dt.zeros(3, 1, dtype=dt.int64)), RuntimeError,
     "Size does not match at dimension 0 expected index [3, 1] to be no larger than self "
     "[2, 3] apart from dimension 1"),
    (lambda: _o(2, 3).scatter(1, dt.full((2, 1), 5), 1.0), RuntimeError,
     "index 5 is out of bounds for dimension 1 with size 3"),
    (lambda: _o(2, 3).index_select(0, dt.tensor([2])), IndexError, "index out of range in self"),
    (lambda: _o(2, 3).masked_fill(_o(2, 3), 0.0), RuntimeError, "only supports boolean masks"),
    (lambda: _o(3).topk(4), RuntimeError, "selected index k out of range"),
    (lambda: _o(2, 3).repeat(2), RuntimeError, "Number of dimensions of repeat dims"),
    (lambda: _o(2, 3).flatten(1, 0), RuntimeError, "start_dim cannot come after end_dim"),
    (lambda: dt.ones(0).max(), RuntimeError, "Expected reduction dim to be specified"),
    (lambda: dt.ones(0).argmax(), IndexError, "Expected reduction dim to be specified"),
    (lambda: _o(2, 3, 4).t(), RuntimeError, "t() expects a tensor with <= 2 dimensions"),
    (lambda: dt.einsum("ij,jk->ik", _o(2, 3)), RuntimeError, "fewer operands were provided"),
    (lambda: dt.einsum("ij->i", _o(2, 3, 4)), RuntimeError, "the number of subscripts in the "
     "equation (2) does not match the number of dimensions (3) for operand 0"),
    (lambda: dt.einsum("ij,jk->ik", _o(2, 3), _o(4, 2)), RuntimeError,
     "subscript j has size 4 for operand 1 which does not broadcast with previously seen size 3"),
    (lambda: _o(2, 3).roll((1, 2), 0), RuntimeError, "shifts and dimensions must align"),
    (lambda: _o(3).requires_grad_().add_(1), RuntimeError,
     "a leaf Variable that requires grad is being used in an in-place operation."),
    (lambda: dt.lerp(_o(2), _o(3), 0.5), RuntimeError, "must match the size"),
]


@pytest.mark.parametrize("expr,exc,msg", ERRORS, ids=[str(k) for k in range(len(ERRORS))])
def test_errors(expr, exc, msg):
    """PyTorch's exception types, with messages naming the offending shapes and values."""
    with pytest.raises(exc) as info:
        expr()
    assert msg in str(info.value)


# ----------------------------------------------------------------------------- special points
def _grad(fn, x, *others):
    x = dt.tensor(x, dtype=dt.float64, requires_grad=True)
    fn(x, *others).sum().backward()
    return x.grad.tolist()


def _f64(x):
    return dt.tensor(x, dtype=dt.float64)


# (what, fn, input, expected gradient: PyTorch's values at ties, kinks and zeros)
SPECIAL_GRADS = [
    ("max ties share", lambda x: x.max(), [1.0, 3.0, 3.0], [0.0, 0.5, 0.5]),
    ("min ties share", lambda x: x.min(), [1.0, 1.0, 3.0], [0.5, 0.5, 0.0]),
    ("amax ties share", lambda x: x.amax(0), [[1.0, 3.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 0.0]]),
    ("amin ties share", lambda x: x.amin(0), [[1.0, 1.0], [1.0, 3.0]], [[0.5, 1.0], [0.5, 0.0]]),
    ("max(dim) ties: first index", lambda x: x.max(1).values, [[1.0, 3.0, 3.0]],
     [[0.0, 1.0, 0.0]]),
    ("min(dim) ties: first index", lambda x: x.min(0).values, [[1.0, 1.0], [1.0, 3.0]],
     [[1.0, 1.0], [0.0, 0.0]]),
    ("maximum ties share", lambda x: dt.maximum(x, _f64([0.0, 2.0])), [0.0, 1.0], [0.5, 0.0]),
    ("minimum ties share", lambda x: dt.minimum(x, _f64([0.0, 2.0])), [0.0, 1.0], [0.5, 1.0]),
    ("max(other) ties share", lambda x: dt.max(x, _f64([0.0, 2.0])), [0.0, 1.0], [0.5, 0.0]),
    ("clamp boundaries pass", lambda x: x.clamp(0, 1), [0.0, 1.0, 0.5, 2.0],
     [1.0, 1.0, 1.0, 0.0]),
    ("clamp tensor bound tie", lambda x: x.clamp(min=_f64([0.0, 1.0])), [0.0, 0.5], [1.0, 0.0]),
    ("relu at 0", lambda x: x.relu(), [0.0, 1.0], [0.0, 1.0]),
    ("abs at 0", lambda x: x.abs(), [0.0, -1.0], [0.0, -1.0]),
    ("sign", lambda x: x.sign(), [0.0, 1.0], [0.0, 0.0]),
    ("norm at 0", lambda x: x.norm(), [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    ("norm p=3 at 0", lambda x: x.norm(p=3), [0.0, 0.0], [0.0, 0.0]),
    ("norm p=1 at 0", lambda x: x.norm(p=1), [0.0, 2.0], [0.0, 1.0]),
    ("norm rows with a zero row", lambda x: x.norm(dim=1), [[0.0, 0.0], [3.0, 4.0]],
     [[0.0, 0.0], [0.6, 0.8]]),
    ("norm inf ties", lambda x: x.norm(p=math.inf), [1.0, -3.0, 3.0], [0.0, -0.5, 0.5]),
    ("norm -inf ties", lambda x: x.norm(p=-math.inf), [1.0, -1.0, 3.0], [0.5, -0.5, 0.0]),
    ("prod one zero", lambda x: x.prod(), [2.0, 0.0, 3.0, 4.0], [0.0, 24.0, 0.0, 0.0]),
    ("prod two zeros", lambda x: x.prod(), [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]),
    ("cumprod zeros", lambda x: x.cumprod(0), [2.0, 0.0, 3.0, 0.0], [1.0, 8.0, 0.0, 0.0]),
    ("cumprod leading zeros", lambda x: x.cumprod(0), [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]),
    ("std of equal values", lambda x: x.std(), [1.0, 1.0], [0.0, 0.0]),
    ("x ** 0 at 0", lambda x: x ** 0, [0.0, 1.0, 2.0], [0.0, 0.0, 0.0]),
    ("x ** 2.5 at 0", lambda x: x ** 2.5, [0.0], [0.0]),
    ("0 ** x", lambda x: 0 ** x, [0.0, 1.0], [0.0, 0.0]),
    ("sort ties", lambda x: x.sort().values, [1.0, 3.0, 3.0], [1.0, 1.0, 1.0]),
    ("topk ties", lambda x: x.topk(2).values, [1.0, 3.0, 3.0, 0.0], [0.0, 1.0, 1.0, 0.0]),
    ("logsumexp with -inf", lambda x: dt.logsumexp(x, 0), [-math.inf, 0.0], [0.0, 1.0]),
    ("floor", lambda x: x.floor(), [0.5, 1.5], [0.0, 0.0]),
]


@pytest.mark.parametrize("what,fn,x,want", SPECIAL_GRADS, ids=[s[0] for s in SPECIAL_GRADS])
def test_special_point_gradients(what, fn, x, want):
    np.testing.assert_allclose(_grad(fn, x), want, rtol=1e-12, atol=1e-12)


def test_logsumexp_infinite_rows():
    x = dt.tensor([[-math.inf, -math.inf], [0.0, 0.0], [math.inf, 1.0]])
    np.testing.assert_allclose(dt.logsumexp(x, 1).numpy(), [-math.inf, math.log(2), math.inf])
    big = dt.tensor([1000.0, 1000.0], dtype=dt.float64)
    assert dt.logsumexp(big, 0).item() == pytest.approx(1000 + math.log(2))


def test_masked_fill_value_gradient():
    v = dt.tensor(2.0, requires_grad=True)
    a = dt.zeros(2, 3, requires_grad=True)
    a.masked_fill(dt.tensor([True, False, True]), v).sum().backward()
    assert v.grad.item() == 4.0
    assert a.grad.tolist() == [[0.0, 1.0, 0.0]] * 2


def test_clamp_tensor_bounds_gradients():
    lo = dt.tensor([0.0, 1.0, 0.0], dtype=dt.float64, requires_grad=True)
    hi = dt.tensor(0.5, dtype=dt.float64, requires_grad=True)
    x = dt.tensor([0.2, 0.5, 2.0], dtype=dt.float64, requires_grad=True)
    x.clamp(lo, hi).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]
    assert lo.grad.tolist() == [0.0, 0.0, 0.0]  # lo > hi: the result is hi
    assert hi.grad.item() == 2.0


def test_gradcheck_agrees():
    """dtorch.autograd.gradcheck (the public checker) passes on a composite expression."""
    a = dt.tensor(R(2, 3), requires_grad=True)
    b = dt.tensor(R(3), requires_grad=True)
    assert dt.autograd.gradcheck(lambda a, b: (a * b).tanh().sum(1) / b.norm(), (a, b))


# ----------------------------------------------------------------------------- random ops
def test_bernoulli(device):
    dt.manual_seed(0)
    p = dt.full((2000,), 0.3).to(device)
    x = dt.bernoulli(p)
    assert x.dtype is dt.float32 and x.shape == p.shape
    assert set(np.unique(x.cpu().numpy())) <= {0.0, 1.0}
    assert abs(x.mean().item() - 0.3) < 0.05
    dt.manual_seed(0)
    assert dt.equal(p.bernoulli(), x)
    edges = dt.tensor([0.0, 1.0]).to(device)
    assert dt.bernoulli(edges).tolist() == [0.0, 1.0]


def test_multinomial(device):
    dt.manual_seed(0)
    w = dt.tensor([0.0, 1.0, 3.0]).to(device)
    s = dt.multinomial(w, 4000, replacement=True)
    assert s.dtype is dt.int64 and s.shape == (4000,)
    counts = np.bincount(s.cpu().numpy(), minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3) < 0.5
    perm = w.multinomial(2)
    assert sorted(perm.tolist()) == [1, 2]
    rows = dt.multinomial(dt.ones(3, 5).to(device), 5)
    assert all(sorted(r) == list(range(5)) for r in rows.tolist())


def test_every_registered_op_has_a_case():
    covered = {c.op for c in CASES} | RANDOM_OPS
    missing = sorted(set(dt.ops.registered()) - covered)
    assert not missing, f"registered ops without a case in the op table: {missing}"
    unknown = sorted(covered - set(dt.ops.registered()))
    assert not unknown, f"cases for ops that are not registered: {unknown}"
