"""The MPI backend: mpi4py's buffer (upper-case) calls on NumPy arrays.

Tensor payloads are never pickled: every operation passes the array's memory to MPI. Each
operation is started with MPI's nonblocking call (``Iallreduce``, ``Ibcast``, ...) in program order
and then completed either here, testing the request in a loop against the group's deadline
(``async_op=False``), or, for ``async_op=True``, in one of two progress modes:

* ``thread``: a communication thread blocked in ``Wait`` with the GIL released, so the transfer
  progresses while the main thread computes. MPI's ``Wait`` spins, so this costs a core; it is
  the mode when every rank of the machine has at least two cores of its own.
* ``poll``: no thread; the operation progresses whenever the owner tests it
  (``Work.is_completed()``, which DDP calls as each gradient becomes ready) and completes in
  ``Work.wait()``. This is the mode when ranks share cores (more ranks than half the cores), where
  a spinning thread would steal the compute the overlap is meant to hide.

``DTORCH_MPI_PROGRESS=thread|poll`` overrides the choice. The thread mode needs
``MPI_THREAD_MULTIPLE``; with only ``MPI_THREAD_SERIALIZED`` every MPI call is serialised by one
lock and the communication thread polls instead of blocking.

CuPy arrays are passed to MPI directly when the MPI library is CUDA-aware (``MPIX_Query_cuda_
support``, or ``DTORCH_MPI_CUDA_AWARE=1``); otherwise they are staged through host memory after
synchronising the current CUDA stream.

``mpi4py`` is imported only by :func:`mpi_module`, when a world is being formed, never when
``dtorch`` is imported: the rendezvous must set the process-manager variables before MPI starts.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

import numpy as np

from .._backend import is_cuda_array
from .backend import Backend, CommThread, Handle, ReduceOp

_MPI = None
_FP_BYTES = 512  # fixed size of one rank's fingerprint text in the DETAIL check


def mpi_module():
    """Import and initialise MPI (thread level MULTIPLE requested) and return ``mpi4py.MPI``."""
    global _MPI
    if _MPI is None:
        try:
            import mpi4py
        except ImportError as exc:
            raise RuntimeError(
                "the MPI backend needs mpi4py and an MPI library: "
                "`pip install dtorch[mpi]` (mpi4py and the mpich wheel)") from exc
        mpi4py.rc.thread_level = "multiple"
        from mpi4py import MPI

        _MPI = MPI
    return _MPI


def mpi_loaded():
    """``mpi4py.MPI`` when it has been imported and initialised already, else None."""
    return _MPI if _MPI is not None and _MPI.Is_initialized() else None


def cuda_aware():
    """Whether the MPI library accepts device (CuPy) buffers."""
    env = os.environ.get("DTORCH_MPI_CUDA_AWARE")
    if env is not None:
        return env.strip().lower() in ("1", "true", "yes")
    try:
        return bool(ctypes.CDLL(None).MPIX_Query_cuda_support())
    except (AttributeError, OSError):
        return False


def _op_tables(MPI):
    """MPI reduction ops for ReduceOp: (numeric table, bool table)."""
    numeric = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
               ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
               ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}
    logical = {ReduceOp.SUM: MPI.LOR, ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND,
               ReduceOp.MAX: MPI.LOR, ReduceOp.BAND: MPI.LAND, ReduceOp.BOR: MPI.LOR,
               ReduceOp.BXOR: MPI.LXOR}
    return numeric, logical


def _typed(MPI, arr):
    """The buffer for a reduction: mpi4py maps the array's buffer format to MPI's predefined
    type (``f`` -> MPI_FLOAT, ``q`` -> MPI_LONG_LONG, ``?`` -> MPI_C_BOOL, ...)."""
    return arr


def _raw(arr):
    """The array's bytes as a flat uint8 view (data movement is type-agnostic)."""
    return arr.reshape(-1).view(np.uint8) if arr is not None else None


def progress_mode(comm, MPI):
    """``thread`` when each rank on this machine has two cores or more, else ``poll`` (see the
    module docstring); ``DTORCH_MPI_PROGRESS`` overrides. Collective over ``comm``."""
    env = os.environ.get("DTORCH_MPI_PROGRESS", "").strip().lower()
    if env in ("thread", "poll"):
        return env
    if env:
        raise ValueError(f"DTORCH_MPI_PROGRESS must be 'thread' or 'poll', got {env!r}")
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    local = node.Get_size()
    node.Free()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # NOTE: ranks bound to disjoint cores each see only their own; unbound ranks see them all.
    per_rank = cores if cores < (os.cpu_count() or cores) else cores / local
    return "thread" if per_rank >= 2 else "poll"


class _Request(Handle):
    """An MPI request; completion tested against the context's deadline."""

    def __init__(self, backend, req, ctx, post=None, want_source=False):
        super().__init__(ctx, post)
        self.backend = backend
        self.req = req
        self.status = backend.MPI.Status() if want_source else None

    def _done(self):
        if self.status is not None and self.source is None:
            self.source = self.status.Get_source()

    def test(self):
        lock = self.backend.lock
        if lock is None:
            flag = self.req.Test(self.status)
        else:
            with lock:
                flag = self.req.Test(self.status)
        if flag:
            self._done()
        return flag

    def wait(self):
        if self.backend.lock is not None:
            while not self.test():
                if time.monotonic() > self.ctx.deadline:
                    raise self.ctx.timeout_error()
            return
        # NOTE: the tight loop calls Test directly: MPI progresses only inside MPI calls, so
        # the time between two calls delays every step of a pipelined transfer.
        test, status = self.req.Test, self.status
        deadline = self.ctx.deadline
        n = 0
        while not test(status):
            n += 1
            if n & 255 == 0 and time.monotonic() > deadline:
                raise self.ctx.timeout_error()
        self._done()

    def wait_blocking(self):
        if self.backend.lock is None:
            self.req.Wait(self.status)  # GIL released inside: full-speed progress
            self._done()
        else:
            while not self.test():
                time.sleep(1e-4)


class MPIBackend(Backend):
    """A communicator of mpi4py ``comm`` (duplicated, so user MPI traffic cannot interfere)."""

    name = "mpi"

    def __init__(self, comm, progress=None):
        MPI = mpi_module()
        super().__init__(comm.Get_rank(), comm.Get_size())
        self.MPI = MPI
        level = MPI.Query_thread()
        if level < MPI.THREAD_SERIALIZED:
            raise RuntimeError(
                "the MPI backend needs MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE, but MPI was "
                f"initialised with thread level {level}; initialise MPI through dtorch, or set "
                "mpi4py.rc.thread_level = 'multiple' before importing mpi4py.MPI")
        self.lock = None if level >= MPI.THREAD_MULTIPLE else threading.Lock()
        self.comm = comm
        self.cuda_aware = cuda_aware()
        self._thread = None
        self.progress = progress or progress_mode(comm, MPI)
        self._ops, self._logical_ops = _op_tables(MPI)

    @property
    def comm_thread(self):
        if self.progress == "poll":
            return None
        if self._thread is None:
            self._thread = CommThread(f"dtorch-mpi-comm-{id(self):x}")
        return self._thread

    def _start(self, fn, *args):
        if self.lock is None:
            return fn(*args)
        with self.lock:
            return fn(*args)

    # CuPy arrays: staged through host memory unless the MPI library is CUDA-aware.
    def _host(self, arr, copy_in=True):
        if arr is None or not is_cuda_array(arr) or self.cuda_aware:
            return arr, None
        from .._backend import cupy_module

        cupy_module().cuda.get_current_stream().synchronize()
        host = arr.get() if copy_in else np.empty(arr.shape, arr.dtype)
        return host, (lambda: arr.set(host))

    def _handle(self, req, ctx, posts=(), want_source=False):
        posts = [p for p in posts if p is not None]

        def post():
            for p in posts:
                p()

        return _Request(self, req, ctx, post if posts else None, want_source)

    def _mpi_op(self, op, dtype):
        return (self._logical_ops if dtype.kind == "b" else self._ops)[op]

    def _avg(self, arr, op):
        if op is ReduceOp.AVG:
            return lambda: np.divide(arr, self.size, out=arr)
        return None

    def all_reduce(self, arr, op, ctx):
        if self.lock is None and not is_cuda_array(arr):  # the hot path, kept short
            req = self.comm.Iallreduce(self.MPI.IN_PLACE, arr, self._mpi_op(op, arr.dtype))
            return _Request(self, req, ctx, self._avg(arr, op))
        host, back = self._host(arr)
        req = self._start(self.comm.Iallreduce, self.MPI.IN_PLACE, _typed(self.MPI, host),
                          self._mpi_op(op, host.dtype))
        return self._handle(req, ctx, [self._avg(host, op), back])

    def broadcast(self, arr, src, ctx):
        host, back = self._host(arr, copy_in=self.rank == src)
        req = self._start(self.comm.Ibcast, _raw(host), src)
        return self._handle(req, ctx, [back if self.rank != src else None])

    def reduce(self, arr, dst, op, ctx):
        host, back = self._host(arr)
        mop = self._mpi_op(op, host.dtype)
        if self.rank == dst:
            req = self._start(self.comm.Ireduce, self.MPI.IN_PLACE, _typed(self.MPI, host),
                              mop, dst)
            return self._handle(req, ctx, [self._avg(host, op), back])
        req = self._start(self.comm.Ireduce, _typed(self.MPI, host), None, mop, dst)
        return self._handle(req, ctx)

    def all_gather(self, out, inp, ctx):
        hin, _ = self._host(inp)
        hout, back = self._host(out, copy_in=False)
        req = self._start(self.comm.Iallgather, _raw(hin), _raw(hout))
        return self._handle(req, ctx, [back])

    def gather(self, out, inp, dst, ctx):
        hin, _ = self._host(inp)
        hout, back = self._host(out, copy_in=False)
        req = self._start(self.comm.Igather, _raw(hin), _raw(hout) if self.rank == dst else None,
                          dst)
        return self._handle(req, ctx, [back])

    def scatter(self, out, inp, src, ctx):
        hin, _ = self._host(inp)
        hout, back = self._host(out, copy_in=False)
        req = self._start(self.comm.Iscatter, _raw(hin) if self.rank == src else None,
                          _raw(hout), src)
        return self._handle(req, ctx, [back])

    def reduce_scatter(self, out, inp, op, ctx):
        hin, _ = self._host(inp)
        hout, back = self._host(out, copy_in=False)
        req = self._start(self.comm.Ireduce_scatter_block, _typed(self.MPI, hin),
                          _typed(self.MPI, hout), self._mpi_op(op, hin.dtype))
        return self._handle(req, ctx, [self._avg(hout, op), back])

    def all_to_all(self, out, inp, out_counts, in_counts, ctx):
        hin, _ = self._host(inp)
        hout, back = self._host(out, copy_in=False)
        item = inp.dtype.itemsize
        scounts = [c * item for c in in_counts]
        rcounts = [c * item for c in out_counts]
        sdispl = np.cumsum([0] + scounts[:-1]).tolist()
        rdispl = np.cumsum([0] + rcounts[:-1]).tolist()
        req = self._start(self.comm.Ialltoallv, [_raw(hin), (scounts, sdispl), self.MPI.BYTE],
                          [_raw(hout), (rcounts, rdispl), self.MPI.BYTE])
        return self._handle(req, ctx, [back])

    def send(self, arr, dst, tag, ctx):
        host, _ = self._host(arr)
        req = self._start(self.comm.Isend, _raw(host), dst, tag)
        return self._handle(req, ctx)

    def recv(self, arr, src, tag, ctx):
        host, back = self._host(arr, copy_in=False)
        source = self.MPI.ANY_SOURCE if src is None else src
        req = self._start(self.comm.Irecv, _raw(host), source, tag)
        return self._handle(req, ctx, [back], want_source=True)

    def barrier(self, ctx):
        return self._handle(self._start(self.comm.Ibarrier), ctx)

    def exchange_fingerprints(self, text, ctx):
        data = text.encode()[:_FP_BYTES].ljust(_FP_BYTES, b"\0")
        send = np.frombuffer(data, np.uint8).copy()
        recv = np.empty((self.size, _FP_BYTES), np.uint8)
        self._handle(self._start(self.comm.Iallgather, send, recv), ctx).wait()
        return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in recv]

    def split(self, ranks, group_id):
        MPI = self.MPI
        member = self.rank in ranks
        sub = self._start(self.comm.Split, 0 if member else MPI.UNDEFINED,
                          ranks.index(self.rank) if member else 0)
        if not member:
            return None
        return MPIBackend(sub, self.progress)

    def close(self):
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        if self.comm is not None and mpi_loaded() and not self.MPI.Is_finalized():
            try:
                self.comm.Free()
            except Exception:  # freeing is best effort; a broken world may refuse it
                pass
        self.comm = None
