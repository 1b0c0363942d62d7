"""``Optimizer``: the base class of every optimizer, PyTorch's ``torch.optim.Optimizer``.

An optimizer holds ``param_groups`` (a list of dicts: the parameters plus that group's options,
missing options filled from ``defaults``) and ``state`` (a dict keyed by the parameter tensor,
one dict of buffers per parameter). Subclasses check hyperparameters in ``__init__`` and do the
per-parameter update in one small function on raw NumPy/CuPy arrays; ``step`` walks the groups.

``state_dict()`` uses PyTorch's format: ``state`` keyed by the parameter's integer index (counted
across groups in order) and ``param_groups`` with ``params`` as index lists, so a round trip
through ``load_state_dict`` restores training exactly.
"""

import functools
import itertools
import warnings
from collections import OrderedDict, defaultdict
from copy import deepcopy

import numpy as np

from .. import _backend
from .._tensor import Tensor
from ..autograd.grad_mode import enable_grad
from ..autograd.hooks import RemovableHandle

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook",
           "register_optimizer_step_post_hook"]


class _RequiredParameter:
    """Marks a default that every parameter group must give (``lr=required``)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()

_global_step_pre_hooks = OrderedDict()
_global_step_post_hooks = OrderedDict()


def register_optimizer_step_pre_hook(hook):
    """Register ``hook(optimizer, args, kwargs)`` to run before every optimizer's ``step``."""
    handle = RemovableHandle(_global_step_pre_hooks, hook)
    handle._key = handle.id
    _global_step_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook):
    """Register ``hook(optimizer, args, kwargs)`` to run after every optimizer's ``step``."""
    handle = RemovableHandle(_global_step_post_hooks, hook)
    handle._key = handle.id
    _global_step_post_hooks[handle.id] = hook
    return handle


def _with_step_hooks(step):
    """Wrap a class's ``step`` so the registered pre/post hooks run around it."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        pre = self._optimizer_step_pre_hooks
        post = self._optimizer_step_post_hooks
        if not (pre or post or _global_step_pre_hooks or _global_step_post_hooks):
            return step(self, *args, **kwargs)
        for hook in itertools.chain(list(_global_step_pre_hooks.values()), list(pre.values())):
            result = hook(self, args, kwargs)
            if result is not None:
                if isinstance(result, tuple) and len(result) == 2:
                    args, kwargs = result
                else:
                    raise RuntimeError(f"{step} must return None or a tuple of "
                                       f"(new_args, new_kwargs), but got {result}.")
        out = step(self, *args, **kwargs)
        for hook in itertools.chain(list(post.values()), list(_global_step_post_hooks.values())):
            hook(self, args, kwargs)
        return out

    wrapper._dtorch_hooked = True
    return wrapper


def _scalar_step():
    """A fresh ``step`` counter: a float32 0-d CPU tensor, as PyTorch keeps it."""
    return Tensor._wrap(np.zeros((), dtype=np.float32))


def _zeros_like(p):
    """A zero state buffer shaped, typed and placed like parameter ``p``."""
    xp = _backend.get_array_module(p._data)
    return Tensor._wrap(xp.zeros_like(p._data))


def _zero_state(*names):
    """An ``init`` for :meth:`Optimizer._params_with_grad`: a ``step`` counter, then zero
    buffers ``names`` shaped, typed and placed like the parameter (in PyTorch's key order)."""

    def init(p, state):
        state["step"] = _scalar_step()
        for name in names:
            state[name] = _zeros_like(p)

    return init


def _updated(*tensors):
    """Record that the optimizer rewrote ``tensors`` in place (bump their version counters, so
    autograd notices a parameter changed under a saved graph); None entries are skipped."""
    for t in tensors:
        if t is not None:
            t._vbox[0] += 1


def _bump(step_tensor):
    """Add one to a ``step`` tensor in place and return the new count as a Python float."""
    arr = step_tensor._data
    value = float(arr) + 1.0
    arr[...] = value
    step_tensor._vbox[0] += 1
    return value


def _check_differentiable(differentiable):
    if differentiable:
        raise ValueError("differentiable=True is not supported: dtorch optimizers update the "
                         "parameters in place outside autograd")


class Optimizer:
    """Base class for all optimizers.

    Args:
        params (iterable): tensors to optimize, or dicts defining parameter groups (each with a
            ``"params"`` entry and any per-group options).
        defaults (dict): default values of the optimization options, used for groups that do
            not give them.

    Example:
        >>> opt = dtorch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.1}], lr=0.01)
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._patch_step_function()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + params.type())
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def _patch_step_function(self):
        # NOTE: the most derived class's ``step`` is wrapped once, so a subclass calling
        # ``super().step()`` runs the hooks once, as in PyTorch.
        cls = type(self)
        if not getattr(cls.step, "_dtorch_hooked", False):
            cls.step = _with_step_hooks(cls.step)

    # ------------------------------------------------------------------ pickling and printing
    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("_optimizer_step_pre_hooks", OrderedDict())
        self.__dict__.setdefault("_optimizer_step_post_hooks", OrderedDict())
        self._patch_step_function()

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group.keys()):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ hooks
    def register_step_pre_hook(self, hook):
        """Register ``hook(optimizer, args, kwargs) -> None or (new_args, new_kwargs)`` to run
        before ``step``. Returns a handle whose ``remove()`` unregisters it."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks, hook)
        handle._key = handle.id
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook):
        """Register ``hook(optimizer, args, kwargs)`` to run after ``step``."""
        handle = RemovableHandle(self._optimizer_step_post_hooks, hook)
        handle._key = handle.id
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group):
        """Add a parameter group (a dict with ``"params"`` and optional per-group options), e.g.
        to train layers that were frozen so far.

        Raises:
            TypeError: for a non-dict group, a set of params, or a non-tensor param.
            ValueError: for a non-leaf tensor, a missing required option, or a parameter that
                is already in another group.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            params = list(params)
        tensors, names = [], []
        for param in params:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names
        for param in tensors:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(param))
            if not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in tensors]
        if len(ids) != len(set(ids)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ------------------------------------------------------------------ gradients and steps
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized tensors: to ``None`` (default, frees memory and
        makes optimizers skip parameters that get no new gradient) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    g._data.fill(0)
                    g._vbox[0] += 1

    def step(self, closure=None):
        """Perform one optimization step; returns the loss ``closure()`` gave, if any.

        Subclasses implement this; the base class has no update rule of its own.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def _params_with_grad(self, group, init=None):
        """``(param, grad, state)`` for each parameter of ``group`` that has a gradient, in
        order; ``init(param, state)`` fills the state of a parameter stepped for the first
        time."""
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            state = self.state[p]
            if init is not None and not state:
                init(p, state)
            yield p, g, state

    @staticmethod
    def _eval_closure(closure):
        """Run ``closure`` with gradients enabled (the step itself works outside autograd)."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        """The optimizer's state as a dict, in PyTorch's format.

        ``{"state": {index: {name: tensor or value}}, "param_groups": [{..., "params":
        [index, ...]}]}``: parameters are numbered in group order; the tensors themselves are
        not saved. The state tensors are returned by reference, as PyTorch does.
        """
        mapping = {}
        start = 0
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v
                        for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict):
        """Load state saved by :meth:`state_dict`.

        State tensors are copied onto the device of their parameter (and cast to its dtype when
        the parameter is floating point, except ``step``); group options replace the current
        ones, while the current parameters are kept.

        Raises:
            ValueError: when the number of groups or of parameters per group differs.
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        id_map = dict(zip(itertools.chain.from_iterable(g["params"] for g in saved_groups),
                          itertools.chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = {key: _cast(param, value, key) for key, value in v.items()}
            else:
                state[k] = v
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.__setstate__({"state": state, "param_groups": saved_groups})


def _cast(param, value, key=None):
    """A private copy of a loaded state value, placed like ``param``."""
    if isinstance(value, Tensor):
        arr = _backend.to_device(value._data, _backend.device_index(param._data))
        if key == "step":
            arr = _backend.to_device(value._data, None)  # NOTE: step counters live on the CPU
        elif param._data.dtype.kind == "f":
            arr = arr.astype(param._data.dtype, copy=False)
        if arr is value._data:
            arr = arr.copy()
        return Tensor._wrap(arr)
    if key == "step" and isinstance(value, (int, float)):
        return Tensor._wrap(np.array(value, dtype=np.float32))
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(param, v) for v in value)
    return value


def _typename(obj):
    if isinstance(obj, Tensor):
        return obj.type()
    module = type(obj).__module__
    name = type(obj).__qualname__
    return name if module in ("builtins", None) else f"{module}.{name}"
