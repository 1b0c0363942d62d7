"""Shared test configuration: the ``device`` fixture runs a test on the CPU and, where CuPy and a
GPU are present, on CUDA (skipped otherwise, so a CPU-only machine stays green)."""

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
