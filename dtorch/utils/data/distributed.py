"""``DistributedSampler``: each rank iterates over its own shard of a dataset, and an exact
distributed evaluation helper that does not count the padding the sampler adds."""

import math

import numpy as np

from .sampler import Sampler


class DistributedSampler(Sampler):
    """Restrict data loading to the shard of rank ``rank`` out of ``num_replicas``.

    As in PyTorch: indices are (optionally) shuffled with ``seed + epoch``, padded by repeating
    the first indices (or, with ``drop_last``, truncated) to a multiple of ``num_replicas``, and
    rank ``r`` takes every ``num_replicas``-th index starting at ``r``. Call :meth:`set_epoch`
    at the start of every epoch, or every epoch sees the same order.

    Args:
        dataset: a map-style dataset (``len`` is used).
        num_replicas (int, optional): number of ranks (default: the process group's size).
        rank (int, optional): this rank (default: the process group's rank).
        shuffle (bool): shuffle the indices (default True).
        seed (int): shuffling seed; must be the same on every rank.
        drop_last (bool): drop the tail so every rank gets the same number of samples without
            padding.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("Requires distributed package to be available (call "
                                   "init_process_group first, or pass num_replicas and rank)")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = seed
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _all_indices(self):
        n = len(self.dataset)
        if self.shuffle:
            rng = np.random.Generator(np.random.PCG64(self.seed + self.epoch))
            indices = rng.permutation(n).tolist()
        else:
            indices = list(range(n))
        if self.drop_last:
            return indices[:self.total_size]
        pad = self.total_size - len(indices)
        while pad > 0:
            indices += indices[:pad]
            pad = self.total_size - len(indices)
        return indices

    def __iter__(self):
        return iter(self._all_indices()[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use ``epoch`` in the shuffling seed (call once per epoch on every rank)."""
        self.epoch = epoch

    def padding_mask(self):
        """For this rank's indices in iteration order: True for the samples that are real,
        False for the duplicates added to pad the dataset to a multiple of ``num_replicas``."""
        n = len(self.dataset)
        positions = range(self.rank, self.total_size, self.num_replicas)
        return [p < n for p in positions]


def distributed_evaluate(values, sampler, group=None):
    """Sum per-sample ``values`` (this rank's, in the sampler's order) over all ranks, without
    the padded duplicates. Returns ``(total, count)`` with ``count == len(dataset)`` (or the
    truncated size with ``drop_last``), so ``total / count`` is the exact dataset mean that a
    single process would compute -- unlike a plain all-reduce of per-rank means.

    Example::

        correct = (model(x).argmax(1) == y).float()       # per-sample, for the whole shard
        total, count = distributed_evaluate(correct, sampler)
        accuracy = total / count
    """
    from ... import distributed as dist
    from ..._tensor import Tensor

    data = values._data if isinstance(values, Tensor) else np.asarray(values)
    mask = np.asarray(sampler.padding_mask()[:len(data)], dtype=bool)
    if len(mask) != len(data):
        raise ValueError(f"distributed_evaluate: got {len(data)} values but the sampler gives "
                         f"this rank {len(sampler)} samples")
    host = np.asarray(data if isinstance(data, np.ndarray) else data.get(), dtype=np.float64)
    stats = Tensor._wrap(np.array([host[mask].sum(), mask.sum()], dtype=np.float64))
    if dist.is_initialized():
        dist.all_reduce(stats, group=group)
    total, count = stats._data
    return float(total), int(count)
