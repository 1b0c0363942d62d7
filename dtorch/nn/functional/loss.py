"""Loss functions of ``dtorch.nn.functional``.

Every loss takes ``reduction`` ``'none'`` | ``'mean'`` | ``'sum'`` (and the deprecated
``size_average`` / ``reduce`` pair, mapped as PyTorch maps them). Most are composed from tensor
ops. Two are fused Primitives, both for numerical stability and speed: ``cross_entropy`` with
class-index targets (log-softmax, smoothing, weights and ignore_index in one pass; its backward
is ``softmax - target`` without materialising the log-softmax graph) and
``binary_cross_entropy`` (logs clamped at -100 and a gradient bounded by ``eps``, as in PyTorch,
so probabilities of exactly 0 or 1 give finite values). Losses on logits use the stable
``softplus`` (``binary_cross_entropy_with_logits``, ``soft_margin_loss``,
``multilabel_soft_margin_loss``): no overflow and no NaN at logits of +-1000.
"""

import math
import warnings

import dtorch

from ..._backend import get_array_module
from ...amp.autocast_mode import autocast_op
from ...autograd.function import Primitive
from ...ops._util import float_input
from .activation import Softplus, log_softmax, logsigmoid

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss",
    "cross_entropy", "gaussian_nll_loss", "hinge_embedding_loss", "huber_loss", "kl_div",
    "l1_loss", "margin_ranking_loss", "mse_loss", "multi_margin_loss",
    "multilabel_margin_loss", "multilabel_soft_margin_loss", "nll_loss", "poisson_nll_loss",
    "smooth_l1_loss", "soft_margin_loss", "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]


# ----------------------------------------------------------------------------- reduction
def legacy_get_string(size_average, reduce, emit_warning=True):
    """The ``reduction`` string equivalent to the deprecated ``size_average`` / ``reduce``."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use "
                      f"reduction='{ret}' instead.", UserWarning, stacklevel=3)
    return ret


def _reduction(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        return legacy_get_string(size_average, reduce)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_same_size(input, target, name):
    if target.shape != input.shape:
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.", UserWarning,
            stacklevel=4)  # NOTE: the caller's caller is the autocast_op wrapper


def _float_pair(input, target):
    input = float_input(input)
    if isinstance(target, dtorch.Tensor) and target.dtype != input.dtype:
        target = target.to(input.dtype)
    return input, target


# ----------------------------------------------------------------------------- regression
@autocast_op
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|x - y|``."""
    reduction = _reduction(size_average, reduce, reduction)
    _check_same_size(input, target, "l1_loss")
    input, target = _float_pair(input, target)
    loss = (input - target).abs()
    return _reduce(loss * weight if weight is not None else loss, reduction)


@autocast_op
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(x - y)^2``."""
    reduction = _reduction(size_average, reduce, reduction)
    _check_same_size(input, target, "mse_loss")
    input, target = _float_pair(input, target)
    d = input - target
    loss = d * d
    return _reduce(loss * weight if weight is not None else loss, reduction)


@autocast_op
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = x - y``)."""
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _check_same_size(input, target, "smooth_l1_loss")
    input, target = _float_pair(input, target)
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(dtorch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


@autocast_op
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    reduction = _reduction(None, None, reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_same_size(input, target, "huber_loss")
    input, target = _float_pair(input, target)
    d = (input - target).abs()
    loss = dtorch.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss * weight if weight is not None else loss, reduction)


# ----------------------------------------------------------------------------- classification
class CrossEntropy(Primitive):
    """Cross entropy of logits ``(N, C, d1, ...)`` against class indices ``(N, d1, ...)``.

    Fused for stability and speed: the log-softmax is shifted by the row maximum (finite for any
    logits), and backward is ``coef * (softmax * sum(v) - v)`` with ``v`` the (weighted,
    smoothed) target distribution, so no intermediate graph is kept. ``mean`` divides by the sum
    of the weights of the non-ignored targets, as PyTorch does.
    """

    def forward(ctx, x, target, weight, ignore_index, smoothing, reduction):
        xp = ctx.xp
        C = x.shape[1]
        z = x - x.max(axis=1, keepdims=True)
        logp = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        valid = target != ignore_index
        tgt = xp.where(valid, target, 0)
        picked = xp.take_along_axis(logp, tgt[:, None], axis=1)[:, 0]
        if weight is not None:
            w_t = weight[tgt] * valid
            wb = weight.reshape((1, C) + (1,) * (x.ndim - 2))
        else:
            w_t = valid.astype(x.dtype)
            wb = None
        loss = -picked * w_t
        if smoothing > 0:
            smooth = -(logp * wb).sum(axis=1) if wb is not None else -logp.sum(axis=1)
            loss = (1 - smoothing) * loss + (smoothing / C) * (smooth * valid)
        denom = w_t.sum() if reduction == "mean" else None
        ctx.save_for_backward(logp, tgt, valid, w_t, wb)
        ctx.meta = (smoothing, reduction, denom)
        if reduction == "mean":
            return (loss.sum() / denom).astype(x.dtype)
        if reduction == "sum":
            return loss.sum().astype(x.dtype)
        return loss.astype(x.dtype, copy=False)

    def backward(ctx, g):
        xp = ctx.xp
        logp, tgt, valid, w_t, wb = ctx.saved_tensors
        smoothing, reduction, denom = ctx.meta
        C = logp.shape[1]
        coef = g / denom if reduction == "mean" else g
        coef = xp.broadcast_to(coef, tgt.shape)
        # v: the target distribution each row's loss is -sum(v * logp) of.
        hard = (1 - smoothing) * coef * w_t
        total = hard
        if smoothing > 0:
            wsum = wb.sum() if wb is not None else C
            total = hard + (smoothing / C) * coef * valid * wsum
        grad = xp.exp(logp) * total[:, None]
        if smoothing > 0:
            soft = (smoothing / C) * (coef * valid)[:, None]
            grad -= soft * wb if wb is not None else soft
        classes = xp.arange(C).reshape((1, C) + (1,) * (logp.ndim - 2))
        grad -= (classes == tgt[:, None]) * hard[:, None]
        return grad.astype(logp.dtype, copy=False), None, None


def _class_input(input, target, name):
    """Validate (input, target) shapes; return them with a batch dimension."""
    if input.ndim == 0:
        raise ValueError(f"Expected input to have at least 1 dimension for {name}")
    if input.ndim == 1:
        if target.ndim not in (0,) and target.shape != input.shape:
            raise RuntimeError(f"Expected target to be a 0-d tensor for 1-d input, but got "
                               f"target of shape {list(target.shape)}")
        input = input.unsqueeze(0)
        target = target.unsqueeze(0)
    return input, target


def _check_index_target(input, target, ignore_index):
    if target.shape[0] != input.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0]}).")
    if tuple(target.shape[1:]) != tuple(input.shape[2:]):
        raise RuntimeError(f"Expected target size {[input.shape[0]] + list(input.shape[2:])}, "
                           f"got {list(target.shape)}")
    t = target._data
    bad = (t != ignore_index) & ((t < 0) | (t >= input.shape[1]))
    if bool(bad.any()):
        raise IndexError(f"Target {int(t[bad].reshape(-1)[0])} is out of bounds.")


@autocast_op
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross entropy between the softmax of ``input`` (logits) and ``target``.

    ``target`` holds class indices (int, shape ``(N, d1, ...)``) or class probabilities (float,
    the shape of ``input``). For indices::

        loss_n = -(1 - eps) w[y_n] log p[n, y_n] - (eps / C) sum_c w[c] log p[n, c]

    ``mean`` divides by ``sum_n w[y_n]`` over non-ignored targets; for probabilities it divides
    by the number of samples. The index path is a fused Primitive (stable for any logits, and
    faster than composing ``log_softmax`` and ``nll_loss``).

    Args:
        input: logits ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)``.
        target: indices in ``[0, C)`` or probabilities.
        weight: per-class rescaling weights ``(C,)``.
        ignore_index: target value that contributes neither loss nor gradient.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        label_smoothing: ``eps`` in ``[0, 1]``: mixes the target with the uniform distribution.

    Example::

        >>> F.cross_entropy(dtorch.tensor([[2.0, 0.0]]), dtorch.tensor([0]))
        tensor(0.1269)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    input = float_input(input)
    if weight is not None and weight.dtype != input.dtype:
        weight = weight.to(input.dtype)
    C = input.shape[1] if input.ndim >= 2 else input.shape[0] if input.ndim else 0
    if weight is not None and tuple(weight.shape) != (C,):
        raise RuntimeError(f"weight tensor should be defined either for all {C} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.shape)}")
    if target.is_floating_point():
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    unbatched = input.ndim == 1
    x, t = _class_input(input, target, "cross_entropy")
    _check_index_target(x, t, ignore_index)
    out = CrossEntropy.apply(x, t._data, None if weight is None else weight._data, ignore_index,
                             float(label_smoothing), reduction)
    return out[0] if unbatched and reduction == "none" else out


def _cross_entropy_probs(input, target, weight, reduction, smoothing):
    if target.shape != input.shape:
        raise RuntimeError(f"Expected target size {list(input.shape)}, got "
                           f"{list(target.shape)}")
    cdim = 1 if input.ndim >= 2 else 0
    C = input.shape[cdim]
    target = target.to(input.dtype)
    if smoothing > 0:
        target = target * (1 - smoothing) + smoothing / C
    logp = log_softmax(input, cdim)
    prod = logp * target
    if weight is not None:
        prod = prod * weight.reshape([C] + [1] * (input.ndim - cdim - 1))
    loss = -prod.sum(cdim)
    if reduction == "mean":
        return loss.sum() / (input.numel() // C) if input.ndim >= 2 else loss
    return _reduce(loss, reduction)


@autocast_op
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log likelihood ``-w[y_n] * input[n, y_n]`` of log-probabilities ``input``.

    ``mean`` divides by the sum of the weights of the non-ignored targets."""
    reduction = _reduction(size_average, reduce, reduction)
    unbatched = input.ndim == 1
    x, t = _class_input(input, target, "nll_loss")
    _check_index_target(x, t, ignore_index)
    C = x.shape[1]
    if weight is not None and tuple(weight.shape) != (C,):
        raise RuntimeError(f"weight tensor should be defined either for all {C} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.shape)}")
    valid = t != ignore_index
    safe = t.masked_fill(~valid, 0)
    picked = x.gather(1, safe.unsqueeze(1)).squeeze(1)
    if weight is not None:
        w_t = weight.to(x.dtype)[safe] * valid
    else:
        w_t = valid.to(x.dtype)
    loss = -picked * w_t
    if reduction == "mean":
        return loss.sum() / w_t.sum()
    if reduction == "sum":
        return loss.sum()
    return loss[0] if unbatched else loss


class BinaryCrossEntropy(Primitive):
    """``-w (y log x + (1 - y) log(1 - x))`` on probabilities. Fused for stability, with
    PyTorch's conventions: each log is clamped at -100 (so ``x = 0`` or ``1`` gives a finite
    loss) and the gradient ``w (x - y) / max(x (1 - x), 1e-12)`` stays finite."""

    def forward(ctx, x, y, w):
        xp = ctx.xp
        log_x = xp.maximum(xp.log(x), -100)
        log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = -(y * log_x + (1 - y) * log_1mx)
        if w is not None:
            loss = loss * w
        ctx.save_for_backward(x, y, w, log_x, log_1mx)
        return loss.astype(x.dtype, copy=False)

    def backward(ctx, g):
        xp = ctx.xp
        x, y, w, log_x, log_1mx = ctx.saved_tensors
        gw = g * w if w is not None else g
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = gw * (x - y) / xp.maximum(x * (1 - x), 1e-12)
            gx = _unbroadcast_to(gx, x.shape)
        if ctx.needs_input_grad[1]:
            gy = _unbroadcast_to(gw * (log_1mx - log_x), y.shape)
        return gx, gy, None


def _unbroadcast_to(g, shape):
    from ...ops._util import unbroadcast

    return unbroadcast(g, shape)


@autocast_op
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross entropy of probabilities ``input`` against ``target`` in ``[0, 1]``."""
    reduction = _reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         "size.")
    input, target = _float_pair(input, target)
    x = input._data
    if bool(((x < 0) | (x > 1)).any()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    if weight is not None:
        weight = weight.to(input.dtype).expand(input.shape)
    loss = BinaryCrossEntropy.apply(input, target, weight)
    return _reduce(loss, reduction)


@autocast_op
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Binary cross entropy on logits, computed stably::

        loss = -w [p y log sigmoid(x) + (1 - y) log sigmoid(-x)]
             = w [(1 - y) x + (1 + (p - 1) y) softplus(-x)]

    with ``p`` = ``pos_weight`` (broadcast along the last, class, dimension). Finite for logits
    of any size."""
    reduction = _reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    input, target = _float_pair(input, target)
    sp = Softplus.apply(-input, 1.0, math.inf)  # -log sigmoid(x)
    if pos_weight is not None:
        coef = 1 + (pos_weight.to(input.dtype) - 1) * target
        loss = (1 - target) * input + coef * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@autocast_op
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``y (log y - x)`` of log-probabilities ``input`` from
    ``target`` (probabilities, or log-probabilities when ``log_target``); ``'batchmean'`` divides
    the sum by the batch size (the mathematically correct KL)."""
    if size_average is not None or reduce is not None:
        reduction = legacy_get_string(size_average, reduce)
    elif reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning,
                      stacklevel=3)  # NOTE: past the autocast_op wrapper
    input, target = _float_pair(input, target)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target > 0
        loss = target * dtorch.where(pos, target, 1.0).log() - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim else loss.sum()
    return _reduce(loss, reduction)


@autocast_op
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """Poisson negative log likelihood: ``exp(x) - y x`` (``log_input``) or
    ``x - y log(x + eps)``; ``full`` adds Stirling's ``y log y - y + 0.5 log(2 pi y)`` for
    ``y > 1``."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _float_pair(input, target)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        safe = dtorch.where(target > 1, target, 1.0)
        stirling = safe * safe.log() - safe + 0.5 * (2 * math.pi * safe).log()
        loss = loss + dtorch.where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Gaussian negative log likelihood ``0.5 (log var + (x - y)^2 / var)`` (+ ``0.5 log 2 pi``
    when ``full``); ``var`` is clamped at ``eps`` for stability (without stopping its gradient).

    ``var`` has the shape of ``input``, or one dimension less / a last dimension of 1
    (homoscedastic over the last dimension)."""
    reduction = _reduction(None, None, reduction)
    if isinstance(var, (int, float)):
        var = dtorch.full_like(input, float(var))
    if var.shape != input.shape:
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1:
            pass
        else:
            raise ValueError("var is of incorrect size")
    if bool((var._data < 0).any()):
        raise ValueError("var has negative entry/entries")
    input, target = _float_pair(input, target)
    var = var.to(input.dtype)
    with dtorch.no_grad():
        shift = var.clamp(min=eps) - var
    var = var + shift  # the clamp, with an identity gradient as in PyTorch
    d = input - target
    loss = 0.5 * (var.log() + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- margin losses
def _cosine(x1, x2, dim, eps=1e-12):
    prod = (x1 * x2).sum(dim)
    m1 = (x1 * x1).sum(dim) + eps
    m2 = (x2 * x2).sum(dim) + eps
    return prod / (m1 * m2).sqrt()


@autocast_op
def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                          reduction="mean"):
    """``1 - cos(x1, x2)`` for ``y = 1``, ``max(0, cos(x1, x2) - margin)`` for ``y = -1``."""
    reduction = _reduction(size_average, reduce, reduction)
    if input1.ndim != input2.ndim or input1.shape != input2.shape:
        raise RuntimeError(f"cosine_embedding_loss: Input1 and Input2 must have the same shape, "
                           f"got {list(input1.shape)} and {list(input2.shape)}")
    dim = input1.ndim - 1
    if input1.ndim == 2 and target.ndim != 1 or input1.ndim == 1 and target.ndim != 0:
        raise RuntimeError(f"{input1.ndim}D target tensor expects {input1.ndim - 1}D input "
                           f"tensors, but found inputs with sizes {list(input1.shape)} and "
                           f"{list(input2.shape)}.")
    cos = _cosine(float_input(input1), float_input(input2), dim)
    zero = dtorch.zeros_like(cos)
    loss = (dtorch.where(target == 1, 1 - cos, zero)
            + dtorch.where(target == -1, (cos - margin).clamp(min=0), zero))
    return _reduce(loss, reduction)


@autocast_op
def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                        reduction="mean"):
    """``max(0, -y (x1 - x2) + margin)``."""
    reduction = _reduction(size_average, reduce, reduction)
    if not (input1.ndim == input2.ndim == target.ndim):
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension "
                           f"but got sizes: input1: {input1.shape}, input2: {input2.shape}, "
                           f"target: {target.shape} ")
    loss = (-target * (input1 - input2) + margin).clamp(min=0)
    return _reduce(loss, reduction)


@autocast_op
def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """``x`` for ``y = 1``, ``max(0, margin - x)`` for ``y = -1``."""
    reduction = _reduction(size_average, reduce, reduction)
    input = float_input(input)
    zero = dtorch.zeros_like(input)
    loss = (dtorch.where(target != 1, (margin - input).clamp(min=0), zero)
            + dtorch.where(target != -1, input, zero))
    return _reduce(loss, reduction)


@autocast_op
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """``log(1 + exp(-y x))`` (two-class logistic loss), computed stably."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _float_pair(input, target)
    return _reduce(Softplus.apply(-target * input, 1.0, math.inf), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """``-mean_c [y_c log sigmoid(x_c) + (1 - y_c) log sigmoid(-x_c)]`` per sample."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _float_pair(input, target)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    C = input.shape[-1] if input.ndim else 1
    loss = loss.sum(dim=input.ndim - 1) / C if input.ndim else loss
    return _reduce(loss, reduction)


@autocast_op
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss ``sum_{j != y} max(0, margin - x[y] + x[j])^p / C``."""
    reduction = _reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    unbatched = input.ndim <= 1
    x = float_input(input).reshape(1, -1) if unbatched else float_input(input)
    t = target.reshape(1) if unbatched else target
    C = x.shape[1]
    picked = x.gather(1, t.reshape(-1, 1))
    h = (margin - picked + x).clamp(min=0)
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * weight.to(x.dtype)[t].reshape(-1, 1)
    classes = dtorch.arange(C, device=x.device).reshape(1, C)
    h = dtorch.where(classes == t.reshape(-1, 1), 0.0, h)
    loss = h.sum(1) / C
    if unbatched and reduction == "none":
        loss = loss[0]
    return _reduce(loss, reduction)


@autocast_op
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """``sum_{j in targets} sum_{i not in targets} max(0, 1 - (x[j] - x[i])) / C``; each row of
    ``target`` lists class indices, ended by the first -1."""
    reduction = _reduction(size_average, reduce, reduction)
    unbatched = input.ndim <= 1
    x = float_input(input).reshape(1, -1) if unbatched else float_input(input)
    t = target._data.reshape(1, -1) if unbatched else target._data
    xp = get_array_module(t)
    N, C = x.shape
    # is_target[n, c]: c appears in row n before its first -1.
    ended = xp.cumsum(t < 0, axis=1) > 0
    safe = xp.where(ended, 0, t)
    is_target = xp.zeros((N, C), dtype=bool)
    rows = xp.broadcast_to(xp.arange(N)[:, None], t.shape)
    is_target[rows[~ended], safe[~ended]] = True
    tgt = dtorch.Tensor._wrap(is_target)
    pair = (1 - (x.unsqueeze(2) - x.unsqueeze(1))).clamp(min=0)  # [n, j, i]
    mask = tgt.unsqueeze(2) & ~tgt.unsqueeze(1)
    loss = dtorch.where(mask, pair, 0.0).sum((1, 2)) / C
    if unbatched and reduction == "none":
        loss = loss[0]
    return _reduce(loss, reduction)


def _pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    d = x1 - x2 + eps
    dim = d.ndim - 1 if d.ndim else 0
    if p == 2:
        return (d * d).sum(dim, keepdim=keepdim).sqrt()
    if p == math.inf:
        return d.abs().amax(dim, keepdim=keepdim)
    return (d.abs() ** p).sum(dim, keepdim=keepdim) ** (1.0 / p)


@autocast_op
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the ``p``-norm distance
    ``||x1 - x2 + eps||``; ``swap`` uses ``min(d(a, n), d(p, n))``."""
    reduction = _reduction(size_average, reduce, reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {anchor.ndim}D, positive "
                           f"{positive.ndim}D, and negative {negative.ndim}D inputs")
    d_pos = _pairwise_distance(anchor, positive, p, eps)
    d_neg = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = dtorch.minimum(d_neg, _pairwise_distance(positive, negative, p, eps))
    return _reduce((d_pos - d_neg + margin).clamp(min=0), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """Triplet loss with a custom ``distance_function(x1, x2)`` (default: pairwise L2)."""
    reduction = _reduction(None, None, reduction)
    dist = distance_function if distance_function is not None else _pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = dtorch.minimum(d_neg, dist(positive, negative))
    return _reduce((d_pos - d_neg + margin).clamp(min=0), reduction)
