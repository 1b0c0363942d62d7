"""Tensor factories (``tensor``, ``zeros``, ``arange``, ``randn``...), the legacy typed
constructors (``FloatTensor``...) and the in-place fills (``uniform_``, ``fill_``, ``copy_``...)."""

import builtins
import math

import numpy as np

from . import _backend
from . import _dtype as D
from ._device import as_device
from ._tensor import Tensor
from .autograd.function import Primitive
from .ops import register
from .ops._util import unbroadcast
from .random import generator_for


def _index_of(device):
    from ._tensor import _target_index

    return _target_index(device)


def _place(array, device, requires_grad=False):
    """Wrap a NumPy array, moved to ``device``."""
    idx = _index_of(device)
    if idx is not None:
        array = _backend.to_device(array, idx)
    t = Tensor._wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _to_array(data, dtype):
    """Nested Python data (numbers, lists, tuples, Tensors, NumPy arrays) as a NumPy array of
    dtorch's dtype rules: Python floats give the default float dtype, ints int64."""
    if isinstance(data, Tensor):
        arr = _backend.to_device(data._data, None)
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, (list, tuple)):
        arr = np.array(_plain(data))
        if arr.dtype == object:
            raise ValueError("expected sequence of equal-length sequences of numbers")
        if arr.dtype == np.float64 and dtype is None and not _has_numpy_float64(data):
            arr = arr.astype(D.get_default_dtype().np)
    elif isinstance(data, (bool, int, float, np.generic)):
        arr = np.array(data)
        if isinstance(data, float) and not isinstance(data, np.floating) and dtype is None:
            arr = arr.astype(D.get_default_dtype().np)
    else:
        if hasattr(data, "__dlpack__") or hasattr(data, "__array__"):
            arr = np.asarray(data)
        else:
            raise TypeError(f"Could not infer dtype of {type(data).__name__}")
    if dtype is not None:
        arr = arr.astype(dtype.np, copy=False)
    elif arr.dtype.kind not in "biuf" or arr.dtype not in D._FROM_NP:
        if arr.dtype.kind == "i" or arr.dtype.kind == "u" and arr.dtype != np.uint8:
            arr = arr.astype(np.int64)
        else:
            D.from_numpy_dtype(arr.dtype)
    return arr


def _plain(data):
    if isinstance(data, Tensor):
        if data.ndim:
            return _plain(data.tolist())
        return data.item()
    if isinstance(data, (list, tuple)):
        return [_plain(x) for x in data]
    return data


def _has_numpy_float64(data):
    if isinstance(data, np.ndarray):
        return data.dtype == np.float64
    if isinstance(data, np.float64):
        return True
    if isinstance(data, Tensor):
        return data._data.dtype == np.float64
    if isinstance(data, (list, tuple)):
        return builtins.any(_has_numpy_float64(x) for x in data)
    return False


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, NumPy arrays, Tensors)."""
    dtype = D.as_dtype(dtype)
    arr = np.array(_to_array(data, dtype), copy=True)
    if device is None and isinstance(data, Tensor):
        device = data.device
    return _place(arr, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with a NumPy array or Tensor when it can."""
    dtype = D.as_dtype(dtype)
    if isinstance(data, Tensor):
        return data._to(device, dtype)
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtype.np) and (
            device is None or as_device(device).type == "cpu"):
        return from_numpy(data)
    return _place(_to_array(data, dtype), device)


def from_numpy(ndarray):
    """A CPU tensor sharing memory with ``ndarray`` (writes are visible both ways)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    D.from_numpy_dtype(ndarray.dtype)
    return Tensor._wrap(ndarray)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"expected a sequence of integers as the size, got {size!r}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
    return tuple(int(s) for s in size)


def _dt(dtype):
    return (D.as_dtype(dtype) or D.get_default_dtype()).np


def _filled(fill, size, dtype, device, requires_grad):
    return _place(np.full(_size(size), fill, dtype=_dt(dtype)), device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None):
    """A tensor of zeros."""
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None):
    """A tensor of ones."""
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, pin_memory=False,
          memory_format=None):
    """An uninitialised tensor (zero-filled here, for reproducibility)."""
    return _filled(0, size, dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value`` (its dtype is inferred from the value)."""
    if dtype is None:
        dtype = D.scalar_dtype(fill_value)
    return _filled(fill_value, (tuple(size),) if not isinstance(size, int) else (size,), dtype,
                   device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The identity matrix (``n`` x ``m``)."""
    return _place(np.eye(n, n if m is None else m, dtype=_dt(dtype)), device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 when all are integers."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        dtype = D.int64 if builtins.all(isinstance(v, int) for v in vals) else \
            D.get_default_dtype()
    dtype = D.as_dtype(dtype)
    n = builtins.max(0, math.ceil((vals[1] - vals[0]) / vals[2]))
    arr = (vals[0] + np.arange(n, dtype=np.float64) * vals[2]).astype(dtype.np)
    return _place(arr, device, requires_grad)


def range(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad=False):  # noqa: A001
    """Values from ``start`` to ``end`` inclusive (deprecated in PyTorch; the seeds use it).
    The dtype is the default float dtype."""
    if end is None:
        start, end = 0, start
    n = int(math.floor((end - start) / step)) + 1
    arr = (start + np.arange(builtins.max(n, 0), dtype=np.float64) * step).astype(_dt(dtype))
    return _place(arr, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _place(np.linspace(start, end, steps, dtype=np.float64).astype(_dt(dtype)), device,
                  requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    return _place(np.logspace(start, end, steps, base=base).astype(_dt(dtype)), device,
                  requires_grad)


def _random(draw, size, dtype, device, requires_grad, generator):
    shape = _size(size)
    arr = draw(generator_for(device, generator), shape)
    return _place(arr.astype(_dt(dtype), copy=False), device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1)."""
    return _random(lambda g, s: g.random(s), size, dtype, device, requires_grad, generator)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    return _random(lambda g, s: g.standard_normal(s), size, dtype, device, requires_grad,
                   generator)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers uniform on [low, high) (int64 unless ``dtype`` says otherwise)."""
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing 1 required positional argument: 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    return _random(lambda g, s: g.integers(low, high, s), (tuple(size),), dtype or D.int64,
                   device, requires_grad, generator)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of ``0..n-1``."""
    return _place(generator_for(device, generator).permutation(n).astype(_dt(dtype or D.int64)),
                  device, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False):
    """Normal samples; ``mean``/``std`` may be tensors (broadcast) or floats with ``size``."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        ref = mean if isinstance(mean, Tensor) else std
        shape = np.broadcast_shapes(np.shape(mean._data if isinstance(mean, Tensor) else mean),
                                    np.shape(std._data if isinstance(std, Tensor) else std))
        noise = randn(shape, generator=generator, dtype=ref.dtype, device=ref.device)
        return noise * std + mean
    if size is None:
        raise TypeError("normal() needs a size when mean and std are numbers")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _random(lambda g, s: g.normal(mean, std, s), (tuple(size),), dtype, device,
                   requires_grad, generator)


def bernoulli(input, p=None, *, generator=None):
    """Samples in {0, 1} with probabilities ``input`` (or ``p``)."""
    probs = input._data if p is None else np.full(input.shape, p)
    draws = generator_for(input.device, generator).random(input.shape)
    out = (_backend.to_device(draws, None) < _backend.to_device(probs, None))
    return _place(out.astype(input._data.dtype), input.device)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices sampled from the rows of ``input`` (non-negative weights)."""
    g = generator_for(input.device, generator)
    probs = _backend.to_device(input._data, None).astype(np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    if (rows < 0).any() or not np.isfinite(rows).all():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    out = []
    for row in rows:
        total = row.sum()
        if total <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > np.count_nonzero(row):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               "replacement")
        out.append(g.choice(len(row), size=num_samples, replace=replacement, p=row / total))
    arr = np.asarray(out, dtype=np.int64).reshape(probs.shape[:-1] + (num_samples,))
    return _place(arr, input.device)


def _like(factory):
    def like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None, **kw):
        return factory(input.shape, dtype=dtype or input.dtype, device=device or input.device,
                       requires_grad=requires_grad, **kw)

    like.__name__ = factory.__name__ + "_like"
    like.__doc__ = f"``{factory.__name__}`` with the shape (and dtype, device) of ``input``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False,
              memory_format=None):
    return full(input.shape, fill_value, dtype=dtype or input.dtype,
                device=device or input.device, requires_grad=requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, dtype=dtype or input.dtype,
                   device=device or input.device, requires_grad=requires_grad)


# --------------------------------------------------------------------------- in-place fills
def _fill_inplace(self, array):
    """Overwrite ``self`` with ``array`` (a NumPy array of self's shape)."""
    with_grad = Tensor._wrap(_backend.to_device(array.astype(self._data.dtype, copy=False),
                                                _backend.device_index(self._data)))
    return self._inplace(lambda s: with_grad)


def uniform_(self, a=0.0, b=1.0, *, generator=None):
    """Fill with samples uniform on [a, b)."""
    return _fill_inplace(self, generator_for(self.device, generator).uniform(a, b, self.shape))


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with normal samples."""
    return _fill_inplace(self, generator_for(self.device, generator).normal(mean, std,
                                                                           self.shape))


def random_(self, from_=0, to=None, *, generator=None):
    if to is None:
        from_, to = 0, from_ if from_ else 2**24 if self.is_floating_point() else 2**31
    return _fill_inplace(self, generator_for(self.device, generator).integers(from_, to,
                                                                             self.shape))


def bernoulli_(self, p=0.5, *, generator=None):
    return _fill_inplace(self, generator_for(self.device, generator).random(self.shape) < p)


def exponential_(self, lambd=1.0, *, generator=None):
    return _fill_inplace(self, generator_for(self.device, generator).exponential(1 / lambd,
                                                                                self.shape))


def geometric_(self, p, *, generator=None):
    return _fill_inplace(self, generator_for(self.device, generator).geometric(p, self.shape))


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    return _fill_inplace(self, generator_for(self.device, generator).lognormal(mean, std,
                                                                              self.shape))


class Fill(Primitive):
    """``fill_``: the result does not depend on the old values (zero gradient to them), and a
    0-d tensor value receives the summed gradient."""

    def forward(ctx, a, value):
        return ctx.xp.full(a.shape, value, dtype=a.dtype)

    def backward(ctx, g):
        return ctx.xp.zeros_like(g), g.sum() if ctx.needs_input_grad[1] else None


def fill_(self, value):
    """Fill with ``value`` (a number or a 0-d tensor)."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions.")
        if not value._requires_grad:
            value = value.item()
    return self._inplace(Fill.apply, value)


def zero_(self):
    """Fill with zeros."""
    return fill_(self, 0)


class CopyFrom(Primitive):
    """``copy_``: ``src`` broadcast to the destination's shape, dtype and device."""

    def forward(ctx, dst, src):
        ctx.src = (src.shape, _backend.device_index(src), src.dtype)
        out = _backend.to_device(src, _backend.device_index(dst))
        return ctx.xp.broadcast_to(out, dst.shape).astype(dst.dtype, copy=True)

    def backward(ctx, g):
        shape, index, dtype = ctx.src
        gs = _backend.to_device(unbroadcast(g, shape), index)
        return None, gs.astype(dtype, copy=False) if dtype.kind == "f" else None


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcastable; any dtype or device) into this tensor."""
    if not isinstance(src, Tensor):
        src = tensor(src)
    try:
        np.broadcast_shapes(src.shape, self.shape)
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self.shape[-1] if self.ndim else 1}) must "
                           f"match the size of tensor b ({src.shape[-1] if src.ndim else 1}) at "
                           f"non-singleton dimension; shapes {list(self.shape)} and "
                           f"{list(src.shape)}") from None
    return self._inplace(_copy_from, src)


def _copy_from(dst, src):
    return CopyFrom.apply(dst, src)


for _fn in (uniform_, normal_, random_, bernoulli_, exponential_, geometric_, log_normal_, fill_,
            zero_, copy_):
    setattr(Tensor, _fn.__name__, _fn)
register("bernoulli")(bernoulli)
register("multinomial")(multinomial)


# --------------------------------------------------------------------------- legacy types
_LEGACY = {
    "FloatTensor": D.float32, "DoubleTensor": D.float64, "HalfTensor": D.float16,
    "LongTensor": D.int64, "IntTensor": D.int32, "ShortTensor": D.int16,
    "CharTensor": D.int8, "ByteTensor": D.uint8, "BoolTensor": D.bool_,
}


def legacy_new(args, dtype, device):
    """The array for ``Tensor(*args)``: sizes make a zero tensor, a sequence gives data."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        data = args[0]
        if isinstance(data, Tensor):
            return data._data
        arr = np.array(_plain(data), dtype=dtype.np)
    else:
        arr = np.zeros(_size(args), dtype=dtype.np)
    idx = _index_of(device)
    return arr if idx is None else _backend.to_device(arr, idx)


class _LegacyMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype is cls._legacy_dtype and (
            obj.is_cuda == cls._legacy_cuda)


def _legacy_type(name, dtype, cuda):
    def __new__(cls, *args):
        t = Tensor.__new__(Tensor)
        t._data = legacy_new(args, dtype, "cuda" if cuda else None)
        t._vbox = [0]
        return t

    return _LegacyMeta(name, (), {"__new__": __new__, "_legacy_dtype": dtype,
                                  "_legacy_cuda": cuda,
                                  "__doc__": f"Legacy constructor of {dtype} tensors."})


def legacy_types(cuda):
    return {name: _legacy_type(name, dt, cuda) for name, dt in _LEGACY.items()}


def parse_type_name(name):
    """``'torch.cuda.FloatTensor'`` -> (float32, True)."""
    parts = name.split(".")
    if parts[-1] not in _LEGACY:
        raise ValueError(f"invalid type: '{name}'")
    return _LEGACY[parts[-1]], "cuda" in parts


def _rebuild(array, device, requires_grad):
    """Unpickling helper (``copy.deepcopy``, multiprocessing): a tensor from a host array."""
    t = _place(array, device)
    t._requires_grad = requires_grad
    return t
