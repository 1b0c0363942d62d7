"""DistributedDataParallel benchmark: step time, weak scaling, communication overlap.

Run on 2 ranks (and it also measures 1 rank itself, in a sub-communicator of rank 0):

    mpiexec -n 2 python bench/bench_ddp.py

Workloads: the MLP 784-500-10 (batch 128 per rank, Adam) and the seed CIFAR-10 CNN (batch 64 per
rank, SGD with momentum). For each: dtorch DDP step time on 1 and 2 ranks (weak-scaling
efficiency = t1 / t2), the fraction of the gradient all-reduce hidden behind backward, the
bandwidth of dtorch's all-reduce of the gradient bytes against raw mpi4py Allreduce, and PyTorch's
DDP with the gloo backend on the same machine and thread count when torch is installed.

Hidden share: ``1 - exposed / t_allreduce_alone``. ``exposed`` is the communication still
outstanding when backward's computation ends: the time DDP spends in its end-of-backward wait
on the rank that finished computing last (the others also wait for that rank, which is skew,
not communication), median over steps, less the same wait of a DDP whose communication hook
reduces nothing (the copy-out work alone). Taking the last rank makes the figure robust to the
ranks' drift on shared cores, which a difference of whole backward times is not.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

import dtorch  # noqa: E402
import dtorch.distributed as dist  # noqa: E402
import dtorch.nn.functional as F  # noqa: E402
from dtorch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

STEPS, WARMUP = 20, 3
ROUNDS = 5  # dtorch and PyTorch DDP timed in alternating rounds: drift hits both alike


def mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(784, 500), lib.nn.ReLU(), lib.nn.Linear(500, 10))


def cifar_cnn(lib):
    n = lib.nn

    class Net(n.Module):  # the seed tutorial's CIFAR-10 network
        def __init__(self):
            super().__init__()
            self.conv1 = n.Conv2d(3, 6, 5)
            self.pool = n.MaxPool2d(2, 2)
            self.conv2 = n.Conv2d(6, 16, 5)
            self.fc1 = n.Linear(16 * 5 * 5, 120)
            self.fc2 = n.Linear(120, 84)
            self.fc3 = n.Linear(84, 10)

        def forward(self, x):
            x = self.pool(lib.relu(self.conv1(x)))
            x = self.pool(lib.relu(self.conv2(x)))
            x = lib.flatten(x, 1)
            return self.fc3(lib.relu(self.fc2(lib.relu(self.fc1(x)))))

    return Net()


WORKLOADS = {
    "MLP 784-500-10, b128, Adam": (mlp, (128, 784), lambda lib, p: lib.optim.Adam(p, lr=1e-3)),
    "CIFAR CNN, b64, SGD+mom": (cifar_cnn, (64, 3, 32, 32),
                                lambda lib, p: lib.optim.SGD(p, lr=0.01, momentum=0.9)),
}


def batch(shape, rank, step):
    rng = np.random.default_rng(rank * 1000 + step)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0])


def _local_hook(state, bucket):
    """A communication hook that reduces nothing (the bucket as it is, already complete)."""
    fut = dtorch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut


def time_dtorch(build, shape, make_opt, comm_group):
    """Per-step time of DDP training, the share of the all-reduce hidden behind backward (see
    the module docstring), and the all-reduce alone against raw MPI."""
    rank = dist.get_rank(comm_group)
    model = DDP(build(dtorch), process_group=comm_group)
    local = DDP(build(dtorch), process_group=comm_group)
    local.register_comm_hook(None, _local_hook)
    opt = make_opt(dtorch, model.parameters())
    local_opt = make_opt(dtorch, local.parameters())
    x, y = batch(shape, rank, 0)
    x, y = dtorch.from_numpy(x), dtorch.from_numpy(y)

    tails = {True: [], False: []}
    for sync, net in ((True, model), (False, local)):
        net._finish_backward = _timed(net._finish_backward, tails[sync])

    def step(sync=True):
        net, optimizer = (model, opt) if sync else (local, local_opt)
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
        return tails[sync][-1]

    def timed(fn, n):
        for _ in range(WARMUP):
            fn()
        dist.barrier(comm_group)
        t0 = time.perf_counter()
        parts = [fn() for _ in range(n)]
        return (time.perf_counter() - t0) / n, parts

    comm = MPI.COMM_WORLD if dist.get_world_size(comm_group) > 1 else MPI.COMM_SELF
    t_step, tail_ddp = timed(step, STEPS)
    _, tail_local = timed(lambda: step(sync=False), STEPS)
    # the end-of-backward wait of the rank that finished computing last, step by step
    last_ddp = np.min(comm.allgather(tail_ddp), axis=0)
    last_local = np.min(comm.allgather(tail_local), axis=0)
    exposed = float(np.median(last_ddp) - np.median(last_local))
    flat = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    buf = dtorch.from_numpy(flat.copy())
    raw = np.empty_like(flat)

    def allreduce():
        t0 = time.perf_counter()
        dist.all_reduce(buf, group=comm_group)
        return time.perf_counter() - t0

    _, parts = timed(allreduce, STEPS)
    t_ar = float(np.median(parts))

    def raw_allreduce():
        t0 = time.perf_counter()
        comm.Allreduce(flat, raw)
        return time.perf_counter() - t0

    _, parts = timed(raw_allreduce, STEPS)
    t_raw = float(np.median(parts))
    hidden = 1 - exposed / t_ar if t_ar > 0 else float("nan")
    return dict(step=t_step, hidden=hidden, t_ar=t_ar, sync_bw=flat.nbytes / t_ar,
                raw_bw=flat.nbytes / t_raw, step_fn=step)


def _timed(fn, log):
    """``fn`` that appends its duration to ``log`` each call."""
    def wrapper():
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            log.append(time.perf_counter() - t0)
    return wrapper


def alternate(dt_step, pt_step):
    """Median step times of dtorch's and PyTorch's DDP over ROUNDS alternating rounds of
    STEPS steps each, and the median of the per-round ratios."""
    def one_round(fn):
        MPI.COMM_WORLD.Barrier()
        t0 = time.perf_counter()
        for _ in range(STEPS):
            fn()
        return MPI.COMM_WORLD.allreduce(time.perf_counter() - t0, op=MPI.MAX) / STEPS

    pairs = [(one_round(dt_step), one_round(pt_step)) for _ in range(ROUNDS)]
    dt, pt = (float(np.median(v)) for v in zip(*pairs))
    return dt, pt, float(np.median([a / b for a, b in pairs]))


def torch_gloo_step(build, shape, make_opt):
    """One PyTorch DDP (gloo) training step as a callable, warmed up; None without torch."""
    try:
        import torch
        import torch.distributed as tdist
        from torch.nn.parallel import DistributedDataParallel as TDDP
    except ImportError:
        return None
    torch.set_num_threads(1)
    rank, world = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    if not tdist.is_initialized():
        port = MPI.COMM_WORLD.bcast(29511 + os.getpid() % 1000 if rank == 0 else None, root=0)
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                 world_size=world)
    torch.manual_seed(0)
    model = TDDP(build(torch))
    opt = make_opt(torch, model.parameters())
    x, y = batch(shape, rank, 0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    return step


def main():
    dist.init_process_group(backend="mpi", timeout=600)
    rank, world = dist.get_rank(), dist.get_world_size()
    solo = dist.new_group([0])
    rows = []
    for name, (build, shape, make_opt) in WORKLOADS.items():
        one = time_dtorch(build, shape, make_opt, solo) if rank == 0 else None
        dist.barrier()
        many = time_dtorch(build, shape, make_opt, None)
        pt_step = torch_gloo_step(build, shape, make_opt)
        pt = ratio = None
        if pt_step is not None:
            many["step"], pt, ratio = alternate(many["step_fn"], pt_step)
        rows.append((name, one, many, pt, ratio))
    if rank == 0:
        print(f"DDP benchmark: {world} ranks (MPI), 1 thread each, numpy {np.__version__}")
        print(f"{'workload':28s} {'1 rank':>9s} {f'{world} ranks':>9s} {'weak eff':>8s} "
              f"{'allreduce':>9s} {'hidden':>7s} {'sync/raw bw':>11s} {'torch gloo':>10s} "
              f"{'dt/gloo':>7s}")
        for name, one, many, pt, ratio in rows:
            gloo = f"{pt * 1e3:8.1f}ms" if pt else f"{'-':>10s}"
            ratio = f"{ratio:7.2f}" if pt else f"{'-':>7s}"
            print(f"{name:28s} {one['step'] * 1e3:7.1f}ms {many['step'] * 1e3:7.1f}ms "
                  f"{one['step'] / many['step']:8.2f} {many['t_ar'] * 1e3:7.2f}ms "
                  f"{many['hidden']:7.0%} "
                  f"{many['sync_bw'] / many['raw_bw']:11.2f} {gloo} {ratio}")
        print("hidden: share of the all-reduce time overlapped with backward; sync/raw bw: "
              "dtorch all_reduce of the gradient bytes vs raw mpi4py Allreduce of the same bytes")
        print(f"{world}-rank and gloo step times: medians of {ROUNDS} alternating rounds of "
              f"{STEPS} steps (slowest rank); dt/gloo: median of the per-round ratios")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
