"""The NCCL backend: ``cupy.cuda.nccl`` communicators on CuPy arrays, one GPU per rank.

The unique id is made by rank 0 and travels through the rendezvous store. Each operation is
enqueued on the backend's own CUDA stream after that stream waits for the caller's current stream
(so inputs written by earlier kernels are ready), and completion is an event recorded after it.
Waiting polls the event (and NCCL's asynchronous error state) against the group's deadline; on
timeout or error the communicator is aborted, so no rank stays blocked in NCCL.

Reductions NCCL lacks (bitwise ``BAND``/``BOR``/``BXOR``) raise; host arrays use the MPI backend.
Untested on machines without a GPU (the tests skip); keep changes reviewable against NCCL's API.
"""

from __future__ import annotations

import time

from .._backend import cupy_module
from .backend import Backend, Handle, ReduceOp
from .errors import DistBackendError


def _nccl():
    cupy_module()
    from cupy.cuda import nccl

    return nccl


def _dtype(nccl, dtype):
    table = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
             "float64": nccl.NCCL_FLOAT64, "int8": nccl.NCCL_INT8, "uint8": nccl.NCCL_UINT8,
             "int32": nccl.NCCL_INT32, "uint32": nccl.NCCL_UINT32, "int64": nccl.NCCL_INT64,
             "uint64": nccl.NCCL_UINT64, "bool": nccl.NCCL_UINT8}
    try:
        return table[str(dtype)]
    except KeyError:
        raise TypeError(f"NCCL backend: unsupported dtype {dtype}") from None


def _op(nccl, op, dtype):
    if str(dtype) == "bool" and op in (ReduceOp.SUM, ReduceOp.MAX):
        return nccl.NCCL_MAX
    if str(dtype) == "bool" and op in (ReduceOp.PRODUCT, ReduceOp.MIN):
        return nccl.NCCL_MIN
    table = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.PRODUCT: nccl.NCCL_PROD,
             ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.MAX: nccl.NCCL_MAX,
             ReduceOp.AVG: getattr(nccl, "NCCL_AVG", nccl.NCCL_SUM)}
    if op not in table:
        raise RuntimeError(f"NCCL backend: {op} is not supported by NCCL")
    return table[op]


class _EventHandle(Handle):
    """Completion of work enqueued on the backend's stream."""

    def __init__(self, backend, event, ctx, post=None):
        super().__init__(ctx, post)
        self.backend = backend
        self.event = event

    def _check(self):
        comm = self.backend.comm
        if comm is None:
            raise DistBackendError(f"{self.ctx.describe()}: the NCCL communicator was aborted")
        try:
            comm.check_async_error()  # raises NcclError when NCCL failed asynchronously
        except RuntimeError as exc:
            self.backend.abort()
            raise DistBackendError(f"NCCL error during {self.ctx.describe()}: {exc}") from exc

    def test(self):
        self._check()
        return self.event.done

    def wait(self):
        while not self.test():
            if time.monotonic() > self.ctx.deadline:
                err = self.ctx.timeout_error()
                self.backend.abort()
                raise err
            time.sleep(2e-5)
        # NOTE: later kernels on the caller's stream must see the result
        cupy_module().cuda.get_current_stream().wait_event(self.event)

    def wait_blocking(self):
        self.wait()


class NCCLBackend(Backend):
    """An NCCL communicator over ``size`` ranks, created through ``store``."""

    name = "nccl"

    def __init__(self, store, group_name, rank, size, device_index, timeout):
        super().__init__(rank, size)
        cp = cupy_module()
        nccl = self.nccl = _nccl()
        self.device = cp.cuda.Device(device_index)
        self.device.use()
        key = f"dtorch/nccl/{group_name}/unique_id"
        if rank == 0:
            uid = nccl.get_unique_id()
            store.set(key, ",".join(str(int(b)) for b in uid))
        else:
            from datetime import timedelta

            store.wait([key], timedelta(seconds=timeout))
            uid = tuple(int(b) for b in store.get(key).decode().split(","))
        self.comm = nccl.NcclCommunicator(size, uid, rank)
        self.stream = cp.cuda.Stream(non_blocking=True)
        self._store, self._group = store, group_name

    def _launch(self, ctx, fn, post=None):
        cp = cupy_module()
        with self.device:
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())
            self.stream.wait_event(ready)
            fn(self.stream.ptr)
            done = cp.cuda.Event(disable_timing=True)
            done.record(self.stream)
        return _EventHandle(self, done, ctx, post)

    def _avg_post(self, arr, op):
        if op is ReduceOp.AVG and not hasattr(self.nccl, "NCCL_AVG"):
            return lambda: arr.__itruediv__(self.size)
        return None

    def all_reduce(self, arr, op, ctx):
        d, o = _dtype(self.nccl, arr.dtype), _op(self.nccl, op, arr.dtype)
        return self._launch(ctx, lambda s: self.comm.allReduce(
            arr.data.ptr, arr.data.ptr, arr.size, d, o, s), self._avg_post(arr, op))

    def broadcast(self, arr, src, ctx):
        d = _dtype(self.nccl, arr.dtype)
        return self._launch(ctx, lambda s: self.comm.broadcast(
            arr.data.ptr, arr.data.ptr, arr.size, d, src, s))

    def reduce(self, arr, dst, op, ctx):
        d, o = _dtype(self.nccl, arr.dtype), _op(self.nccl, op, arr.dtype)
        post = self._avg_post(arr, op) if self.rank == dst else None
        return self._launch(ctx, lambda s: self.comm.reduce(
            arr.data.ptr, arr.data.ptr, arr.size, d, o, dst, s), post)

    def all_gather(self, out, inp, ctx):
        d = _dtype(self.nccl, inp.dtype)
        return self._launch(ctx, lambda s: self.comm.allGather(
            inp.data.ptr, out.data.ptr, inp.size, d, s))

    def _grouped(self, ctx, sends, recvs):
        """Grouped point-to-point calls: sends/recvs are (array, peer) lists."""
        def run(s):
            self.nccl.groupStart()
            try:
                for arr, peer in sends:
                    self.comm.send(arr.data.ptr, arr.size, _dtype(self.nccl, arr.dtype), peer, s)
                for arr, peer in recvs:
                    self.comm.recv(arr.data.ptr, arr.size, _dtype(self.nccl, arr.dtype), peer, s)
            finally:
                self.nccl.groupEnd()

        return self._launch(ctx, run)

    def gather(self, out, inp, dst, ctx):
        if self.rank != dst:
            return self._grouped(ctx, [(inp, dst)], [])
        out[dst] = inp
        return self._grouped(ctx, [], [(out[r], r) for r in range(self.size) if r != dst])

    def scatter(self, out, inp, src, ctx):
        if self.rank != src:
            return self._grouped(ctx, [], [(out, src)])
        out[...] = inp[src]
        return self._grouped(ctx, [(inp[r], r) for r in range(self.size) if r != src], [])

    def reduce_scatter(self, out, inp, op, ctx):
        d, o = _dtype(self.nccl, out.dtype), _op(self.nccl, op, out.dtype)
        return self._launch(ctx, lambda s: self.comm.reduceScatter(
            inp.data.ptr, out.data.ptr, out.size, d, o, s), self._avg_post(out, op))

    def all_to_all(self, out, inp, out_counts, in_counts, ctx):
        fin, fout = inp.reshape(-1), out.reshape(-1)
        si = [sum(in_counts[:j]) for j in range(self.size)]
        so = [sum(out_counts[:j]) for j in range(self.size)]
        sends = [(fin[si[j]: si[j] + in_counts[j]], j) for j in range(self.size) if in_counts[j]]
        recvs = [(fout[so[j]: so[j] + out_counts[j]], j) for j in range(self.size)
                 if out_counts[j]]
        return self._grouped(ctx, sends, recvs)

    def send(self, arr, dst, tag, ctx):
        return self._grouped(ctx, [(arr, dst)], [])

    def recv(self, arr, src, tag, ctx):
        if src is None:
            raise ValueError("NCCL backend: recv needs an explicit src (no any-source receive)")
        handle = self._grouped(ctx, [], [(arr, src)])
        handle.source = src
        return handle

    def barrier(self, ctx):
        one = cupy_module().zeros(1, "float32")
        return self.all_reduce(one, ReduceOp.SUM, ctx)

    def exchange_fingerprints(self, text, ctx):
        raise RuntimeError("NCCL backend: fingerprints are exchanged by the host backend")

    def split(self, ranks, group_id):
        raise RuntimeError("NCCL backend: sub-groups create their own communicator lazily")

    def abort(self):
        """Abort the communicator so that no rank stays blocked inside NCCL."""
        if self.comm is not None:
            try:
                self.comm.abort()
            finally:
                self.comm = None

    def close(self):
        if self.comm is not None:
            self.comm.destroy()
            self.comm = None
