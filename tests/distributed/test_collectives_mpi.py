"""Every collective, reduce op and common dtype under MPI, for any world size.

Run with ``timeout 300 mpiexec -n 2 python -m pytest --only-mpi tests/distributed`` (and ``-n 4``).
Plain ``pytest`` skips these.
"""

import _dist_suite as _suite
import pytest

import dtorch.distributed as dist

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture(scope="module", autouse=True)
def world():
    dist.init_process_group(backend="mpi", timeout=120)
    assert dist.get_backend() == "mpi"
    yield
    dist.barrier()
    dist.destroy_process_group()


def test_world_matches_mpi():
    from mpi4py import MPI

    assert dist.get_rank() == MPI.COMM_WORLD.Get_rank()
    assert dist.get_world_size() == MPI.COMM_WORLD.Get_size()
    assert MPI.Query_thread() == MPI.THREAD_MULTIPLE
    assert 0 <= dist.get_local_rank() < dist.get_local_world_size()


@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_all_reduce(op, dtype):
    _suite.check_all_reduce(op, dtype)


@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_reduce(op, dtype):
    _suite.check_reduce(op, dtype)


@pytest.mark.parametrize("op,dtype", _suite.reduce_cases(), ids=str)
def test_reduce_scatter(op, dtype):
    _suite.check_reduce_scatter(op, dtype)


@pytest.mark.parametrize("dtype", _suite.DTYPES)
def test_broadcast(dtype):
    _suite.check_broadcast(dtype)


@pytest.mark.parametrize("dtype", _suite.DTYPES)
def test_all_gather(dtype):
    _suite.check_all_gather(dtype)


@pytest.mark.parametrize("dtype", _suite.DTYPES)
def test_gather_scatter(dtype):
    _suite.check_gather_scatter(dtype)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_all_to_all(dtype):
    _suite.check_all_to_all(dtype)


def test_p2p():
    _suite.check_p2p()


def test_barriers_and_objects():
    _suite.check_barriers_and_objects()


def test_async_and_layout():
    _suite.check_async_and_layout()


def test_subgroups():
    _suite.check_subgroups()


def test_async_progress():
    _suite.check_async_progress()
