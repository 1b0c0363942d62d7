"""``Parameter`` and ``Buffer``: tensors that a :class:`~dtorch.nn.Module` registers when they are
assigned as its attributes.

A ``Parameter`` is a leaf :class:`~dtorch.Tensor` subclass that shares the array (and version
counter) of the data it was made from, and requires grad by default. ``Buffer`` marks a tensor
to be registered as a buffer (``persistent`` decides whether it is part of the ``state_dict``).
"""

from .._tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a module parameter.

    Assigning a ``Parameter`` as an attribute of a ``Module`` adds it to the module's
    ``parameters()``. It shares storage with ``data`` (no copy) and is always a leaf.

    Args:
        data (Tensor): the parameter's value; an empty float tensor if None.
        requires_grad (bool): whether the parameter requires gradient. Default: True.

    Example::

        >>> w = nn.Parameter(dtorch.randn(3, 2))
        >>> w.requires_grad
        True
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from .._creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter data must be a Tensor, got {type(data).__name__}")
        self._data = data._data
        self._vbox = data._vbox
        requires_grad = bool(requires_grad)
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("Only Tensors of floating point and complex dtype can require "
                               "gradients")
        self._requires_grad = requires_grad

    def __repr__(self):
        try:
            from .._printing import parameter_repr
        except ImportError:  # printing module not present: PyTorch's layout by hand
            return "Parameter containing:\n" + super().__repr__()
        return parameter_repr(self)

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (Tensor._wrap(self._data), self._requires_grad))



def _rebuild_parameter(data, requires_grad):
    return Parameter(data, requires_grad)


class Buffer(Tensor):
    """A tensor to be registered as a module buffer when assigned as an attribute.

    The module stores a plain tensor sharing this one's array.

    Args:
        data (Tensor): the buffer's value (shared, not copied).
        persistent (bool): whether the buffer is part of the module's ``state_dict``.
    """

    def __init__(self, data=None, *, persistent=True):
        if data is None:
            from .._creation import empty

            data = empty(0)
        self._data = data._data
        self._vbox = data._vbox
        self._requires_grad = data._requires_grad
        self.persistent = bool(persistent)
