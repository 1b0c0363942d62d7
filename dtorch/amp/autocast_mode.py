"""``autocast``: regions where ops run in an op-specific precision, as ``torch.autocast``.

The state (enabled flag and dtype per device type, the cast cache) is thread-local, like grad
mode: the thread world runs each rank in its own thread. Ops opt in with the
:func:`autocast_op` decorator where they are defined; their policy comes from
:mod:`dtorch.amp.policy`. While no thread has autocast on, a decorated op pays one list read.
"""

import functools
import threading
import warnings

from .. import _backend
from .. import _dtype as D
from ..autograd import grad_mode
from ..ops._util import tensor_cls
from . import policy as P

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "autocast_op"]

_DEVICE_TYPES = ("cpu", "cuda")
_LOWER_DTYPES = (D.float16,)  # NOTE: bfloat16 would belong here; NumPy has no such dtype.


class _AutocastState(threading.local):
    def __init__(self):
        self.enabled = {"cpu": False, "cuda": False}
        self.dtype = {"cpu": None, "cuda": D.float16}  # None: PyTorch's bfloat16 default
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}  # id(fp32 leaf) -> (leaf, its version, its lower-precision cast)
        # The fast-path flag: some device enabled and not inside an autocast op.
        self.active = False
        self.counted = False  # whether this thread is in _threads_active


_state = _AutocastState()
# NOTE: how many threads have autocast active, read by every hooked op before the thread-local
# state: with autocast off everywhere an op pays one list read (a thread-local read and the
# argument packing cost about 0.2 us more per call on this machine).
_threads_active = [0]
_count_lock = threading.Lock()


def _set_active(st, active):
    if active != st.counted:
        with _count_lock:
            _threads_active[0] += 1 if active else -1
        st.counted = active
    st.active = active


def _check_device_type(device_type):
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if device_type not in _DEVICE_TYPES:
        raise RuntimeError(f"User specified an unsupported autocast device_type "
                           f"'{device_type}' (dtorch autocasts 'cpu' and 'cuda')")
    return device_type


def _bfloat16_error(device_type):
    return RuntimeError(
        f"autocast: the default dtype for device_type '{device_type}' is torch.bfloat16, which "
        f"NumPy does not have (dtorch's CPU array library); pass dtype=torch.float16, e.g. "
        f"torch.autocast('{device_type}', dtype=torch.float16)")


def is_autocast_enabled(device_type=None):
    """True inside an enabled autocast region of ``device_type`` on this thread.

    Args:
        device_type (str, optional): ``"cpu"`` or ``"cuda"``; None means ``"cuda"`` (PyTorch's
            legacy meaning of the argument-less call).

    Example::

        >>> with torch.autocast("cpu", dtype=torch.float16):
        ...     torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled()
        (True, False)
    """
    return _state.enabled[_check_device_type("cuda" if device_type is None else device_type)]


def get_autocast_dtype(device_type):
    """The lower-precision dtype autocast uses for ``device_type`` on this thread.

    Outside any region this is the default: float16 for ``"cuda"``; for ``"cpu"`` PyTorch's
    default is bfloat16, which dtorch cannot represent, so it raises a RuntimeError saying to
    use float16.

    Example::

        >>> torch.get_autocast_dtype("cuda")
        dtorch.float16
    """
    dt = _state.dtype[_check_device_type(device_type)]
    if dt is None:
        raise _bfloat16_error(device_type)
    return dt


class autocast:
    """Context manager and decorator for a region of mixed precision.

    Inside an enabled region, ops on floating-point tensors of ``device_type`` run in an
    op-specific dtype (see :mod:`dtorch.amp.policy`): matmuls, ``linear`` and convolutions in
    ``dtype``, reductions, exponentials, normalisations and losses in float32. Float64 and
    integer tensors are never cast. The casts are differentiable: the gradient of a float32
    parameter comes back in float32. Wrap the forward pass and the loss only; run ``backward``
    outside. Regions nest (an inner ``enabled=False`` region runs in full precision) and the
    state is per thread. Casts of float32 leaves that require grad (the parameters) are cached
    within the outermost region when ``cache_enabled``.

    Args:
        device_type (str): ``"cuda"`` or ``"cpu"``.
        dtype (dtorch.dtype, optional): the lower-precision dtype. Default: float16 for
            ``"cuda"``; for ``"cpu"`` PyTorch defaults to bfloat16, which NumPy lacks, so an
            enabled CPU region needs ``dtype=torch.float16`` (a RuntimeError says so).
            Other dtypes disable the region with a warning, as in PyTorch.
        enabled (bool): False makes the region run in full precision. Default: True.
        cache_enabled (bool, optional): cache parameter casts in the region. Default: the
            current setting (True).

    Example::

        >>> model = torch.nn.Linear(4, 2)
        >>> with torch.autocast("cpu", dtype=torch.float16):
        ...     out = model(torch.randn(3, 4))          # float16
        ...     loss = out.float().pow(2).mean()
        >>> loss.backward()                             # model.weight.grad is float32
    """

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        self.device = _check_device_type(device_type)
        self.fast_dtype = _state.dtype[self.device] if dtype is None else D.as_dtype(dtype)
        self._enabled = bool(enabled)
        self._cache_enabled = (_state.cache_enabled if cache_enabled is None
                               else bool(cache_enabled))
        self._saved = []
        if not self._enabled:
            return
        if self.device == "cuda" and not _backend.cuda_available():
            warnings.warn("User provided device_type of 'cuda', but CUDA is not available. "
                          "Disabling autocast.", stacklevel=2)
            self._enabled = False
        elif self.fast_dtype is None:
            raise _bfloat16_error(self.device)
        elif self.fast_dtype not in _LOWER_DTYPES:
            name = self.device.upper()
            warnings.warn(f"In {name} autocast, but the target dtype is not supported. "
                          f"Disabling autocast.\n{name} Autocast only supports dtypes of "
                          f"torch.bfloat16, torch.float16 currently.", stacklevel=2)
            self._enabled = False

    def __enter__(self):
        st, dev = _state, self.device
        self._saved.append((st.enabled[dev], st.dtype[dev], st.cache_enabled))
        st.enabled[dev] = self._enabled
        if self.fast_dtype is not None:
            st.dtype[dev] = self.fast_dtype
        st.cache_enabled = self._cache_enabled
        st.nesting += 1
        _set_active(st, st.enabled["cpu"] or st.enabled["cuda"])
        return self

    def __exit__(self, *exc):
        st, dev = _state, self.device
        st.nesting -= 1
        if st.nesting == 0:
            st.cache.clear()
        st.enabled[dev], st.dtype[dev], st.cache_enabled = self._saved.pop()
        _set_active(st, st.enabled["cpu"] or st.enabled["cuda"])
        return False

    def __call__(self, func):
        """Decorate ``func`` to run inside this region (a fresh copy per call, so recursive
        and concurrent calls are safe)."""

        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self._clone():
                return func(*args, **kwargs)

        return decorate_autocast

    def _clone(self):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._saved = []
        return new


# ----------------------------------------------------------------------------- the op hook
_WRAPPED = set()


def autocast_op(fn):
    """Decorator for an op's public function: under autocast, cast its tensor arguments by the
    op's policy in :data:`dtorch.amp.policy.POLICIES` (looked up by ``fn.__name__``) and run it
    with autocast suspended, so the ops it is built from are not cast again. Ops that no table
    lists are returned unchanged, so an op factory may apply it to all its ops.

    Example::

        @register()
        @autocast_op
        def mm(input, mat2): ...
    """
    policies = P.policies_for(fn.__name__)
    if not policies:
        return fn
    _WRAPPED.add(fn.__name__)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if _threads_active[0] and _state.active:
            return _autocast_call(fn, policies, args, kwargs)
        return fn(*args, **kwargs)

    return op


def _autocast_call(fn, policies, args, kwargs):
    st = _state
    dev = _device_type(args, kwargs)
    policy = policies.get(dev) if dev is not None and st.enabled[dev] else None
    if policy is None:
        return fn(*args, **kwargs)
    if policy == P.BANNED:
        raise RuntimeError(P.BCE_BANNED_MSG)
    if policy == P.LOWER:
        target = st.dtype[dev]
    elif policy == P.FP32:
        target = None if kwargs.get("dtype") is not None else D.float32
    else:
        target = _widest(args, kwargs, dev)
    if target is not None:
        args = tuple(_cast(a, target, dev) for a in args)
        kwargs = {k: _cast(v, target, dev) for k, v in kwargs.items()}
    st.active = False
    try:
        return fn(*args, **kwargs)
    finally:
        st.active = True


def _tensors(args, kwargs):
    Tensor = tensor_cls()
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            yield a
        elif type(a) in (list, tuple):
            yield from (e for e in a if isinstance(e, Tensor))


def _array_device_type(array):
    return "cuda" if _backend.is_cuda_array(array) else "cpu"


def _device_type(args, kwargs):
    for t in _tensors(args, kwargs):
        return _array_device_type(t._data)
    return None


def _eligible(t, dev):
    """Floating, not float64, on the region's device type (PyTorch's ``is_eligible``)."""
    d = t._data.dtype
    return d.kind == "f" and d.itemsize < 8 and _array_device_type(t._data) == dev


def _widest(args, kwargs, dev):
    dts = {t._data.dtype for t in _tensors(args, kwargs) if _eligible(t, dev)}
    if not dts:
        return None
    return D.float32 if D.float32.np in dts else _state.dtype[dev]


def _cast(x, target, dev):
    Tensor = tensor_cls()
    if isinstance(x, Tensor):
        if x._data.dtype == target.np or not _eligible(x, dev):
            return x
        if _cacheable(x, target):
            return _cached_cast(x, target)
        return x._to(None, target)
    if type(x) in (list, tuple):
        return type(x)(_cast(e, target, dev) for e in x)
    return x


def _cacheable(t, target):
    # Lower-precision casts of float32 leaves that require grad (parameters) while recording:
    # a cast made under no_grad would carry no graph into a later grad-enabled use.
    return (_state.cache_enabled and target is not D.float32 and t._requires_grad
            and t._grad_fn is None and t._base is None and t._data.dtype == D.float32.np
            and grad_mode._state.enabled)


def _cached_cast(t, target):
    cache = _state.cache
    hit = cache.get(id(t))
    if hit is not None and hit[0] is t and hit[1] == t._version and hit[2].dtype is target:
        return hit[2]
    out = t._to(None, target)
    cache[id(t)] = (t, t._version, out)
    return out
