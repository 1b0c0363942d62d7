"""Attention: scaled_dot_product_attention and MultiheadAttention against NumPy written from
the definitions, float64 gradient checks, masks; TransformerEncoder(Layer) against numbers
computed by PyTorch 2.x for the same weights (pasted)."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_sdpa(q, k, v, mask=None, scale=None):
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    return _softmax(s) @ v


def t(a, grad=False):
    return dtorch.tensor(a, requires_grad=grad)


RNG = np.random.default_rng(0)
Q, K = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(2, 3, 6, 5))
V = RNG.normal(size=(2, 3, 6, 7))


def test_sdpa_matches_definition():
    np.testing.assert_allclose(F.scaled_dot_product_attention(t(Q), t(K), t(V)).numpy(),
                               np_sdpa(Q, K, V), rtol=1e-12)
    bool_mask = RNG.uniform(size=(4, 6)) > 0.3
    bool_mask[:, 0] = True
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(t(Q), t(K), t(V), attn_mask=t(bool_mask)).numpy(),
        np_sdpa(Q, K, V, bool_mask), rtol=1e-12)
    float_mask = RNG.normal(size=(2, 1, 4, 6))
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(t(Q), t(K), t(V), attn_mask=t(float_mask),
                                       scale=0.3).numpy(),
        np_sdpa(Q, K, V, float_mask, 0.3), rtol=1e-12)
    causal = np.tril(np.ones((4, 6), dtype=bool))  # top-left aligned
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(t(Q), t(K), t(V), is_causal=True).numpy(),
        np_sdpa(Q, K, V, causal), rtol=1e-12)


def test_sdpa_fully_masked_row_gives_zeros_and_finite_grads():
    mask = np.ones((4, 6), dtype=bool)
    mask[2] = False
    q = t(Q, True)
    out = F.scaled_dot_product_attention(q, t(K), t(V), attn_mask=t(mask))
    assert (out[:, :, 2] == 0).all() and np.isfinite(out.detach().numpy()).all()
    out.sum().backward()
    assert np.isfinite(q.grad.numpy()).all()
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=t(mask[:, :4]), is_causal=True)


def test_sdpa_gradcheck_and_dropout():
    q = t(Q[:1, :1], True)
    k = t(K[:1, :1, :3], True)
    v = t(V[:1, :1, :3, :2], True)
    mask = t(np.array([[True, False, True]] * 4))
    assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask),
                     (q, k, v))
    assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                     (q, k, v))
    dtorch.manual_seed(0)
    ones = dtorch.ones(1, 1, 64, 64, dtype=dtorch.float64)
    out = F.scaled_dot_product_attention(ones, ones, ones, dropout_p=0.5)
    vals = np.unique(np.round(out.numpy(), 6))
    assert 0.0 < out.mean().item() < 2.0 and len(vals) > 2  # weights dropped and rescaled


def test_sdpa_grouped_query_attention():
    q = RNG.normal(size=(1, 4, 3, 5))
    k, v = RNG.normal(size=(1, 2, 3, 5)), RNG.normal(size=(1, 2, 3, 5))
    out = F.scaled_dot_product_attention(t(q), t(k), t(v), enable_gqa=True)
    ref = np_sdpa(q, np.repeat(k, 2, 1), np.repeat(v, 2, 1))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


def np_mha(m, q, k, v, kpm=None, attn_mask=None):
    """MultiheadAttention from its definition (sequence-first inputs, packed projections)."""
    E, H = m.embed_dim, m.num_heads
    W = m.in_proj_weight.detach().numpy()
    b = m.in_proj_bias.detach().numpy()
    qp, kp, vp = q @ W[:E].T + b[:E], k @ W[E:2 * E].T + b[E:2 * E], v @ W[2 * E:].T + b[2 * E:]
    L, N, _ = q.shape
    S = k.shape[0]
    d = E // H
    out = np.zeros((L, N, E))
    weights = np.zeros((N, H, L, S))
    for n in range(N):
        for h in range(H):
            sl = slice(h * d, (h + 1) * d)
            s = qp[:, n, sl] @ kp[:, n, sl].T / np.sqrt(d)
            if attn_mask is not None:
                s = np.where(attn_mask, -np.inf, s)
            if kpm is not None:
                s = np.where(kpm[n][None, :], -np.inf, s)
            w = _softmax(s)
            weights[n, h] = w
            out[:, n, sl] = w @ vp[:, n, sl]
    out = out @ m.out_proj.weight.detach().numpy().T + m.out_proj.bias.detach().numpy()
    return out, weights


def test_mha_matches_definition():
    dtorch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2).double()
    with dtorch.no_grad():
        m.in_proj_bias.uniform_(-0.5, 0.5)
        m.out_proj.bias.uniform_(-0.5, 0.5)
    q, kv = RNG.normal(size=(3, 2, 8)), RNG.normal(size=(4, 2, 8))
    kpm = np.array([[False, False, True, False], [False, True, True, False]])
    am = np.zeros((3, 4), dtype=bool)
    am[0, 1] = True
    out, w = m(t(q), t(kv), t(kv), key_padding_mask=t(kpm), attn_mask=t(am))
    ref, ref_w = np_mha(m, q, kv, kv, kpm, am)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(w.detach().numpy(), ref_w.mean(1), rtol=1e-12, atol=1e-14)
    _, w_all = m(t(q), t(kv), t(kv), key_padding_mask=t(kpm), average_attn_weights=False)
    assert w_all.shape == (2, 2, 3, 4)
    out2, none = m(t(q), t(kv), t(kv), key_padding_mask=t(kpm), attn_mask=t(am),
                   need_weights=False)
    assert none is None
    np.testing.assert_allclose(out2.detach().numpy(), ref, rtol=1e-12, atol=1e-14)
    # float masks are added; -inf equals True
    fm = np.where(am, -np.inf, 0.0)
    out3, _ = m(t(q), t(kv), t(kv), key_padding_mask=t(kpm), attn_mask=t(fm))
    np.testing.assert_allclose(out3.detach().numpy(), ref, rtol=1e-12, atol=1e-14)


def test_mha_batch_first_unbatched_and_self_attention():
    m = nn.MultiheadAttention(6, 3, batch_first=True).double()
    x = dtorch.randn(2, 5, 6, dtype=dtorch.float64)
    out, w = m(x, x, x)
    assert out.shape == (2, 5, 6) and w.shape == (2, 5, 5)
    m.batch_first = False
    out_sf, _ = m(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))
    np.testing.assert_allclose(out_sf.transpose(0, 1).detach().numpy(),
                               out.detach().numpy(), rtol=1e-12)
    out_u, w_u = m(x[0], x[0], x[0])
    np.testing.assert_allclose(out_u.detach().numpy(), out[0].detach().numpy(), rtol=1e-12)
    assert w_u.shape == (5, 5)


def test_mha_parameters_repr_and_options():
    m = nn.MultiheadAttention(4, 2)
    assert [n for n, _ in m.named_parameters()] == [
        "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert repr(m) == ("MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear("
                       "in_features=4, out_features=4, bias=True)\n)")
    assert (m.in_proj_bias == 0).all() and (m.out_proj.bias == 0).all()
    sep = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, bias=False, add_bias_kv=True)
    assert [n for n, _ in sep.named_parameters()] == [
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v",
        "out_proj.weight"]
    q, k, v = dtorch.randn(2, 1, 4), dtorch.randn(3, 1, 3), dtorch.randn(3, 1, 5)
    out, w = sep(q, k, v)
    assert out.shape == (2, 1, 4) and w.shape == (1, 2, 4)  # one extra key from bias_k
    z = nn.MultiheadAttention(4, 2, add_zero_attn=True)
    assert z(q, q, q)[1].shape == (1, 2, 3)
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(5, 2)


def test_mha_gradcheck():
    m = nn.MultiheadAttention(4, 2).double()
    q = dtorch.randn(2, 1, 4, dtype=dtorch.float64, requires_grad=True)
    kv = dtorch.randn(3, 1, 4, dtype=dtorch.float64, requires_grad=True)
    kpm = dtorch.tensor([[False, True, False]])
    assert gradcheck(lambda a, b, w: m(a, b, b, key_padding_mask=kpm)[0],
                     (q, kv, m.in_proj_weight))


# ----------------------------------------------------------------------------- transformer
POST_NORM = [-0.786512517282, -0.665555679186, 0.648806900488, 0.267065366335, -0.902936390735,
             -0.314754893507, 0.531555678778, 0.255753758889, -0.862541108249, -0.446367647601,
             0.5996933048, 0.250901601657, -0.914571245944, -0.160979526489, 0.469987510672,
             0.223204432285, -0.894517737228, -0.233201284863, 0.527991744629, 0.212205991193,
             -0.897507445626, -0.292047229132, 0.538007321219, 0.237437779523]
PRE_NORM_GELU = [1.61285185603, 1.32161357138, 0.628574165368, -0.00595867165176,
                 1.00366927011, 0.436000818913, -0.430095908253, -1.14050471536,
                 -0.081356543004, -0.559534352688, -1.17756297442, -1.62502793389,
                 -0.170809735014, -0.515177626833, -0.565366728301, -0.874844367298,
                 0.799258697159, 0.587241374971, 0.554947806079, 0.195716076951, 1.6376858702,
                 1.28968362146, 0.820084253209, 0.149265066453]
STATE_KEYS = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
              "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
              "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]


def _deterministic_layer(**kw):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.1, **kw).double()
    sd = layer.state_dict()
    assert list(sd) == STATE_KEYS
    new = {k: dtorch.tensor(np.sin(np.arange(v.numel()) * 0.7 + i).reshape(tuple(v.shape))
                            * 0.5) for i, (k, v) in enumerate(sd.items())}
    layer.load_state_dict(new)
    return layer.eval()


@pytest.mark.parametrize("kw,expected", [({}, POST_NORM),
                                         ({"norm_first": True, "activation": "gelu"},
                                          PRE_NORM_GELU)])
def test_encoder_layer_matches_pytorch(kw, expected):
    layer = _deterministic_layer(**kw)
    x = dtorch.tensor(np.cos(np.arange(24) * 0.3).reshape(3, 2, 4))
    mask = dtorch.tensor([[False, True, True], [False, False, True], [False, False, False]])
    out = layer(x, src_mask=mask)
    # NOTE: 1e-7 covers dtorch.erf's ~1e-8 error in the gelu variant.
    np.testing.assert_allclose(out.detach().numpy().reshape(-1), expected, rtol=1e-7, atol=1e-7)
    bf = _deterministic_layer(batch_first=True, **kw)
    out_bf = bf(x.transpose(0, 1), src_mask=mask)
    np.testing.assert_allclose(out_bf.transpose(0, 1).detach().numpy(), out.detach().numpy(),
                               rtol=1e-12)


def test_encoder_stack_norm_repr_and_dropout():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    assert enc.layers[0] is not enc.layers[1] and enc.layers[0].linear1.weight is not \
        enc.layers[1].linear1.weight
    assert repr(enc).splitlines()[:5] == [
        "TransformerEncoder(", "  (layers): ModuleList(",
        "    (0-1): 2 x TransformerEncoderLayer(", "      (self_attn): MultiheadAttention(",
        "        (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
        "bias=True)"]
    x = dtorch.randn(5, 3, 8)
    kpm = dtorch.tensor([[False] * 5, [False] * 4 + [True], [False] * 5])
    enc.eval()
    y = enc(x, src_key_padding_mask=kpm)
    assert y.shape == (5, 3, 8) and dtorch.equal(y, enc(x, src_key_padding_mask=kpm))
    np.testing.assert_allclose(y.mean(-1).detach().numpy(), 0.0, atol=1e-5)  # final LayerNorm
    enc.train()
    assert not dtorch.equal(enc(x), enc(x))
    y.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")


def test_encoder_layer_gradcheck():
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0).double()
    x = dtorch.randn(2, 1, 4, dtype=dtorch.float64, requires_grad=True)
    assert gradcheck(lambda a, w: layer(a), (x, layer.linear1.weight))
