"""Backend-agnostic SyncBatchNorm checks, correct for any world size.

The contract checked: N ranks, each with its shard of a global batch (shards may differ in size,
even be empty), get from ``SyncBatchNorm`` exactly what one process gets from ``BatchNorm`` on
the concatenated batch: outputs, input gradients, the sum over ranks of the weight/bias
gradients and the running statistics (float64, within 1e-10). Each ``check_*`` runs on every rank
of an initialised world; ``test_syncbn_threads.py`` runs them in the thread world and
``test_syncbn_mpi.py`` under ``mpiexec`` (pytest-mpi).
"""

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
import dtorch.optim
from dtorch import nn
from dtorch.nn.parallel import DistributedDataParallel as DDP

C = 3
ATOL = 1e-10
# (trailing dims of the input, the reference BatchNorm class)
LAYOUTS = {
    "2d": ((4, 5), nn.BatchNorm2d),
    "1d": ((), nn.BatchNorm1d),
    "1d_seq": ((6,), nn.BatchNorm1d),
}


def shard_sizes(world, uneven):
    """Per-rank batch sizes: 3 each, or uneven ones (1, 4, 2, 0, ...: a rank may be empty)."""
    return [(3 * r + 1) % 5 for r in range(world)] if uneven else [3] * world


def shard(t, sizes, rank):
    start = sum(sizes[:rank])
    return t[start:start + sizes[rank]]


def global_tensors(sizes, tail, seed):
    """The global input (shifted and scaled so the statistics are far from 0 and 1) and the
    gradient of the output, the same on every rank."""
    rng = np.random.default_rng(seed)
    shape = (sum(sizes), C) + tail
    x = rng.standard_normal(shape) * 2.5 + 1.5
    return dtorch.tensor(x), dtorch.tensor(rng.standard_normal(shape))


def set_affine(*layers):
    rng = np.random.default_rng(7)
    w, b = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    with dtorch.no_grad():
        for layer in layers:
            if layer.weight is not None:
                layer.weight.copy_(dtorch.tensor(w))
                layer.bias.copy_(dtorch.tensor(b))


def summed(t):
    """The sum over ranks of a local tensor (a copy: ``t`` is left alone)."""
    out = t.detach().clone()
    dist.all_reduce(out)
    return out


def close(got, want, what):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=0, atol=ATOL,
                               err_msg=what)


def check_matches_batchnorm(layout, uneven, momentum=0.1, affine=True, track=True, steps=2):
    """``steps`` training steps then one eval step; everything equals BatchNorm on the global
    batch."""
    rank, world = dist.get_rank(), dist.get_world_size()
    sizes = shard_sizes(world, uneven)
    tail, ref_cls = LAYOUTS[layout]
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    sync = nn.SyncBatchNorm(C, **kw).double()
    ref = ref_cls(C, **kw).double()
    set_affine(sync, ref)
    for step in range(steps):
        x, dy = global_tensors(sizes, tail, seed=step)
        xs = shard(x, sizes, rank).requires_grad_()
        x.requires_grad_()
        y, y_ref = sync(xs), ref(x)
        close(y, shard(y_ref, sizes, rank), f"output, step {step}")
        (y * shard(dy, sizes, rank)).sum().backward()
        (y_ref * dy).sum().backward()
        close(xs.grad, shard(x.grad, sizes, rank), f"input grad, step {step}")
        if affine:
            close(summed(sync.weight.grad), ref.weight.grad, "weight grad summed over ranks")
            close(summed(sync.bias.grad), ref.bias.grad, "bias grad summed over ranks")
            sync.zero_grad()
            ref.zero_grad()
        if track:
            close(sync.running_mean, ref.running_mean, f"running_mean, step {step}")
            close(sync.running_var, ref.running_var, f"running_var, step {step}")
            assert sync.num_batches_tracked.item() == ref.num_batches_tracked.item() == step + 1
        else:
            assert sync.running_mean is None and sync.running_var is None
    sync.eval()
    ref.eval()
    x, _ = global_tensors(sizes, tail, seed=99)
    # Eval mode is local: running statistics (or, without them, this shard's own statistics).
    want = ref(shard(x, sizes, rank)) if track or sizes[rank] > 1 else None
    if want is not None:
        close(sync(shard(x, sizes, rank)), want, "eval output")


def check_running_stats_in_eval_are_not_synchronised():
    """In eval mode each rank normalises with the running statistics, whatever the others do."""
    rank = dist.get_rank()
    sync = nn.SyncBatchNorm(C).double().eval()
    with dtorch.no_grad():
        sync.running_mean.copy_(dtorch.tensor([1.0, -2.0, 0.5]))
        sync.running_var.copy_(dtorch.tensor([4.0, 0.25, 1.0]))
    x = dtorch.full((2, C), float(rank))
    want = (x - sync.running_mean) / (sync.running_var + sync.eps).sqrt()
    close(sync(x), want, "eval output")
    assert sync.num_batches_tracked.item() == 0


def check_param_grads_without_input_grad():
    """An input that needs no gradient skips the backward collective on every rank; the
    parameters still get their local parts."""
    rank, world = dist.get_rank(), dist.get_world_size()
    sizes = shard_sizes(world, False)
    x, dy = global_tensors(sizes, (4,), seed=3)
    sync, ref = nn.SyncBatchNorm(C).double(), nn.BatchNorm1d(C).double()
    set_affine(sync, ref)
    (sync(shard(x, sizes, rank)) * shard(dy, sizes, rank)).sum().backward()
    (ref(x) * dy).sum().backward()
    close(summed(sync.weight.grad), ref.weight.grad, "weight grad summed over ranks")
    close(summed(sync.bias.grad), ref.bias.grad, "bias grad summed over ranks")


def check_process_group_pairs():
    """``process_group`` scopes the statistics: ranks (0, 1), (2, 3), ... each normalise over
    their pair's batch (a last rank alone is a world of one: plain BatchNorm)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    pairs = [list(range(i, min(i + 2, world))) for i in range(0, world, 2)]
    groups = [dist.new_group(p) for p in pairs]
    mine = pairs[rank // 2]
    sizes = shard_sizes(world, True)
    sizes = [max(s, 2) for s in sizes]  # a rank alone needs more than one value per channel
    x, dy = global_tensors(sizes, (2, 2), seed=5)
    sync = nn.SyncBatchNorm(C, process_group=groups[rank // 2]).double()
    ref = nn.BatchNorm2d(C).double()
    set_affine(sync, ref)
    xs = shard(x, sizes, rank).requires_grad_()
    (sync(xs) * shard(dy, sizes, rank)).sum().backward()
    xg = dtorch.cat([shard(x, sizes, r) for r in mine]).requires_grad_()
    dyg = dtorch.cat([shard(dy, sizes, r) for r in mine])
    (ref(xg) * dyg).sum().backward()
    local = [sizes[r] for r in mine]
    close(xs.grad, shard(xg.grad, local, mine.index(rank)), "input grad within the pair")
    close(sync.running_mean, ref.running_mean, "running_mean of the pair")
    close(sync.running_var, ref.running_var, "running_var of the pair")


def check_global_batch_of_one_raises():
    """One value per channel over the whole group is an error on every rank (no hang)."""
    rank = dist.get_rank()
    sync = nn.SyncBatchNorm(C).double()
    x = dtorch.ones((1 if rank == 0 else 0, C), dtype=dtorch.float64)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        sync(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, C, 3, padding=1)
        self.bn = nn.BatchNorm2d(C)
        self.fc = nn.Linear(C * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().flatten(1))


def make_net(seed):
    net = Net().double()
    rng = np.random.default_rng(seed)
    with dtorch.no_grad():
        for p in net.parameters():
            p.copy_(dtorch.tensor(rng.standard_normal(p.shape) * 0.5))
    return net


def ddp_batch(world, step):
    rng = np.random.default_rng(500 + step)
    return (dtorch.tensor(rng.standard_normal((world * 3, 2, 4, 4))),
            dtorch.tensor(rng.standard_normal((world * 3, 2))))


def check_inside_ddp(steps=3):
    """SyncBatchNorm inside DDP for ``steps`` SGD steps == BatchNorm on the global batch in one
    process (parameters and running statistics)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    sizes = shard_sizes(world, False)
    model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(make_net(seed=rank)))
    opt = dtorch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref = make_net(seed=0)
    ref_opt = dtorch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x, y = ddp_batch(world, step)
        opt.zero_grad()
        ((model(shard(x, sizes, rank)) - shard(y, sizes, rank)) ** 2).mean().backward()
        opt.step()
        ref_opt.zero_grad()
        ((ref(x) - y) ** 2).mean().backward()
        ref_opt.step()
    got, want = model.module.state_dict(), ref.state_dict()
    assert isinstance(model.module.bn, nn.SyncBatchNorm)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=0, atol=1e-8, err_msg=k)
