"""``Function``: one differentiable operation, forward and backward side by side.

Calling ``Fn.apply(*args)`` runs ``forward`` and, when gradients are being recorded, makes the
instance the graph node (``grad_fn``) of the outputs. Two kinds share the machinery:

* :class:`Function` is PyTorch's user-facing API: ``forward`` and ``backward`` take and return
  Tensors (``forward`` runs with gradients disabled).
* :class:`Primitive` is how dtorch defines its own ops: ``forward(ctx, *arrays, **params)`` and
  ``backward(ctx, *grads)`` work on raw NumPy/CuPy arrays, which keeps per-op overhead low.
"""

import itertools
import traceback

import numpy as np

from .._backend import get_array_module
from . import grad_mode

_seq = itertools.count()
_FREED = object()

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call"
    " .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through "
    "the graph a second time or if you need to access saved tensors after calling backward."
)


class Node:
    """A node of the autograd graph. Subclasses implement ``_run_backward(grads)``."""

    next_functions = ()
    needs_input_grad = ()
    _saved = None
    _versions = None
    _n_outputs = 1
    _tensor_pre_hooks = None  # {output_nr: [hook(grad Tensor) -> Tensor | None]}
    _pre_hooks = None  # [hook(grad_outputs) -> grad_outputs | None]
    _post_hooks = None  # [hook(grad_inputs, grad_outputs) -> grad_inputs | None]
    _trace = None
    _priority = 0
    _non_differentiable = None
    _materialize_grads = True

    def name(self):
        return type(self)._backward_name

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"

    @property
    def metadata(self):
        md = self.__dict__.get("_metadata")
        if md is None:
            md = self._metadata = {}
        return md

    def register_hook(self, hook):
        """``hook(grad_inputs, grad_outputs)`` runs after this node computed its input grads."""
        from .hooks import RemovableHandle

        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return RemovableHandle(self._post_hooks, hook)

    def register_prehook(self, hook):
        """``hook(grad_outputs)`` runs before this node; it may return replacement grads."""
        from .hooks import RemovableHandle

        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(hook)
        return RemovableHandle(self._pre_hooks, hook)

    def _free(self):
        if self._saved is not None:
            self._saved = _FREED

    def _check_versions(self):
        for box, expected, desc in self._versions:
            if box[0] != expected:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{desc}], which is output 0 of {self.name()}, is at "
                    f"version {box[0]}; expected version {expected} instead. Hint: enable anomaly "
                    "detection to find the operation that failed to compute its gradient, with "
                    "dtorch.autograd.set_detect_anomaly(True)."
                )


class _FunctionMeta(type):
    def __init__(cls, name, bases, ns):
        super().__init__(name, bases, ns)
        cls._backward_name = ns.get("backward_name") or f"{name}Backward0"


class _Base(Node, metaclass=_FunctionMeta):
    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is _FREED:
            raise RuntimeError(_FREED_MSG)
        return () if saved is None else saved

    def save_for_backward(self, *values):
        self._saved = values

    def mark_non_differentiable(self, *outputs):
        self._non_differentiable = outputs

    def mark_dirty(self, *tensors):
        """Accepted for API compatibility; dtorch tracks in-place writes by version counters."""

    def set_materialize_grads(self, value):
        self._materialize_grads = bool(value)


def _tensor_cls():
    from .._tensor import Tensor

    return Tensor


class Primitive(_Base):
    """Base of dtorch's own ops: forward and backward on raw arrays.

    ``forward(ctx, *arrays, **params)`` gets each Tensor argument as its array (other arguments
    unchanged) and returns an array or a tuple of arrays. ``backward(ctx, *grads)`` gets one
    gradient array per output (None for an output that received no gradient) and returns one
    gradient array (or None) per positional argument. ``ctx.xp`` is numpy or cupy.

    Class attributes: ``is_view`` (the first output is a view of the first input, sharing its
    storage and version counter; ``forward`` may set ``ctx.is_view`` when that depends on the
    call, as for ``reshape``), ``differentiable`` (False for ops whose outputs never require
    grad, e.g. comparisons), ``backward_name`` (the ``grad_fn`` name if not ``NameBackward0``).
    """

    is_view = False
    differentiable = True

    @classmethod
    def apply(cls, *args, **kwargs):
        Tensor = _Tensor[0] or _set_tensor()
        arrays = []
        tensors = []
        requires = False
        first = None
        for a in args:
            if isinstance(a, Tensor):
                arr = a._data
                if first is None:
                    first = arr
                elif type(arr) is not type(first):
                    _raise_device_mismatch(first, arr)
                arrays.append(arr)
                tensors.append(a)
                if a._requires_grad:
                    requires = True
            else:
                arrays.append(a)
                tensors.append(None)
        ctx = cls.__new__(cls)
        ctx.xp = np if first is None or type(first) is np.ndarray else get_array_module(first)
        out = cls.forward(ctx, *arrays, **kwargs)
        record = requires and cls.differentiable and grad_mode._state.enabled
        if type(out) is tuple:
            results = tuple(_wrap_out(Tensor, ctx, o) for o in out)
        else:
            results = _wrap_out(Tensor, ctx, out)
        if ctx.is_view:
            _link_view(results[0] if type(results) is tuple else results, tensors[0], cls, args,
                       kwargs)
        if record:
            _connect(ctx, tensors, results, arrays)
        return results

    @classmethod
    def _view_of(cls, array, args, kwargs):
        """Re-apply this view op to another array (used to rebase in-place writes on views)."""
        return cls.forward(_DummyCtx(get_array_module(array)), array, *args[1:], **kwargs)

    def _run_backward(self, grads):
        if self._saved is _FREED:
            raise RuntimeError(_FREED_MSG)
        res = self.backward(*grads)
        return res if type(res) is tuple else (res,)


class _DummyCtx:
    def __init__(self, xp):
        self.xp = xp

    def save_for_backward(self, *values):
        pass

    def mark_non_differentiable(self, *outputs):
        pass


_Tensor = [None]


def _set_tensor():
    _Tensor[0] = _tensor_cls()
    return _Tensor[0]


def _wrap_out(Tensor, ctx, out):
    if type(out) is not np.ndarray and not hasattr(out, "__cuda_array_interface__"):
        out = ctx.xp.asarray(out)
    return Tensor._wrap(out)


def _raise_device_mismatch(a, b):
    from .._backend import device_index

    def name(x):
        i = device_index(x)
        return "cpu" if i is None else f"cuda:{i}"

    raise RuntimeError(
        "Expected all tensors to be on the same device, but found at least two devices, "
        f"{name(a)} and {name(b)}!"
    )


def _link_view(out, base, cls, args, kwargs):
    out._vbox = base._vbox
    out._base = base._base if base._base is not None else base
    out._view_src = (base, cls, args, kwargs)


def _connect(ctx, tensors, results, arrays):
    """Make ``ctx`` the grad_fn of ``results`` and link it to the inputs' nodes."""
    nexts = []
    needs = []
    for t in tensors:
        if t is not None and t._requires_grad:
            nexts.append(t._edge())
            needs.append(True)
        else:
            nexts.append((None, 0))
            needs.append(False)
    ctx.next_functions = tuple(nexts)
    ctx.needs_input_grad = tuple(needs)
    ctx._seq = next(_seq)
    # NOTE: only floating-point outputs take part in autograd (argmax's indices, a cast to int...).
    if type(results) is tuple:
        ctx._n_outputs = len(results)
        nd = ctx._non_differentiable
        for i, r in enumerate(results):
            if r._data.dtype.kind != "f" or nd is not None and any(r._data is o for o in nd):
                continue
            r._requires_grad = True
            r._grad_fn = ctx
            r._output_nr = i
        outs = results
    elif results._data.dtype.kind == "f":
        results._requires_grad = True
        results._grad_fn = ctx
        outs = (results,)
    else:
        return
    if ctx._saved:
        ctx._versions = _saved_versions(ctx._saved, tensors, arrays, outs)
    if _anomaly[0]:
        ctx._trace = "".join(traceback.format_stack()[:-3])


def _saved_versions(saved, tensors, arrays, outs):
    """Remember the version of each input/output whose array backward will read."""
    ids = {id(s) for s in saved}
    found = []
    for t, a in zip(tensors, arrays):
        if t is not None and id(a) in ids:
            found.append((t._vbox, t._vbox[0], t._type_desc()))
    for t in outs:
        if id(t._data) in ids:
            found.append((t._vbox, t._vbox[0], t._type_desc()))
    return found


_anomaly = [False]


class _FunctionCtx:
    """What user-defined functions see as ``ctx`` is the node itself; this marker is kept for
    ``isinstance`` checks in user code (``torch.autograd.function.FunctionCtx``)."""


FunctionCtx = _FunctionCtx


class Function(_Base, _FunctionCtx):
    """Base class for user-defined differentiable operations (PyTorch's API)::

        class Exp(dtorch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                y = x.exp()
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, grad):
                (y,) = ctx.saved_tensors
                return grad * y

        Exp.apply(t)

    ``forward`` runs with gradient recording disabled; ``backward`` returns one gradient (or
    None) per argument of ``forward``.
    """

    @classmethod
    def apply(cls, *args, **kwargs):
        Tensor = _Tensor[0] or _set_tensor()
        ctx = cls.__new__(cls)
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx.needs_input_grad = tuple(t is not None and t._requires_grad for t in tensors)
        with grad_mode.no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        # NOTE: an output that is an input (or one of its views) is re-wrapped so that giving it a
        # grad_fn does not rewrite the input's history.
        inputs = {id(t) for t in tensors if t is not None}
        wrapped = tuple(
            Tensor._wrap(o._data) if isinstance(o, Tensor) and id(o) in inputs else o for o in outs
        )
        if grad_mode._state.enabled and any(ctx.needs_input_grad):
            results = tuple(o for o in wrapped if isinstance(o, Tensor))
            nd = ctx._non_differentiable
            if nd is not None:
                ctx._non_differentiable = tuple(t._data for t in nd)
            saved = ctx._saved
            ctx._out_meta = tuple((r._data.shape, r._data.dtype, get_array_module(r._data))
                                  for r in results)
            _connect(ctx, tensors, results if len(results) != 1 else results[0],
                     [t._data if t is not None else None for t in tensors])
            if saved:
                ctx._versions = [(t._vbox, t._vbox[0], t._type_desc()) for t in saved
                                 if isinstance(t, Tensor)]
        return wrapped[0] if single else wrapped

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise RuntimeError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise RuntimeError("You must implement either the backward or vjp method for your custom "
                           "autograd.Function to use it with backward mode AD.")

    def _run_backward(self, grads):
        Tensor = _Tensor[0]
        if self._saved is _FREED:
            raise RuntimeError(_FREED_MSG)
        gs = []
        for g, (shape, dtype, xp) in zip(grads, self._out_meta):
            if g is None and self._materialize_grads:
                g = xp.zeros(shape, dtype)
            gs.append(None if g is None else Tensor._wrap(g))
        with grad_mode.no_grad():
            res = type(self).backward(self, *gs)
        if not isinstance(res, tuple):
            res = (res,)
        n = len(self.next_functions)
        if len(res) < n:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(res)})")
        return tuple(r._data if isinstance(r, Tensor) else None for r in res[:n])


def once_differentiable(fn):
    """Decorator for ``backward``: dtorch never builds graphs in backward, so this is the identity
    (kept so that PyTorch code importing it runs unchanged)."""
    return fn
