"""Batch normalization with statistics over the batch of every rank of a process group (the math
of :class:`dtorch.nn.SyncBatchNorm`).

Forward: each rank computes its per-channel count, mean and centred sum of squares; one
``all_gather`` (``(world, 2C + 1)`` values in float64) lets every rank combine them with Chan's
parallel formula, so ranks may hold different batch sizes (even zero). Backward: one
``all_reduce`` of the per-channel ``sum(dy)`` and ``sum(dy * xhat)`` (``2C`` values) gives the
gradient of the input, exactly BatchNorm's on the concatenated batch. The weight and bias
gradients stay local (each rank holds its shard's part; DDP averages them), as in PyTorch.

Contract: the collectives are synchronisation points, so every rank of the group must run the
forward of the layer, and the backward through it, the same number of times and in the same order.
"""

import numpy as np

from ... import distributed as dist
from ...autograd import grad_mode
from ...autograd.function import Primitive

__all__ = ["sync_batch_norm"]


class _SyncBatchNorm(Primitive):
    """``y = (x - mean) / sqrt(var + eps) * w + b`` with ``mean`` and the biased ``var`` over the
    batch and spatial dims of every rank's ``x`` in ``group``. Also returns the global mean and
    unbiased variance (float64, non-differentiable) for the running statistics. Fused (one
    collective each way instead of composed ops whose gradients would stay local)."""

    backward_name = "SyncBatchNormBackward"

    def forward(ctx, x, w, b, *, eps, group):
        xp = ctx.xp
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        pshape = (1, c) + (1,) * (x.ndim - 2)
        local = xp.zeros(2 * c + 1, dtype=np.float64)
        n = x.size // c
        if n:
            m = x.mean(axis=axes, keepdims=True)
            xc = x - m
            local[:c] = m.reshape(c)
            local[c:2 * c] = (xc * xc).sum(axis=axes)
            local[2 * c] = n
        world = dist.get_world_size(group)
        stats = xp.empty((world, 2 * c + 1), dtype=np.float64)
        dist.all_gather_into_tensor(stats, local, group=group)
        counts = stats[:, 2 * c:]
        total = float(counts.sum())
        if total <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"{int(total)} over the process group (input size "
                             f"{list(x.shape)} on this rank)")
        means = stats[:, :c]
        mean = (counts * means).sum(axis=0) / total
        m2 = stats[:, c:2 * c].sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)
        invstd = (1.0 / xp.sqrt(m2 / total + eps)).astype(x.dtype).reshape(pshape)
        xhat = (x - mean.astype(x.dtype).reshape(pshape)) * invstd
        y = xhat * w.reshape(pshape) if w is not None else xhat.copy()
        if b is not None:
            y += b.reshape(pshape)
        unbiased = m2 / (total - 1)
        ctx.meta = (axes, pshape, total, group)
        ctx.save_for_backward(xhat, invstd, w)
        ctx.mark_non_differentiable(mean, unbiased)
        return y, mean, unbiased

    def backward(ctx, g, _gm=None, _gv=None):
        axes, pshape, total, group = ctx.meta
        xhat, invstd, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        xp = ctx.xp
        c = pshape[1]
        sum_dy = g.sum(axis=axes)
        sum_dy_xhat = (g * xhat).sum(axis=axes)
        gx = None
        if needs[0]:
            both = xp.concatenate([sum_dy, sum_dy_xhat])
            dist.all_reduce(both, op=dist.ReduceOp.SUM, group=group)
            mean_dy = (both[:c] / total).astype(g.dtype).reshape(pshape)
            mean_dy_xhat = (both[c:] / total).astype(g.dtype).reshape(pshape)
            scale = invstd * w.reshape(pshape) if w is not None else invstd
            gx = (g - mean_dy - xhat * mean_dy_xhat) * scale
        gw = sum_dy_xhat.reshape(w.shape) if w is not None and needs[1] else None
        gb = sum_dy.reshape(c) if needs[2] else None
        return gx, gw, gb


def sync_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps,  # noqa: A002
                    process_group=None):
    """Training-mode batch normalization of ``(N, C, *)`` over the global batch of
    ``process_group`` (default: the world), updating the running statistics in place with
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased variance).

    Every rank of the group must call it (and run backward through it) in the same order; the
    per-rank batch sizes may differ.

    Args:
        input: this rank's shard, ``(N_r, C, *)``.
        running_mean, running_var: ``(C,)`` buffers, or None to leave them alone.
        weight, bias: ``(C,)`` affine parameters, or None.
        momentum: the running-average factor. eps: added to the variance.
        process_group: the ranks that share statistics.

    Example::

        >>> y = sync_batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, 0.1,
        ...                     1e-5)
    """
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    y, mean, var = _SyncBatchNorm.apply(input, weight, bias, eps=eps, group=process_group)
    with grad_mode.no_grad():
        for running, batch in ((running_mean, mean), (running_var, var)):
            if running is not None:
                r = running._data
                r *= 1 - momentum
                r += (momentum * batch._data).astype(r.dtype, copy=False)
                running._vbox[0] += 1
    return y
