"""Variable-length sequences for the recurrent layers: ``pad_sequence`` and ``PackedSequence``.

A ``PackedSequence`` stores the time steps of a batch of sequences back to back, longest
sequence first: step ``t`` holds ``batch_sizes[t]`` rows (the sequences still running at ``t``).
The recurrent layers consume it directly, so padding is never computed on. Packing and unpacking
are single gathers, differentiable with respect to the data.
"""

from collections import namedtuple

import numpy as np

import dtorch

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence",
           "pack_sequence", "pad_packed_sequence", "pad_sequence", "unpack_sequence",
           "unpad_sequence"]


def invert_permutation(permutation):
    """The permutation ``inv`` with ``inv[permutation[i]] = i`` (None stays None)."""
    if permutation is None:
        return None
    out = dtorch.empty_like(permutation)
    out[permutation] = dtorch.arange(permutation.numel(), device=permutation.device)
    return out


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of variable-length sequences packed time step by time step.

    Attributes:
        data: ``(sum(lengths), *)`` the steps of all sequences, step-major.
        batch_sizes: int64 CPU tensor ``(T,)``: how many sequences run at each step.
        sorted_indices: the order (longest first) the batch was packed in, or None.
        unsorted_indices: its inverse, restoring the original order, or None.

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`, never directly.
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise ValueError("PackedSequence needs batch_sizes; build it with "
                             "pack_padded_sequence or pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _map(self, fn):
        idx = [None if i is None else fn(i) for i in (self.sorted_indices,
                                                      self.unsorted_indices)]
        return type(self)(fn(self.data), self.batch_sizes, *idx)

    def to(self, *args, **kwargs):
        """Move/cast ``data`` (the index tensors follow its device; ``batch_sizes`` stays on the
        CPU)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        idx = [None if i is None else i.to(data.device) for i in (self.sorted_indices,
                                                                  self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *idx)

    def cuda(self, *args, **kwargs):
        return self._map(lambda t: t.cuda(*args, **kwargs))

    def cpu(self):
        return self._map(lambda t: t.cpu())

    def double(self):
        return type(self)(self.data.double(), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    def float(self):
        return type(self)(self.data.float(), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    def half(self):
        return type(self)(self.data.half(), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    @property
    def is_cuda(self):
        return self.data.is_cuda

    def is_pinned(self):
        return False


def _lengths_array(lengths):
    if isinstance(lengths, dtorch.Tensor):
        arr = dtorch._backend.to_device(lengths._data, None)
    else:
        arr = np.asarray(lengths)
    return arr.astype(np.int64).reshape(-1)


def _packing_index(lengths_sorted):
    """(time index, batch index) of every packed row, and the batch sizes."""
    T = int(lengths_sorted[0])
    batch_sizes = (lengths_sorted[None, :] > np.arange(T)[:, None]).sum(1)
    t_idx = np.repeat(np.arange(T), batch_sizes)
    b_idx = np.concatenate([np.arange(b) for b in batch_sizes])
    return t_idx, b_idx, batch_sizes


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch ``(T, B, *)`` (``(B, T, *)`` if ``batch_first``) of sequences with
    the given ``lengths``.

    With ``enforce_sorted=True`` the lengths must be decreasing; otherwise the batch is sorted
    here and the permutation kept in the result (and undone by :func:`pad_packed_sequence`).

    Example::

        >>> x = dtorch.tensor([[1, 2, 3], [4, 5, 0]]).T  # (T=3, B=2)
        >>> pack_padded_sequence(x, [3, 2]).data
        tensor([1, 4, 2, 5, 3])
    """
    lens = _lengths_array(lengths)
    if lens.size and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element "
                           "in 'lengths' that is <= 0")
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                "pack_sequence to sidestep this requirement if you do not need ONNX "
                "exportability.")
        order = None
        sorted_lens = lens
    else:
        order = np.argsort(-lens, kind="stable")
        sorted_lens = lens[order]
    T = input.shape[1] if batch_first else input.shape[0]
    if sorted_lens[0] > T:
        raise RuntimeError(f"Expected the longest sequence length to be at most the padded "
                           f"length {T}, got {int(sorted_lens[0])}")
    t_idx, b_idx, batch_sizes = _packing_index(sorted_lens)
    if order is not None:
        b_idx = order[b_idx]
    xp = dtorch._backend.get_array_module(input._data)
    t_i, b_i = xp.asarray(t_idx), xp.asarray(b_idx)
    data = input[b_i, t_i] if batch_first else input[t_i, b_i]
    sorted_indices = None
    if order is not None:
        sorted_indices = dtorch.Tensor._wrap(xp.asarray(order))
    return PackedSequence(data, dtorch.Tensor._wrap(batch_sizes.astype(np.int64)),
                          sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of :func:`pack_padded_sequence`: the padded batch and the lengths (int64 CPU
    tensor), in the original batch order."""
    data, batch_sizes = sequence.data, sequence.batch_sizes
    bs = _lengths_array(batch_sizes)
    T, B = len(bs), int(bs[0])
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {T}")
        T_out = total_length
    else:
        T_out = T
    lengths = (bs[None, :] > np.arange(B)[:, None]).sum(1)  # sorted order
    # row of `data` for each (t, b), or the extra padding row
    index = np.full((T_out, B), data.shape[0], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(bs)[:-1]])
    for t in range(T):
        index[t, :bs[t]] = offsets[t] + np.arange(bs[t])
    unsorted = sequence.unsorted_indices
    if unsorted is not None:
        perm = _lengths_array(unsorted)
        index = index[:, perm]
        lengths = lengths[perm]
    xp = dtorch._backend.get_array_module(data._data)
    pad = dtorch.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype,
                      device=data.device)
    padded = dtorch.cat([data, pad])[xp.asarray(index.T if batch_first else index)]
    return padded, dtorch.tensor(lengths, dtype=dtorch.int64)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors ``(L_i, *)`` of different lengths into ``(T, B, *)`` (``(B, T, *)`` if
    ``batch_first``), padding with ``padding_value`` on ``padding_side``."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    if isinstance(sequences, dtorch.Tensor):
        sequences = sequences.unbind(0)
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    T = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        n = T - s.shape[0]
        if n:
            pad = dtorch.full((n,) + tuple(s.shape[1:]), padding_value, dtype=s.dtype,
                              device=s.device)
            s = dtorch.cat([s, pad] if padding_side == "right" else [pad, s])
        rows.append(s)
    return dtorch.stack(rows, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """Inverse of :func:`pad_sequence`: the list of unpadded sequences."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [seq[:int(n)] for seq, n in zip(padded_sequences, _lengths_array(lengths))]


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors ``(L_i, *)``: ``pack_padded_sequence(pad_sequence(...))``."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """Inverse of :func:`pack_sequence`: the list of tensors."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
