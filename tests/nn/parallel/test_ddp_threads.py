"""DistributedDataParallel in the thread world (N ranks as threads of this process)."""

import _ddp_suite as suite
import pytest

import dtorch.distributed as dist


def run(check, nprocs, *args):
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=60)
        try:
            check(*args)
        finally:
            dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=nprocs, timeout=120)


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_matches_single_process(nprocs, kind):
    run(suite.check_matches_single_process, nprocs, kind)


@pytest.mark.parametrize("check", [
    suite.check_many_small_buckets, suite.check_gradient_as_bucket_view,
    suite.check_no_sync_accumulation, suite.check_unused_parameters,
    suite.check_unused_parameter_error_names_it, suite.check_mismatched_models_raise,
    suite.check_replicas_detects_divergence, suite.check_state_dict_prefix,
], ids=lambda f: f.__name__)
def test_ddp_behaviour(check):
    run(check, 2)


def test_single_process_world_is_plain_training():
    dist.init_process_group(backend="single")
    try:
        suite.check_matches_single_process("sgd")
    finally:
        dist.destroy_process_group()


HOOK_AND_JOIN_CHECKS = [
    suite.check_allreduce_hook_is_exactly_no_hook, suite.check_fp16_compress_hook,
    suite.check_custom_hook_sees_buckets_and_changes_the_result,
    suite.check_register_comm_hook_errors, suite.check_hook_future_of_wrong_size_raises,
    suite.check_work_get_future, suite.check_join_rank_without_batches,
    suite.check_join_with_comm_hook, suite.check_join_throw_on_early_termination,
    suite.check_generic_join,
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("nprocs", [2, 3, 4])
@pytest.mark.parametrize("check", HOOK_AND_JOIN_CHECKS, ids=lambda f: f.__name__)
def test_comm_hooks_and_join(check, nprocs):
    run(check, nprocs)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("nprocs", [2, 3, 4])
@pytest.mark.parametrize("divide_by_initial_world_size", [True, False])
def test_join_uneven_inputs(nprocs, divide_by_initial_world_size):
    run(suite.check_join_uneven_inputs, nprocs, divide_by_initial_world_size)
