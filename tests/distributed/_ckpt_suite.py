"""Backend-agnostic checks of ``dtorch.distributed.replicated_checkpoint``, correct for any
world size.

Each ``check_*`` runs on every rank of an initialised world and takes ``shared``, a directory
every rank sees; a rank's "private" directory is ``shared / f"rank{r}"``, and ranks other than
the reader pass paths that do not exist, so a rank that touched the file would fail.
``test_checkpoint_threads.py`` runs them in the thread world, ``test_checkpoint_mpi.py`` under
``mpiexec`` (pytest-mpi).

Run as a script, this module is the worker of ``test_checkpoint_jobs.py``:

    mpiexec -n 4 python _ckpt_suite.py train KIND CKPT START STOP [--resume] [--result PATH]
    mpiexec -n 2 python _ckpt_suite.py preempt OUTDIR
"""

import contextlib
import errno
import math
import os
import signal
import sys

import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
import dtorch.optim
from dtorch import nn, serialization
from dtorch.distributed import replicated_checkpoint as rcp
from dtorch.nn.parallel import DistributedDataParallel as DDP

GLOBAL_BATCH = 12  # divisible by every world size used: 1, 2, 3, 4
TOTAL_STEPS = 6
SAVE_AT = 3


def _world():
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mine(shared, name="ckpt.pt"):
    """This rank's private path (its directory is created)."""
    d = shared / f"rank{_world()[0]}"
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def _gather(obj):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def _patched(module, name, value):
    """Replace ``module.name`` (call on one rank only: the thread world shares modules)."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def payload(tag):
    """A checkpoint-like object: views sharing storage, a Parameter, dtypes, plain values."""
    base = dtorch.arange(12, dtype=dtorch.float64).reshape(3, 4) + tag
    return {"w": base, "row": base[1], "ints": dtorch.tensor([1, 2, 3 + tag]),
            "half": dtorch.full((2,), 0.5 + tag, dtype=dtorch.float16),
            "param": nn.Parameter(dtorch.ones(2) * tag),
            "np": np.arange(4, dtype=np.int32) + tag,
            "meta": {"epoch": tag, "name": f"run{tag}", "inf": math.inf, "t": (1, 2.5, None)}}


def assert_payload(got, tag):
    want = payload(tag)
    assert set(got) == set(want)
    for k in ("w", "row", "ints", "half", "param"):
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k].detach().numpy(), want[k].detach().numpy())
    assert isinstance(got["param"], nn.Parameter) and got["param"].requires_grad
    np.testing.assert_array_equal(got["np"], want["np"])
    assert got["meta"] == want["meta"]
    got["row"][0] = -7.0  # the view still shares memory with its base after the broadcast
    assert got["w"][1, 0].item() == -7.0
    got["row"][0] = float(want["row"][0].item())


# ----------------------------------------------------------------------------- save
def check_save_writes_once_and_every_rank_waits(shared):
    """Only the writer's file appears, and no rank returns before it is complete."""
    r, n = _world()
    mine = _mine(shared)
    slow = None
    if r == 0:  # the writer dawdles: a rank that did not wait would find no file
        real = serialization._write_archive

        def slow(fh, obj):
            import time

            time.sleep(0.5)
            real(fh, obj)
    with _patched(serialization, "_write_archive", slow) if slow else contextlib.nullcontext():
        assert rcp.save(payload(r), mine) is None
    written = shared / "rank0" / "ckpt.pt"
    assert written.exists()
    assert_payload(dtorch.load(written), 0)  # rank 0's object, complete
    assert sorted(os.listdir(written.parent)) == ["ckpt.pt"]  # no temporary left behind
    if r:
        assert not mine.exists()
    # another writer: src is a global rank, as in torch.distributed
    rcp.save(payload(r), _mine(shared, "last.pt"), src=n - 1)
    assert (shared / f"rank{n - 1}" / "last.pt").exists()
    assert_payload(dtorch.load(shared / f"rank{n - 1}" / "last.pt"), n - 1)
    if r != n - 1:
        assert not _mine(shared, "last.pt").exists()


def _raises_everywhere(exc_type, fn, sent=True):
    """Run ``fn`` expecting ``exc_type`` on this rank; return the message of every rank.

    ``sent``: the error is rank 0's, sent to the others (else each rank finds it decoding).
    """
    with pytest.raises(exc_type) as info:
        fn()
    notes = getattr(info.value, "__notes__", [])
    assert any("raised by rank 0" in note for note in notes) == sent, notes
    texts = _gather(f"{type(info.value).__name__}: {info.value}")
    assert len(set(texts)) == 1, texts
    return info.value, texts[0]


def check_save_failures_raise_on_every_rank(shared):
    r, n = _world()
    path = shared / "ckpt.pt"
    rcp.save({"version": "old", "w": dtorch.ones(1000)}, path)

    # disk full half way through the writer's archive: every rank raises, the old file stays
    def full(zf, name, u8):
        with zf.open(name, "w") as out:
            out.write(memoryview(u8)[: u8.nbytes // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with _patched(serialization, "_write_storage", full) if r == 0 else contextlib.nullcontext():
        exc, _ = _raises_everywhere(
            OSError, lambda: rcp.save({"version": "new", "w": dtorch.zeros(1000)}, path))
    assert exc.errno == errno.ENOSPC
    old = dtorch.load(path)
    assert old["version"] == "old" and old["w"].sum().item() == 1000.0
    assert [f for f in os.listdir(shared) if f.endswith(".tmp")] == []  # the temporary is gone

    # a directory that does not exist on the writer
    missing = shared / "no_such_dir" / "ckpt.pt"
    exc, text = _raises_everywhere(FileNotFoundError, lambda: rcp.save({"a": 1}, missing))
    assert "no_such_dir" in text
    # an object the format cannot hold (only the writer's object matters)
    _, text = _raises_everywhere(
        TypeError, lambda: rcp.save({"bad": object()} if r == 0 else None, path))
    assert "cannot serialize an object of type builtins.object" in text
    assert dtorch.load(path)["version"] == "old"
    # a writer outside the world is refused on every rank before anything is sent
    with pytest.raises(ValueError, match=f"src {n} is not a member"):
        rcp.save({"a": 1}, path, src=n)


# ----------------------------------------------------------------------------- load
def check_load_broadcasts_to_ranks_without_the_file(shared):
    r, n = _world()
    if r == 0:
        dtorch.save(payload(5), _mine(shared))
    got = rcp.load(_mine(shared))  # ranks > 0 name a file that does not exist for them
    if r:
        assert not _mine(shared).exists()
    assert_payload(got, 5)
    got["w"] += r  # each rank has its own copy
    dist.barrier()
    np.testing.assert_array_equal(got["w"].numpy(), payload(5)["w"].numpy() + r)
    # from another reader, and a non-path argument on the others
    if r == n - 1:
        dtorch.save(payload(7), _mine(shared, "other.pt"))
    assert_payload(rcp.load(_mine(shared, "other.pt") if r == n - 1 else None, src=n - 1), 7)


def check_load_failures_raise_on_every_rank(shared):
    r, _ = _world()
    _, text = _raises_everywhere(FileNotFoundError, lambda: rcp.load(_mine(shared, "none.pt")))
    assert "none.pt" in text
    corrupt = _mine(shared, "corrupt.pt")
    if r == 0:
        dtorch.save(payload(1), corrupt)
        data = corrupt.read_bytes()
        corrupt.write_bytes(data[: len(data) // 2])
    _, text = _raises_everywhere(RuntimeError, lambda: rcp.load(corrupt), sent=False)
    assert str(shared / "rank0" / "corrupt.pt") in text  # the reader's path, on every rank
    assert "is not a valid dtorch checkpoint" in text
    pickled = _mine(shared, "pickled.pt")
    if r == 0:
        pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
    _, text = _raises_everywhere(RuntimeError, lambda: rcp.load(pickled), sent=False)
    assert "is a Python pickle" in text
    _raises_everywhere(IsADirectoryError, lambda: rcp.load(shared))


def check_map_location_per_rank(shared):
    r, n = _world()
    if r == 0:
        dtorch.save(payload(2), _mine(shared))
    seen = []

    def place(t, location):  # every rank applies its own function to its own copy
        seen.append(location)
        return t.double() * 0 + r

    got = rcp.load(_mine(shared), map_location=place)
    assert seen == ["cpu"] * 5
    for k in ("w", "row", "ints", "half", "param"):
        assert got[k].dtype == dtorch.float64 and (got[k] == r).all().item(), k
    assert_payload(rcp.load(_mine(shared), map_location={"cpu": "cpu"}), 2)
    assert_payload(rcp.load(_mine(shared), map_location=dtorch.device("cpu")), 2)
    if n > 1 and not dtorch.cuda.is_available():
        # a placement that fails fails on its own rank only; the others have their checkpoint
        if r == n - 1:
            with pytest.raises(RuntimeError, match="is_available\\(\\) is False"):
                rcp.load(None, map_location=f"cuda:{r}")
        else:
            assert_payload(rcp.load(_mine(shared), map_location="cpu"), 2)
        dist.barrier()


def check_subgroup(shared):
    r, n = _world()
    members = list(range(1, n)) if n > 1 else [0]
    g = dist.new_group(members)
    if r not in members:
        with pytest.raises(ValueError, match="not a member of the group"):
            rcp.save({"a": 1}, _mine(shared), group=g)
        return
    src = members[-1]
    rcp.save(payload(r), _mine(shared), src=src, group=g)
    assert _mine(shared).exists() == (r == src)
    assert_payload(rcp.load(_mine(shared) if r == src else None, src=src, group=g), src)


# ----------------------------------------------------------------------------- training
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def make_net(seed):
    """A float64 Net from a private generator (independent of dtorch's)."""
    net = Net().double()
    rng = np.random.default_rng(seed)
    with dtorch.no_grad():
        for p in net.parameters():
            p.copy_(dtorch.tensor(rng.standard_normal(p.shape) * 0.4))
    return net


def make_training(kind, net):
    """Optimizer and scheduler, both with state worth restoring."""
    if kind == "adam":
        opt = dtorch.optim.Adam(net.parameters(), lr=0.02, weight_decay=1e-3)
        return opt, dtorch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    opt = dtorch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    return opt, dtorch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TOTAL_STEPS)


def batch(step):
    rng = np.random.default_rng(1000 + step)
    return (dtorch.tensor(rng.standard_normal((GLOBAL_BATCH, 5))),
            dtorch.tensor(rng.standard_normal((GLOBAL_BATCH, 3))))


def params_of(net):
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def reference(kind, steps=TOTAL_STEPS):
    """One process, no process group, the whole batch every step."""
    net = make_net(0)
    opt, sched = make_training(kind, net)
    for step in range(steps):
        _step(net, opt, sched, step, 0, 1)
    return params_of(net)


def _step(model, opt, sched, step, rank, world):
    x, y = batch(step)
    per = GLOBAL_BATCH // world
    x, y = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
    sched.step()


def train(kind, ckpt, stop, resume=False, save=False):
    """Train steps [start, stop) on this world; resume from / save to ``ckpt`` (collectively).

    Returns the final parameters. A resuming rank starts from its own random initialisation and
    fresh optimizer, so what it ends with must come from the checkpoint. Only rank 0 names the
    file when loading.
    """
    rank, world = _world()
    net = make_net(rank + 100 if resume else 0)
    opt, sched = make_training(kind, net)
    start = 0
    if resume:
        state = rcp.load(ckpt if rank == 0 else None)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
    model = DDP(net) if dist.is_initialized() else net
    for step in range(start, stop):
        _step(model, opt, sched, step, rank, world)
    if save:
        rcp.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "step": stop}, ckpt)
    return params_of(net)


def assert_params(got, want, exact):
    assert set(got) == set(want)
    for k in want:
        if exact:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


def check_resume_is_bit_identical(shared, kind):
    """Interrupted at SAVE_AT and resumed in the same world == never interrupted, bit for bit."""
    ckpt = _mine(shared)
    straight = train(kind, None, TOTAL_STEPS)
    train(kind, ckpt, SAVE_AT, save=True)
    resumed = train(kind, ckpt, TOTAL_STEPS, resume=True)
    assert_params(resumed, straight, exact=True)
    assert_params(resumed, reference(kind), exact=False)  # and it is the right training


def check_save_training_state(shared, kind):
    """First half of a resume at another world size: SAVE_AT steps, then a checkpoint."""
    train(kind, shared / "train.pt", SAVE_AT, save=True)


def check_resume_training_state(shared, kind):
    """Second half: continue on this world size; must match one process on the full batch."""
    assert_params(train(kind, shared / "train.pt", TOTAL_STEPS, resume=True), reference(kind),
                  exact=False)


# ----------------------------------------------------------------------------- preemption
def check_preemption_agreement():
    """The last rank alone gets SIGTERM at step 3; every rank stops at step 3 knowing why."""
    r, n = _world()
    before = signal.getsignal(signal.SIGTERM)
    with rcp.PreemptionHandler() as preemption:
        for step in range(1, 50):
            if step == 3 and r == n - 1:
                os.kill(os.getpid(), signal.SIGTERM)
            if preemption.should_stop():
                break
    assert step == 3
    assert preemption.triggered and preemption.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


# ----------------------------------------------------------------------------- scripts
def _train_script(argv):
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("ckpt")
    p.add_argument("stop", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--save", action="store_true")
    p.add_argument("--result")
    p.add_argument("--single", action="store_true", help="no process group at all")
    a = p.parse_args(argv)
    if not a.single:
        dist.init_process_group(timeout=60)
    params = train(a.kind, a.ckpt, a.stop, resume=a.resume, save=a.save)
    if a.result:
        rcp.save(params, a.result)
    if dist.is_initialized():
        dist.destroy_process_group()


def _preempt_script(out):
    """Train until SIGTERM; then a final checkpoint and exit 128 + signal on every rank."""
    dist.init_process_group(timeout=60)
    rank = dist.get_rank()
    net = make_net(rank)
    model = DDP(net)
    opt, sched = make_training("sgd", net)
    with rcp.PreemptionHandler() as preemption:
        for step in range(1, 10**7):
            _step(model, opt, sched, step % 50, rank, dist.get_world_size())
            if step == 5:  # the test may signal us now
                tmp = os.path.join(out, f".pid{rank}")
                with open(tmp, "w") as fh:
                    fh.write(str(os.getpid()))
                os.replace(tmp, os.path.join(out, f"pid{rank}"))
            here = preemption.triggered
            if preemption.should_stop():
                rcp.save({"model": net.state_dict(), "step": step},
                         os.path.join(out, "final.pt"))
                print(f"rank {rank} stopped after step {step} by signal {preemption.signum} "
                      f"(received here: {here})", flush=True)
                dist.destroy_process_group()
                sys.exit(128 + preemption.signum)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        _train_script(sys.argv[2:])
    elif sys.argv[1] == "preempt":
        _preempt_script(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
