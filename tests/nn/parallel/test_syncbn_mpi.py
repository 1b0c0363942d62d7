"""SyncBatchNorm under MPI, for any world size: run with
``mpiexec -n 2 python -m pytest --only-mpi tests/nn/parallel/test_syncbn_mpi.py`` (and ``-n 4``)."""

import _syncbn_suite as suite
import pytest

import dtorch.distributed as dist

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120)]


@pytest.fixture(scope="module", autouse=True)
def world():
    dist.init_process_group(backend="mpi", timeout=120)
    yield
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("uneven", [False, True], ids=["even", "uneven"])
@pytest.mark.parametrize("layout", sorted(suite.LAYOUTS))
def test_matches_batchnorm(uneven, layout):
    suite.check_matches_batchnorm(layout, uneven)


@pytest.mark.parametrize("kw", [
    dict(momentum=None, steps=3), dict(affine=False), dict(track=False),
], ids=["cumulative", "no_affine", "no_running_stats"])
def test_options_match_batchnorm(kw):
    suite.check_matches_batchnorm("2d", True, **kw)


@pytest.mark.parametrize("check", [
    suite.check_running_stats_in_eval_are_not_synchronised,
    suite.check_param_grads_without_input_grad, suite.check_process_group_pairs,
    suite.check_global_batch_of_one_raises, suite.check_inside_ddp,
], ids=lambda f: f.__name__)
def test_syncbn_behaviour(check):
    check()
