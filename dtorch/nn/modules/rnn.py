"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells.

PyTorch's gate order and parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``weight_hr_l0`` for LSTM projections, ``*_reverse`` for the backward direction),
initialisation ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``.

The gates are fused: one matrix multiply projects the whole input sequence of a layer and
direction (all time steps and all gates at once); each time step then needs one matrix multiply
of the hidden state for all gates. Packed sequences run step by step on the sequences still
active at each step (the batch is sorted longest first, so they are the leading rows).
"""

import math
import numbers
import warnings

import dtorch

from ... import _creation
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _cell(mode, gi, gh, h, c):
    """One step from the input projection ``gi`` and hidden projection ``gh`` (all gates):
    the new ``(h, c)`` (``c`` is None except for LSTM; an LSTM's ``h`` is not yet projected)."""
    if mode == "LSTM":
        g = gi + gh
        H = c.shape[-1]
        i, f = dtorch.sigmoid(g[..., :2 * H]).chunk(2, -1)
        o = dtorch.sigmoid(g[..., 3 * H:])
        c_new = f * c + i * dtorch.tanh(g[..., 2 * H:3 * H])
        return o * dtorch.tanh(c_new), c_new
    if mode == "GRU":
        H = h.shape[-1]
        rz = dtorch.sigmoid(gi[..., :2 * H] + gh[..., :2 * H])
        r, z = rz.chunk(2, -1)
        n = dtorch.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
        return n + z * (h - n), None
    pre = gi + gh
    return (dtorch.tanh(pre) if mode == "RNN_TANH" else dtorch.relu(pre)), None


class RNNBase(Module):
    """Shared implementation of ``RNN``, ``LSTM`` and ``GRU`` (see their docstrings)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 device=None, dtype=None):
        super().__init__()
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or \
                isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning,
                          stacklevel=3)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: "
                            f"{type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        kw = dict(device=device, dtype=dtype)
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else real_hidden * num_directions
                suffix = "_reverse" if direction == 1 else ""
                params = [("weight_ih", (gate_size, layer_input)),
                          ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    params += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    params.append(("weight_hr", (proj_size, hidden_size)))
                names = []
                for base, shape in params:
                    name = f"{base}_l{layer}{suffix}"
                    setattr(self, name, Parameter(_creation.empty(shape, **kw)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self):
        """No-op (cuDNN weight packing has no equivalent here); kept for compatibility."""

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------ forward
    def _weights(self, idx):
        names = self._all_weights[idx]
        w = {n.split("_l")[0]: getattr(self, n) for n in names}
        return w["weight_ih"], w["weight_hh"], w.get("bias_ih"), w.get("bias_hh"), \
            w.get("weight_hr")

    def _run_direction(self, x, batch_sizes, h, c, idx, reverse):
        """Run one layer in one direction over the packed rows ``x``; return the packed
        outputs and the final ``(h, c)``."""
        w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(idx)
        gates_x = F.linear(x, w_ih, b_ih)  # every step and gate in one matmul
        T = len(batch_sizes)
        offsets = [0] * T
        for t in range(1, T):
            offsets[t] = offsets[t - 1] + batch_sizes[t - 1]
        outputs = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            n = batch_sizes[t]
            full = n == h.shape[0]
            h_prev = h if full else h[:n]
            c_prev = None if c is None else (c if full else c[:n])
            gh = F.linear(h_prev, w_hh, b_hh)
            h_new, c_new = _cell(self.mode, gates_x[offsets[t]:offsets[t] + n], gh, h_prev,
                                 c_prev)
            if w_hr is not None:
                h_new = F.linear(h_new, w_hr)
            outputs[t] = h_new
            if full:
                h, c = h_new, c_new
            else:
                h = dtorch.cat([h_new, h[n:]])
                if c is not None:
                    c = dtorch.cat([c_new, c[n:]])
        return dtorch.cat(outputs) if T > 1 else outputs[0], h, c

    def _check_hidden(self, hx, expected, msg):
        if tuple(hx.shape) != tuple(expected):
            raise RuntimeError(msg.format(list(expected), list(hx.shape)))

    def forward(self, input, hx=None):
        """Run the sequence; returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM)."""
        name = type(self).__name__
        is_lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        batched = True
        if packed:
            data, bsizes, sorted_indices, unsorted_indices = input
            batch_sizes = [int(b) for b in bsizes.tolist()]
            B = batch_sizes[0]
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D "
                                 f"tensor instead")
            batched = input.ndim == 3
            if not batched:
                input = input.unsqueeze(1)
            elif self.batch_first:
                input = input.transpose(0, 1)
            T, B = input.shape[0], input.shape[1]
            data = input.reshape(T * B, input.shape[2])
            batch_sizes = [B] * T
            sorted_indices = unsorted_indices = None
        if data.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {data.shape[-1]}")
        D = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        h_shape = (self.num_layers * D, B, real_hidden)
        c_shape = (self.num_layers * D, B, self.hidden_size)
        if hx is None:
            kw = dict(dtype=data.dtype, device=data.device)
            h0 = dtorch.zeros(h_shape, **kw)
            c0 = dtorch.zeros(c_shape, **kw) if is_lstm else None
        else:
            h0, c0 = hx if is_lstm else (hx, None)
            if not batched:
                for t in ((h0, c0) if is_lstm else (h0,)):
                    if t.ndim != 2:
                        raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but "
                                           f"got {t.ndim}-D tensor")
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
            elif h0.ndim != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                                   f"{h0.ndim}-D tensor")
            if sorted_indices is not None:
                h0 = h0.index_select(1, sorted_indices)
                c0 = c0.index_select(1, sorted_indices) if c0 is not None else None
            if is_lstm:
                self._check_hidden(h0, h_shape, "Expected hidden[0] size {}, got {}")
                self._check_hidden(c0, c_shape, "Expected hidden[1] size {}, got {}")
            else:
                self._check_hidden(h0, h_shape, "Expected hidden size {}, got {}")
        layer_input = data
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = layer * D + d
                out, h, c = self._run_direction(layer_input, batch_sizes, h0[idx],
                                                None if c0 is None else c0[idx], idx, d == 1)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outs[0] if D == 1 else dtorch.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        h_n = dtorch.stack(h_n)
        c_n = dtorch.stack(c_n) if is_lstm else None
        if packed:
            if unsorted_indices is not None:
                h_n = h_n.index_select(1, unsorted_indices)
                c_n = c_n.index_select(1, unsorted_indices) if is_lstm else None
            output = PackedSequence(layer_input, bsizes, sorted_indices, unsorted_indices)
        else:
            output = layer_input.reshape(len(batch_sizes), B, layer_input.shape[-1])
            if not batched:
                output = output.squeeze(1)
                h_n = h_n.squeeze(1)
                c_n = c_n.squeeze(1) if is_lstm else None
            elif self.batch_first:
                output = output.transpose(0, 1)
        return output, ((h_n, c_n) if is_lstm else h_n)


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU).

    Args:
        input_size: features of the input ``x``.
        hidden_size: features of the hidden state ``h``.
        num_layers: stacked layers. Default: 1.
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: use ``b_ih`` and ``b_hh``. Default: True.
        batch_first: input and output are ``(N, L, *)`` instead of ``(L, N, *)``.
        dropout: dropout on the outputs of every layer but the last (training only).
        bidirectional: also run the sequence backwards and concatenate.

    Shape:
        Input ``(L, N, H_in)``, ``(L, H_in)`` or a ``PackedSequence``; ``h_0``
        ``(D * num_layers, N, H_out)``. Output ``(L, N, D * H_out)`` (packed if the input was)
        and ``h_n`` like ``h_0``.

    Example::

        >>> rnn = nn.RNN(10, 20, 2)
        >>> output, hn = rnn(dtorch.randn(5, 3, 10), dtorch.randn(2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, with PyTorch's gate order (input, forget, cell, output)::

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_ih^T + b_ih + h W_hh^T + b_hh)
        c' = f * c + i * g;   h' = o * tanh(c')   (then h' W_hr^T if proj_size > 0)

    Arguments as :class:`RNN` (no ``nonlinearity``) plus ``proj_size``.

    Shape:
        ``forward(input, (h_0, c_0))`` returns ``output, (h_n, c_n)``; ``h`` has ``proj_size``
        features when it is set, ``c`` always ``hidden_size``.

    Example::

        >>> lstm = nn.LSTM(10, 20, 2)
        >>> output, (hn, cn) = lstm(dtorch.randn(5, 3, 10))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit, with PyTorch's gate order (reset, update, new)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h

    Arguments and shapes as :class:`RNN` (no ``nonlinearity``).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """Shared parameters of the cells: ``weight_ih`` ``(G * hidden, input)``, ``weight_hh``
    ``(G * hidden, hidden)``, ``bias_ih``, ``bias_hh``."""

    _mode = None

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        kw = dict(device=device, dtype=dtype)
        self.weight_ih = Parameter(_creation.empty((num_chunks * hidden_size, input_size), **kw))
        self.weight_hh = Parameter(_creation.empty((num_chunks * hidden_size, hidden_size),
                                                   **kw))
        if bias:
            self.bias_ih = Parameter(_creation.empty(num_chunks * hidden_size, **kw))
            self.bias_hh = Parameter(_creation.empty(num_chunks * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = self.__dict__.get("nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl}"
        return s

    def _prepare(self, input, hx):
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if hx is not None:
            for h in (hx if isinstance(hx, tuple) else (hx,)):
                if h.ndim not in (1, 2):
                    raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {h.ndim}D "
                                     f"instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        return input.ndim == 2

    def _step(self, input, h, c):
        gi = F.linear(input, self.weight_ih, self.bias_ih)
        gh = F.linear(h, self.weight_hh, self.bias_hh)
        return _cell(self._mode, gi, gh, h, c)

    def _zeros(self, input):
        return dtorch.zeros(input.shape[:-1] + (self.hidden_size,), dtype=input.dtype,
                            device=input.device)


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU).

    Shape:
        input ``(N, input_size)`` or ``(input_size)``, hidden ``(N, hidden_size)``; returns
        ``h'``.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    @property
    def _mode(self):
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def forward(self, input, hx=None):
        self._prepare(input, hx)
        h = self._zeros(input) if hx is None else hx
        return self._step(input, h, None)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step (gate order i, f, g, o); ``forward(input, (h, c))`` returns
    ``(h', c')``."""

    _mode = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        self._prepare(input, hx)
        if hx is None:
            h = c = self._zeros(input)
        else:
            h, c = hx
        return self._step(input, h, c)


class GRUCell(RNNCellBase):
    """One GRU step (gate order r, z, n; ``r`` multiplies ``W_hn h + b_hn``); returns
    ``h'``."""

    _mode = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        self._prepare(input, hx)
        h = self._zeros(input) if hx is None else hx
        return self._step(input, h, None)[0]
