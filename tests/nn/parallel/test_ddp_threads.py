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
