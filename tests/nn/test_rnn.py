"""Recurrent layers against hand-written NumPy cells, packed sequences against running each
sequence alone, float64 gradient checks, parameter names/initialisation, reprs, utilities."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
from dtorch.autograd import gradcheck
from dtorch.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def np_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTM cell written out: gate order i, f, g, o."""
    g = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, gg, o = np.split(g, 4, axis=-1)
    c = _sig(f) * c + _sig(i) * np.tanh(gg)
    return _sig(o) * np.tanh(c), c


def np_gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRU cell written out: gate order r, z, n; r multiplies (W_hn h + b_hn)."""
    xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r, z = _sig(xr + hr), _sig(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def _p(m, name):
    return getattr(m, name).detach().numpy()


def np_run(m, x, h0, c0=None):
    """Run a (possibly multi-layer, bidirectional) LSTM/GRU/RNN with the NumPy cells."""
    T = x.shape[0]
    D = 2 if m.bidirectional else 1
    inp = x
    hs, cs = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w = [_p(m, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = h0[layer * D + d], None if c0 is None else c0[layer * D + d]
            out = [None] * T
            for step in (range(T - 1, -1, -1) if d else range(T)):
                if isinstance(m, nn.LSTM):
                    h, c = np_lstm_cell(inp[step], h, c, *w)
                elif isinstance(m, nn.GRU):
                    h = np_gru_cell(inp[step], h, *w)
                else:
                    h = np.tanh(inp[step] @ w[0].T + w[2] + h @ w[1].T + w[3])
                out[step] = h
            outs.append(np.stack(out))
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, -1)
    return inp, np.stack(hs), (np.stack(cs) if c0 is not None else None)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, True)])
def test_against_numpy_cells(cls, layers, bidir):
    dtorch.manual_seed(0)
    m = cls(3, 4, num_layers=layers, bidirectional=bidir).double()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 3))
    D = 2 if bidir else 1
    h0 = rng.normal(size=(layers * D, 2, 4))
    c0 = rng.normal(size=(layers * D, 2, 4))
    if cls is nn.LSTM:
        out, (hn, cn) = m(dtorch.tensor(x), (dtorch.tensor(h0), dtorch.tensor(c0)))
        ref_out, ref_h, ref_c = np_run(m, x, h0, c0)
        np.testing.assert_allclose(cn.detach().numpy(), ref_c, rtol=1e-12, atol=1e-14)
    else:
        out, hn = m(dtorch.tensor(x), dtorch.tensor(h0))
        ref_out, ref_h, _ = np_run(m, x, h0)
    assert out.shape == (5, 2, 4 * D) and hn.shape == (layers * D, 2, 4)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn.detach().numpy(), ref_h, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_cells_against_numpy(cls):
    m = cls(3, 4).double()
    rng = np.random.default_rng(1)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    w = [_p(m, n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if cls is nn.LSTMCell:
        h1, c1 = m(dtorch.tensor(x), (dtorch.tensor(h), dtorch.tensor(c)))
        rh, rc = np_lstm_cell(x, h, c, *w)
        np.testing.assert_allclose(c1.detach().numpy(), rc, rtol=1e-12)
    elif cls is nn.GRUCell:
        h1, rh = m(dtorch.tensor(x), dtorch.tensor(h)), np_gru_cell(x, h, *w)
    else:
        h1 = m(dtorch.tensor(x), dtorch.tensor(h))
        rh = np.tanh(x @ w[0].T + w[2] + h @ w[1].T + w[3])
    np.testing.assert_allclose(h1.detach().numpy(), rh, rtol=1e-12)
    # unbatched input and default zero state
    out = m(dtorch.tensor(x[0]))
    assert (out[0] if cls is nn.LSTMCell else out).shape == (4,)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_gradcheck(cls):
    dtorch.manual_seed(1)
    m = cls(2, 3, num_layers=2, bidirectional=True).double()
    x = dtorch.randn(3, 2, 2, dtype=dtorch.float64, requires_grad=True)
    h0 = dtorch.randn(4, 2, 3, dtype=dtorch.float64, requires_grad=True)

    r_out = dtorch.randn(3, 2, 6, dtype=dtorch.float64)
    r_h = dtorch.randn(4, 2, 3, dtype=dtorch.float64)

    def run(inp, h, w):
        assert m.weight_hh_l1 is w
        state = (h, h * 0.5) if cls is nn.LSTM else h
        out, hn = m(inp, state)
        hn = hn[1] if cls is nn.LSTM else hn
        # random projections to a scalar keep the check cheap (one backward)
        return (out * r_out).sum() + (hn * r_h).sum()

    assert gradcheck(run, (x, h0, m.weight_hh_l1))


def test_lstm_proj_size_gradcheck_and_shapes():
    m = nn.LSTM(2, 4, proj_size=2, bidirectional=True).double()
    assert m.weight_hr_l0.shape == (2, 4) and m.weight_hh_l0.shape == (16, 2)
    x = dtorch.randn(3, 2, 2, dtype=dtorch.float64, requires_grad=True)
    out, (h, c) = m(x)
    assert out.shape == (3, 2, 4) and h.shape == (2, 2, 2) and c.shape == (2, 2, 4)
    assert gradcheck(lambda a, w: m(a)[0], (x, m.weight_hr_l0_reverse))


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidir", [False, True])
def test_packed_equals_each_sequence_alone(cls, bidir):
    dtorch.manual_seed(2)
    m = cls(3, 4, num_layers=2, bidirectional=bidir, batch_first=True).double()
    lengths = [2, 5, 3]
    seqs = [dtorch.randn(n, 3, dtype=dtorch.float64) for n in lengths]
    padded = pad_sequence(seqs, batch_first=True)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    out, state = m(packed)
    assert isinstance(out, PackedSequence)
    unpacked, lens = pad_packed_sequence(out, batch_first=True)
    assert lens.tolist() == lengths
    hn = state[0] if cls is nn.LSTM else state
    for b, s in enumerate(seqs):
        o1, st1 = m(s.unsqueeze(0))
        h1 = st1[0] if cls is nn.LSTM else st1
        np.testing.assert_allclose(unpacked[b, :lengths[b]].detach().numpy(),
                                   o1[0].detach().numpy(), rtol=1e-12, atol=1e-14)
        assert (unpacked[b, lengths[b]:] == 0).all()
        np.testing.assert_allclose(hn[:, b].detach().numpy(), h1[:, 0].detach().numpy(),
                                   rtol=1e-12, atol=1e-14)


def test_packed_with_initial_state_and_gradients():
    m = nn.GRU(2, 3).double()
    lengths = [3, 1]
    x = dtorch.randn(3, 2, 2, dtype=dtorch.float64, requires_grad=True)
    h0 = dtorch.randn(1, 2, 3, dtype=dtorch.float64)
    out, hn = m(pack_padded_sequence(x, [1, 3], enforce_sorted=False), h0)
    for b, n in enumerate([1, 3]):
        _, h1 = m(x[:n, b:b + 1], h0[:, b:b + 1])
        np.testing.assert_allclose(hn[:, b].detach().numpy(), h1[:, 0].detach().numpy(),
                                   rtol=1e-12)
    pad_packed_sequence(out)[0].sum().backward()
    assert (x.grad[1:, 0] == 0).all() and (x.grad[:, 1] != 0).all()
    assert lengths


def test_parameter_names_shapes_and_init():
    m = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "weight_ih_l0_reverse"]
    assert len(names) == 16 and m.weight_ih_l1.shape == (80, 40)
    bound = 1 / np.sqrt(20)
    for p in m.parameters():
        assert np.abs(p.detach().numpy()).max() <= bound
    assert np.abs(m.weight_hh_l0.detach().numpy()).max() > 0.9 * bound  # really uniform
    g = nn.GRU(3, 5, bias=False)
    assert [n for n, _ in g.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert g.weight_ih_l0.shape == (15, 3)
    assert len(m.all_weights) == 4 and m.all_weights[1][0] is m.weight_ih_l0_reverse


def test_reprs():
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4)"
    lstm = nn.LSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True,
                   proj_size=2)
    assert repr(lstm) == ("LSTM(3, 4, proj_size=2, num_layers=2, bias=False, batch_first=True, "
                          "dropout=0.5, bidirectional=True)")
    assert repr(nn.GRU(3, 4)) == "GRU(3, 4)"
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert repr(nn.LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"


def test_batch_first_unbatched_and_relu():
    m = nn.RNN(3, 4, nonlinearity="relu", batch_first=True).double()
    x = dtorch.randn(2, 5, 3, dtype=dtorch.float64)
    out, h = m(x)
    assert out.shape == (2, 5, 4) and (out >= 0).all()
    out_t, h_t = m(x[1])  # unbatched (L, H_in)
    np.testing.assert_allclose(out_t.detach().numpy(), out[1].detach().numpy(), rtol=1e-12)
    assert h_t.shape == (1, 4)


def test_dropout_between_layers():
    dtorch.manual_seed(3)
    m = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = dtorch.randn(4, 2, 3)
    m.eval()
    a, b = m(x)[0], m(x)[0]
    assert dtorch.equal(a, b)
    m.train()
    assert not dtorch.equal(m(x)[0], a)


def test_errors():
    m = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. "
                                           "Expected 3, got 5"):
        m(dtorch.randn(2, 1, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \[2, 1, 4\], got "
                                           r"\[1, 1, 4\]"):
        m(dtorch.randn(2, 1, 3), (dtorch.zeros(1, 1, 4), dtorch.zeros(2, 1, 4)))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        nn.GRU(3, 4)(dtorch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.RNNBase("GRU", 3, 4, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(3, 4, dropout=2)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


def test_pad_and_pack_utilities():
    a, b, c = dtorch.tensor([1.0, 2, 3]), dtorch.tensor([4.0]), dtorch.tensor([5.0, 6])
    assert pad_sequence([a, b, c]).tolist() == [[1, 4, 5], [2, 0, 6], [3, 0, 0]]
    assert pad_sequence([a, b], batch_first=True, padding_value=-1,
                        padding_side="left").tolist() == [[1, 2, 3], [-1, -1, 4]]
    p = pack_sequence([a, c, b])
    assert p.data.tolist() == [1, 5, 4, 2, 6, 3] and p.batch_sizes.tolist() == [3, 2, 1]
    assert p.sorted_indices is None
    q = pack_sequence([b, a, c], enforce_sorted=False)
    assert q.sorted_indices.tolist() == [1, 2, 0] and q.unsorted_indices.tolist() == [2, 0, 1]
    assert [s.tolist() for s in unpack_sequence(q)] == [[4], [1, 2, 3], [5, 6]]
    padded, lens = pad_packed_sequence(q, batch_first=True, total_length=4, padding_value=9)
    assert padded.tolist() == [[4, 9, 9, 9], [1, 2, 3, 9], [5, 6, 9, 9]]
    assert lens.tolist() == [1, 3, 2] and lens.dtype == dtorch.int64
    assert [s.tolist() for s in unpad_sequence(padded, lens, batch_first=True)] == \
        [[4], [1, 2, 3], [5, 6]]
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        pack_sequence([b, a])
    with pytest.raises(ValueError, match="total_length=2"):
        pad_packed_sequence(q, total_length=2)
    x = dtorch.randn(3, 2, dtype=dtorch.float64, requires_grad=True)
    assert gradcheck(lambda t: pad_packed_sequence(pack_padded_sequence(t, [3, 2]))[0], (x,))
