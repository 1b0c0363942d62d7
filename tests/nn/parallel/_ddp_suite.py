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
from dtorch.distributed.algorithms import Join, Joinable, JoinHook
from dtorch.distributed.algorithms.ddp_comm_hooks import (
    DDPCommHookType,
    default_hooks,
    register_ddp_comm_hook,
)
from dtorch.futures import Future
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
    """A float64 Net whose parameters come from a private generator, so that every rank and
    the single-process reference build the same one whatever else drew random numbers."""
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


def train_ddp(kind, steps=STEPS, accumulate=1, seed=None, comm_hook=None, **ddp_kw):
    """K steps of DDP; ``comm_hook`` is ``(state, hook)`` to register before training."""
    rank, world = dist.get_rank(), dist.get_world_size()
    # Different initialisation on each rank: DDP must broadcast rank 0's parameters.
    model = DDP(make_net(seed if seed is not None else rank), **ddp_kw)
    if comm_hook is not None:
        model.register_comm_hook(*comm_hook)
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


# --- communication hooks and futures ---------------------------------------------------------
def _params(model):
    return {k: v.numpy().copy() for k, v in model.module.state_dict().items()}


def _one_backward(model, rank):
    x, y = global_batch(dist.get_world_size(), 0)
    ((model(shard(x, rank)) - shard(y, rank)) ** 2).mean().backward()
    return {n: p.grad.numpy().copy() for n, p in model.module.named_parameters()}


def _reference_grads():
    net = make_net(0)
    x, y = global_batch(dist.get_world_size(), 0)
    ((net(x) - y) ** 2).mean().backward()
    return {n: p.grad.numpy() for n, p in net.named_parameters()}


def check_allreduce_hook_is_exactly_no_hook():
    """allreduce_hook, registered directly or by DDPCommHookType, changes no bit."""
    plain = _params(train_ddp("sgd", bucket_cap_mb=0.0001))
    hooked = _params(train_ddp("sgd", bucket_cap_mb=0.0001,
                               comm_hook=(None, default_hooks.allreduce_hook)))
    model = DDP(make_net(dist.get_rank()))
    register_ddp_comm_hook(DDPCommHookType.ALLREDUCE, model)
    assert model._comm_hook[0] is default_hooks.allreduce_hook
    for k in plain:
        np.testing.assert_array_equal(hooked[k], plain[k], err_msg=k)


def check_fp16_compress_hook():
    """The all-reduced payload is float16 (every averaged gradient is a float16 number) and
    the result is the average within float16 precision."""
    rank = dist.get_rank()
    model = DDP(make_net(rank), bucket_cap_mb=0.0001)
    register_ddp_comm_hook(DDPCommHookType.FP16_COMPRESS, model)
    grads, ref = _one_backward(model, rank), _reference_grads()
    for n, g in grads.items():
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, g.astype(np.float16).astype(np.float64), err_msg=n)
        np.testing.assert_allclose(g, ref[n], rtol=4e-3, atol=2e-4, err_msg=n)
    assert any(not np.array_equal(g, ref[n]) for n, g in grads.items())
    trained = train_ddp("sgd", comm_hook=(None, default_hooks.fp16_compress_hook))
    assert_close_to_reference(trained, "sgd", atol=5e-3)


def assert_close_to_reference(model, kind, atol):
    ref = reference(dist.get_world_size(), kind)
    for k, v in model.module.state_dict().items():
        np.testing.assert_allclose(v.numpy(), ref[k], atol=atol, err_msg=k)


def check_custom_hook_sees_buckets_and_changes_the_result():
    """A hook that returns the local bucket does no averaging: each rank keeps its own
    gradient. The buckets arrive in order, with views of the buffer and their parameters."""
    rank = dist.get_rank()
    seen = []

    def local_only(state, bucket: dist.GradBucket) -> Future[dtorch.Tensor]:
        seen.append(bucket.index())
        assert bucket.is_last() == (bucket.index() == len(state._buckets) - 1)
        flat = bucket.buffer()
        assert flat.dim() == 1 and flat.numel() == sum(g.numel() for g in bucket.gradients())
        for g, p in zip(bucket.gradients(), bucket.parameters()):
            assert g.shape == p.shape
        fut = Future()
        fut.set_result(flat)
        return fut

    model = DDP(make_net(rank), bucket_cap_mb=0.0001)
    model.register_comm_hook(model, local_only)
    grads = _one_backward(model, rank)
    assert seen == list(range(len(model._buckets))) and len(seen) >= 3
    local = make_net(0)
    x, y = global_batch(dist.get_world_size(), 0)
    ((local(shard(x, rank)) - shard(y, rank)) ** 2).mean().backward()
    ref = _reference_grads()
    for n, p in local.named_parameters():
        np.testing.assert_allclose(grads[n], p.grad.numpy(), atol=1e-12, err_msg=n)
    assert any(not np.allclose(grads[n], ref[n]) for n in grads)


def check_register_comm_hook_errors():
    rank = dist.get_rank()
    model = DDP(make_net(rank))
    with pytest.raises(TypeError, match="must be callable"):
        model.register_comm_hook(None, 5)

    def wrong(state, bucket: int):
        return None

    with pytest.raises(ValueError, match="bucket annotation should be dist.GradBucket"):
        model.register_comm_hook(None, wrong)
    model.register_comm_hook(None, default_hooks.allreduce_hook)
    with pytest.raises(RuntimeError, match="can only be called once"):
        model.register_comm_hook(None, default_hooks.allreduce_hook)
    late = DDP(make_net(rank))
    _one_backward(late, rank)
    with pytest.raises(RuntimeError, match="before the first backward"):
        late.register_comm_hook(None, default_hooks.allreduce_hook)
    bad = DDP(make_net(rank))
    bad.register_comm_hook(None, lambda state, bucket: bucket.buffer())
    with pytest.raises(RuntimeError, match="must return a torch.futures.Future"):
        _one_backward(bad, rank)


def check_hook_future_of_wrong_size_raises():
    def short(state, bucket):
        fut = Future()
        fut.set_result(bucket.buffer()[:1])
        return fut

    model = DDP(make_net(dist.get_rank()))
    model.register_comm_hook(None, short)
    with pytest.raises(RuntimeError, match=r"bucket 0 holds a tensor of shape \[1\]"):
        _one_backward(model, dist.get_rank())


def check_work_get_future():
    rank, world = dist.get_rank(), dist.get_world_size()
    t = dtorch.tensor([float(rank + 1), 1.0])
    fut = dist.all_reduce(t, async_op=True).get_future()
    halved = fut.then(lambda f: f.value()[0] / 2)
    assert halved.wait().tolist() == [world * (world + 1) / 4, world / 2]
    assert fut.done() and fut.value()[0] is t
    b = dtorch.tensor([float(rank)])
    got = dist.broadcast(b, src=world - 1, async_op=True).get_future().wait()
    assert got[0] is b and b.item() == world - 1


# --- uneven inputs (join) --------------------------------------------------------------------
class CountingNet(Net):
    """Net with a buffer counting forward calls (how buffers follow the active ranks)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", dtorch.zeros(1, dtype=dtorch.float64))

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class SwappedNet(nn.Module):
    """Registered in the reverse order of use: DDP rebuilds its buckets after one backward."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.body = nn.Linear(5, 8)

    def forward(self, x):
        return self.head(self.body(x).tanh())


def _seeded(net, seed):
    net = net.double()
    rng = np.random.default_rng(seed)
    with dtorch.no_grad():
        for p in net.parameters():
            p.copy_(dtorch.tensor(rng.standard_normal(p.shape) * 0.4))
    return net


def _batches(rank, offset, k):
    return (rank + offset) * k


def join_reference(net_cls, world, offset, k, divide_by_initial_world_size):
    """One process: step s averages the shard losses of the ranks still active at s, divided
    by the initial world size or by the number of active ranks."""
    net = _seeded(net_cls(), 0)
    opt = make_opt("sgd", net.parameters())
    for s in range(_batches(world - 1, offset, k)):
        active = [r for r in range(world) if _batches(r, offset, k) > s]
        div = world if divide_by_initial_world_size else len(active)
        x, y = global_batch(world, s)
        opt.zero_grad()
        loss = sum(((net(shard(x, r)) - shard(y, r)) ** 2).mean() for r in active) / div
        loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def check_join_uneven_inputs(divide_by_initial_world_size, offset=1, net_cls=CountingNet,
                             k=2, comm_hook=None, **ddp_kw):
    """Rank r trains on (r + offset) * k batches inside join(); every rank ends with the
    closed-form result, and buffers come from an active rank at every step."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DDP(_seeded(net_cls(), rank), **ddp_kw)
    if comm_hook is not None:
        model.register_comm_hook(*comm_hook)
    opt = make_opt("sgd", model.parameters())
    with model.join(divide_by_initial_world_size=divide_by_initial_world_size):
        for s in range(_batches(rank, offset, k)):
            x, y = global_batch(world, s)
            opt.zero_grad()
            ((model(shard(x, rank)) - shard(y, rank)) ** 2).mean().backward()
            opt.step()
    assert not model._join_config.enable
    ref = join_reference(net_cls, world, offset, k, divide_by_initial_world_size)
    got = model.module.state_dict()
    for name in ref:
        if name == "calls":
            assert got[name].item() == _batches(world - 1, offset, k)
        else:
            np.testing.assert_allclose(got[name].numpy(), ref[name], atol=1e-10, err_msg=name)
    # The world is still in step: an ordinary collective gives the right answer.
    t = dtorch.tensor([1.0])
    dist.all_reduce(t)
    assert t.item() == world


def check_join_rank_without_batches():
    """Rank 0 has no batch at all and never builds the rebuilt bucket layout itself."""
    check_join_uneven_inputs(False, offset=0, net_cls=SwappedNet, bucket_cap_mb=0.0001)


def check_join_with_comm_hook():
    """The joined ranks run the hook on zero buckets; allreduce_hook divides by the world."""
    check_join_uneven_inputs(True, comm_hook=(None, default_hooks.allreduce_hook),
                             find_unused_parameters=True)


def check_join_throw_on_early_termination():
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DDP(make_net(rank))
    steps = []
    with pytest.raises(RuntimeError, match="exhausted"):
        with model.join(throw_on_early_termination=True):
            for s in range(2 + rank):
                x, y = global_batch(world, s)
                ((model(shard(x, rank)) - shard(y, rank)) ** 2).mean().backward()
                steps.append(s)
    assert steps == [0, 1]  # everyone stopped as soon as rank 0 ran out
    t = dtorch.tensor([1.0])
    dist.all_reduce(t)
    assert t.item() == world


class _Counter(Joinable):
    """A minimal Joinable: each iteration all-reduces 1 per active rank."""

    def __init__(self):
        super().__init__()
        self.totals = []
        self.last_joiner = None

    def step(self):
        Join.notify_join_context(self)
        t = dtorch.tensor([1.0])
        dist.all_reduce(t)
        self.totals.append(t.item())

    def join_hook(self, **kwargs):
        counter = self

        class Hook(JoinHook):
            def main_hook(self):
                dist.all_reduce(dtorch.tensor([0.0]))

            def post_hook(self, is_last_joiner):
                counter.last_joiner = is_last_joiner

        return Hook()

    @property
    def join_device(self):
        return dtorch.device("cpu")

    @property
    def join_process_group(self):
        return None


def check_generic_join():
    rank, world = dist.get_rank(), dist.get_world_size()
    counter = _Counter()
    with Join([counter]):
        for _ in range(rank + 1):
            counter.step()
    assert counter.totals == [float(world - s) for s in range(rank + 1)]
    assert counter.last_joiner == (rank == world - 1)
    with pytest.raises(ValueError, match="at least one joinable"):
        Join([])
