"""Datasets: the map-style ``Dataset`` (``__getitem__`` + ``__len__``), the stream-style
``IterableDataset`` (``__iter__``) and the combinators PyTorch offers on top of them."""

import bisect
import itertools
import math
import warnings

from ..._tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "Subset", "random_split"]


class Dataset:
    """A map-style dataset: ``dataset[i]`` gives sample ``i``; subclasses define
    ``__getitem__`` and usually ``__len__`` (samplers and ``len(DataLoader)`` need it).

    ``a + b`` concatenates two datasets (:class:`ConcatDataset`).
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream of samples: subclasses define ``__iter__``.

    With ``num_workers > 0`` every worker runs its own copy of ``__iter__``; use
    :func:`dtorch.utils.data.get_worker_info` inside it to split the stream between workers, or
    each sample arrives ``num_workers`` times (as in PyTorch).
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are slices along the first dimension of the given tensors.

    Args:
        *tensors: tensors with the same size of the first dimension.

    Example:
        >>> ds = TensorDataset(dtorch.randn(100, 3), dtorch.arange(100))
        >>> x, y = ds[7]
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].size(0)
        for t in tensors:
            if t.size(0) != n:
                sizes = [t.size(0) for t in tensors]
                raise AssertionError(f"Size mismatch between tensors: {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        # NOTE: a plain array index is much faster than Tensor.__getitem__ (no autograd record);
        # samples of a dataset are data, not part of a graph.
        return tuple(t[index] if t.requires_grad else Tensor._wrap(t._data[index, ...])
                     for t in self.tensors)

    def __len__(self):
        return self.tensors[0].size(0)


class ConcatDataset(Dataset):
    """The concatenation of several map-style datasets (``len`` = sum of lengths)."""

    @staticmethod
    def cumsum(sequence):
        out, total = [], 0
        for d in sequence:
            total += len(d)
            out.append(total)
        return out

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        start = 0 if d == 0 else self.cumulative_sizes[d - 1]
        return self.datasets[d][idx - start]


class ChainDataset(IterableDataset):
    """Chains iterable datasets one after the other (lazily, on each iteration)."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self):
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        # Lets the DataLoader fetch a whole batch at once when the wrapped dataset can.
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random :class:`Subset` s.

    Args:
        dataset: a map-style dataset.
        lengths: the subset lengths (summing to ``len(dataset)``), or fractions summing to 1:
            ``floor(frac * len)`` each, the remainder spread one by one round-robin from the
            first subset (PyTorch's rule).
        generator: a :class:`dtorch.Generator` for the permutation (default: the global one).

    Example:
        >>> train, val = random_split(ds, [0.8, 0.2], generator=dtorch.Generator().manual_seed(0))
    """
    from ...random import generator_for

    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(int(math.floor(n * frac)))
        remainder = n - sum(subset_lengths)
        for i in range(remainder):
            subset_lengths[i % len(subset_lengths)] += 1
        for i, length in enumerate(subset_lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty "
                              "dataset.", stacklevel=2)
        lengths = subset_lengths
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = generator_for(None, generator).permutation(sum(lengths)).tolist()
    out = []
    for offset, length in zip(itertools.accumulate(lengths), lengths):
        out.append(Subset(dataset, perm[offset - length:offset]))
    return out
