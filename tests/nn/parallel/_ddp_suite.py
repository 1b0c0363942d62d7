"""Backend-agnostic DistributedDataParallel checks, correct for any world size.

The contract checked: K steps of DDP on N ranks, each with its own b samples, end with the same
parameters (within 1e-5) as one process training on the N*b batch. Each ``check_*`` runs on every
rank of an initialised world; ``test_ddp_threads.py`` runs them in the thread world and
``test_ddp_mpi.py`` under ``mpiexec`` (pytest-mpi).
"""

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
import dtorch.optim
from dtorch import nn
from dtorch.nn.parallel import DistributedDataParallel as DDP

PER_RANK = 3
STEPS = 4


class Net(nn.Module):
    def __init__(self, with_unused=False):
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.fc2 = nn.Linear(8, 3)
        if with_unused:
            self.unused = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def make_net(seed=0, **kw):
    """A float64 Net whose parameters come from a private generator: the thread world's ranks
    share dtorch's global generator, so seeding it would race."""
    net = Net(**kw).double()
    rng = np.random.default_rng(seed)
    with dtorch.no_grad():
        for p in net.parameters():
            p.copy_(dtorch.tensor(rng.standard_normal(p.shape) * 0.4))
    return net


def global_batch(world, step):
    rng = np.random.default_rng(1000 + step)
    x = rng.standard_normal((world * PER_RANK, 5))
    y = rng.standard_normal((world * PER_RANK, 3))
    return dtorch.tensor(x), dtorch.tensor(y)


def shard(t, rank):
    return t[rank * PER_RANK:(rank + 1) * PER_RANK]


def make_opt(kind, params):
    if kind == "sgd":
        return dtorch.optim.SGD(params, lr=0.1, momentum=0.9)
    return dtorch.optim.Adam(params, lr=0.01)


def reference(world, kind, steps=STEPS, accumulate=1):
    """One process on the full batch (the sum of the shards' mean losses / world)."""
    net = make_net()
    opt = make_opt(kind, net.parameters())
    for step in range(steps):
        opt.zero_grad()
        for micro in range(accumulate):
            x, y = global_batch(world, step * accumulate + micro)
            loss = ((net(x) - y) ** 2).mean() / accumulate
            loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def train_ddp(kind, steps=STEPS, accumulate=1, seed=None, **ddp_kw):
    rank, world = dist.get_rank(), dist.get_world_size()
    # Different initialisation on each rank: DDP must broadcast rank 0's parameters.
    model = DDP(make_net(seed if seed is not None else rank), **ddp_kw)
    opt = make_opt(kind, model.parameters())
    for step in range(steps):
        opt.zero_grad()
        for micro in range(accumulate):
            x, y = global_batch(world, step * accumulate + micro)
            loss = ((model(shard(x, rank)) - shard(y, rank)) ** 2).mean() / accumulate
            if micro < accumulate - 1:
                with model.no_sync():
                    loss.backward()
            else:
                loss.backward()
        opt.step()
    return model


def assert_matches_reference(model, kind, **kw):
    ref = reference(dist.get_world_size(), kind, **kw)
    got = model.module.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        np.testing.assert_allclose(got[k].numpy(), ref[k], atol=1e-5, err_msg=k)


def check_matches_single_process(kind):
    assert_matches_reference(train_ddp(kind), kind)


def check_many_small_buckets():
    model = train_ddp("sgd", bucket_cap_mb=0.0001)
    assert len(model._buckets) >= 3
    assert_matches_reference(model, "sgd")


def check_gradient_as_bucket_view():
    model = train_ddp("adam", gradient_as_bucket_view=True)
    assert_matches_reference(model, "adam")


def check_no_sync_accumulation():
    model = train_ddp("sgd", steps=2, accumulate=3)
    assert_matches_reference(model, "sgd", steps=2, accumulate=3)


def check_unused_parameters():
    rank = dist.get_rank()
    model = DDP(make_net(rank, with_unused=True), find_unused_parameters=True)
    x, y = global_batch(dist.get_world_size(), 0)
    ((model(shard(x, rank)) - shard(y, rank)) ** 2).mean().backward()
    assert model.module.unused.weight.grad is None
    assert model.module.fc1.weight.grad is not None
    ref = make_net(0, with_unused=True)
    ((ref(x) - y) ** 2).mean().backward()
    np.testing.assert_allclose(model.module.fc1.weight.grad.numpy(),
                               ref.fc1.weight.grad.numpy(), atol=1e-10)


def check_unused_parameter_error_names_it():
    model = DDP(make_net(0, with_unused=True))
    x, y = global_batch(dist.get_world_size(), 0)
    with pytest.raises(RuntimeError, match=r"unused\.weight.*find_unused_parameters=True"):
        ((model(x[:2]) - y[:2]) ** 2).mean().backward()


def check_mismatched_models_raise():
    rank = dist.get_rank()
    other = nn.Module()
    other.first = nn.Linear(5, 8)
    net = Net() if rank == 0 else other
    expected = (r"differs between ranks.*rank 0 has 'fc1\.weight' of shape \[8, 5\]"
                r".*rank\(s\) \[1(, \d)*\] have 'first\.weight'")
    with pytest.raises(RuntimeError, match=expected):
        DDP(net)


def check_replicas_detects_divergence():
    rank = dist.get_rank()
    model = DDP(make_net(0))
    model.check_replicas()
    if rank == dist.get_world_size() - 1:
        with dtorch.no_grad():
            model.module.fc2.bias.add_(1.0)
    with pytest.raises(RuntimeError, match=r"'fc2\.bias' differs on rank\(s\) \["):
        model.check_replicas()


def check_state_dict_prefix():
    model = DDP(make_net(0))
    keys = list(model.state_dict())
    assert keys[0] == "module.fc1.weight" and all(k.startswith("module.") for k in keys)
