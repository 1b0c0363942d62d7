"""The same collective suite in the thread world (2 and 3 ranks) and in a world of one process.

Each test forms a fresh thread world with ``spawn_threads``; every rank runs the check.
"""

import os

import _dist_suite as _suite
import pytest

import dtorch.distributed as dist


def _run(check, nprocs, *args):
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        assert dist.get_rank() == rank and dist.get_world_size() == nprocs
        assert dist.get_backend() == "threads"
        try:
            check(*args)
        finally:
            dist.destroy_process_group()
        return rank

    assert dist.spawn_threads(rank_main, nprocs=nprocs, timeout=60) == list(range(nprocs))


SIZES = [2, 3]


@pytest.mark.parametrize("nprocs", SIZES)
@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_all_reduce(op, dtype, nprocs):
    _run(_suite.check_all_reduce, nprocs, op, dtype)


@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_reduce_and_reduce_scatter(op, dtype):
    _run(lambda: (_suite.check_reduce(op, dtype), _suite.check_reduce_scatter(op, dtype)), 3)


@pytest.mark.parametrize("nprocs", SIZES)
@pytest.mark.parametrize("dtype", _suite.DTYPES)
def test_data_movement(dtype, nprocs):
    def check():
        _suite.check_broadcast(dtype)
        _suite.check_all_gather(dtype)
        _suite.check_gather_scatter(dtype)
        _suite.check_all_to_all(dtype)

    _run(check, nprocs)


@pytest.mark.parametrize("nprocs", SIZES)
@pytest.mark.parametrize("check", ["check_p2p", "check_barriers_and_objects",
                                   "check_async_and_layout", "check_subgroups"])
def test_other(check, nprocs):
    _run(getattr(_suite, check), nprocs)


@pytest.fixture
def alone(monkeypatch):
    """A clean environment: no launcher, rendezvous or SLURM variables."""
    for var in list(os.environ):
        if var.startswith(("PMI_", "PMIX_", "OMPI_", "MV2_", "SLURM_", "MPI_LOCAL")) or var in (
                "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(var)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("check", ["check_broadcast", "check_all_gather",
                                   "check_gather_scatter", "check_all_to_all"])
def test_single_process_data_movement(alone, check):
    dist.init_process_group()
    assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "single")
    getattr(_suite, check)("float32")


@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_single_process_reductions(alone, op, dtype):
    dist.init_process_group()
    _suite.check_all_reduce(op, dtype)
    _suite.check_reduce(op, dtype)
    _suite.check_reduce_scatter(op, dtype)


def test_single_process_rest(alone):
    import sys

    dist.init_process_group()
    assert "mpi4py.MPI" not in sys.modules or dist.get_backend() == "single"
    _suite.check_barriers_and_objects()
    _suite.check_async_and_layout()
    _suite.check_subgroups()
    assert dist.get_local_rank() == 0 and dist.get_local_world_size() == 1


def test_rank_threads_keep_numpy_error_handling():
    """dtorch computes with IEEE semantics silently (1/0 -> inf, no warning); NumPy 2 keeps
    its error settings per thread, so rank threads must inherit them."""
    import numpy as np

    import dtorch

    def rank_fn(rank):
        out = dtorch.tensor([1.0, 0.0]) / 0.0
        return np.geterr(), out.tolist()

    results = dist.spawn_threads(rank_fn, nprocs=2, timeout=30)
    for errstate, values in results:
        assert errstate == np.geterr()
        assert values[0] == float("inf") and values[1] != values[1]


def test_rank_threads_have_their_own_default_generators():
    """A rank thread draws exactly what the same rank would in its own process, however the
    threads interleave: seeded per rank, and unseeded (the default seed of a new process)."""
    import time

    import numpy as np

    import dtorch

    def rank_fn(rank):
        fresh = dtorch.randn(3).numpy()
        dtorch.manual_seed(100 + rank)
        draws = []
        for _ in range(20):
            draws.append(dtorch.rand(5).numpy())
            time.sleep(0.001)  # let the other ranks draw in between
        return fresh, np.concatenate(draws), dtorch.initial_seed()

    expected_fresh = dtorch.randn(3, generator=dtorch.Generator()).numpy()
    for rank, (fresh, draws, seed) in enumerate(dist.spawn_threads(rank_fn, nprocs=3,
                                                                   timeout=30)):
        g = dtorch.Generator().manual_seed(100 + rank)
        want = np.concatenate([dtorch.rand(5, generator=g).numpy() for _ in range(20)])
        np.testing.assert_array_equal(fresh, expected_fresh)
        np.testing.assert_array_equal(draws, want)
        assert seed == 100 + rank
