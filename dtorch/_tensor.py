"""The Tensor container: an array (NumPy or CuPy) plus autograd metadata.

The math lives in ``dtorch/ops`` (one ``Primitive`` per op); ``dtorch/ops/__init__.py`` installs
every op as a method and operator of this class. What stays here: construction, attributes,
conversion, autograd entry points (``backward``, hooks) and the in-place machinery, which keeps
PyTorch's semantics: a write through a view is visible in its base, in-place ops bump a version
counter shared by a tensor and its views, and an in-place op on a tensor that is part of a graph
rewrites its history (``grad_fn``).
"""

import warnings
import weakref

import numpy as np

from . import _backend
from . import _dtype as D
from ._device import CPU, as_device, device
from .autograd import grad_mode
from .autograd.hooks import RemovableHandle


class Size(tuple):
    """The type of ``Tensor.shape``: a tuple that prints as ``dtorch.Size([2, 3])``."""

    def __repr__(self):
        return f"dtorch.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


_NONLEAF_GRAD_WARNING = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad field "
    "to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you "
    "access the non-leaf Tensor by mistake, make sure you access the leaf Tensor instead."
)


class Tensor:
    """A multi-dimensional array with autograd support, PyTorch's ``torch.Tensor``.

    ``Tensor(5, 3)`` makes an (uninitialised, here zero-filled) float tensor of that shape and
    ``Tensor([[1, 2]])`` a float tensor from data, as PyTorch's legacy constructor does; use
    :func:`dtorch.tensor` to keep the data's dtype.
    """

    # Defaults shared by all instances; ``_wrap`` sets only what differs.
    _requires_grad = False
    _grad = None
    _grad_fn = None
    _output_nr = 0
    _base = None
    _view_src = None
    _hooks = None
    _post_acc_hooks = None
    _acc_ref = None
    _retains_grad = False
    __array_priority__ = 1000  # NumPy defers binary operators to us

    def __init__(self, *args, device=None, dtype=None):
        from ._creation import legacy_new

        data = legacy_new(args, dtype or D.get_default_dtype(), device)
        self._data = data
        self._vbox = [0]

    # ----------------------------------------------------------------- construction
    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A tensor around ``array`` (no copy). Internal fast path."""
        t = object.__new__(Tensor)
        t._data = array
        t._vbox = [0]
        if requires_grad:
            t._requires_grad = True
        return t

    # ----------------------------------------------------------------- attributes
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    ndimension = dim

    def numel(self):
        return int(self._data.size)

    nelement = numel

    @property
    def dtype(self):
        return D._FROM_NP[self._data.dtype]

    @property
    def device(self):
        idx = _backend.device_index(self._data)
        return CPU if idx is None else device("cuda", idx)

    @property
    def is_cuda(self):
        return _backend.is_cuda_array(self._data)

    @property
    def is_cpu(self):
        return not _backend.is_cuda_array(self._data)

    def get_device(self):
        idx = _backend.device_index(self._data)
        return -1 if idx is None else idx

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def is_contiguous(self, memory_format=None):
        return bool(self._data.flags.c_contiguous)

    def element_size(self):
        return self._data.itemsize

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self._data.ndim)]

    def data_ptr(self):
        if self.is_cuda:
            return self._data.data.ptr
        return self._data.__array_interface__["data"][0]

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    @property
    def _version(self):
        return self._vbox[0]

    def _type_desc(self):
        name = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
                "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
                "bool": "Bool"}[self.dtype.name]
        prefix = "dtorch.cuda." if self.is_cuda else "dtorch."
        return f"{prefix}{name}Tensor {list(self._data.shape)}"

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(
                "Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __complex__(self):
        return complex(self.item())

    def __format__(self, spec):
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __repr__(self, *, tensor_contents=None):
        from ._printing import tensor_repr

        return tensor_repr(self, tensor_contents=tensor_contents)

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy() if not self._requires_grad else self.detach().numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __reduce_ex__(self, protocol):
        from ._creation import _rebuild

        return (_rebuild, (_backend.to_device(self._data, None), str(self.device),
                           self._requires_grad))

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.")
        new = type(self).__new__(type(self))
        new.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k not in ("_data", "_vbox", "_grad", "_acc_ref", "_base",
                                          "_view_src")})
        new._data = self._data.copy()
        new._vbox = [0]
        if self._grad is not None:
            new._grad = Tensor._wrap(self._grad._data.copy())
        memo[id(self)] = new
        return new

    # ----------------------------------------------------------------- autograd attributes
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        requires_grad = bool(requires_grad)
        if self._grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use"
                    " a computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach().")
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point and complex dtype can require "
                               "gradients")
        self._requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def grad(self):
        if self._grad_fn is not None and not self._retains_grad and self._grad is None:
            warnings.warn(_NONLEAF_GRAD_WARNING, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(
                    f"assigned grad has data of a different size: expected "
                    f"{list(self._data.shape)}, got {list(value._data.shape)}")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: expected "
                                   f"{self.dtype}, got {value.dtype}")
        self._grad = value

    @property
    def retains_grad(self):
        return self._retains_grad

    @property
    def data(self):
        """This tensor's storage as a tensor outside autograd (writes are not tracked)."""
        return Tensor._wrap(self._data)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data = value._data

    def _edge(self):
        """(node, output_nr) that receives this tensor's gradient."""
        fn = self._grad_fn
        if fn is not None:
            return fn, self._output_nr
        ref = self._acc_ref
        acc = ref() if ref is not None else None
        if acc is None:
            from .autograd.engine import AccumulateGrad

            acc = AccumulateGrad(self)
            self._acc_ref = weakref.ref(acc)
        return acc, 0

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate the gradient of this tensor w.r.t. the graph leaves into their ``.grad``."""
        from .autograd import backward

        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self):
        """A tensor sharing this one's storage and version counter, outside the graph."""
        t = Tensor._wrap(self._data)
        t._vbox = self._vbox
        return t

    def detach_(self):
        if self._base is not None and self._grad_fn is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self):
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward."""
        if self._grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        if self._retains_grad:
            return
        ref = weakref.ref(self)

        def hook(grad):
            t = ref()
            if t is not None:
                if t._grad is None:
                    t._grad = Tensor._wrap(grad._data.copy())
                else:
                    t._grad._data += grad._data

        self._add_node_hook(hook)
        self._retains_grad = True

    def register_hook(self, hook):
        """``hook(grad) -> Tensor | None`` runs when this tensor's gradient is computed; a
        returned tensor replaces the gradient."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            return RemovableHandle(self._hooks, hook)
        return self._add_node_hook(hook)

    def _add_node_hook(self, hook):
        fn = self._grad_fn
        if fn._tensor_pre_hooks is None:
            fn._tensor_pre_hooks = {}
        hooks = fn._tensor_pre_hooks.setdefault(self._output_nr, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs after a gradient has been accumulated into this leaf's ``.grad``
        (DistributedDataParallel's bucket hooks use it)."""
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = []
        self._post_acc_hooks.append(hook)
        return RemovableHandle(self._post_acc_hooks, hook)

    # ----------------------------------------------------------------- conversion
    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return _backend.to_device(self._data, None).tolist()

    def numpy(self, *, force=False):
        """The tensor's NumPy array, sharing memory (CPU tensors only, as in PyTorch)."""
        if force:
            return _backend.to_device(self.detach()._data, None)
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self.is_cuda:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() "
                            "to copy the tensor to host memory first.")
        return self._data

    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``; returns ``self``
        when nothing changes, as PyTorch does."""
        dev, dtype, copy = _parse_to(args, kwargs)
        return self._to(dev, dtype, copy)

    def _to(self, dev, dtype, copy=False):
        from .ops.convert import to_copy

        dtype = D.as_dtype(dtype)
        want_idx = _target_index(dev)
        same_dev = dev is None or want_idx == _backend.device_index(self._data)
        same_dtype = dtype is None or dtype.np == self._data.dtype
        if same_dev and same_dtype and not copy:
            return self
        return to_copy(self, None if dev is None else want_idx, dtype, dev is not None)

    def cuda(self, device=None, non_blocking=False):
        if device is None:
            device = "cuda"
        elif isinstance(device, int) and not isinstance(device, bool):
            device = f"cuda:{device}"
        return self.to(device)

    def cpu(self):
        return self.to("cpu")

    def type(self, dtype=None, non_blocking=False):
        """Without arguments, the type name (``'dtorch.FloatTensor'``); else a converted copy.
        Accepts dtypes and type names such as ``'torch.cuda.FloatTensor'``."""
        if dtype is None:
            return self._type_desc().split(" ")[0]
        if isinstance(dtype, str):
            from ._creation import parse_type_name

            dt, is_cuda = parse_type_name(dtype)
            return self._to("cuda" if is_cuda else "cpu", dt)
        if isinstance(dtype, type) and hasattr(dtype, "_legacy_dtype"):
            return self._to("cuda" if dtype._legacy_cuda else "cpu", dtype._legacy_dtype)
        return self._to(None, dtype)

    def type_as(self, other):
        return self._to(other.device, other.dtype)

    def float(self):
        return self._to(None, D.float32)

    def double(self):
        return self._to(None, D.float64)

    def half(self):
        return self._to(None, D.float16)

    def long(self):
        return self._to(None, D.int64)

    def int(self):
        return self._to(None, D.int32)

    def short(self):
        return self._to(None, D.int16)

    def char(self):
        return self._to(None, D.int8)

    def byte(self):
        return self._to(None, D.uint8)

    def bool(self):
        return self._to(None, D.bool_)

    def clone(self, *, memory_format=None):
        from .ops.convert import to_copy

        return to_copy(self, _backend.device_index(self._data), None, False)

    def contiguous(self, memory_format=None):
        if self._data.flags.c_contiguous:
            return self
        return self.clone()

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from ._creation import tensor

        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)

    def _new_factory(name):
        def method(self, *size, dtype=None, device=None, requires_grad=False, **kw):
            from . import _creation

            return getattr(_creation, name)(*size, dtype=dtype or self.dtype,
                                            device=device or self.device,
                                            requires_grad=requires_grad, **kw)

        method.__name__ = "new_" + name
        return method

    new_zeros = _new_factory("zeros")
    new_ones = _new_factory("ones")
    new_empty = _new_factory("empty")
    new_full = _new_factory("full")
    del _new_factory

    # ----------------------------------------------------------------- in-place machinery
    def _inplace(self, fn, *args, **kwargs):
        """Run the out-of-place op ``fn(self, *args)`` and write its result into this tensor's
        storage, keeping autograd history and the version counter right."""
        recording = grad_mode._state.enabled and (
            self._requires_grad
            or any(isinstance(a, Tensor) and a._requires_grad for a in args))
        if not recording:
            with grad_mode.no_grad():
                out = fn(self, *args, **kwargs)
            self._write(out._data)
            return self
        if self._grad_fn is None and self._requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        base = self._base
        if base is not None and base._requires_grad and base._grad_fn is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        # NOTE: the op may save its input for backward; give it a copy so that writing the
        # result into our storage cannot corrupt what backward reads.
        src = Tensor._wrap(self._data.copy())
        src._requires_grad, src._grad_fn, src._output_nr = (
            self._requires_grad, self._grad_fn, self._output_nr)
        out = fn(src, *args, **kwargs)
        self._write(out._data)
        if base is not None:
            self._rebase_view(out)
        else:
            self._requires_grad = True
            self._grad_fn, self._output_nr = out._grad_fn, out._output_nr
        return self

    def _write(self, array):
        if array.dtype != self._data.dtype:
            if D._FROM_NP[array.dtype]._category > self.dtype._category:
                raise RuntimeError(f"result type {_kind_name(array.dtype)} can't be cast to the "
                                   f"desired output type {_kind_name(self._data.dtype)}")
        if array.shape != self._data.shape:
            try:
                target = np.broadcast_shapes(array.shape, self._data.shape)
            except ValueError:
                target = array.shape
            if target != self._data.shape:
                raise RuntimeError(f"output with shape {list(self._data.shape)} doesn't match the "
                                   f"broadcast shape {list(target)}")
        if not self._data.flags.writeable:
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers to "
                "a single memory location. Please clone() the tensor before performing the "
                "operation.")
        self._data[...] = array
        self._vbox[0] += 1

    def _rebase_view(self, out):
        """After an in-place op on a view: the base's history becomes 'base with the view's
        region replaced by ``out``', and this view's history a view of that."""
        from .ops.shape import ViewScatter

        base = self._base
        chain = []
        t = self
        while t is not base:
            src, cls, args, kwargs = t._view_src
            chain.append((cls, args, kwargs))
            t = src
        chain.reverse()
        old = Tensor._wrap(base._data)
        old._requires_grad, old._grad_fn, old._output_nr = (
            base._requires_grad, base._grad_fn, base._output_nr)
        new = ViewScatter.apply(old, out, chain=tuple(chain))
        base._requires_grad, base._grad_fn, base._output_nr = True, new._grad_fn, 0
        t = base
        for cls, args, kwargs in chain:
            t = cls.apply(t, *args[1:], **kwargs)
        self._requires_grad, self._grad_fn, self._output_nr = True, t._grad_fn, t._output_nr

    # ----------------------------------------------------------------- indexing
    def __getitem__(self, index):
        from .ops.index import getitem

        return getitem(self, index)

    def __setitem__(self, index, value):
        from .ops.index import convert_index, index_error, index_put

        if grad_mode._state.enabled and (
                self._requires_grad or isinstance(value, Tensor) and value._requires_grad):
            self._inplace(index_put, index, value)
            return
        idx, _ = convert_index(index, _backend.get_array_module(self._data))
        if not self._data.flags.writeable:
            self._write(self._data)  # raises the overlapping-memory error
        src = value._data if isinstance(value, Tensor) else value
        try:
            self._data[idx] = src
        except IndexError as exc:
            raise index_error(exc, self, idx) from None
        except ValueError:
            target = list(np.shape(self._data[idx]))
            raise RuntimeError(
                f"The expanded size of the tensor ({target[-1] if target else 1}) must match the "
                f"existing size ({np.shape(src)[-1] if np.ndim(src) else 1}) at non-singleton "
                f"dimension {max(len(target) - 1, 0)}.  Target sizes: {target}.  Tensor sizes: "
                f"{list(np.shape(src))}") from None
        self._vbox[0] += 1


def _kind_name(np_dtype):
    return {"f": "Float", "i": "Long", "u": "Byte", "b": "Bool"}[np_dtype.kind]


def _wrap_dim(dim, ndim):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _target_index(dev):
    if dev is None:
        return None
    dev = as_device(dev)
    if dev.type == "cpu":
        return None
    if dev.index is not None:
        return dev.index
    from .cuda import current_device

    return current_device()


def _parse_to(args, kwargs):
    dev = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dev, dtype = a.device, a.dtype
        elif isinstance(a, D.dtype) or (isinstance(a, type) and a in (float, int, bool)):
            dtype = a
        elif isinstance(a, (str, device, int)) and not isinstance(a, bool):
            dev = a
        elif isinstance(a, bool):
            continue  # non_blocking passed positionally
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
    return dev, dtype, copy
