"""The NCCL backend on a real GPU (skipped without CuPy, NCCL and a GPU).

A communicator of one rank runs every collective through NCCL on the backend's own stream; with
several GPUs, the MPI test suite covers multi-rank NCCL when started with ``backend="nccl"``.
"""

import numpy as np
import pytest

import dtorch.distributed as dist
from dtorch.distributed.backend import OpContext, ReduceOp
from dtorch.distributed.store import HashStore

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not dist.is_nccl_available(),
                                 reason="needs CuPy with NCCL and an NVIDIA GPU")]


@pytest.fixture
def backend():
    from dtorch.distributed.nccl import NCCLBackend

    be = NCCLBackend(HashStore(), "test", 0, 1, 0, 30.0)
    yield be
    be.close()


def _ctx(op):
    return OpContext(op, 1, "group 'test' (ranks [0])", 30.0)


def test_world_of_one_collectives(backend):
    import cupy as cp

    a = cp.arange(6, dtype=cp.float32)
    backend.finish(backend.all_reduce(a, ReduceOp.SUM, _ctx("all_reduce")), False)
    np.testing.assert_array_equal(a.get(), np.arange(6, dtype=np.float32))
    backend.finish(backend.all_reduce(a, ReduceOp.AVG, _ctx("all_reduce")), False)
    np.testing.assert_array_equal(a.get(), np.arange(6, dtype=np.float32))
    backend.finish(backend.broadcast(a, 0, _ctx("broadcast")), False)
    out = cp.zeros((1, 6), cp.float32)
    backend.finish(backend.all_gather(out, a, _ctx("all_gather")), False)
    np.testing.assert_array_equal(out.get()[0], np.arange(6))
    rs = cp.zeros(6, cp.float32)
    backend.finish(backend.reduce_scatter(rs, a.reshape(1, 6), ReduceOp.MAX,
                                          _ctx("reduce_scatter")), False)
    np.testing.assert_array_equal(rs.get(), np.arange(6))
    work = backend.finish(backend.all_reduce(a, ReduceOp.SUM, _ctx("all_reduce")), True)
    assert work.wait(timeout=30) and work.is_completed()


def test_bitwise_ops_are_refused(backend):
    import cupy as cp

    with pytest.raises(RuntimeError, match="not supported by NCCL"):
        backend.all_reduce(cp.ones(2, cp.int32), ReduceOp.BAND, _ctx("all_reduce"))
