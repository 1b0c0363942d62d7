"""The backward engine: iterative, so graph depth is limited only by memory.

Nodes run in reverse creation order (newest first) once every consumer has sent its gradient;
gradient accumulation into leaves (``AccumulateGrad``) runs as soon as a leaf's gradient is
complete, so post-accumulate-grad hooks (DDP's bucket hooks) fire while backward is still going.
"""

import heapq
import sys
import threading

from .._backend import get_array_module
from . import function as _fn
from .function import Node


class AccumulateGrad(Node):
    """The graph node of a leaf tensor that requires grad: adds incoming gradients to ``.grad``."""

    _backward_name = "AccumulateGrad"
    _priority = 1

    def __init__(self, variable):
        self.variable = variable
        self._seq = next(_fn._seq)

    def name(self):
        return "AccumulateGrad"

    @property
    def _tensor_pre_hooks(self):
        hooks = self.variable._hooks
        return {0: hooks} if hooks else None

    def _run_backward(self, grads):
        var = self.variable
        g = grads[0]
        if g.shape != var._data.shape:
            raise RuntimeError(
                f"AccumulateGrad: gradient of shape {list(g.shape)} does not match the tensor's "
                f"shape {list(var._data.shape)}")
        current = var._grad
        if current is None:
            if not _stealable(g, var._data.dtype):
                xp = get_array_module(g)
                g = xp.array(g, dtype=var._data.dtype, copy=True)
            var._grad = var._wrap(g)
        else:
            current._data += g
        hooks = var._post_acc_hooks
        if hooks:
            for hook in list(hooks):
                hook(var)
        return ()


def _stealable(g, dtype):
    """True when the gradient array can become ``.grad`` without a copy: it owns its memory, has
    the right dtype and layout, and nothing but the engine refers to it (so no other tensor can
    share it). The reference count covers: the engine's list, the caller's local, the argument."""
    return (g.base is None and g.dtype == dtype and g.flags.c_contiguous
            and sys.getrefcount(g) <= _STEAL_REFS)


_STEAL_REFS = 4


class _CallbackState(threading.local):
    def __init__(self):
        self.stack = []


_callbacks = _CallbackState()


def queue_callback(callback):
    """Run ``callback()`` when the backward pass now running ends (before ``backward`` returns).
    DDP uses it to wait for its gradient buckets. Raises if no backward pass is running."""
    if not _callbacks.stack:
        raise RuntimeError("queue_callback can only be called during a backward pass")
    _callbacks.stack[-1].append(callback)


def run_backward(roots, root_grads, retain_graph=False, inputs=None, accumulate=True,
                 allow_unused=True):
    """Backpropagate ``root_grads`` (arrays) from ``roots`` (tensors).

    With ``accumulate=True`` (``Tensor.backward``) gradients are added to the ``.grad`` of leaves
    (only those in ``inputs`` if given). With ``accumulate=False`` (``autograd.grad``) nothing is
    accumulated and the gradients reaching ``inputs`` are returned as arrays.
    """
    capture = {}
    only = None
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not t._requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            capture.setdefault(t._edge(), []).append(i)
        if accumulate:
            only = {edge[0] for edge in capture}
    captured = [None] * (len(inputs) if inputs is not None else 0)

    buffers = {}
    heap = []
    for t, g in zip(roots, root_grads):
        node, nr = t._edge()
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node._n_outputs
        buf[nr] = g if buf[nr] is None else buf[nr] + g

    deps = {}
    stack = list(buffers)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is not None:
                deps[nxt] = deps.get(nxt, 0) + 1
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    for node in buffers:
        if deps.get(node, 0) == 0:
            heapq.heappush(heap, (-node._priority, -node._seq, id(node), node))

    _callbacks.stack.append([])
    try:
        while heap:
            node = heapq.heappop(heap)[3]
            grads = buffers.pop(node, None) or [None] * node._n_outputs
            input_grads = _run_node(node, grads, retain_graph, capture, captured, accumulate, only)
            g = None
            for (nxt, nr), g in zip(node.next_functions, input_grads):
                if nxt is None:
                    continue
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * nxt._n_outputs
                    buf[nr] = g if buf[nr] is None else buf[nr] + g
                left = deps[nxt] - 1
                deps[nxt] = left
                if left == 0:
                    heapq.heappush(heap, (-nxt._priority, -nxt._seq, id(nxt), nxt))
            del input_grads, grads, g
        pending = _callbacks.stack[-1]
        while pending:
            pending.pop(0)()
    finally:
        _callbacks.stack.pop()
    if inputs is not None and not allow_unused and any(c is None for c in captured):
        raise RuntimeError("One of the differentiated Tensors appears to not have been used in the "
                           "graph. Set allow_unused=True if this is the desired behavior.")
    return captured


def _run_node(node, grads, retain_graph, capture, captured, accumulate, only):
    from .._tensor import Tensor

    hooks = node._tensor_pre_hooks
    if hooks:
        for nr, fns in hooks.items():
            for fn in list(fns):
                if grads[nr] is not None:
                    res = fn(Tensor._wrap(grads[nr]))
                    if res is not None:
                        grads[nr] = res._data
    if capture:
        for nr in range(len(grads)):
            idx = capture.get((node, nr))
            if idx is not None:
                for i in idx:
                    captured[i] = grads[nr]
    if type(node) is AccumulateGrad:
        if grads[0] is not None and accumulate and (only is None or node in only):
            node._run_backward(grads)
        return ()
    if node._pre_hooks:
        for hook in node._pre_hooks:
            res = hook(tuple(_wrap_opt(g) for g in grads))
            if res is not None:
                grads = [_unwrap_opt(g) for g in res]
    if all(g is None for g in grads):
        result = (None,) * len(node.next_functions)
    else:
        if node._versions:
            node._check_versions()
        result = node._run_backward(grads)
        if _fn._anomaly[0]:
            _check_anomaly(node, result)
    if node._post_hooks:
        for hook in node._post_hooks:
            res = hook(tuple(_wrap_opt(g) for g in result), tuple(_wrap_opt(g) for g in grads))
            if res is not None:
                result = tuple(_unwrap_opt(g) for g in res)
    if not retain_graph:
        node._free()
    return result


def _wrap_opt(a):
    from .._tensor import Tensor

    return None if a is None else Tensor._wrap(a)


def _unwrap_opt(t):
    return None if t is None else t._data


def _check_anomaly(node, result):
    for i, g in enumerate(result):
        if g is None:
            continue
        xp = get_array_module(g)
        if g.dtype.kind == "f" and not bool(xp.isfinite(g).all()):
            what = "nan" if bool(xp.isnan(g).any()) else "inf"
            trace = node._trace or "(forward trace not recorded: enable anomaly mode before the "\
                "forward pass)\n"
            raise RuntimeError(
                f"Function '{node.name()}' returned {what} values in its {i}th output.\n"
                f"Traceback of the forward call that created it:\n{trace}")
