"""The MPI backend's asynchronous progress modes (``thread`` / ``poll``, dtorch/distributed/mpi.py).

The serial tests check how the mode is chosen; the MPI ones (``mpiexec -n 2 python -m pytest
--only-mpi``) check that asynchronous work completes in the mode the job runs in: tests/run_all.sh
runs them once with the automatic choice and once with ``DTORCH_MPI_PROGRESS=thread``.
"""

import os
import time

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist

mpi_only = pytest.mark.mpi(min_size=2)


def test_env_override_is_taken_without_touching_the_communicator(monkeypatch):
    from dtorch.distributed.mpi import progress_mode

    for mode in ("thread", "poll", " Poll "):
        monkeypatch.setenv("DTORCH_MPI_PROGRESS", mode)
        assert progress_mode(comm=None, MPI=None) == mode.strip().lower()


def test_bad_env_value_is_refused_naming_it(monkeypatch):
    from dtorch.distributed.mpi import progress_mode

    monkeypatch.setenv("DTORCH_MPI_PROGRESS", "spin")
    with pytest.raises(ValueError, match="'spin'"):
        progress_mode(comm=None, MPI=None)


@pytest.fixture(scope="module")
def mpi_world():
    from dtorch.distributed.process_group import _world

    dist.init_process_group(backend="mpi", timeout=60)
    yield _world().default.cpu
    dist.barrier()
    dist.destroy_process_group()


@mpi_only
def test_mode_follows_env_or_cores_per_rank(mpi_world):
    env = os.environ.get("DTORCH_MPI_PROGRESS")
    if env:
        assert mpi_world.progress == env
    else:
        cores = len(os.sched_getaffinity(0))
        local = dist.get_local_world_size()
        per_rank = cores if cores < os.cpu_count() else cores / local
        assert mpi_world.progress == ("thread" if per_rank >= 2 else "poll")
    assert (mpi_world.comm_thread is None) == (mpi_world.progress == "poll")


@mpi_only
def test_async_all_reduce_completes_by_polling_is_completed(mpi_world):
    n = 1 << 18  # 1 MiB of float32: large enough for a pipelined transfer
    t = dtorch.full((n,), float(dist.get_rank() + 1))
    work = dist.all_reduce(t, async_op=True)
    deadline = time.monotonic() + 30
    while not work.is_completed():
        assert time.monotonic() < deadline, "async all_reduce never completed while polled"
    work.wait()
    world = dist.get_world_size()
    np.testing.assert_array_equal(t.numpy(), np.full(n, world * (world + 1) / 2, np.float32))


@mpi_only
def test_many_outstanding_works_complete_in_any_wait_order(mpi_world):
    ts = [dtorch.full((1000 * (i + 1),), float(i)) for i in range(6)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    for w in reversed(works):
        w.wait()
    world = dist.get_world_size()
    for i, t in enumerate(ts):
        assert float(t[0]) == i * world and float(t[-1]) == i * world
