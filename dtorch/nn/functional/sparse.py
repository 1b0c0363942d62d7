"""Embeddings: ``embedding`` (``padding_idx``, ``max_norm``, ``scale_grad_by_freq``) and
``embedding_bag`` (sum / mean / max over bags given by a 2-D input or by offsets)."""

import numpy as np

from ... import _backend, _creation
from ... import _dtype as D
from ..._tensor import Tensor
from ...autograd import grad_mode
from ...autograd.function import Primitive

__all__ = ["embedding", "embedding_bag"]


class _Embedding(Primitive):
    """Row lookup; backward scatter-adds into the rows (duplicates accumulate), leaving the
    ``padding_idx`` row without gradient and optionally dividing by index frequency."""

    backward_name = "EmbeddingBackward0"

    def forward(ctx, weight, idx, *, padding_idx, scale_grad_by_freq):
        ctx.meta = (weight.shape, idx, padding_idx, scale_grad_by_freq)
        return weight[idx]

    def backward(ctx, g):
        xp = ctx.xp
        shape, idx, padding_idx, scale = ctx.meta
        flat = idx.reshape(-1)
        g2 = g.reshape(-1, shape[1])
        if scale:
            counts = xp.bincount(flat, minlength=shape[0])
            g2 = g2 / counts[flat][:, None].astype(g.dtype)
        out = xp.zeros(shape, dtype=g.dtype)
        _backend.scatter_add_at(out, flat, g2)
        if padding_idx is not None:
            out[padding_idx] = 0
        return out, None


def _check_index(input, num):
    if input._data.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.type()} instead "
                           "(while checking arguments for embedding)")
    data = input._data
    if data.size and (int(data.max()) >= num or int(data.min()) < 0):
        raise IndexError("index out of range in self")


def _renorm_(weight, idx, max_norm, norm_type):
    """Rescale in place the rows of ``weight`` used by ``idx`` whose norm exceeds
    ``max_norm`` (as PyTorch does, outside autograd)."""
    xp = _backend.get_array_module(weight._data)
    rows = xp.unique(idx.reshape(-1))
    with grad_mode.no_grad():
        w = weight._data
        sel = w[rows]
        norms = (xp.abs(sel) ** norm_type).sum(1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
        w[rows] = sel * scale[:, None]
        weight._vbox[0] += 1


def _padding_index(padding_idx, num):
    if padding_idx is None:
        return None
    if padding_idx > 0 and padding_idx >= num:
        raise AssertionError("Padding_idx must be within num_embeddings")
    if padding_idx < 0:
        if padding_idx < -num:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx += num
    return padding_idx


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Look up rows of ``weight`` ``(num_embeddings, dim)`` for the indices ``input`` ``(*)``;
    the result is ``(*, dim)``.

    Args:
        padding_idx: the row at this index gets no gradient.
        max_norm: rows looked up are first renormalized in place to at most this norm.
        scale_grad_by_freq: divide gradients by the frequency of each index in the batch.
    """
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    num = weight.shape[0]
    _check_index(input, num)
    padding_idx = _padding_index(padding_idx, num)
    idx = input._data.astype(np.int64, copy=False) if isinstance(input._data, np.ndarray) \
        else input._data.astype("int64")
    if max_norm is not None:
        _renorm_(weight, idx, max_norm, norm_type)
    return _Embedding.apply(weight, Tensor._wrap(idx), padding_idx=padding_idx,
                            scale_grad_by_freq=bool(scale_grad_by_freq))


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Sums, means or maxima of bags of embeddings, without materializing per-bag loops.

    ``input`` is ``(B, N)`` (B bags of N indices, ``offsets`` None) or 1-D with ``offsets``
    ``(B)`` giving each bag's start. Empty bags give zeros. ``per_sample_weights`` (same shape
    as ``input``) scales each embedding (``mode='sum'`` only). Entries equal to
    ``padding_idx`` are left out of their bag.
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, but got {mode}")
    if per_sample_weights is not None and mode != "sum":
        raise ValueError(f"embedding_bag: per_sample_weights was not None. per_sample_weights "
                         f"is only supported for mode='sum' (got mode='{mode}')")
    num = weight.shape[0]
    padding_idx = _padding_index(padding_idx, num)
    data = input._data
    xp = _backend.get_array_module(data)
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError(f"if input is 2D, then offsets has to be None, as input is treated "
                             f"is a mini-batch of fixed length sequences. However, found "
                             f"offsets of type {type(offsets).__name__}")
        b, n = data.shape
        pos = xp.arange(b * n).reshape(b, n)
        valid = xp.ones((b, n), dtype=bool)
        flat = data.reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        off = _backend.to_device(offsets._data, None).astype(np.int64)
        total = data.shape[0]
        if include_last_offset:
            bounds = off
        else:
            bounds = np.concatenate([off, [total]])
        if off.size and off[0] != 0:
            raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the "
                               f"mini-batch has to start from position 0. However, got "
                               f"{off[0]}")
        lengths = np.diff(bounds)
        b = lengths.size
        n = int(lengths.max()) if b else 0
        j = np.arange(n)
        valid_h = j[None, :] < lengths[:, None]
        pos_h = np.where(valid_h, bounds[:-1, None] + j[None, :], 0)
        pos = _backend.to_device(pos_h, _backend.device_index(data))
        valid = _backend.to_device(valid_h, _backend.device_index(data))
        flat = data
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{input.ndim}")
    _check_index(Tensor._wrap(flat), num)
    idx = flat[pos] if flat.size else xp.zeros(pos.shape, dtype=np.int64)
    if padding_idx is not None:
        valid = valid & (idx != padding_idx)
    emb = embedding(Tensor._wrap(idx), weight, None, max_norm, norm_type, scale_grad_by_freq)
    vmask = Tensor._wrap(valid[..., None])
    if mode == "max":
        lowest = float(np.finfo(D._FROM_NP[weight._data.dtype].np).min) if \
            weight.is_floating_point() else 0
        filled = emb.masked_fill(~vmask, lowest)
        out = filled.amax(1) if n else _creation.zeros((b, weight.shape[1]), dtype=weight.dtype,
                                                        device=weight.device)
        empty = Tensor._wrap(~valid.any(1, keepdims=True))
        return out.masked_fill(empty, 0.0)
    w = Tensor._wrap(valid.astype(weight._data.dtype)[..., None])
    if per_sample_weights is not None:
        psw = per_sample_weights.reshape(-1)[Tensor._wrap(pos.reshape(-1))].reshape(pos.shape)
        w = w * psw.unsqueeze(-1)
    out = (emb * w).sum(1)
    if mode == "mean":
        count = Tensor._wrap(xp.maximum(valid.sum(1, keepdims=True), 1).astype(
            weight._data.dtype))
        out = out / count
    return out
