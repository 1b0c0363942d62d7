"""``DistributedDataParallel``: data parallelism with gradient buckets reduced during backward.

Each rank holds a full replica of the module and computes gradients on its shard of the batch.
Gradients are packed into flat buckets (about ``bucket_cap_mb``; the first about 1 MB so that
communication starts early) in reverse registration order, which is roughly the order in which
backward produces them. A post-accumulate-grad hook marks each parameter ready; when a bucket's
last gradient is ready its all-reduce is started asynchronously, so communication overlaps the
rest of backward. A callback queued on the autograd engine waits for every bucket when backward
ends and leaves the averaged gradients in ``.grad``.

The contract (as in PyTorch):

* every rank constructs DDP on a module with the same parameters in the same order (checked at
  construction; the error names the first mismatch and the ranks);
* construction, every forward (buffer broadcast) and every backward are synchronisation points:
  all ranks must run them the same number of times;
* gradients are averaged over the ranks of the process group (divided by the world size before
  the sum, as PyTorch does).

``register_comm_hook(state, hook)`` replaces that divide-and-all-reduce by a hook (gradient
compression, custom averaging); ``join()`` lets ranks with fewer batches than the others stop
early without hanging them (the joined ranks shadow the collectives of the active ones).
"""

import contextlib
import hashlib
import inspect
import os

import numpy as np

from ... import _backend
from ..._tensor import Tensor
from ...autograd import grad_mode
from ...autograd.engine import queue_callback
from ...distributed.algorithms.grad_bucket import GradBucket
from ...distributed.algorithms.join import Join, Joinable, JoinHook
from ...futures import Future
from ..modules.module import Module

_FIRST_BUCKET_BYTES = 1 << 20


class _Bucket:
    """A flat gradient buffer for parameters of one dtype and device."""

    def __init__(self, index, params, xp):
        self.index = index
        self.params = params
        self.offsets = []
        off = 0
        for p in params:
            self.offsets.append(off)
            off += p._data.size
        self.flat = xp.zeros(off, dtype=params[0]._data.dtype)
        self.views = [self.flat[o:o + p._data.size].reshape(p._data.shape)
                      for o, p in zip(self.offsets, params)]
        self.pending = len(params)
        self.result = None  # while reducing: a callable returning the reduced flat array


class DistributedDataParallel(Module, Joinable):
    """Wrap ``module`` for data-parallel training over ``process_group`` (the default group).

    Args:
        module: the model; its parameters and buffers are broadcast from rank 0.
        device_ids, output_device, dim: accepted for PyTorch compatibility; dtorch uses one
            device per process (the one the module lives on).
        broadcast_buffers: re-broadcast buffers (e.g. BatchNorm statistics) from rank 0 at
            every forward.
        bucket_cap_mb: bucket size in MiB (the first bucket is about 1 MiB).
        find_unused_parameters: parameters that receive no gradient in a backward pass are
            treated as having a zero gradient; without it such a parameter is an error that
            names it.
        gradient_as_bucket_view: ``.grad`` tensors become views into the buckets (saves a copy
            and memory).
        static_graph: accepted; the bucket order is rebuilt after the first iteration anyway.

    Example::

        dist.init_process_group()
        model = DistributedDataParallel(Net())
        loss = loss_fn(model(x_shard), y_shard)
        loss.backward()          # gradients are averaged over ranks when this returns
        opt.step()
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        from ... import distributed as dist

        Module.__init__(self)
        Joinable.__init__(self)
        if not dist.is_initialized():
            raise RuntimeError("Default process group has not been initialized, please make sure "
                               "to call init_process_group.")
        if bucket_cap_mb is None or bucket_cap_mb <= 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.process_group = process_group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.bucket_cap_mb = bucket_cap_mb
        self.device_ids = device_ids
        self.require_backward_grad_sync = True
        self._dist = dist
        self._world = dist.get_world_size(process_group)
        self._named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not self._named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have "
                               "any parameter that requires a gradient.")
        self._verify_same_parameters()
        self._sync_module_states()
        self._order = list(range(len(self._named)))[::-1]
        self._build_buckets(self._order)
        self._rebuilt = False
        self._arrival = []
        self._in_backward = False
        self._step = 0
        self._comm_hook = None  # (hook, state)
        self._backward_ran = False
        self._divide_by_initial_world_size = True
        self._divisor = self._world
        self._check_every = int(os.environ.get("DTORCH_DDP_CHECK_EVERY", "0")) or (
            100 if os.environ.get("DTORCH_DISTRIBUTED_DEBUG", "").upper() == "DETAIL" else 0)
        self._handles = [p.register_post_accumulate_grad_hook(self._make_hook(i))
                         for i, (_, p) in enumerate(self._named)]

    # ------------------------------------------------------------------ construction
    def _verify_same_parameters(self):
        """All ranks must wrap the same parameter list (names, shapes, dtypes)."""
        desc = [(n, tuple(p.shape), p.dtype.name) for n, p in self._named]
        digest = hashlib.sha256(repr(desc).encode()).hexdigest()
        gathered = [None] * self._world
        self._dist.all_gather_object(gathered, (digest, desc), group=self.process_group)
        ref = gathered[0][1]
        bad = [r for r, (d, _) in enumerate(gathered) if d != gathered[0][0]]
        if not bad:
            return
        other = gathered[bad[0]][1]
        for i in range(max(len(ref), len(other))):
            a = ref[i] if i < len(ref) else None
            b = other[i] if i < len(other) else None
            if a != b:
                raise RuntimeError(
                    f"DistributedDataParallel: the model differs between ranks. Parameter #{i}: "
                    f"rank 0 has {_describe(a)}, rank(s) {bad} have {_describe(b)}. Every rank "
                    "must construct the same model with its parameters in the same order.")

    def _sync_module_states(self, src=0):
        """Broadcast parameters and buffers from group rank ``src``."""
        with grad_mode.no_grad():
            for t in list(self.module.parameters()) + list(self.module.buffers()):
                self._dist.broadcast(t, group=self.process_group, group_src=src)

    def _build_buckets(self, order):
        """Group parameters, in ``order``, into buckets of at most the cap per dtype/device."""
        cap = int(self.bucket_cap_mb * (1 << 20))
        self._buckets = []
        self._where = {}
        current, size, limit = [], 0, min(_FIRST_BUCKET_BYTES, cap)
        for i in order:
            p = self._named[i][1]
            if current and (size + p._data.nbytes > limit or not _same_kind(current[0], p)):
                self._add_bucket(current)
                current, size, limit = [], 0, cap
            current.append(p)
            size += p._data.nbytes
        if current:
            self._add_bucket(current)
        self._param_index = {id(p): i for i, (_, p) in enumerate(self._named)}
        self._bucket_of = {}
        for b in self._buckets:
            for j, p in enumerate(b.params):
                self._bucket_of[self._param_index[id(p)]] = (b, j)

    def _add_bucket(self, params):
        xp = _backend.get_array_module(params[0]._data)
        self._buckets.append(_Bucket(len(self._buckets), params, xp))

    # ------------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        joining = self._join_config.enable
        will_sync = grad_mode.is_grad_enabled() and self.require_backward_grad_sync
        if will_sync and not joining and self._check_every and \
                self._step % self._check_every == 0:
            self.check_replicas()
        self._step += 1
        if joining:
            work = Join.notify_join_context(self)
            if work is not None:
                work.wait()
            src, active, _ = self._join_exchange(will_sync, joined=False)
            self._divisor = self._world if self._divide_by_initial_world_size else active
        else:
            src, self._divisor = 0, self._world
        self._sync_buffers(src)
        return self.module(*inputs, **kwargs)

    def _sync_buffers(self, src):
        if self.broadcast_buffers and self._world > 1:
            with grad_mode.no_grad():
                for b in self.module.buffers():
                    self._dist.broadcast(b, group=self.process_group, group_src=src)

    def _join_exchange(self, will_sync, joined):
        """The one all-reduce of an iteration in join mode: ``[grad sync?, active ranks
        (one-hot), bucket order]``. Returns (group rank to take buffers from: the highest active
        one, number of active ranks, number of active ranks that reduce gradients).

        A joined rank also adopts the active ranks' bucket order, so that its shadow all-reduces
        match theirs even when it never ran a backward pass itself.
        """
        n, world = len(self._named), self._world
        info = np.zeros(1 + world + n, dtype=np.int64)
        if not joined:
            info[0] = int(will_sync)
            info[1 + self._dist.get_rank(self.process_group)] = 1
            info[1 + world:] = self._order
        t = Tensor._wrap(info)
        self._dist.all_reduce(t, group=self.process_group)
        ranks = np.nonzero(t._data[1:1 + world])[0]
        if joined:
            order = t._data[1 + world:] // len(ranks)
            if sorted(order.tolist()) != list(range(n)):
                raise RuntimeError(
                    "DistributedDataParallel.join: the active ranks disagree on the gradient "
                    "bucket order; every rank must run the same model and graph.")
            if order.tolist() != self._order:
                self._order = order.tolist()
                self._build_buckets(self._order)
            self._rebuilt = True
        return int(ranks[-1]), len(ranks), int(t._data[0])

    @contextlib.contextmanager
    def no_sync(self):
        """Skip gradient synchronisation inside the block: gradients accumulate locally and are
        reduced, all together, in the first backward after it."""
        prev = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = prev

    # ------------------------------------------------------------------ backward
    def _make_hook(self, i):
        def hook(param):
            if self.require_backward_grad_sync:
                self._mark_ready(i, param)

        return hook

    def _mark_ready(self, i, param):
        if not self._in_backward:
            self._in_backward = True
            self._backward_ran = True
            self._ready = set()
            self._next_launch = 0
            self._arrival = []
            self._inflight = []
            queue_callback(self._finish_backward)
        if i in self._ready:
            raise RuntimeError(
                f"DistributedDataParallel: parameter '{self._named[i][0]}' received its gradient "
                "twice in one backward pass (a module used twice with a reentrant or recomputed "
                "graph); this is not supported.")
        self._ready.add(i)
        self._arrival.append(i)
        bucket, j = self._bucket_of[i]
        self._copy_in(bucket, j, param)
        bucket.pending -= 1
        self._launch_ready_buckets()
        # NOTE: testing the oldest reduction in flight drives MPI's progress engine, which is
        # how reductions advance during backward when no communication thread does it.
        while self._inflight and self._inflight[0]():
            self._inflight.pop(0)

    def _copy_in(self, bucket, j, param):
        view = bucket.views[j]
        g = param._grad
        if g is None:
            view[...] = 0
        elif g._data is not view:
            view[...] = g._data

    def _launch_ready_buckets(self):
        # NOTE: buckets are launched strictly in bucket order so that every rank starts the same
        # collectives in the same order, whatever order its gradients arrived in.
        while self._next_launch < len(self._buckets) and \
                self._buckets[self._next_launch].pending == 0:
            self._launch(self._buckets[self._next_launch])
            self._next_launch += 1

    def _launch(self, bucket):
        bucket.result, done = self._start_reduce(bucket, bucket.flat, bucket.views)
        self._inflight.append(done)

    def _start_reduce(self, bucket, flat, views):
        """Start reducing ``flat`` (laid out as ``bucket``) with the comm hook, or by dividing
        and all-reducing; return ``(result, done)``: a callable that waits and returns the
        reduced flat array, and one that tests for completion without blocking."""
        if self._comm_hook is None:
            flat /= self._divisor  # NOTE: a division, as allreduce_hook does: equal results
            work = self._dist.all_reduce(Tensor._wrap(flat), group=self.process_group,
                                         async_op=True)

            def result():
                work.wait()
                return flat

            return result, work.is_completed
        hook, state = self._comm_hook
        grad_bucket = GradBucket(bucket.index, Tensor._wrap(flat), [Tensor._wrap(v) for v in views],
                                 list(bucket.params), bucket.index == len(self._buckets) - 1)
        fut = hook(state, grad_bucket)
        if not isinstance(fut, Future):
            raise RuntimeError("DDP communication hook's callback must return a "
                               f"torch.futures.Future object, but got {type(fut).__module__}."
                               f"{type(fut).__qualname__}")
        return (lambda: _hook_result(fut, bucket.index, flat.size)), fut.done

    def _finish_backward(self):
        try:
            missing = [i for i in range(len(self._named)) if i not in self._ready]
            if missing and not self.find_unused_parameters:
                names = ", ".join(self._named[i][0] for i in missing)
                raise RuntimeError(
                    "DistributedDataParallel: these parameters received no gradient in this "
                    f"backward pass: {names}. They did not take part in computing the loss. Pass "
                    "find_unused_parameters=True to DistributedDataParallel to treat their "
                    "gradients as zero, or make sure all outputs of forward are used in the loss.")
            for i in missing:
                bucket, j = self._bucket_of[i]
                bucket.views[j][...] = 0
                bucket.pending -= 1
            self._launch_ready_buckets()
            unused = self._globally_unused(self._ready) if self.find_unused_parameters else set()
            for bucket in self._buckets:
                reduced = bucket.result()
                if reduced is not bucket.flat:
                    bucket.flat[...] = reduced
                self._copy_out(bucket, unused)
                bucket.result = None
                bucket.pending = len(bucket.params)
        finally:
            self._in_backward = False
        if not self._rebuilt and not self.static_graph and len(self._arrival) == len(self._named):
            # NOTE: after the first iteration the buckets follow the order in which gradients
            # actually arrived (the same on every rank for the same model and graph).
            self._rebuilt = True
            if self._arrival != self._order:
                self._order = list(self._arrival)
                self._build_buckets(self._order)

    def _globally_unused(self, ready):
        """Indices of parameters that no rank used in this backward (their grads stay as they
        were, as in PyTorch); ``ready`` are those this rank used."""
        used = np.zeros(len(self._named), dtype=np.int32)
        used[list(ready)] = 1
        t = Tensor._wrap(used)
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self.process_group)
        return {i for i in range(len(self._named)) if not t._data[i]}

    def _copy_out(self, bucket, unused):
        for j, p in enumerate(bucket.params):
            if self._param_index[id(p)] in unused:
                continue
            view = bucket.views[j]
            if self.gradient_as_bucket_view:
                p._grad = Tensor._wrap(view)
            elif p._grad is None:
                p._grad = Tensor._wrap(view.copy())
            else:
                p._grad._data[...] = view

    # ------------------------------------------------------------------ communication hooks
    def register_comm_hook(self, state, hook):
        """Replace the divide-and-all-reduce of each gradient bucket by ``hook``.

        During backward, as each bucket becomes ready (in bucket order), DDP calls
        ``hook(state, bucket)`` with a :class:`~dtorch.distributed.GradBucket` whose
        ``buffer()`` holds the bucket's local gradients, flattened and *not* divided by the
        world size. The hook returns a :class:`dtorch.futures.Future` of the reduced flat tensor
        (same number of elements); at the end of backward DDP waits for every future, in bucket
        order, and writes the results into ``.grad``. A hook that does no communication still
        returns a completed future. Built-in hooks are in
        :mod:`dtorch.distributed.algorithms.ddp_comm_hooks.default_hooks`.

        Args:
            state (object): passed to every call of the hook (e.g. the process group, or
                error-feedback state kept between iterations).
            hook (Callable): ``hook(state, bucket: dist.GradBucket) -> Future[Tensor]``.

        Raises:
            RuntimeError: when a hook is already registered, or after the first backward pass.

        Example::

            >>> def noop(state, bucket):
            ...     fut = dtorch.futures.Future()
            ...     fut.set_result(bucket.buffer())
            ...     return fut
            >>> ddp.register_comm_hook(state=None, hook=noop)   # no averaging at all
        """
        if not callable(hook):
            raise TypeError("Communication hook must be callable.")
        _check_hook_annotations(hook)
        if self._comm_hook is not None:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be "
                               "called once.")
        if self._backward_ran:
            raise RuntimeError("register_comm_hook must be called before the first backward "
                               "pass: a DDP communication hook can only be registered once and "
                               "should be registered before calling backward.")
        self._comm_hook = (hook, state)

    # ------------------------------------------------------------------ uneven inputs (join)
    def join(self, divide_by_initial_world_size=True, enable=True,
             throw_on_early_termination=False):
        """Context manager for training with a different number of batches on each rank.

        A rank that leaves the loop inside the block early "joins": until every rank has
        joined it shadows each iteration of the still-active ranks (the buffer broadcast, one
        zero-gradient all-reduce per bucket -- through the comm hook if one is registered --
        and the unused-parameter all-reduce) so that no collective is left unmatched. When all
        have joined, the parameters and buffers of the last rank to join are broadcast to all.

        Args:
            divide_by_initial_world_size (bool): divide gradients by the initial world size
                (every sample weighs the same) if True, else by the number of ranks still
                active at that iteration (the average over the active ranks). Ignored by comm
                hooks, which do their own division.
            enable (bool): False disables uneven-input detection (inputs known to be even).
            throw_on_early_termination (bool): raise ``RuntimeError`` on every rank as soon
                as one rank runs out of inputs, instead of shadowing.

        Every active rank must call forward and backward the same number of times per
        iteration (one forward with gradients enabled is taken to be followed by a backward
        unless ``no_sync()`` is used), and the block must contain no other collectives.

        Example::

            >>> with model.join():
            ...     for x, y in loader:      # rank r may have fewer batches than rank r + 1
            ...         opt.zero_grad()
            ...         loss_fn(model(x), y).backward()
            ...         opt.step()
        """
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs):
        """The :class:`~dtorch.distributed.algorithms.JoinHook` shadowing this model's forward
        and backward collectives; ``divide_by_initial_world_size`` (default True) is read from
        ``kwargs``."""
        return _DDPJoinHook(self, kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        return self._named[0][1].device

    @property
    def join_process_group(self):
        return self.process_group

    def _join_shadow_backward(self):
        """A joined rank's side of one backward: zero gradients through the same bucket
        reductions, then the unused-parameter all-reduce, in the active ranks' order."""
        pending = []
        for bucket in self._buckets:
            flat = _backend.get_array_module(bucket.flat).zeros_like(bucket.flat)
            views = [flat[o:o + p._data.size].reshape(p._data.shape)
                     for o, p in zip(bucket.offsets, bucket.params)]
            pending.append(self._start_reduce(bucket, flat, views)[0])
        if self.find_unused_parameters:
            self._globally_unused(())
        for result in pending:
            result()

    def _sync_final_model(self, is_last_joiner):
        """Broadcast parameters and buffers from the highest rank among the last joiners."""
        me = self._dist.get_rank(self.process_group)
        t = Tensor._wrap(np.array([me if is_last_joiner else -1], dtype=np.int64))
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self.process_group)
        self._sync_module_states(int(t._data[0]))

    # ------------------------------------------------------------------ extras
    def check_replicas(self):
        """Verify that every rank holds identical parameters (a checksum all-reduce). Raises
        naming the first parameter that diverged and the ranks that differ from rank 0."""
        dist = self._dist
        sums = np.array([_checksum(p._data) for _, p in self._named], dtype=np.float64)
        lo, hi = Tensor._wrap(sums.copy()), Tensor._wrap(sums.copy())
        dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=self.process_group)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=self.process_group)
        bad = np.nonzero(lo._data != hi._data)[0]
        if bad.size:
            gathered = [None] * self._world
            dist.all_gather_object(gathered, sums[bad[0]], group=self.process_group)
            differ = [r for r, v in enumerate(gathered) if v != gathered[0]]
            raise RuntimeError(
                f"DistributedDataParallel: replicas diverged: parameter "
                f"'{self._named[bad[0]][0]}' differs on rank(s) {differ} from rank 0 "
                f"(checksums {[gathered[r] for r in differ]} vs {gathered[0]}).")

class _DDPJoinHook(JoinHook):
    """Shadows one iteration of the active ranks on a rank that has joined."""

    def __init__(self, ddp, divide_by_initial_world_size):
        if not isinstance(ddp, DistributedDataParallel):
            raise TypeError("DDP join hook requires passing in a DistributedDataParallel "
                            f"instance as the state, got {type(ddp).__name__}")
        self.ddp = ddp
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self):
        src, _, syncing = self.ddp._join_exchange(False, joined=True)
        self.ddp._sync_buffers(src)
        if syncing:
            self.ddp._join_shadow_backward()

    def post_hook(self, is_last_joiner):
        self.ddp._sync_final_model(is_last_joiner)


def _hook_result(fut, index, numel):
    """The reduced flat array a comm hook's future resolved to, checked."""
    value = fut.wait()
    if not isinstance(value, Tensor):
        raise RuntimeError(f"DDP communication hook: the Future of bucket {index} must hold one "
                           f"Tensor (the reduced bucket buffer), got {type(value).__name__}")
    if value.numel() != numel:
        raise RuntimeError(f"DDP communication hook: the Future of bucket {index} holds a tensor "
                           f"of shape {list(value.shape)} ({value.numel()} elements), but the "
                           f"bucket buffer has {numel} elements")
    return value._data.reshape(-1)


def _check_hook_annotations(hook):
    """PyTorch's checks of a comm hook's annotations (postponed string annotations pass)."""
    sig = inspect.signature(hook)
    params = list(sig.parameters.values())
    empty = inspect.Parameter.empty
    bucket = params[1].annotation if len(params) > 1 else empty
    if bucket is not empty and not isinstance(bucket, str) and bucket is not GradBucket:
        raise ValueError("Communication hook: bucket annotation should be dist.GradBucket.")
    ret = sig.return_annotation
    if ret is not empty and not isinstance(ret, str) and ret != Future[Tensor]:
        raise ValueError("Communication hook: return annotation should be "
                         "torch.futures.Future[torch.Tensor].")


def _checksum(array):
    """A position-weighted sum: equal for identical arrays, different for almost any change."""
    a = _backend.to_device(array, None).astype(np.float64).ravel()
    return float((a * (1.0 + np.arange(a.size) % 97 / 97.0)).sum())


def _same_kind(p, q):
    return p._data.dtype == q._data.dtype and type(p._data) is type(q._data)


def _describe(entry):
    if entry is None:
        return "no parameter"
    name, shape, dtype = entry
    return f"'{name}' of shape {list(shape)} and dtype {dtype}"
