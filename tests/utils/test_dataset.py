"""Datasets: TensorDataset, ConcatDataset, ChainDataset, Subset, random_split."""

import numpy as np
import pytest

import dtorch
from dtorch.utils.data import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)


class Range(IterableDataset):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def __iter__(self):
        return iter(range(self.lo, self.hi))

    def __len__(self):
        return self.hi - self.lo


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i * i

    def __len__(self):
        return self.n


def test_tensor_dataset_slices_every_tensor():
    x = dtorch.arange(12.0).reshape(6, 2)
    y = dtorch.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.tolist() == [8.0, 9.0] and b.item() == 4 and b.shape == ()
    with pytest.raises(AssertionError, match="Size mismatch"):
        TensorDataset(x, dtorch.arange(5))


def test_concat_dataset_indexing_and_add():
    ds = Squares(3) + Squares(2)
    assert isinstance(ds, ConcatDataset)
    assert [ds[i] for i in range(len(ds))] == [0, 1, 4, 0, 1]
    assert ds[-1] == 1 and ds.cumulative_sizes == [3, 5]
    with pytest.raises(ValueError, match="absolute value"):
        ds[-6]
    with pytest.raises(AssertionError, match="IterableDataset"):
        ConcatDataset([Range(0, 2)])


def test_chain_dataset():
    ds = Range(0, 2) + Range(5, 7)
    assert isinstance(ds, ChainDataset)
    assert list(ds) == [0, 1, 5, 6] and len(ds) == 4


def test_subset():
    s = Subset(Squares(10), [9, 2, 3])
    assert len(s) == 3 and [s[i] for i in range(3)] == [81, 4, 9]
    assert s.__getitems__([0, 2]) == [81, 9]


def test_random_split_lengths_is_a_seeded_partition():
    g = dtorch.Generator().manual_seed(0)
    a, b = random_split(Squares(10), [7, 3], generator=g)
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    a2, _ = random_split(Squares(10), [7, 3], generator=dtorch.Generator().manual_seed(0))
    assert a.indices == a2.indices
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(Squares(10), [5, 6])


def test_random_split_fractions_spread_the_remainder():
    parts = random_split(Squares(11), [0.5, 0.3, 0.2], generator=dtorch.Generator().manual_seed(1))
    # floor: 5, 3, 2 -> remainder 1 goes to the first split (PyTorch's rule)
    assert [len(p) for p in parts] == [6, 3, 2]
    assert sorted(sum((p.indices for p in parts), [])) == list(range(11))
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Squares(2), [0.9, 0.1])


def test_random_split_uses_global_seed():
    dtorch.manual_seed(5)
    a = random_split(np.arange(20), [10, 10])[0].indices
    dtorch.manual_seed(5)
    assert random_split(np.arange(20), [10, 10])[0].indices == a
