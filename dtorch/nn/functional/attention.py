"""Attention: ``scaled_dot_product_attention`` and ``multi_head_attention_forward``.

Both are composed from tensor ops (batched matmul, the fused softmax, masked_fill), so they need
no hand-written backward.
"""

import math

import dtorch

from ...amp.autocast_mode import autocast_op
from .activation import softmax

__all__ = ["multi_head_attention_forward", "scaled_dot_product_attention"]

_NEG_INF = float("-inf")


def _dropout(x, p, training):
    if p == 0.0 or not training:
        return x
    from ... import nn  # imported late: the package imports this module

    return nn.functional.dropout(x, p, training=True)


def _safe_softmax(scores):
    """Softmax over the last dim; rows that are entirely ``-inf`` (fully masked) give zeros
    instead of NaN, as PyTorch's ``scaled_dot_product_attention`` does."""
    full = (scores._data == _NEG_INF).all(axis=-1, keepdims=True)
    if bool(full.any()):
        mask = dtorch.Tensor._wrap(full)
        return softmax(scores.masked_fill(mask, 0.0), -1).masked_fill(mask, 0.0)
    return softmax(scores, -1)


def _repeat_heads(x, rep):
    """Repeat each head (dim -3) ``rep`` times, adjacent (``repeat_interleave``)."""
    shape = tuple(x.shape)
    x = x.unsqueeze(-3).expand(shape[:-2] + (rep,) + shape[-2:])
    return x.reshape(shape[:-3] + (shape[-3] * rep,) + shape[-2:])


@autocast_op
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """``softmax(Q K^T * scale + mask) V``.

    Args:
        query: ``(..., L, E)``; key ``(..., S, E)``; value ``(..., S, Ev)``.
        attn_mask: broadcastable to ``(..., L, S)``: bool (True = may attend) or float (added to
            the scores).
        dropout_p: dropout probability on the attention weights.
        is_causal: apply a lower-triangular (top-left aligned) mask; excludes ``attn_mask``.
        scale: the score scale, ``1 / sqrt(E)`` by default.
        enable_gqa: let ``key``/``value`` have fewer heads (dim -3) than ``query``; they are
            repeated to match (grouped-query attention).

    Shape:
        Output ``(..., L, Ev)``. Rows whose every position is masked give zeros.

    Example::

        >>> q = dtorch.randn(2, 4, 8, 16)
        >>> F.scaled_dot_product_attention(q, q, q, is_causal=True).shape
        dtorch.Size([2, 4, 8, 16])
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set "
                           "when is_causal=True")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"Expected query and key to have the same embedding size, got "
                           f"{query.shape[-1]} and {key.shape[-1]}")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, rep), _repeat_heads(value, rep)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        keep = dtorch.ones(L, S, dtype=dtorch.bool, device=query.device).tril()
        scores = scores.masked_fill(~keep, _NEG_INF)
    elif attn_mask is not None:
        if attn_mask.dtype == dtorch.bool:
            scores = scores.masked_fill(~attn_mask, _NEG_INF)
        else:
            scores = scores + attn_mask
    weights = _dropout(_safe_softmax(scores), dropout_p, True)
    return weights @ value


def _float_mask(mask, dtype, name):
    """A bool mask (True = masked out) as an additive float mask; float masks pass through."""
    if mask is None:
        return None
    if mask.dtype == dtorch.bool:
        return dtorch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, _NEG_INF)
    if not mask.is_floating_point():
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.to(dtype)


def _pad_last(mask):
    return dtorch.cat([mask, dtorch.zeros(tuple(mask.shape[:-1]) + (1,), dtype=mask.dtype,
                                          device=mask.device)], -1)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """Multi-head attention on sequence-first inputs (the math of ``nn.MultiheadAttention``).

    Shape:
        query ``(L, N, E)`` or ``(L, E)``; key/value ``(S, N, Ek/Ev)`` or ``(S, Ek/Ev)``;
        key_padding_mask ``(N, S)`` (True / -inf = ignore that key); attn_mask ``(L, S)`` or
        ``(N * num_heads, L, S)`` (True / -inf = may not attend).
        Returns ``(L, N, E)`` and the weights ``(N, L, S)`` (averaged over heads) or
        ``(N, num_heads, L, S)``, or None when ``need_weights`` is False.
    """
    from .linear import linear

    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but "
                             f"got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")

    # input projections
    if not use_separate_proj_weight:
        b_q = b_k = b_v = None
        if in_proj_bias is not None:
            b_q, b_k, b_v = in_proj_bias.chunk(3)
        if query is key and key is value:
            q, k, v = linear(query, in_proj_weight, in_proj_bias).chunk(3, -1)
        else:
            w_q, w_k, w_v = in_proj_weight.chunk(3)
            q = linear(query, w_q, b_q)
            k = linear(key, w_k, b_k)
            v = linear(value, w_v, b_v)
    else:
        b_q = b_k = b_v = None
        if in_proj_bias is not None:
            b_q, b_k, b_v = in_proj_bias.split(
                [embed_dim, k_proj_weight.shape[0], v_proj_weight.shape[0]])
        q = linear(query, q_proj_weight, b_q)
        k = linear(key, k_proj_weight, b_k)
        v = linear(value, v_proj_weight, b_v)

    attn_mask = _float_mask(attn_mask, q.dtype, "attn_mask")
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but "
                                   f"should be {(tgt_len, key.shape[0])}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.ndim == 3:
            want = (bsz * num_heads, tgt_len, key.shape[0])
            if tuple(attn_mask.shape) != want:
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but "
                                   f"should be {want}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
    key_padding_mask = _float_mask(key_padding_mask, q.dtype, "key_padding_mask")

    if bias_k is not None and bias_v is not None:
        k = dtorch.cat([k, bias_k.repeat(1, bsz, 1)])
        v = dtorch.cat([v, bias_v.repeat(1, bsz, 1)])
        attn_mask = _pad_last(attn_mask) if attn_mask is not None else None
        key_padding_mask = _pad_last(key_padding_mask) if key_padding_mask is not None else None

    # heads: (N * H, L, hd)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    if static_k is None:
        k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    else:
        k = static_k
    if static_v is None:
        v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    else:
        v = static_v
    if add_zero_attn:
        zeros = dtorch.zeros(bsz * num_heads, 1, head_dim, dtype=q.dtype, device=q.device)
        k = dtorch.cat([k, zeros], 1)
        v = dtorch.cat([v, zeros.clone()], 1)
        attn_mask = _pad_last(attn_mask) if attn_mask is not None else None
        key_padding_mask = _pad_last(key_padding_mask) if key_padding_mask is not None else None
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but "
                                 f"got {key_padding_mask.shape}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(
            bsz, num_heads, 1, src_len).reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0

    if need_weights:
        scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = _dropout(softmax(scores, -1), dropout_p, True)
        out = weights @ v
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if unbatched:
            return out.squeeze(1), weights.squeeze(0)
        return out, weights

    if attn_mask is not None:
        attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len) if attn_mask.shape[0] != 1 \
            else attn_mask.unsqueeze(0)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    return (out.squeeze(1) if unbatched else out), None
