"""DistributedDataParallel with float16 autocast and GradScaler in the thread world: N ranks end
where one process ends on the N-fold batch (within float16 tolerance), and an inf/NaN produced
on one rank makes every rank skip the step and back off the scale (DDP's all-reduce carries the
inf into every rank's gradients, so the scalers agree without extra communication)."""

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
import dtorch.nn.functional as F
from dtorch.amp import GradScaler
from dtorch.nn.parallel import DistributedDataParallel as DDP

PER_RANK, STEPS = 4, 4
f16 = dtorch.float16


def make_net(seed):
    """A float32 net with parameters from a private generator (independent of dtorch's)."""
    net = dtorch.nn.Sequential(dtorch.nn.Linear(6, 16), dtorch.nn.Tanh(),
                               dtorch.nn.Linear(16, 3))
    rng = np.random.default_rng(seed)
    with dtorch.no_grad():
        for p in net.parameters():
            p.copy_(dtorch.tensor(rng.standard_normal(p.shape) * 0.4))
    return net


def batch(world, step):
    rng = np.random.default_rng(100 + step)
    x = rng.standard_normal((world * PER_RANK, 6)).astype(np.float32)
    y = rng.standard_normal((world * PER_RANK, 3)).astype(np.float32)
    return x, y


def train(model, opt, world, shard, poison_step=None):
    """STEPS iterations of autocast + GradScaler on rows ``shard`` of each step's batch for a
    world of ``world`` ranks; at ``poison_step`` the shard's first input is inf. Returns, per
    step, whether the optimizer stepped and the scale after ``update``."""
    scaler = GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    history = []
    for step in range(STEPS):
        x, y = batch(world, step)
        x, y = x[shard].copy(), y[shard]
        if step == poison_step:
            x[0, 0] = np.inf
        opt.zero_grad()
        with dtorch.autocast("cpu", dtype=f16):
            out = model(dtorch.tensor(x))
            loss = F.mse_loss(out, dtorch.tensor(y))
        assert out.dtype is f16 and loss.dtype is dtorch.float32
        scaler.scale(loss).backward()
        stepped = scaler.step(opt, lambda: True)  # the closure's value tells a step happened
        scaler.update()
        history.append((bool(stepped), scaler.get_scale()))
    return history


def sgd(module):
    return dtorch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)


def rows(rank):
    return slice(rank * PER_RANK, (rank + 1) * PER_RANK)


def run_world(nprocs, fn):
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=60)
        try:
            return fn(rank)
        finally:
            dist.destroy_process_group()

    return dist.spawn_threads(rank_main, nprocs=nprocs, timeout=120)


def state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("nprocs", [2, 3])
def test_ranks_match_one_process_on_the_whole_batch(nprocs):
    ref_net = make_net(0)
    ref_history = train(ref_net, sgd(ref_net), nprocs, slice(None))

    def rank_fn(rank):
        model = DDP(make_net(rank))  # different on each rank: rank 0's are broadcast
        return train(model, sgd(model), nprocs, rows(rank)), state(model.module)

    results = run_world(nprocs, rank_fn)
    assert [s for _, s in ref_history] == [256.0, 512.0, 512.0, 1024.0]
    assert all(h == ref_history for h, _ in results)  # same steps taken, same scales
    ref = state(ref_net)
    for _, got in results:
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-3, err_msg=k)
    for _, got in results[1:]:  # the replicas agree exactly
        for k in ref:
            np.testing.assert_array_equal(got[k], results[0][1][k])
    start = state(make_net(0))
    assert max(np.abs(ref[k] - start[k]).max() for k in ref) > 0.05  # it did train


@pytest.mark.timeout(180)
def test_inf_on_one_rank_makes_every_rank_skip():
    def rank_fn(rank):
        model = DDP(make_net(0))
        poison = 2 if rank == 1 else None  # only rank 1 sees an inf input, at step 2
        history = train(model, sgd(model), 2, rows(rank), poison_step=poison)
        return history, state(model.module)

    (h0, s0), (h1, s1) = run_world(2, rank_fn)
    assert h0 == h1
    assert [stepped for stepped, _ in h0] == [True, True, False, True]
    assert [scale for _, scale in h0] == [256.0, 512.0, 256.0, 256.0]
    for k in s0:
        np.testing.assert_array_equal(s0[k], s1[k])
        assert np.isfinite(s0[k]).all()
