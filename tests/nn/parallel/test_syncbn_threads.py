"""SyncBatchNorm in the thread world (N ranks as threads of this process)."""

import _syncbn_suite as suite
import pytest

import dtorch.distributed as dist

pytestmark = pytest.mark.timeout(300)


def run(check, nprocs, *args, **kwargs):
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=60)
        try:
            check(*args, **kwargs)
        finally:
            dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=nprocs, timeout=120)


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("uneven", [False, True], ids=["even", "uneven"])
@pytest.mark.parametrize("layout", sorted(suite.LAYOUTS))
def test_matches_batchnorm(nprocs, uneven, layout):
    run(suite.check_matches_batchnorm, nprocs, layout, uneven)


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("kw", [
    dict(momentum=None, steps=3), dict(affine=False), dict(track=False),
    dict(affine=False, track=False),
], ids=["cumulative", "no_affine", "no_running_stats", "bare"])
def test_options_match_batchnorm(nprocs, kw):
    run(suite.check_matches_batchnorm, nprocs, "2d", True, **kw)


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("check", [
    suite.check_running_stats_in_eval_are_not_synchronised,
    suite.check_param_grads_without_input_grad, suite.check_process_group_pairs,
    suite.check_global_batch_of_one_raises, suite.check_inside_ddp,
], ids=lambda f: f.__name__)
def test_syncbn_behaviour(nprocs, check):
    run(check, nprocs)


def test_process_group_pairs_with_a_rank_alone():
    run(suite.check_process_group_pairs, 3)
