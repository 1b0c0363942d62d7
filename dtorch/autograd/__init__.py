"""Reverse-mode automatic differentiation: ``backward``, ``grad``, grad modes, custom
``Function``s, ``gradcheck`` and anomaly detection.

Higher-order gradients (``create_graph=True``) are not supported: backward formulas run on raw
arrays, so the gradient computation itself is not recorded. Asking for it raises.
"""

import numpy as np

from .. import _backend
from . import function as _function
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .engine import queue_callback, run_backward
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .gradcheck import gradcheck
from .variable import Variable

__all__ = [
    "Function", "FunctionCtx", "Variable", "backward", "detect_anomaly", "enable_grad", "grad",
    "gradcheck", "inference_mode", "is_anomaly_enabled", "is_grad_enabled", "no_grad",
    "once_differentiable", "queue_callback", "set_detect_anomaly", "set_grad_enabled",
]


def _check_create_graph(create_graph):
    if create_graph:
        raise RuntimeError(
            "dtorch does not support create_graph=True (higher-order gradients): backward "
            "formulas run on raw arrays and are not themselves recorded.")


def _root_grads(tensors, grad_tensors):
    from .._tensor import Tensor

    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    grad_tensors = list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"got {len(grad_tensors)} tensors and {len(tensors)} gradients")
    out = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a "
                               "grad_fn")
        if g is None:
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            xp = _backend.get_array_module(t._data)
            out.append(xp.ones(t._data.shape, dtype=t._data.dtype))
        else:
            ga = g._data if isinstance(g, Tensor) else np.asarray(g, dtype=t._data.dtype)
            if ga.shape != t._data.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{list(ga.shape)} and output[{i}] has a shape of "
                                   f"{list(t._data.shape)}.")
            out.append(ga)
    return out


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None,
             grad_variables=None):
    """Accumulate into the leaves' ``.grad`` the gradients of ``tensors`` (weighted by
    ``grad_tensors``)."""
    from .._tensor import Tensor

    _check_create_graph(create_graph)
    if grad_variables is not None:
        grad_tensors = grad_variables
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    grads = _root_grads(tensors, grad_tensors)
    captured = run_backward(tensors, grads, retain_graph=bool(retain_graph), inputs=inputs,
                            accumulate=True)
    if inputs is not None:
        for t, g in zip(inputs, captured):
            if t._grad_fn is not None and g is not None:
                t._grad = Tensor._wrap(g.copy()) if t._grad is None else t._grad + Tensor._wrap(g)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` w.r.t. ``inputs``, returned (not accumulated into
    ``.grad``)."""
    from .._tensor import Tensor

    _check_create_graph(create_graph)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    grads = _root_grads(outputs, grad_outputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    captured = run_backward(outputs, grads, retain_graph=bool(retain_graph), inputs=inputs,
                            accumulate=False, allow_unused=allow_unused)
    result = []
    for t, g in zip(inputs, captured):
        if g is None:
            result.append(Tensor._wrap(_backend.get_array_module(t._data).zeros_like(t._data))
                          if materialize_grads else None)
        else:
            result.append(Tensor._wrap(g if g.base is None else g.copy()))
    return tuple(result)


del _function
