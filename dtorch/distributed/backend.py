"""The array-level backend contract shared by the MPI, NCCL, single-process and thread backends.

A backend is one communicator (a group of ranks). Its collective methods take contiguous NumPy or
CuPy arrays, never Tensors, *start* the operation and return a handle; :meth:`Backend.finish`
then either completes it before returning (``async_op=False``) or wraps it in a :class:`Work`.
Starting at call time, in program order, is what keeps several outstanding operations matched
across ranks: MPI and NCCL match collectives by the order in which they are started.

Every blocking wait is bounded by the operation's deadline (:class:`OpContext`); on expiry the error
names the operation, its sequence number, the group and the ranks that did not arrive.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from .errors import DistBackendError


class ReduceOp(enum.Enum):
    """Reduction operations of :func:`all_reduce`, :func:`reduce` and the reduce-scatters.

    ``AVG`` is the sum divided by the group size (floating-point only); ``BAND``, ``BOR`` and
    ``BXOR`` are bitwise and need integer (or bool) tensors.
    """

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"

    def __repr__(self):
        return f"ReduceOp.{self.name}"

    __str__ = __repr__


_BITWISE = (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR)


def check_reduce_dtype(op, dtype, opname):
    """Raise when ``op`` cannot reduce ``dtype`` (what every backend would refuse or get wrong)."""
    if op is ReduceOp.SUM and dtype.kind in "fiub":  # the common case, checked first
        return
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{opname}: op must be a dtorch.distributed.ReduceOp, got {op!r}")
    dtype = np.dtype(dtype)
    if op in _BITWISE and dtype.kind not in "iub":
        raise RuntimeError(f"{opname}: {op} needs an integer or bool tensor, got dtype {dtype}")
    if op is ReduceOp.AVG and dtype.kind not in "fc":
        raise RuntimeError(f"{opname}: {op} needs a floating-point tensor, got dtype {dtype}")


def reduce_arrays(arrays, op):
    """Reduce a list of same-shape arrays elementwise in list order (the thread/single backends).

    The result has the arrays' dtype; ``AVG`` divides the sum by ``len(arrays)``.
    """
    xp = _array_module(arrays[0])
    ufunc = {
        ReduceOp.SUM: xp.add, ReduceOp.AVG: xp.add, ReduceOp.PRODUCT: xp.multiply,
        ReduceOp.MIN: xp.minimum, ReduceOp.MAX: xp.maximum, ReduceOp.BAND: xp.bitwise_and,
        ReduceOp.BOR: xp.bitwise_or, ReduceOp.BXOR: xp.bitwise_xor,
    }[op]
    if arrays[0].dtype == np.bool_ and op in (ReduceOp.SUM, ReduceOp.PRODUCT):
        ufunc = xp.logical_or if op is ReduceOp.SUM else xp.logical_and
    out = arrays[0].copy()
    for a in arrays[1:]:
        ufunc(out, a, out=out)
    if op is ReduceOp.AVG:
        xp.divide(out, len(arrays), out=out)
    return out


def _array_module(arr):
    from .._backend import get_array_module

    return get_array_module(arr)


class OpContext:
    """What one collective call is: its name, sequence number, group and deadline.

    ``missing`` is a callable returning the ranks that have not arrived (``{global_rank:
    last_seq_seen}`` or a list), or None when that cannot be known; ``tracker`` (a progress
    record) answers the same for collectives.
    """

    __slots__ = ("op", "seq", "group", "deadline", "timeout", "missing", "tracker")

    def __init__(self, op, seq, group, timeout, missing=None, tracker=None):
        self.op = op
        self.seq = seq
        self.group = group  # text such as "group 'WORLD' (ranks [0, 1])"
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.missing = missing
        self.tracker = tracker  # a ProgressTracker: who has not entered ``seq``

    def describe(self):
        seq = "" if self.seq is None else f" (sequence number {self.seq})"
        return f"{self.op}{seq} on {self.group}"

    def timeout_error(self, missing=None):
        """A :class:`DistBackendError` naming the operation and the ranks that did not arrive."""
        if missing is None and (self.missing is not None or self.tracker is not None):
            try:
                missing = self.missing() if self.missing is not None else \
                    self.tracker.missing(self.seq)
            except Exception as exc:  # the store may be gone too; still report the timeout
                missing = f"unknown ({type(exc).__name__}: {exc})"
        msg = f"dtorch.distributed: {self.describe()} timed out after {self.timeout:.1f} s"
        if isinstance(missing, dict) and missing:
            parts = ", ".join(
                f"{r} (last entered {'nothing' if s is None else f'sequence number {s}'})"
                for r, s in sorted(missing.items())
            )
            msg += f"; ranks that did not arrive: {parts}"
        elif isinstance(missing, (list, tuple)) and missing:
            msg += f"; ranks that did not arrive: {sorted(missing)}"
        elif isinstance(missing, str):
            msg += f"; ranks that did not arrive: {missing}"
        elif missing is not None:
            msg += ("; every rank arrived, so the ranks disagree on what this operation is "
                    "(set DTORCH_DISTRIBUTED_DEBUG=DETAIL to compare them)")
        return DistBackendError(msg)


class Handle(ABC):
    """A started operation: ``test()`` polls, ``wait()`` blocks until the context's deadline."""

    def __init__(self, ctx, post=None):
        self.ctx = ctx
        self.post = post  # backend post-processing (AVG division, device copy-back)
        self.source = None  # the sender's rank, for receives

    @abstractmethod
    def test(self):
        """True once the operation is complete (never blocks)."""

    @abstractmethod
    def wait(self):
        """Block until complete; raise the context's timeout error at its deadline."""

    def wait_blocking(self):
        """Block with no deadline (used by a communication thread; the caller enforces it)."""
        self.wait()


class DoneHandle(Handle):
    """An operation that completed when it was started (single process, buffered sends)."""

    def test(self):
        return True

    def wait(self):
        return None


class Work:
    """Handle of an asynchronous operation (``async_op=True``), like ``torch.distributed.Work``.

    ``wait(timeout)`` blocks until the operation is complete (at most ``timeout`` seconds, and
    never past the group's timeout), then returns True; results are in the output tensors.
    ``is_completed()`` never blocks; without a communication thread (the MPI backend's ``poll``
    mode) it tests the operation, which is what advances it. ``get_future()``
    gives a :class:`dtorch.futures.Future` of the output tensors.
    """

    def __init__(self, handle, finalizers=(), outputs=None, thread=None):
        self._handle = handle
        self._finalizers = list(finalizers)
        self._outputs = outputs
        self._done = threading.Event()
        self._exc = None
        self._lock = threading.Lock()
        self._submitted = thread is not None
        self._future = None
        if thread is not None:
            thread.submit(self)

    def _finish(self, exc=None):
        with self._lock:
            if self._done.is_set():
                return
            if exc is None:
                try:
                    if self._handle.post is not None:
                        self._handle.post()
                    for fn in self._finalizers:
                        fn()
                except BaseException as e:  # report it from wait(), in the caller's thread
                    exc = e
            self._exc = exc
            self._done.set()

    def _run_in_thread(self):
        try:
            self._handle.wait_blocking()
        except BaseException as exc:
            self._finish(exc)
        else:
            self._finish()

    def is_completed(self):
        """True when the operation has finished (successfully or not)."""
        if not self._done.is_set() and not self._submitted and self._handle.test():
            self._finish()
        return self._done.is_set()

    def is_success(self):
        """True when the operation has finished without error."""
        return self.is_completed() and self._exc is None

    def exception(self):
        """The error the operation ended with, or None."""
        return self._exc

    def wait(self, timeout=None):
        """Block until the operation is done; raise its error, or a timeout error naming it.

        Args:
            timeout (float or timedelta, optional): seconds to wait at most; the group's timeout
                always applies as well.
        """
        ctx = self._handle.ctx
        if timeout is not None and hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        limit = ctx.deadline if timeout is None else min(ctx.deadline, time.monotonic() + timeout)
        if not self._done.is_set():
            if self._submitted:
                if not self._done.wait(max(0.0, limit - time.monotonic())):
                    raise _user_timeout(ctx, timeout) if limit < ctx.deadline \
                        else ctx.timeout_error()
            else:
                saved = ctx.deadline
                ctx.deadline = limit
                try:
                    self._handle.wait()
                except DistBackendError:
                    if limit < saved:
                        raise _user_timeout(ctx, timeout) from None
                    raise
                finally:
                    ctx.deadline = saved
                self._finish()
        if self._exc is not None:
            raise self._exc
        return True

    def result(self):
        """The output tensors of the operation (after waiting for it)."""
        self.wait()
        return list(self._outputs or [])

    def source_rank(self):
        """The rank a completed ``irecv`` received from."""
        self.wait()
        return self._handle.source

    def get_future(self):
        """A :class:`dtorch.futures.Future` completed with the list of output tensors
        (``[tensor]`` for ``all_reduce``, ``broadcast``, ...) when the operation completes.

        It fails with the operation's error, or with the timeout error when the group's timeout
        passes first. It completes in the thread that waits on it or polls it (``done()``), so
        its callbacks run in program order, never on a communication thread.

        Example::

            >>> fut = dist.all_reduce(t, async_op=True).get_future()
            >>> fut.then(lambda f: f.value()[0] / dist.get_world_size()).wait()
        """
        from ..futures import Future

        with self._lock:
            if self._future is None:
                self._future = Future()
                self._future._source = _WorkSource(self)
        return self._future


class _WorkSource:
    """Completes the future of a :class:`Work` from the work's outcome."""

    def __init__(self, work):
        self.work = work

    def _settle(self):
        w = self.work
        if w._exc is not None:
            w._future._complete(None, w._exc, strict=False)
        else:
            w._future._complete(list(w._outputs or []), None, strict=False)

    def poll(self):
        if self.work.is_completed():
            self._settle()

    def drive(self):
        try:
            self.work.wait()
        except BaseException as exc:  # the operation's error or the group's timeout
            self.work._future._complete(None, exc, strict=False)
        else:
            self._settle()


def _user_timeout(ctx, timeout):
    return DistBackendError(
        f"dtorch.distributed: Work.wait(timeout={timeout}) expired before {ctx.describe()} "
        "completed")


class CommThread:
    """A daemon thread that completes submitted asynchronous operations in order.

    The operation was already started by the caller; this thread only blocks in the backend's
    wait (the MPI library releases the GIL there), so communication progresses while the main
    thread computes.
    """

    def __init__(self, name):
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, work):
        self._queue.put(work)

    def _loop(self):
        while True:
            work = self._queue.get()
            if work is None:
                return
            work._run_in_thread()

    def close(self):
        self._queue.put(None)


class Backend(ABC):
    """One communicator over ``size`` ranks; this process is ``rank`` (ranks are group-local).

    Collective methods take contiguous arrays and an :class:`OpContext`, start the operation and
    return a :class:`Handle`. ``async_op`` completion is the caller's (:meth:`finish`).
    """

    name = "?"

    def __init__(self, rank, size):
        self.rank = rank
        self.size = size

    # --- collectives: arrays are contiguous; ranks (src, dst) are group ranks -----------------
    @abstractmethod
    def all_reduce(self, arr, op, ctx):
        """Reduce ``arr`` over all ranks into ``arr`` on every rank."""

    @abstractmethod
    def broadcast(self, arr, src, ctx):
        """Copy ``arr`` of rank ``src`` into ``arr`` of every rank."""

    @abstractmethod
    def reduce(self, arr, dst, op, ctx):
        """Reduce ``arr`` over all ranks into ``arr`` of rank ``dst``."""

    @abstractmethod
    def all_gather(self, out, inp, ctx):
        """``out[i] = inp of rank i``; ``out`` has shape ``(size, *inp.shape)``."""

    @abstractmethod
    def gather(self, out, inp, dst, ctx):
        """Like all_gather, into ``out`` of rank ``dst`` only (``out`` is None elsewhere)."""

    @abstractmethod
    def scatter(self, out, inp, src, ctx):
        """``out = inp[rank]`` of rank ``src`` (``inp`` is None elsewhere)."""

    @abstractmethod
    def reduce_scatter(self, out, inp, op, ctx):
        """``out = reduction over ranks r of inp_r[rank]``; ``inp`` is ``(size, *out.shape)``."""

    @abstractmethod
    def all_to_all(self, out, inp, out_counts, in_counts, ctx):
        """Send ``in_counts[j]`` leading elements of flat ``inp`` (in order) to rank j; receive
        ``out_counts[j]`` from rank j into flat ``out``. Counts are in elements."""

    @abstractmethod
    def send(self, arr, dst, tag, ctx):
        """Send ``arr`` to rank ``dst``."""

    @abstractmethod
    def recv(self, arr, src, tag, ctx):
        """Receive into ``arr`` from rank ``src`` (None: any); the handle's ``source`` tells."""

    @abstractmethod
    def barrier(self, ctx):
        """Complete once every rank has started it."""

    @abstractmethod
    def exchange_fingerprints(self, text, ctx):
        """Every rank's ``text`` (a short string), in rank order; blocking, bounded by ctx."""

    @abstractmethod
    def split(self, ranks, group_id):
        """A backend for the sub-group ``ranks`` (group ranks of this one, sorted), or None for
        ranks outside it. Called by every rank of this group, in the same order everywhere."""

    def close(self):  # noqa: B027 - optional hook; most backends hold nothing to release
        """Release the communicator's resources."""

    # --- completion --------------------------------------------------------------------------
    comm_thread = None  # a CommThread when operations need one to progress asynchronously

    def finish(self, handle, async_op, finalizers=(), outputs=None):
        """Complete ``handle`` now, or return a :class:`Work` for it when ``async_op``."""
        if async_op:
            return Work(handle, finalizers, outputs, thread=self.comm_thread)
        handle.wait()
        if handle.post is not None:
            handle.post()
        if finalizers:
            for fn in finalizers:
                fn()
        return None
