"""``Module``: the base class of every layer and model, with PyTorch's API.

Parameters, buffers and submodules are registered by attribute assignment and live in three
ordered dicts (``_parameters``, ``_buffers``, ``_modules``), which keeps registration order and
gives ``state_dict`` PyTorch's key names. ``__call__`` runs the forward pre-hooks, ``forward``
and the forward hooks; full backward hooks wrap the inputs and outputs in identity graph nodes
that capture the gradients flowing through them. Device and dtype moves (``to``, ``cuda``,
``double``...) happen in place: parameters keep their identity, only their arrays change.
"""

import functools
import itertools
import weakref
from collections import OrderedDict, namedtuple

from ... import _dtype as D
from ..._tensor import Tensor, _parse_to, _target_index
from ...autograd import grad_mode
from ...autograd.function import Primitive
from ...autograd.hooks import RemovableHandle
from ..parameter import Buffer, Parameter

__all__ = ["Module", "register_module_forward_pre_hook", "register_module_forward_hook"]

_global_forward_pre_hooks = OrderedDict()
_global_forward_hooks = OrderedDict()
_hook_ids = itertools.count()


def _typename(obj):
    """``torch.typename``: the tensor type name for tensors, the qualified name otherwise."""
    if isinstance(obj, Tensor):
        return obj.type()
    cls = type(obj)
    mod = cls.__module__
    if mod in ("builtins", None):
        return cls.__qualname__
    return f"{mod}.{cls.__qualname__}"


def _addindent(s_, num_spaces):
    lines = s_.split("\n")
    if len(lines) == 1:
        return s_
    first = lines.pop(0)
    lines = [(num_spaces * " ") + line for line in lines]
    return first + "\n" + "\n".join(lines)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys that were missing and unexpected."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class _Handle(RemovableHandle):
    """A removable handle that also forgets the hook's ``with_kwargs``/``always_call`` flag."""

    def remove(self):
        super().remove()
        for container, key in getattr(self, "_extras", ()):
            container.discard(key)


def _register(hooks, hook, prepend=False, *flags):
    handle = _Handle(hooks, hook)
    handle._key = handle.id
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    handle._extras = [(s, handle.id) for s in flags if s is not None]
    for s in flags:
        if s is not None:
            s.add(handle.id)
    return handle


def register_module_forward_pre_hook(hook):
    """A forward pre-hook ``hook(module, args)`` that runs for every module."""
    return _register(_global_forward_pre_hooks, hook)


def register_module_forward_hook(hook):
    """A forward hook ``hook(module, args, output)`` that runs for every module."""
    return _register(_global_forward_hooks, hook)


class _BackwardHookIdentity(Primitive):
    """Identity on several tensors; its graph node is where a module's full backward hooks see the
    gradients of the module's outputs (output side) or inputs (input side)."""

    backward_name = "BackwardHookFunctionBackward"

    def forward(ctx, *arrays):
        return tuple(arrays)

    def backward(ctx, *grads):
        return grads


class _BackwardHookState:
    """Connects the two identity nodes of one call of a module with full backward hooks."""

    def __init__(self, module, n_inputs):
        self.module = weakref.ref(module)
        self.grad_outputs = None
        self.n_inputs = n_inputs

    def setup_inputs(self, args):
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a._requires_grad]
        if not idx or not grad_mode.is_grad_enabled():
            self.input_idx = None
            return args
        self.input_idx = idx
        self.n_args = len(args)
        outs = _BackwardHookIdentity.apply(*[args[i] for i in idx])
        args = list(args)
        for i, o in zip(idx, outs):
            args[i] = o
        outs[0].grad_fn.register_hook(self._input_hook)
        return tuple(args)

    def setup_outputs(self, result):
        single = isinstance(result, Tensor)
        outs = (result,) if single else result
        if not isinstance(outs, tuple) or not grad_mode.is_grad_enabled():
            return result
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o._requires_grad]
        if not idx:
            return result
        self.n_outputs = len(outs)
        new = _BackwardHookIdentity.apply(*[outs[i] for i in idx])
        outs = list(outs)
        for i, o in zip(idx, new):
            outs[i] = o
        self.output_idx = idx
        new[0].grad_fn.register_prehook(self._output_prehook)
        return outs[0] if single else tuple(outs)

    def _expand(self, grads, idx, n):
        full = [None] * n
        for i, g in zip(idx, grads):
            full[i] = g
        return tuple(full)

    def _output_prehook(self, grad_outputs):
        module = self.module()
        full = self._expand(grad_outputs, self.output_idx, self.n_outputs)
        for hook in module._backward_pre_hooks.values():
            res = hook(module, full)
            if res is not None:
                full = tuple(res)
        self.grad_outputs = full
        if self.input_idx is None:
            # NOTE: no input requires grad, so no input node will run: call the hooks now.
            for hook in module._backward_hooks.values():
                hook(module, (None,) * self.n_inputs, full)
        return tuple(full[i] for i in self.output_idx)

    def _input_hook(self, grad_inputs, grad_outputs):
        module = self.module()
        full = self._expand(grad_outputs, self.input_idx, self.n_args)
        for hook in module._backward_hooks.values():
            res = hook(module, full, self.grad_outputs)
            if res is not None:
                if len(res) != len(full):
                    raise RuntimeError(f"Backward hook returned an invalid number of grad_input, "
                                       f"got {len(res)}, but expected {len(full)}")
                full = tuple(res)
        return tuple(full[i] for i in self.input_idx)


class Module:
    """Base class for all neural network modules.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and submodules as
    attributes, and implement ``forward``. Calling the module runs ``forward`` with its hooks.

    Example::

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return self.fc(x).relu()
    """

    training = True
    _version = 1
    call_super_init = False

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected argument "
                            f"{(args or tuple(kwargs))[0]!r}")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_pre_hooks_with_kwargs"] = set()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_hooks_with_kwargs"] = set()
        d["_forward_hooks_always_called"] = set()
        d["_backward_hooks"] = OrderedDict()
        d["_backward_pre_hooks"] = OrderedDict()
        d["_state_dict_hooks"] = OrderedDict()
        d["_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_post_hooks"] = OrderedDict()

    def forward(self, *input):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function')

    # ------------------------------------------------------------------ registration
    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer (a tensor that is state but not a parameter, e.g. running_mean)."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(torch Tensor or None required)")
        if isinstance(tensor, (Buffer, Parameter)):
            plain = Tensor._wrap(tensor._data)
            plain._vbox = tensor._vbox
            tensor = plain
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_parameter(self, name, param):
        """Add a parameter (or None, which is skipped by ``parameters()`` and ``state_dict``)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"parameter name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError('parameter name can\'t contain "."')
        if name == "":
            raise KeyError('parameter name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
        elif not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(torch.nn.Parameter or None required)")
        elif param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                f"created explicitly. To express '{name}' as a function of another Tensor, "
                "compute the value in the forward() method.")
        else:
            self._parameters[name] = param

    def add_module(self, name, module):
        """Add a child module, accessible as the attribute ``name``."""
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {_typename(name)}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if "." in name:
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError('module name can\'t be empty string ""')
        self._modules[name] = module

    register_module = add_module

    def __getattr__(self, name):
        d = self.__dict__
        if "_parameters" in d:
            p = d["_parameters"]
            if name in p:
                return p[name]
            b = d["_buffers"]
            if name in b:
                return b[name]
            m = d["_modules"]
            if name in m:
                return m[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            _remove_from(name, d, self._buffers, self._modules, self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(torch.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        else:
            modules = d.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                _remove_from(name, d, self._parameters, self._buffers,
                             self._non_persistent_buffers_set)
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign '{_typename(value)}' as child module "
                                    f"'{name}' (torch.nn.Module or None expected)")
                modules[name] = value
            else:
                buffers = d.get("_buffers")
                if isinstance(value, Buffer) or buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(
                            f"cannot assign '{_typename(value)}' as buffer '{name}' "
                            "(torch.nn.Buffer, torch.Tensor or None expected)")
                    if isinstance(value, Buffer):
                        persistent = value.persistent
                    else:
                        persistent = name not in self._non_persistent_buffers_set
                    _remove_from(name, d, self._parameters, self._modules)
                    self.register_buffer(name, value, persistent)
                else:
                    object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = list(object.__dir__(self))
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    def __setstate__(self, state):
        self.__dict__.update(state)
        for key, default in (("_forward_pre_hooks_with_kwargs", set),
                             ("_forward_hooks_with_kwargs", set),
                             ("_forward_hooks_always_called", set),
                             ("_backward_pre_hooks", OrderedDict),
                             ("_state_dict_pre_hooks", OrderedDict),
                             ("_load_state_dict_post_hooks", OrderedDict),
                             ("_non_persistent_buffers_set", set)):
            if key not in self.__dict__:
                self.__dict__[key] = default()

    # ------------------------------------------------------------------ lookup
    def get_submodule(self, target):
        """The submodule at the dotted path ``target`` (``''`` is this module)."""
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(mod._get_name() + " has no attribute `" + item + "`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError("`" + item + "` is not an nn.Module")
        return mod

    def set_submodule(self, target, module, strict=False):
        """Replace (or with ``strict=False`` add) the submodule at the dotted path ``target``."""
        if target == "":
            raise ValueError("Cannot set the submodule without a target name!")
        atoms = target.split(".")
        if not isinstance(module, Module):
            raise ValueError("`module` is not an nn.Module, found " + _typename(module))
        parent = self.get_submodule(".".join(atoms[:-1]))
        if strict and not hasattr(parent, atoms[-1]):
            raise AttributeError(parent._get_name() + " has no attribute `" + atoms[-1] + "`")
        if hasattr(parent, atoms[-1]) and not isinstance(getattr(parent, atoms[-1]), Module):
            raise AttributeError("`" + atoms[-1] + "` is not an nn.Module")
        setattr(parent, atoms[-1], module)

    def get_parameter(self, target):
        """The parameter at the dotted path ``target`` (e.g. ``'fc1.weight'``)."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(mod._get_name() + " has no attribute `" + name + "`")
        param = getattr(mod, name)
        if not isinstance(param, Parameter):
            raise AttributeError("`" + name + "` is not an nn.Parameter")
        return param

    def get_buffer(self, target):
        """The buffer at the dotted path ``target`` (e.g. ``'bn.running_mean'``)."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(mod._get_name() + " has no attribute `" + name + "`")
        if name not in mod._buffers:
            raise AttributeError("`" + name + "` is not a buffer")
        return getattr(mod, name)

    def get_extra_state(self):
        raise RuntimeError("Reached a code path in Module.get_extra_state() that should never be "
                           "called.")

    # ------------------------------------------------------------------ iteration
    def _named_members(self, get_members_fn, prefix="", recurse=True, remove_duplicate=True):
        memo = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for module_prefix, module in modules:
            for k, v in get_members_fn(module):
                if v is None or (remove_duplicate and id(v) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield (module_prefix + ("." if module_prefix else "") + k, v)

    def parameters(self, recurse=True):
        """Iterator over the parameters (this module's, and its descendants' if ``recurse``)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Iterator over ``(name, parameter)``, names dotted like ``'fc1.weight'``."""
        return self._named_members(lambda m: m._parameters.items(), prefix=prefix,
                                   recurse=recurse, remove_duplicate=remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._buffers.items(), prefix=prefix, recurse=recurse,
                                   remove_duplicate=remove_duplicate)

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_children(self):
        memo = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in memo:
                memo.add(id(module))
                yield name, module

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Iterator over ``(name, module)`` for this module and all descendants (pre-order)."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode=True):
        """Set training mode (affects Dropout, BatchNorm...) here and in all descendants."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters (to None by default, else to zeros)."""
        for p in self.parameters():
            if p._grad is None:
                continue
            if set_to_none:
                p._grad = None
            else:
                g = p._grad
                if g._grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g._data[...] = 0
                g._vbox[0] += 1

    def share_memory(self):
        """No-op on NumPy arrays (kept for API compatibility); returns self."""
        return self

    # ------------------------------------------------------------------ device / dtype
    def _apply(self, fn, recurse=True):
        """Apply ``fn(array) -> array`` to every parameter, gradient and buffer array, in place
        (the Parameter objects keep their identity)."""
        if recurse:
            for module in self.children():
                module._apply(fn)
        for p in self._parameters.values():
            if p is None:
                continue
            p._data = fn(p._data)
            if p._grad is not None:
                p._grad._data = fn(p._grad._data)
        for b in self._buffers.values():
            if b is not None:
                b._data = fn(b._data)
        return self

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant (children first) and on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Move and/or cast parameters and buffers in place: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)``, ``to(tensor)``. Only floating-point tensors change dtype."""
        dev, dtype, _ = _parse_to(args, dict(kwargs))
        if dtype is not None:
            dtype = D.as_dtype(dtype)
            if not dtype.is_floating_point:
                raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, "
                                f"but got desired dtype={dtype}")
        return self._apply(functools.partial(_convert, dev=dev, dtype=dtype, floating_only=True))

    def cuda(self, device=None):
        if device is None:
            device = "cuda"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        return self._apply(functools.partial(_convert, dev=device, dtype=None))

    def cpu(self):
        return self._apply(functools.partial(_convert, dev="cpu", dtype=None))

    def type(self, dst_type):
        """Cast all parameters and buffers to ``dst_type``."""
        return self._apply(functools.partial(_convert, dev=None, dtype=D.as_dtype(dst_type)))

    def float(self):
        return self._apply(functools.partial(_convert, dev=None, dtype=D.float32,
                                             floating_only=True))

    def double(self):
        return self._apply(functools.partial(_convert, dev=None, dtype=D.float64,
                                             floating_only=True))

    def half(self):
        return self._apply(functools.partial(_convert, dev=None, dtype=D.float16,
                                             floating_only=True))

    # ------------------------------------------------------------------ hooks
    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """``hook(module, args)`` (or ``hook(module, args, kwargs)`` with ``with_kwargs``) runs
        before ``forward``; it may return new args (or ``(args, kwargs)``)."""
        return _register(self._forward_pre_hooks, hook, prepend,
                         self._forward_pre_hooks_with_kwargs if with_kwargs else None)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False,
                              always_call=False):
        """``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)``) runs after
        ``forward``; it may return a replacement output."""
        return _register(self._forward_hooks, hook, prepend,
                         self._forward_hooks_with_kwargs if with_kwargs else None,
                         self._forward_hooks_always_called if always_call else None)

    def register_full_backward_hook(self, hook, prepend=False):
        """``hook(module, grad_input, grad_output)`` runs when the gradients of the module's
        inputs are computed; it may return a replacement ``grad_input``."""
        return _register(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """``hook(module, grad_output)`` runs when the gradients of the module's outputs are
        known; it may return a replacement ``grad_output``."""
        return _register(self._backward_pre_hooks, hook, prepend)

    def register_backward_hook(self, hook):
        """Deprecated in PyTorch; here the same as :meth:`register_full_backward_hook`."""
        return self.register_full_backward_hook(hook)

    def register_state_dict_pre_hook(self, hook):
        """``hook(module, prefix, keep_vars)`` runs before ``state_dict`` collects this module."""
        return _register(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata)`` runs after ``state_dict``."""
        return _register(self._state_dict_hooks, hook)

    _register_state_dict_hook = register_state_dict_post_hook

    def register_load_state_dict_pre_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)`` runs before this module loads its entries."""
        return _register(self._load_state_dict_pre_hooks,
                         functools.partial(_with_module, weakref.ref(self), hook))

    def register_load_state_dict_post_hook(self, hook):
        """``hook(module, incompatible_keys)`` runs after ``load_state_dict``; it may edit the
        key lists in place."""
        return _register(self._load_state_dict_post_hooks, hook)

    # ------------------------------------------------------------------ call
    def _call_impl(self, *args, **kwargs):
        d = self.__dict__
        if not (d["_forward_pre_hooks"] or d["_forward_hooks"] or d["_backward_hooks"]
                or d["_backward_pre_hooks"] or _global_forward_pre_hooks
                or _global_forward_hooks):
            return self.forward(*args, **kwargs)
        return self._hooked_call(args, kwargs)

    __call__ = _call_impl

    def _hooked_call(self, args, kwargs):
        pre_kw = self._forward_pre_hooks_with_kwargs
        for key, hook in itertools.chain(_global_forward_pre_hooks.items(),
                                         self._forward_pre_hooks.items()):
            if key in pre_kw:
                res = hook(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {res}.")
                    args, kwargs = res
            else:
                res = hook(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        state = None
        if self._backward_hooks or self._backward_pre_hooks:
            state = _BackwardHookState(self, len(args))
            args = state.setup_inputs(args)
        try:
            result = self.forward(*args, **kwargs)
        except Exception:
            for key, hook in self._forward_hooks.items():
                if key in self._forward_hooks_always_called:
                    try:
                        hook(self, args, None)
                    except Exception:  # the forward error is the one to report
                        pass
            raise
        fwd_kw = self._forward_hooks_with_kwargs
        for key, hook in itertools.chain(_global_forward_hooks.items(),
                                         self._forward_hooks.items()):
            res = hook(self, args, kwargs, result) if key in fwd_kw else hook(self, args, result)
            if res is not None:
                result = res
        if state is not None:
            result = state.setup_outputs(result)
        return result

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An ordered dict of every parameter and persistent buffer, keyed by dotted names
        (``'conv1.weight'``, ``'bn.running_mean'``...). Values share storage with the module
        (detached unless ``keep_vars``)."""
        if args:  # PyTorch's deprecated positional form (destination, prefix, keep_vars)
            destination = args[0]
            if len(args) > 1:
                prefix = args[1]
            if len(args) > 2:
                keep_vars = args[2]
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        local_metadata = dict(version=self._version)
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        for hook in self._state_dict_pre_hooks.values():
            hook(self, prefix, keep_vars)
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        for hook in self._state_dict_hooks.values():
            res = hook(self, destination, prefix, local_metadata)
            if res is not None:
                destination = res
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Copy this module's own entries of ``state_dict`` (keys starting with ``prefix``)."""
        for hook in self._load_state_dict_pre_hooks.values():
            hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                 error_msgs)
        persistent = {k: v for k, v in self._buffers.items()
                      if k not in self._non_persistent_buffers_set}
        local_state = {k: v for k, v in itertools.chain(self._parameters.items(),
                                                        persistent.items()) if v is not None}
        assign = local_metadata.get("assign_to_params_buffers", False)
        for name, param in local_state.items():
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                error_msgs.append(f'While copying the parameter named "{key}", expected '
                                  "torch.Tensor or Tensor-like object from checkpoint but "
                                  f"received {type(value)}")
                continue
            if param.ndim == 0 and value.ndim == 1 and value.shape[0] == 1:
                value = value[0]
            if value.shape != param.shape:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{value.shape} from checkpoint, the shape in current model "
                                  f"is {param.shape}.")
                continue
            try:
                with grad_mode.no_grad():
                    if assign:
                        if isinstance(param, Parameter):
                            new = value if isinstance(value, Parameter) else Parameter(
                                value, requires_grad=param.requires_grad)
                            setattr(self, name, new)
                        else:
                            self._buffers[name] = value
                    else:
                        param.copy_(value)
            except Exception as ex:
                error_msgs.append(f'While copying the parameter named "{key}", whose dimensions '
                                  f"in the model are {param.shape} and whose dimensions in the "
                                  f"checkpoint are {value.shape}, an exception occurred : "
                                  f"{ex.args}.")
        if strict:
            for key in state_dict:
                if key.startswith(prefix):
                    input_name = key[len(prefix):].split(".", 1)
                    if input_name[0] not in self._modules and input_name[0] not in local_state:
                        unexpected_keys.append(key)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy parameters and buffers from ``state_dict`` into this module and its descendants.

        With ``strict`` (default) the keys must match exactly: missing keys, unexpected keys and
        shape mismatches are all reported together in one RuntimeError. Returns the
        ``(missing_keys, unexpected_keys)`` named tuple.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing_keys, unexpected_keys, error_msgs = [], [], []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)
        if metadata is not None:
            state_dict._metadata = metadata

        def load(module, local_state_dict, prefix=""):
            local_metadata = {} if metadata is None else dict(metadata.get(prefix[:-1], {}))
            if assign:
                local_metadata["assign_to_params_buffers"] = assign
            module._load_from_state_dict(local_state_dict, prefix, local_metadata, True,
                                         missing_keys, unexpected_keys, error_msgs)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    child_sd = {k: v for k, v in local_state_dict.items()
                                if k.startswith(child_prefix)}
                    load(child, child_sd, child_prefix)
            incompatible = _IncompatibleKeys(missing_keys, unexpected_keys)
            for hook in module._load_state_dict_post_hooks.values():
                if hook(module, incompatible) is not None:
                    raise RuntimeError("load_state_dict post hook should return None")

        load(self, state_dict)
        if strict:
            if unexpected_keys:
                error_msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected_keys)))
            if missing_keys:
                error_msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing_keys)))
        if error_msgs:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(error_msgs)))
        return _IncompatibleKeys(missing_keys, unexpected_keys)

    # ------------------------------------------------------------------ printing
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The layer's own settings, shown inside its ``repr`` (override in subclasses)."""
        return ""

    def __repr__(self):
        extra_lines = []
        extra = self.extra_repr()
        if extra:
            extra_lines = extra.split("\n")
        child_lines = []
        for key, module in self._modules.items():
            mod_str = _addindent(repr(module), 2)
            child_lines.append("(" + key + "): " + mod_str)
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _with_module(module_ref, hook, *args):
    return hook(module_ref(), *args)


def _remove_from(name, *containers):
    for c in containers:
        if name in c:
            if isinstance(c, dict):
                del c[name]
            else:
                c.discard(name)


def _convert(array, dev, dtype, floating_only=False):
    """``array`` moved to ``dev`` and/or cast to ``dtype`` (float arrays only if
    ``floating_only``), or the same array when nothing changes."""
    t = Tensor._wrap(array)
    if dtype is not None and floating_only and array.dtype.kind != "f":
        dtype = None
    if dev is not None:
        dev = _target_index(dev)
        dev = "cpu" if dev is None else f"cuda:{dev}"
    with grad_mode.no_grad():
        return t._to(dev, dtype)._data
