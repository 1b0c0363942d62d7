"""Shared test configuration.

* The ``device`` fixture runs a test on the CPU and, where CuPy and a GPU are present, on CUDA
  (skipped otherwise, so a CPU-only machine stays green).
* Under ``mpiexec -n N python -m pytest --only-mpi``, a test that fails on one rank while the
  others wait in a collective would hang them; printing the report and calling
  ``MPI.COMM_WORLD.Abort(1)`` ends every rank at once (pytest-timeout is the second guard).
"""

import sys

import pytest

import dtorch


def _cuda():
    return pytest.param("cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not dtorch.cuda.is_available(), reason="needs CuPy and a GPU")])


@pytest.fixture(params=["cpu", _cuda()])
def device(request):
    """The device a test runs on: ``"cpu"``, and ``"cuda"`` where available."""
    return request.param


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    if mpi.COMM_WORLD.Get_size() < 2:
        return
    rank = mpi.COMM_WORLD.Get_rank()
    sys.stderr.write(f"\n[rank {rank}] {item.nodeid} failed in {report.when}:\n"
                     f"{report.longreprtext}\n[rank {rank}] aborting the MPI job\n")
    sys.stderr.flush()
    mpi.COMM_WORLD.Abort(1)
