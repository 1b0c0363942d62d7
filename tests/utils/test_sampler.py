"""Samplers: order, lengths, replacement, weights, batching, seeding and argument errors."""

from collections import Counter

import pytest

import dtorch
from dtorch.utils.data import (
    BatchSampler,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

DATA = list(range(10))


def test_sequential():
    assert list(SequentialSampler(DATA)) == DATA and len(SequentialSampler(DATA)) == 10


def test_random_sampler_is_a_permutation_reproducible_from_the_global_seed():
    dtorch.manual_seed(3)
    first = list(RandomSampler(DATA))
    second = list(RandomSampler(DATA))
    assert sorted(first) == DATA and first != second  # new epoch, new order
    dtorch.manual_seed(3)
    assert list(RandomSampler(DATA)) == first


def test_random_sampler_generator_and_num_samples():
    s = RandomSampler(DATA, num_samples=25, generator=dtorch.Generator().manual_seed(0))
    out = list(s)
    assert len(out) == len(s) == 25
    # without replacement: two full permutations, then 5 distinct indices
    assert sorted(out[:10]) == DATA and sorted(out[10:20]) == DATA and len(set(out[20:])) == 5
    a = list(RandomSampler(DATA, generator=dtorch.Generator().manual_seed(9)))
    b = list(RandomSampler(DATA, generator=dtorch.Generator().manual_seed(9)))
    assert a == b


def test_random_sampler_with_replacement():
    out = list(RandomSampler(DATA, replacement=True, num_samples=500,
                             generator=dtorch.Generator().manual_seed(0)))
    assert len(out) == 500 and set(out) == set(DATA)  # repeats, covers everything


def test_random_sampler_errors():
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        RandomSampler(DATA, replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but "
                                         "got num_samples=0"):
        RandomSampler(DATA, num_samples=0)


def test_subset_random_sampler():
    idx = [3, 5, 7]
    out = list(SubsetRandomSampler(idx, generator=dtorch.Generator().manual_seed(0)))
    assert sorted(out) == idx and len(SubsetRandomSampler(idx)) == 3


def test_weighted_random_sampler_follows_the_weights():
    w = [0.0, 1.0, 3.0]
    out = list(WeightedRandomSampler(w, 4000, generator=dtorch.Generator().manual_seed(0)))
    c = Counter(out)
    assert c[0] == 0 and abs(c[2] / c[1] - 3.0) < 0.4
    no_rep = list(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False))
    assert sorted(no_rep) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="cannot sample"):
        WeightedRandomSampler([1, 0], 2, replacement=False)
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    tensor_weights = WeightedRandomSampler(dtorch.tensor([1.0, 0.0]), 5)
    assert list(tensor_weights) == [0] * 5


def test_batch_sampler():
    assert list(BatchSampler(SequentialSampler(range(5)), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3 and len(BatchSampler(range(5), 2, True)) == 2
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got "
                                         "batch_size=0"):
        BatchSampler(range(5), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(5), 2, 0)
