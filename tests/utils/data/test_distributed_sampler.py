"""DistributedSampler sharding and the exact distributed evaluation helper."""

import pytest

import dtorch
import dtorch.distributed as dist
from dtorch.utils.data.distributed import DistributedSampler, distributed_evaluate


class Range:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (5, 2), (2, 4)])
def test_shards_cover_the_dataset_with_pytorch_padding(n, world):
    shards = [list(DistributedSampler(Range(n), world, r, shuffle=False)) for r in range(world)]
    per = -(-n // world)
    assert all(len(s) == per for s in shards)
    padded = list(range(n)) * (1 + per * world // n)
    expected = padded[:per * world]
    assert shards == [expected[r::world] for r in range(world)]
    assert {i for s in shards for i in s} == set(range(n))


def test_drop_last_truncates_without_duplicates():
    shards = [list(DistributedSampler(Range(10), 3, r, shuffle=False, drop_last=True))
              for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(9))


def test_shuffle_depends_on_seed_and_epoch_only():
    a = DistributedSampler(Range(20), 2, 0, seed=5)
    b = DistributedSampler(Range(20), 2, 0, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    other = DistributedSampler(Range(20), 2, 1, seed=5)
    other.set_epoch(1)
    assert sorted(list(a) + list(other)) == list(range(20))


def test_invalid_rank():
    with pytest.raises(ValueError, match=r"Invalid rank 3.*\[0, 1\]"):
        DistributedSampler(Range(4), 2, 3)


def test_padding_mask_and_exact_mean_in_thread_world():
    n, world = 10, 4  # 12 slots: two padded duplicates
    values = [float(i) for i in range(n)]

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        try:
            sampler = DistributedSampler(Range(n), shuffle=False)
            mine = [values[i] for i in sampler]
            total, count = distributed_evaluate(dtorch.tensor(mine), sampler)
            return total, count, sampler.padding_mask()
        finally:
            dist.destroy_process_group()

    results = dist.spawn_threads(rank_main, nprocs=world, timeout=60)
    assert all(r[:2] == (sum(values), n) for r in results)
    # slots 10 and 11 (ranks 2 and 3, last position) hold the padded duplicates of 0 and 1
    assert [r[2] for r in results] == [[True, True, True], [True, True, True],
                                       [True, True, False], [True, True, False]]
