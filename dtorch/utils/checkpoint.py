"""Activation checkpointing: trade compute for memory.

``checkpoint(fn, *args)`` runs ``fn`` without keeping its intermediate activations: only the
inputs are stored, and ``fn`` is run again (with the same random state, so dropout masks match)
when the gradient is needed. Both of PyTorch's variants exist:

* ``use_reentrant=True`` (PyTorch's historical default, chosen with a warning when
  ``use_reentrant`` is not given): the segment is a :class:`dtorch.autograd.Function` whose
  backward re-runs ``fn`` and calls ``dtorch.autograd.backward`` inside the outer backward.
  Parameters used by ``fn`` receive gradients through that inner backward; as in PyTorch, if
  no *input* requires grad, nothing does.
* ``use_reentrant=False``: the forward pass runs once with gradients recorded to discover
  every leaf tensor (parameter) the segment uses; its graph is then dropped and the segment
  becomes one node whose inputs are the arguments plus those leaves, so gradients reach the
  parameters even when no input requires grad.

Example::

    >>> from dtorch.utils.checkpoint import checkpoint
    >>> y = checkpoint(block, x, use_reentrant=False)   # block's activations are not kept
"""

import contextlib
import warnings

from .. import random as _random
from .._tensor import Tensor
from ..amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from ..autograd import Function, grad_mode
from ..autograd import backward as _backward
from ..autograd import function as _fn
from ..autograd import grad as _grad
from ..autograd.engine import AccumulateGrad

__all__ = ["checkpoint", "checkpoint_sequential"]


def _rng_state():
    gpu = _random.cuda_generator_created()
    return (_random.get_rng_state(), None if gpu is None else gpu.get_state())


def _set_rng_state(state):
    cpu, gpu = state
    _random.set_rng_state(cpu)
    if gpu is not None:
        _random.cuda_generator().set_state(gpu)


def _capture(preserve_rng_state):
    """What the recomputation must replay: the random state (when preserved) and the enabled
    autocast regions, so that it computes the same values in the same dtypes."""
    regions = [(dev, get_autocast_dtype(dev)) for dev in ("cpu", "cuda")
               if is_autocast_enabled(dev)]
    return (_rng_state() if preserve_rng_state else None), regions


def _run_with_state(fn, args, state):
    """Run ``fn(*args)`` with gradients enabled under the captured ``state`` (see
    :func:`_capture`), restoring the caller's random state afterwards."""
    rng, regions = state
    outer = _rng_state() if rng is not None else None
    try:
        if rng is not None:
            _set_rng_state(rng)
        with contextlib.ExitStack() as stack:
            for dev, dtype in regions:
                stack.enter_context(autocast(dev, dtype=dtype))
            stack.enter_context(grad_mode.enable_grad())
            return fn(*args)
    finally:
        if outer is not None:
            _set_rng_state(outer)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


class _ReentrantCheckpoint(Function):
    """``use_reentrant=True``: forward without graph, backward = recompute + inner backward."""

    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, *args):
        ctx.run_function = run_function
        ctx.state = _capture(preserve_rng_state)
        ctx.tensor_idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx.args = [None if isinstance(a, Tensor) else a for a in args]
        ctx.save_for_backward(*[args[i] for i in ctx.tensor_idx])
        return run_function(*args)

    @staticmethod
    def backward(ctx, *grads):
        args = list(ctx.args)
        detached = []
        for i, t in zip(ctx.tensor_idx, ctx.saved_tensors):
            d = t.detach()
            d.requires_grad_(t.requires_grad)
            args[i] = d
            detached.append(d)
        outputs = _as_tuple(_run_with_state(ctx.run_function, args, ctx.state))
        pairs = [(o, g) for o, g in zip(outputs, grads)
                 if isinstance(o, Tensor) and o.requires_grad and g is not None]
        if not pairs:
            raise RuntimeError("none of output has requires_grad=True, this checkpoint() is not "
                               "necessary")
        _backward([o for o, _ in pairs], [g for _, g in pairs])
        res = [None] * len(args)
        for i, d in zip(ctx.tensor_idx, detached):
            res[i] = d.grad if d.requires_grad else None
        return (None, None) + tuple(res)


def _segment_leaves(outputs, start_seq, inputs):
    """Tensors that require grad and feed ``outputs`` from outside the segment: leaves
    (parameters, inputs) and the graph edges of the non-leaf ``inputs``."""
    input_edges = {t._edge(): t for t in inputs if t.requires_grad and t.grad_fn is not None}
    found = {}
    stack = [o.grad_fn for o in outputs if o.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for edge in node.next_functions:
            nxt = edge[0]
            if nxt is None:
                continue
            if type(nxt) is AccumulateGrad:
                found[id(nxt.variable)] = nxt.variable
            elif edge in input_edges:
                t = input_edges[edge]
                found[id(t)] = t
            elif getattr(nxt, "_seq", -1) > start_seq:
                stack.append(nxt)
            else:
                raise RuntimeError(
                    "checkpoint(use_reentrant=False): the checkpointed function uses a tensor "
                    "that requires grad, is not a leaf and is not one of its arguments (e.g. a "
                    "captured intermediate result); pass it as an argument instead")
    return list(found.values())


class _NonReentrantCheckpoint(Function):
    """``use_reentrant=False``: one node over the arguments and the discovered leaves; its
    forward returns the values computed during discovery, its backward recomputes."""

    @staticmethod
    def forward(ctx, run_function, state, n_args, values, *tensors):
        ctx.run_function = run_function
        ctx.state = state
        ctx.n_args = n_args
        ctx.template = values[1]
        ctx.save_for_backward(*tensors)
        return values[0]

    @staticmethod
    def backward(ctx, *grads):
        tensors = ctx.saved_tensors
        args = list(ctx.template)
        arg_pos = [i for i, a in enumerate(args) if a is _ARG]
        detached = []
        for i, pos in enumerate(arg_pos):
            t = tensors[i]
            d = t.detach()
            d.requires_grad_(t.requires_grad)
            args[pos] = d
            detached.append(d)
        leaves = list(tensors[len(arg_pos):])
        outputs = _as_tuple(_run_with_state(ctx.run_function, args, ctx.state))
        pairs = [(o, g) for o, g in zip(outputs, grads)
                 if isinstance(o, Tensor) and o.requires_grad and g is not None]
        wrt = [d for d in detached if d.requires_grad] + [t for t in leaves if t.requires_grad]
        got = _grad([o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True) \
            if pairs and wrt else [None] * len(wrt)
        by_id = {id(t): g for t, g in zip(wrt, got)}
        res = [by_id.get(id(d)) for d in detached] + [by_id.get(id(t)) for t in leaves]
        return (None, None, None, None) + tuple(res)


_ARG = object()


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check="default",
               debug=False, preserve_rng_state=True, **kwargs):
    """Run ``function(*args, **kwargs)`` without storing its intermediate activations; they are
    recomputed during backward.

    Args:
        function: the segment (a module or any callable).
        use_reentrant: see the module docstring; pass it explicitly (None warns and uses True,
            as PyTorch does).
        preserve_rng_state: replay the random state in the recomputation (dropout masks match).

    Returns:
        What ``function`` returns.
    """
    if use_reentrant is None:
        warnings.warn("torch.utils.checkpoint: the use_reentrant parameter should be passed "
                      "explicitly. use_reentrant=False is recommended, but if you need to "
                      "preserve the current default behavior, you can pass use_reentrant=True.",
                      stacklevel=2)
        use_reentrant = True
    if context_fn is not None and use_reentrant:
        raise ValueError("Passing `context_fn` or `debug` is only supported when "
                         "use_reentrant=False.")
    if kwargs:
        if use_reentrant:
            raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
        inner = function

        def function(*a):
            return inner(*a, **kwargs)

    if not grad_mode.is_grad_enabled():
        return function(*args)
    if use_reentrant:
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            warnings.warn("None of the inputs have requires_grad=True. Gradients will be None",
                          stacklevel=2)
        return _ReentrantCheckpoint.apply(function, preserve_rng_state, *args)
    state = _capture(preserve_rng_state)
    start = next(_fn._seq)
    with grad_mode.enable_grad():
        out = function(*args)
    outs = _as_tuple(out)
    tensors_in = [a for a in args if isinstance(a, Tensor)]
    leaves = _segment_leaves([o for o in outs if isinstance(o, Tensor)], start, tensors_in)
    arg_ids = {id(t) for t in tensors_in}
    leaves = [t for t in leaves if id(t) not in arg_ids]
    if not any(isinstance(o, Tensor) and o.requires_grad for o in outs):
        return out
    # NOTE: detached copies of the outputs keep the values and drop the segment's graph.
    values = tuple(o.detach() if isinstance(o, Tensor) else o for o in outs)
    values = values if isinstance(out, tuple) else values[0]
    template = [_ARG if isinstance(a, Tensor) else a for a in args]
    del out, outs
    return _NonReentrantCheckpoint.apply(function, state, len(args), (values, template),
                                         *tensors_in, *leaves)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Checkpoint a ``Sequential`` (or list of modules) in ``segments`` chunks: all chunks but
    the last are checkpointed."""
    if use_reentrant is None:
        warnings.warn("torch.utils.checkpoint.checkpoint_sequential: the use_reentrant "
                      "parameter should be passed explicitly.", stacklevel=2)
        use_reentrant = True
    from ..nn import Sequential

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    functions = list(functions)
    segment_size = len(functions) // segments
    end = -1

    def run(start, stop):
        def forward(x):
            for j in range(start, stop + 1):
                x = functions[j](x)
            return x

        return forward

    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, **kwargs)
    return run(end + 1, len(functions) - 1)(input)
