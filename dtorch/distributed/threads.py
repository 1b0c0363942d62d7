"""The thread world: N ranks as threads of one process, exchanging arrays in memory.

For debugging distributed code with an ordinary debugger: ``breakpoint()`` in one rank works, and
every collective is exact (reductions run in rank order). Start the ranks with
:func:`spawn_threads`, or start threads yourself and call
``init_process_group(backend="threads", world_size=N, rank=r, init_method="threads://name")`` in
each. Fingerprints (operation, dtype, shape, reduce op, sequence number, call site) are always
compared, and a rank that dies makes the others fail at once instead of waiting.

How it works: each collective deposits a copy of the rank's contribution into a slot keyed by
(group, sequence number); a rank completes once every member has deposited, computing its own
result from the deposits. Sends are buffered in per-(group, src, dst, tag) FIFO mailboxes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict, deque

import numpy as np

from .. import random
from .backend import Backend, DoneHandle, Handle, reduce_arrays
from .errors import DistError

_registry_lock = threading.Lock()
_registry = {}  # key -> _World, while the world is forming
_launch = threading.local()  # rank / world_size / key given by spawn_threads


class PeerFailedError(DistError):
    """Raised in the ranks of a thread world whose peer died (a consequence, not the cause)."""


class _World:
    """Shared state of one thread world."""

    def __init__(self, key, size):
        self.key = key
        self.size = size
        self.cond = threading.Condition()
        self.slots = {}
        self.mail = defaultdict(deque)
        self.joined = {}
        self.failure = None  # (rank, exception) of the first rank that died
        self.next_group = 0

    def fail(self, rank, exc):
        with self.cond:
            if self.failure is None:
                self.failure = (rank, exc)
            self.cond.notify_all()

    def check_failure(self, what):
        if self.failure is not None:
            rank, exc = self.failure
            raise PeerFailedError(
                f"dtorch.distributed: {what}: rank {rank} of the thread world failed "
                f"({type(exc).__name__}: {exc})")

    def wait_for(self, predicate, deadline, what, on_timeout):
        """Wait (holding ``cond``) until ``predicate()``; fail on a dead rank or the deadline."""
        while not predicate():
            self.check_failure(what)
            left = deadline - time.monotonic()
            if left <= 0:
                raise on_timeout()
            self.cond.wait(min(left, 1.0))


def join_world(key, rank, size, timeout):
    """Join the thread world ``key`` as ``rank`` of ``size``; return it once all have joined."""
    if not 0 <= rank < size:
        raise ValueError(f"init_process_group: rank {rank} is outside [0, {size}) "
                         f"(world_size={size})")
    with _registry_lock:
        world = _registry.get(key)
        if world is None:
            world = _registry[key] = _World(key, size)
    if world.size != size:
        raise ValueError(f"init_process_group: thread world {key!r} has world_size={world.size}, "
                         f"this rank asked for {size}")
    with world.cond:
        if rank in world.joined:
            exc = ValueError(f"init_process_group: rank {rank} of thread world {key!r} claimed "
                             f"twice (by threads {world.joined[rank]!r} and "
                             f"{threading.current_thread().name!r})")
            world.failure = world.failure or (rank, exc)  # the others stop waiting for it
            world.cond.notify_all()
            raise exc
        world.joined[rank] = threading.current_thread().name
        world.cond.notify_all()

        def timed_out():
            missing = sorted(set(range(size)) - set(world.joined))
            return DistError(f"init_process_group: thread world {key!r} timed out after "
                             f"{timeout:.1f} s waiting for ranks {missing}")

        world.wait_for(lambda: len(world.joined) == size, time.monotonic() + timeout,
                       "init_process_group", timed_out)
    with _registry_lock:
        if _registry.get(key) is world:
            del _registry[key]
    return world


def launch_context():
    """(rank, world_size, key) of the current thread when started by :func:`spawn_threads`."""
    return getattr(_launch, "ctx", None)


def spawn_threads(fn, args=(), nprocs=2, timeout=None):
    """Run ``fn(rank, *args)`` in ``nprocs`` threads forming one thread world.

    Inside ``fn``, ``init_process_group(backend="threads")`` needs no rank or world size. When a
    rank raises, the others fail fast (their pending collectives raise) and this function raises
    the first failure, annotated with its rank. Returns the ranks' return values in rank order.

    Args:
        fn: the per-rank function.
        args (tuple): extra arguments after the rank.
        nprocs (int): number of ranks.
        timeout (float, optional): seconds to wait for all ranks to finish.

    Example::

        >>> def work(rank):
        ...     dist.init_process_group(backend="threads")
        ...     t = dtorch.tensor([rank + 1.0]); dist.all_reduce(t); return t.item()
        >>> dist.spawn_threads(work, nprocs=3)
        [6.0, 6.0, 6.0]
    """
    if nprocs < 1:
        raise ValueError(f"spawn_threads: nprocs must be >= 1, got {nprocs}")
    key = f"threads://{uuid.uuid4().hex}"
    world = _World(key, nprocs)
    with _registry_lock:
        _registry[key] = world
    results = [None] * nprocs
    errors = {}

    errstate = np.geterr()

    def run(rank):
        _launch.ctx = (rank, nprocs, key)
        np.seterr(**errstate)  # NOTE: NumPy 2 keeps error handling per thread (a context var)
        random.use_thread_generators()  # a rank draws as it would in its own process
        try:
            results[rank] = fn(rank, *args)
        except BaseException as exc:
            errors[rank] = exc
            world.fail(rank, exc)
        finally:
            from . import process_group

            process_group._forget_thread_state()

    threads = [threading.Thread(target=run, args=(r,), name=f"dtorch-rank{r}", daemon=True)
               for r in range(nprocs)]
    for t in threads:
        t.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with _registry_lock:
        _registry.pop(key, None)
    alive = [r for r, t in enumerate(threads) if t.is_alive()]
    if alive:
        world.fail(-1, TimeoutError("spawn_threads timed out"))
        raise TimeoutError(f"spawn_threads: ranks {alive} still running after {timeout} s")
    if errors:
        causes = [r for r in errors if not isinstance(errors[r], PeerFailedError)] or list(errors)
        first = world.failure[0] if world.failure and world.failure[0] in causes else min(causes)
        exc = errors[first]
        exc.add_note(f"(raised in rank {first} of the thread world)")
        raise exc
    return results


class _SlotHandle(Handle):
    """Completes once every member has deposited into the slot; ``finish`` reads the deposits."""

    def __init__(self, backend, key, ctx, finish=None):
        super().__init__(ctx)
        self.backend = backend
        self.key = key
        self.finish_fn = finish
        self.done = False

    def _complete_locked(self):
        be = self.backend
        slot = be.world.slots[self.key]
        if self.finish_fn is not None:
            self.finish_fn([slot[r] for r in range(be.size)])
        slot["_read"] = slot.get("_read", 0) + 1
        if slot["_read"] == be.size:
            del be.world.slots[self.key]
        self.done = True

    def _ready(self):
        slot = self.backend.world.slots.get(self.key, {})
        return all(r in slot for r in range(self.backend.size))

    def test(self):
        if self.done:
            return True
        world = self.backend.world
        with world.cond:
            world.check_failure(self.ctx.describe())
            if self._ready():
                self._complete_locked()
        return self.done

    def wait(self):
        if self.done:
            return
        be = self.backend
        world = be.world

        def timed_out():
            slot = world.slots.get(self.key, {})
            missing = [be.ranks[r] for r in range(be.size) if r not in slot]
            return self.ctx.timeout_error(missing)

        with world.cond:
            world.wait_for(self._ready, self.ctx.deadline, self.ctx.describe(), timed_out)
            self._complete_locked()


class _RecvHandle(Handle):
    def __init__(self, backend, arr, src, tag, ctx):
        super().__init__(ctx)
        self.backend, self.arr, self.src, self.tag = backend, arr, src, tag
        self.done = False

    def _find(self):
        be = self.backend
        srcs = range(be.size) if self.src is None else [self.src]
        for s in srcs:
            box = be.world.mail.get((be.gid, s, be.rank, self.tag))
            if box:
                return s, box
        return None

    def _take(self, found):
        s, box = found
        data = box.popleft()
        if data.shape != self.arr.shape or data.dtype != self.arr.dtype:
            raise RuntimeError(
                f"recv: rank {self.backend.ranks[s]} sent {data.dtype}{list(data.shape)} "
                f"but the receiving tensor is {self.arr.dtype}{list(self.arr.shape)}")
        self.arr[...] = data
        self.source = s
        self.done = True

    def test(self):
        if self.done:
            return True
        with self.backend.world.cond:
            found = self._find()
            if found:
                self._take(found)
        return self.done

    def wait(self):
        if self.done:
            return
        world = self.backend.world
        src = "any rank" if self.src is None else f"rank {self.backend.ranks[self.src]}"
        with world.cond:
            world.wait_for(lambda: self._find() is not None, self.ctx.deadline,
                           self.ctx.describe(),
                           lambda: self.ctx.timeout_error(f"nothing received from {src}"))
            self._take(self._find())


class ThreadBackend(Backend):
    """In-memory communicator over the threads ``ranks`` (world ranks) of a thread world."""

    name = "threads"

    def __init__(self, world, ranks, gid, rank):
        super().__init__(rank, len(ranks))
        self.world = world
        self.ranks = list(ranks)
        self.gid = gid

    def _deposit(self, ctx, value, finish=None, tag=""):
        key = (self.gid, ctx.seq, tag)
        with self.world.cond:
            self.world.check_failure(ctx.describe())
            self.world.slots.setdefault(key, {})[self.rank] = value
            self.world.cond.notify_all()
        return _SlotHandle(self, key, ctx, finish)

    def all_reduce(self, arr, op, ctx):
        def finish(deps):
            arr[...] = reduce_arrays(deps, op)

        return self._deposit(ctx, arr.copy(), finish)

    def broadcast(self, arr, src, ctx):
        def finish(deps):
            if self.rank != src:
                arr[...] = deps[src]

        return self._deposit(ctx, arr.copy() if self.rank == src else None, finish)

    def reduce(self, arr, dst, op, ctx):
        def finish(deps):
            if self.rank == dst:
                arr[...] = reduce_arrays(deps, op)

        return self._deposit(ctx, arr.copy(), finish)

    def all_gather(self, out, inp, ctx):
        def finish(deps):
            for i, d in enumerate(deps):
                out[i] = d

        return self._deposit(ctx, inp.copy(), finish)

    def gather(self, out, inp, dst, ctx):
        def finish(deps):
            if self.rank == dst:
                for i, d in enumerate(deps):
                    out[i] = d

        return self._deposit(ctx, inp.copy(), finish)

    def scatter(self, out, inp, src, ctx):
        def finish(deps):
            out[...] = deps[src][self.rank]

        return self._deposit(ctx, inp.copy() if self.rank == src else None, finish)

    def reduce_scatter(self, out, inp, op, ctx):
        def finish(deps):
            out[...] = reduce_arrays([d[self.rank] for d in deps], op)

        return self._deposit(ctx, inp.copy(), finish)

    def all_to_all(self, out, inp, out_counts, in_counts, ctx):
        def finish(deps):
            flat = out.reshape(-1)
            pos = 0
            for j, (data, counts) in enumerate(deps):
                start = sum(counts[: self.rank])
                n = counts[self.rank]
                if n != out_counts[j]:
                    raise RuntimeError(f"all_to_all: rank {self.ranks[j]} sends {n} elements "
                                       f"to rank {self.ranks[self.rank]}, which expects "
                                       f"{out_counts[j]}")
                flat[pos: pos + n] = data[start: start + n]
                pos += n

        return self._deposit(ctx, (inp.reshape(-1).copy(), list(in_counts)), finish)

    def send(self, arr, dst, tag, ctx):
        with self.world.cond:
            self.world.check_failure(ctx.describe())
            self.world.mail[(self.gid, self.rank, dst, tag)].append(arr.copy())
            self.world.cond.notify_all()
        return DoneHandle(ctx)

    def recv(self, arr, src, tag, ctx):
        return _RecvHandle(self, arr, src, tag, ctx)

    def barrier(self, ctx):
        return self._deposit(ctx, None)

    def exchange_fingerprints(self, text, ctx):
        got = []
        handle = self._deposit(ctx, text, got.extend, tag="fingerprint")
        handle.wait()
        return got

    def split(self, ranks, group_id):
        if self.rank not in ranks:
            return None
        return ThreadBackend(self.world, [self.ranks[r] for r in ranks], group_id,
                             ranks.index(self.rank))
