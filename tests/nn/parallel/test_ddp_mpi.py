"""DistributedDataParallel under MPI, for any world size: run with
``mpiexec -n 2 python -m pytest --only-mpi tests/nn/parallel`` (and ``-n 4``)."""

import _ddp_suite as suite
import pytest

import dtorch.distributed as dist

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture(scope="module", autouse=True)
def world():
    dist.init_process_group(backend="mpi", timeout=120)
    yield
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_matches_single_process(kind):
    suite.check_matches_single_process(kind)


@pytest.mark.parametrize("check", [
    suite.check_many_small_buckets, suite.check_gradient_as_bucket_view,
    suite.check_no_sync_accumulation, suite.check_unused_parameters,
    suite.check_mismatched_models_raise, suite.check_replicas_detects_divergence,
], ids=lambda f: f.__name__)
def test_ddp_behaviour(check):
    check()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check", [
    suite.check_allreduce_hook_is_exactly_no_hook, suite.check_fp16_compress_hook,
    suite.check_custom_hook_sees_buckets_and_changes_the_result,
    suite.check_register_comm_hook_errors, suite.check_hook_future_of_wrong_size_raises,
    suite.check_work_get_future, suite.check_join_rank_without_batches,
    suite.check_join_with_comm_hook, suite.check_join_throw_on_early_termination,
    suite.check_generic_join,
], ids=lambda f: f.__name__)
def test_comm_hooks_and_join(check):
    check()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("divide_by_initial_world_size", [True, False])
def test_join_uneven_inputs(divide_by_initial_world_size):
    suite.check_join_uneven_inputs(divide_by_initial_world_size)
