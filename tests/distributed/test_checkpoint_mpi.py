"""``dtorch.distributed.replicated_checkpoint`` under MPI, for any world size (ranks are processes).

Run with ``timeout 300 mpiexec -n 2 python -m pytest --only-mpi tests/distributed/
test_checkpoint_mpi.py -o addopts="" --timeout=120`` (and ``-n 4``). Plain ``pytest`` skips these.
Every rank's ``tmp_path`` differs; ``mpi_tmp_path`` is rank 0's, shared.
"""

import _ckpt_suite as suite
import pytest

import dtorch.distributed as dist
from dtorch.distributed import replicated_checkpoint as rcp

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120)]


@pytest.fixture(scope="module", autouse=True)
def world():
    dist.init_process_group(backend="mpi", timeout=60)
    assert dist.get_backend() == "mpi"
    yield
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("check", [
    suite.check_save_writes_once_and_every_rank_waits,
    suite.check_save_failures_raise_on_every_rank,
    suite.check_load_broadcasts_to_ranks_without_the_file,
    suite.check_load_failures_raise_on_every_rank,
    suite.check_map_location_per_rank, suite.check_subgroup,
], ids=lambda f: f.__name__[6:])
def test_collective_save_load(check, mpi_tmp_path, monkeypatch):
    monkeypatch.setattr(rcp, "_CHUNK", 1000)  # several broadcasts per checkpoint
    check(mpi_tmp_path)


def test_load_needs_no_shared_file_system(tmp_path):
    """Each rank's own temporary directory: only rank 0's holds the file."""
    suite.check_load_broadcasts_to_ranks_without_the_file(tmp_path)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_resume_is_bit_identical(kind, mpi_tmp_path):
    suite.check_resume_is_bit_identical(mpi_tmp_path, kind)


def test_preemption_agreement():
    suite.check_preemption_agreement()
