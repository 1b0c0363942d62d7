"""The collective and point-to-point API on Tensors, with ``torch.distributed``'s signatures.

Each function takes the tensor's array (``t._data``), hands the backend a contiguous buffer --
the array itself when it is contiguous, so that results land in place and views stay views --
and writes results back into the tensors' storage. Ranks (``src``, ``dst``, ``peer``) are global
ranks, as in PyTorch; ``group_src`` etc. give a rank within ``group`` instead. With
``async_op=True`` a :class:`~dtorch.distributed.backend.Work` is returned and the outputs are
valid after ``work.wait()``. Plain NumPy/CuPy arrays are accepted wherever a tensor is.
"""

from __future__ import annotations

import pickle
import time

import numpy as np

from .._backend import get_array_module, is_cuda_array
from .backend import OpContext, ReduceOp, check_reduce_dtype
from .errors import DistError
from .process_group import resolve

_MONITOR_TAG = 32767  # reserved for monitored_barrier (the smallest tag bound MPI guarantees)


def _data(t, what):
    d = getattr(t, "_data", None)
    if d is not None:
        return d
    if isinstance(t, np.ndarray) or is_cuda_array(t):
        return t
    raise TypeError(f"{what} must be a dtorch.Tensor, got {type(t).__name__}")


def _touch(t):
    vbox = getattr(t, "_vbox", None)
    if vbox is not None:
        vbox[0] += 1


def _inout(t, arr, reduce=False):
    """A contiguous buffer for ``t``'s array and the finalizer that writes the result back."""
    if reduce and arr.dtype == np.float16:  # NOTE: MPI has no half type; reduce in float32
        buf = arr.astype(np.float32)
    elif arr.flags.c_contiguous and arr.flags.writeable:
        _touch(t)  # written in place: count the write now, as an in-place op does
        return arr, ()
    else:
        buf = get_array_module(arr).ascontiguousarray(arr)

    def back():
        arr[...] = buf
        _touch(t)

    return buf, (back,)


def _contig(arr):
    return arr if arr.flags.c_contiguous else get_array_module(arr).ascontiguousarray(arr)


def _root(pg, glob, local, name, opname):
    """The group rank of a root given as a global rank (``src``) or group rank (``group_src``)."""
    if local is not None:
        if glob is not None:
            raise ValueError(f"{opname}: give only one of {name} and group_{name}")
        if not 0 <= local < pg.size():
            raise ValueError(f"{opname}: group_{name}={local} is outside [0, {pg.size()})")
        return local
    return pg.group_rank(0 if glob is None else glob, name)


def _same(arrs, ref, what):
    for i, a in enumerate(arrs):
        if a.shape != ref.shape or a.dtype != ref.dtype:
            raise ValueError(f"{what}[{i}] is {a.dtype}{list(a.shape)} but the tensor is "
                             f"{ref.dtype}{list(ref.shape)}")


def _copy_out(tensors, buf):
    """Finalizer writing ``buf[i]`` into ``tensors[i]``."""
    def back():
        for i, t in enumerate(tensors):
            _data(t, "output")[...] = buf[i].reshape(_data(t, "output").shape)
            _touch(t)

    return back


def _check_count(tensors, pg, what):
    if len(tensors) != pg.size():
        raise ValueError(f"{what} has {len(tensors)} tensors but the group has {pg.size()} ranks")


# --- collectives -----------------------------------------------------------------------------
def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` over all ranks of ``group``; every rank gets the result in place.

    ``out = t_0 op t_1 op ... op t_{n-1}``; ``ReduceOp.AVG`` divides the sum by n.

    Example::

        >>> t = dtorch.tensor([float(dist.get_rank())]); dist.all_reduce(t)  # sum of ranks
    """
    pg = resolve(group)
    if pg is None:
        return None
    arr = _data(tensor, "all_reduce: tensor")
    check_reduce_dtype(op, arr.dtype, "all_reduce")
    ctx = pg.begin("all_reduce", (arr,), op)
    buf, fin = _inout(tensor, arr, reduce=True)
    be = pg.backend_for(arr)
    return be.finish(be.all_reduce(buf, op, ctx), async_op, fin, [tensor])


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Copy ``tensor`` of rank ``src`` into ``tensor`` of every rank of ``group``."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, src, group_src, "src", "broadcast")
    arr = _data(tensor, "broadcast: tensor")
    ctx = pg.begin("broadcast", (arr,), root=root)
    buf, fin = _inout(tensor, arr)
    be = pg.backend_for(arr)
    return be.finish(be.broadcast(buf, root, ctx), async_op, fin, [tensor])


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """Reduce ``tensor`` over all ranks into ``tensor`` of rank ``dst`` (others: unchanged)."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, dst, group_dst, "dst", "reduce")
    arr = _data(tensor, "reduce: tensor")
    check_reduce_dtype(op, arr.dtype, "reduce")
    ctx = pg.begin("reduce", (arr,), op, root)
    buf, fin = _inout(tensor, arr, reduce=True)
    if pg.rank() != root:
        fin = ()
    be = pg.backend_for(arr)
    return be.finish(be.reduce(buf, root, op, ctx), async_op, fin, [tensor])


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """``tensor_list[i]`` of every rank receives ``tensor`` of rank i."""
    pg = resolve(group)
    if pg is None:
        return None
    arr = _data(tensor, "all_gather: tensor")
    _check_count(tensor_list, pg, "all_gather: tensor_list")
    what = "all_gather: tensor_list"
    _same([_data(t, what) for t in tensor_list], arr, what)
    ctx = pg.begin("all_gather", (arr,))
    xp = get_array_module(arr)
    out = xp.empty((pg.size(),) + arr.shape, arr.dtype)
    be = pg.backend_for(arr)
    return be.finish(be.all_gather(out, _contig(arr), ctx), async_op,
                     (_copy_out(tensor_list, out),), tensor_list)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Gather every rank's ``input_tensor`` into ``output_tensor``, concatenated along dim 0
    (``output`` of shape ``(n * d0, ...)``) or stacked (``(n, d0, ...)``)."""
    pg = resolve(group)
    if pg is None:
        return None
    inp = _data(input_tensor, "all_gather_into_tensor: input_tensor")
    out = _data(output_tensor, "all_gather_into_tensor: output_tensor")
    if out.size != pg.size() * inp.size or out.dtype != inp.dtype:
        raise ValueError(f"all_gather_into_tensor: output {out.dtype}{list(out.shape)} must hold "
                         f"{pg.size()} x input {inp.dtype}{list(inp.shape)}")
    ctx = pg.begin("all_gather_into_tensor", (inp,))
    buf, fin = _inout(output_tensor, out)
    be = pg.backend_for(inp)
    return be.finish(be.all_gather(buf.reshape((pg.size(),) + inp.shape), _contig(inp), ctx),
                     async_op, fin, [output_tensor])


def gather(tensor, gather_list=None, dst=None, group=None, async_op=False, group_dst=None):
    """``gather_list[i]`` of rank ``dst`` receives ``tensor`` of rank i."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, dst, group_dst, "dst", "gather")
    arr = _data(tensor, "gather: tensor")
    out = None
    fin = ()
    if pg.rank() == root:
        if gather_list is None:
            raise ValueError("gather: gather_list is required on the destination rank")
        _check_count(gather_list, pg, "gather: gather_list")
        _same([_data(t, "gather: gather_list") for t in gather_list], arr, "gather: gather_list")
        out = get_array_module(arr).empty((pg.size(),) + arr.shape, arr.dtype)
        fin = (_copy_out(gather_list, out),)
    elif gather_list:
        raise ValueError("gather: gather_list must not be given on non-destination ranks")
    ctx = pg.begin("gather", (arr,), root=root)
    be = pg.backend_for(arr)
    return be.finish(be.gather(out, _contig(arr), root, ctx), async_op, fin, gather_list)


def scatter(tensor, scatter_list=None, src=None, group=None, async_op=False, group_src=None):
    """``tensor`` of rank i receives ``scatter_list[i]`` of rank ``src``."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, src, group_src, "src", "scatter")
    arr = _data(tensor, "scatter: tensor")
    inp = None
    if pg.rank() == root:
        if scatter_list is None:
            raise ValueError("scatter: scatter_list is required on the source rank")
        _check_count(scatter_list, pg, "scatter: scatter_list")
        arrs = [_data(t, "scatter: scatter_list") for t in scatter_list]
        _same(arrs, arr, "scatter: scatter_list")
        inp = get_array_module(arr).stack(arrs)
    elif scatter_list:
        raise ValueError("scatter: scatter_list must not be given on non-source ranks")
    ctx = pg.begin("scatter", (arr,), root=root)
    buf, fin = _inout(tensor, arr)
    be = pg.backend_for(arr)
    return be.finish(be.scatter(buf, inp, root, ctx), async_op, fin, [tensor])


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """``output`` of rank i = reduction over ranks of their ``input_list[i]``."""
    pg = resolve(group)
    if pg is None:
        return None
    arr = _data(output, "reduce_scatter: output")
    check_reduce_dtype(op, arr.dtype, "reduce_scatter")
    _check_count(input_list, pg, "reduce_scatter: input_list")
    arrs = [_data(t, "reduce_scatter: input_list") for t in input_list]
    _same(arrs, arr, "reduce_scatter: input_list")
    ctx = pg.begin("reduce_scatter", (arr,), op)
    buf, fin = _inout(output, arr, reduce=True)
    inp = get_array_module(arr).stack(arrs).astype(buf.dtype, copy=False)
    be = pg.backend_for(arr)
    return be.finish(be.reduce_scatter(buf, inp, op, ctx), async_op, fin, [output])


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):  # noqa: A002
    """Reduce ``input`` (``n`` chunks along dim 0) over ranks; rank i gets chunk i in ``output``."""
    pg = resolve(group)
    if pg is None:
        return None
    out = _data(output, "reduce_scatter_tensor: output")
    inp = _data(input, "reduce_scatter_tensor: input")
    check_reduce_dtype(op, out.dtype, "reduce_scatter_tensor")
    if inp.size != pg.size() * out.size or inp.dtype != out.dtype:
        raise ValueError(f"reduce_scatter_tensor: input {inp.dtype}{list(inp.shape)} must hold "
                         f"{pg.size()} x output {out.dtype}{list(out.shape)}")
    ctx = pg.begin("reduce_scatter_tensor", (inp,), op)
    buf, fin = _inout(output, out, reduce=True)
    src = _contig(inp).astype(buf.dtype, copy=False).reshape((pg.size(),) + out.shape)
    be = pg.backend_for(inp)
    return be.finish(be.reduce_scatter(buf, src, op, ctx), async_op, fin, [output])


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """Rank i sends ``input_tensor_list[j]`` to rank j, which receives it in its
    ``output_tensor_list[i]`` (sizes may differ per pair; dtypes must agree)."""
    pg = resolve(group)
    if pg is None:
        return None
    _check_count(input_tensor_list, pg, "all_to_all: input_tensor_list")
    _check_count(output_tensor_list, pg, "all_to_all: output_tensor_list")
    ins = [_data(t, "all_to_all: input_tensor_list") for t in input_tensor_list]
    outs = [_data(t, "all_to_all: output_tensor_list") for t in output_tensor_list]
    dtypes = {a.dtype for a in ins + outs}
    if len(dtypes) != 1:
        raise ValueError("all_to_all: tensors must share one dtype, got "
                         f"{sorted(map(str, dtypes))}")
    xp = get_array_module(ins[0])
    inp = xp.concatenate([a.reshape(-1) for a in ins])
    out = xp.empty(sum(a.size for a in outs), ins[0].dtype)
    ctx = pg.begin("all_to_all", (ins[0],), shapes=False)
    offsets = np.cumsum([0] + [a.size for a in outs]).tolist()

    def back():
        for i, t in enumerate(output_tensor_list):
            outs[i][...] = out[offsets[i]: offsets[i + 1]].reshape(outs[i].shape)
            _touch(t)

    be = pg.backend_for(ins[0])
    handle = be.all_to_all(out, inp, [a.size for a in outs], [a.size for a in ins], ctx)
    return be.finish(handle, async_op, (back,), output_tensor_list)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,  # noqa: A002
                      group=None, async_op=False):
    """Split ``input`` along dim 0 (evenly, or by ``input_split_sizes``), send part j to rank
    j, and concatenate what arrives into ``output`` (by ``output_split_sizes``)."""
    pg = resolve(group)
    if pg is None:
        return None
    out = _data(output, "all_to_all_single: output")
    inp = _data(input, "all_to_all_single: input")
    n = pg.size()

    def counts(arr, splits, what):
        rows = arr.shape[0] if arr.ndim else 1
        row = arr.size // rows if rows else 0
        if splits is None:
            if rows % n:
                raise ValueError(f"all_to_all_single: {what} dim 0 ({rows}) is not divisible by "
                                 f"the group size {n}; give {what}_split_sizes")
            return [rows // n * row] * n
        splits = [int(s) for s in splits]
        if len(splits) != n or sum(splits) != rows:
            raise ValueError(f"all_to_all_single: {what}_split_sizes {splits} must have {n} "
                             f"entries summing to {what} dim 0 ({rows})")
        return [s * row for s in splits]

    in_counts = counts(inp, input_split_sizes, "input")
    out_counts = counts(out, output_split_sizes, "output")
    if inp.dtype != out.dtype:
        raise ValueError(f"all_to_all_single: input is {inp.dtype} but output is {out.dtype}")
    ctx = pg.begin("all_to_all_single", (inp,), shapes=False)
    buf, fin = _inout(output, out)
    be = pg.backend_for(inp)
    return be.finish(be.all_to_all(buf, _contig(inp), out_counts, in_counts, ctx), async_op,
                     fin, [output])


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank of ``group`` has entered the barrier."""
    pg = resolve(group)
    if pg is None:
        return None
    ctx = pg.begin("barrier")
    return pg.cpu.finish(pg.cpu.barrier(ctx), async_op)


def monitored_barrier(group=None, timeout=None, wait_all_ranks=False):
    """A barrier whose timeout names the ranks that did not arrive (from rank 0's view).

    Ranks report to the group's first rank with point-to-point messages (tag 32767 is reserved
    for this). On a timeout, rank 0 raises naming the first missing rank, or all of them with
    ``wait_all_ranks=True``; the other ranks raise when rank 0 does not release them.
    """
    pg = resolve(group)
    if pg is None:
        return None
    seconds = pg.timeout if timeout is None else (
        timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout))
    be = pg.cpu
    token = np.zeros(1, np.int64)
    if pg.size() == 1:
        return None
    if pg.rank() != 0:
        be.finish(be.send(token, 0, _MONITOR_TAG, _p2p_ctx(pg, "monitored_barrier", 0, seconds)),
                  False)
        ctx = _p2p_ctx(pg, "monitored_barrier (waiting for rank 0 to release)", 0, seconds)
        be.finish(be.recv(np.zeros(1, np.int64), 0, _MONITOR_TAG, ctx), False)
        return None
    deadline = time.monotonic() + seconds
    pending = {}
    for r in range(1, pg.size()):
        pending[r] = be.recv(np.zeros(1, np.int64), r, _MONITOR_TAG,
                             _p2p_ctx(pg, "monitored_barrier", r, seconds))
    while pending and time.monotonic() < deadline:
        for r in [r for r, h in pending.items() if h.test()]:
            del pending[r]
        if pending:
            time.sleep(1e-4)
    if pending:
        missing = sorted(pg.ranks[r] for r in pending)
        shown = missing if wait_all_ranks else missing[:1]
        raise DistError(f"monitored_barrier on {pg.desc}: rank{'s' if len(shown) > 1 else ''} "
                        f"{', '.join(map(str, shown))} failed to pass monitored_barrier in "
                        f"{seconds:.1f} s")
    for r in range(1, pg.size()):
        be.finish(be.send(token, r, _MONITOR_TAG, _p2p_ctx(pg, "monitored_barrier", r, seconds)),
                  False)
    return None


def _p2p_ctx(pg, op, peer, seconds):
    ctx = pg.p2p(op, peer)
    ctx.timeout = seconds
    ctx.deadline = time.monotonic() + seconds
    return ctx


# --- point to point --------------------------------------------------------------------------
def _peer(pg, glob, local, name, opname):
    peer = _root(pg, glob, local, name, opname) if (glob is not None or local is not None) \
        else None
    if peer is not None and peer == pg.rank():
        raise ValueError(f"{opname}: {name} rank {pg.ranks[peer]} is this process itself")
    return peer


def isend(tensor, dst=None, group=None, tag=0, group_dst=None):
    """Start sending ``tensor`` to rank ``dst``; returns a Work."""
    return _send(tensor, dst, group, tag, group_dst, True)


def send(tensor, dst=None, group=None, tag=0, group_dst=None):
    """Send ``tensor`` to rank ``dst`` (blocks until the buffer may be reused)."""
    _send(tensor, dst, group, tag, group_dst, False)


def _send(tensor, dst, group, tag, group_dst, async_op):
    pg = resolve(group)
    if pg is None:
        return None
    opname = "isend" if async_op else "send"
    if dst is None and group_dst is None:
        raise ValueError(f"{opname}: dst is required")
    peer = _peer(pg, dst, group_dst, "dst", opname)
    arr = _data(tensor, f"{opname}: tensor")
    be = pg.backend_for(arr)
    ctx = pg.p2p(f"{opname} to rank {pg.ranks[peer]} (tag {tag})", peer)
    return be.finish(be.send(_contig(arr), peer, tag, ctx), async_op)


def irecv(tensor, src=None, group=None, tag=0, group_src=None):
    """Start receiving into ``tensor`` from rank ``src`` (None: any); returns a Work whose
    ``source_rank()`` tells the sender's rank within the group."""
    return _recv(tensor, src, group, tag, group_src, True)


def recv(tensor, src=None, group=None, tag=0, group_src=None):
    """Receive into ``tensor`` from rank ``src`` (None: any rank); returns the sender's rank."""
    return _recv(tensor, src, group, tag, group_src, False)


def _recv(tensor, src, group, tag, group_src, async_op):
    pg = resolve(group)
    if pg is None:
        return -1
    opname = "irecv" if async_op else "recv"
    peer = _peer(pg, src, group_src, "src", opname)
    arr = _data(tensor, f"{opname}: tensor")
    buf, fin = _inout(tensor, arr)
    be = pg.backend_for(arr)
    who = "any rank" if peer is None else f"rank {pg.ranks[peer]}"
    handle = be.recv(buf, peer, tag, pg.p2p(f"{opname} from {who} (tag {tag})", peer))
    work = be.finish(handle, async_op, fin, [tensor])
    if async_op:
        return work
    return pg.ranks[handle.source] if group_src is None else handle.source


class P2POp:
    """One point-to-point operation for :func:`batch_isend_irecv`.

    Args:
        op: :func:`isend` or :func:`irecv`.
        tensor: the tensor to send or receive into.
        peer (int): the other rank (global), or ``group_peer`` within ``group``.
    """

    def __init__(self, op, tensor, peer=None, group=None, tag=0, group_peer=None):
        if op not in (isend, irecv):
            raise ValueError("P2POp: op must be dtorch.distributed.isend or irecv, got "
                             f"{getattr(op, '__name__', op)!r}")
        if peer is None and group_peer is None:
            raise ValueError("P2POp: peer is required")
        self.op, self.tensor, self.peer = op, tensor, peer
        self.group, self.tag, self.group_peer = group, tag, group_peer

    def __repr__(self):
        return f"P2POp({self.op.__name__}, peer={self.peer}, tag={self.tag})"


def batch_isend_irecv(p2p_op_list):
    """Start every operation of the list (all nonblocking); returns their Works."""
    if not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise TypeError("batch_isend_irecv: expected a list of P2POp")
    works = []
    for p in p2p_op_list:
        if p.op is isend:
            works.append(isend(p.tensor, p.peer, p.group, p.tag, p.group_peer))
        else:
            works.append(irecv(p.tensor, p.peer, p.group, p.tag, p.group_peer))
    return works


# --- object collectives (pickle: for trusted peers only) --------------------------------------
def _to_bytes(obj):
    return np.frombuffer(pickle.dumps(obj), np.uint8)


def _from_bytes(arr, n):
    return pickle.loads(arr[:n].tobytes())  # noqa: S301 - trusted peers only (documented)


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """Replace ``object_list`` on every rank by rank ``src``'s (pickled).

    Security: unpickling runs arbitrary code; use object collectives among trusted ranks only.
    """
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, src, group_src, "src", "broadcast_object_list")
    data = _to_bytes(list(object_list)) if pg.rank() == root else None
    size = np.array([0 if data is None else data.size], np.int64)
    broadcast(size, group=group, group_src=root)
    buf = data.copy() if data is not None else np.empty(int(size[0]), np.uint8)
    broadcast(buf, group=group, group_src=root)
    if pg.rank() != root:
        object_list[:] = _from_bytes(buf, int(size[0]))
    return None


def all_gather_object(object_list, obj, group=None):
    """``object_list[i]`` of every rank receives ``obj`` of rank i (pickled; trusted peers)."""
    pg = resolve(group)
    if pg is None:
        return None
    data = _to_bytes(obj)
    sizes = np.empty(pg.size(), np.int64)
    all_gather_into_tensor(sizes, np.array([data.size], np.int64), group=group)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[: data.size] = data
    out = np.empty((pg.size(), buf.size), np.uint8)
    all_gather_into_tensor(out, buf, group=group)
    object_list[: pg.size()] = [_from_bytes(out[i], int(sizes[i])) for i in range(pg.size())]
    return None


def gather_object(obj, object_gather_list=None, dst=None, group=None, group_dst=None):
    """``object_gather_list[i]`` of rank ``dst`` receives ``obj`` of rank i (pickled)."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, dst, group_dst, "dst", "gather_object")
    if pg.rank() == root and object_gather_list is None:
        raise ValueError("gather_object: object_gather_list is required on the destination rank")
    data = _to_bytes(obj)
    sizes = np.empty(pg.size(), np.int64)
    all_gather_into_tensor(sizes, np.array([data.size], np.int64), group=group)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[: data.size] = data
    is_root = pg.rank() == root
    out = [np.empty(buf.size, np.uint8) for _ in range(pg.size())] if is_root else None
    gather(buf, out, group=group, group_dst=root)
    if is_root:
        object_gather_list[: pg.size()] = [_from_bytes(out[i], int(sizes[i]))
                                           for i in range(pg.size())]
    return None


def scatter_object_list(scatter_object_output_list, scatter_object_input_list=None, src=None,
                        group=None, group_src=None):
    """``scatter_object_output_list[0]`` of rank i receives ``scatter_object_input_list[i]`` of
    rank ``src`` (pickled; trusted peers only)."""
    pg = resolve(group)
    if pg is None:
        return None
    root = _root(pg, src, group_src, "src", "scatter_object_list")
    is_root = pg.rank() == root
    if is_root:
        if scatter_object_input_list is None or len(scatter_object_input_list) != pg.size():
            raise ValueError(f"scatter_object_list: scatter_object_input_list must have "
                             f"{pg.size()} objects on the source rank")
        datas = [_to_bytes(o) for o in scatter_object_input_list]
        longest = np.array([max(d.size for d in datas)], np.int64)
    else:
        longest = np.zeros(1, np.int64)
    broadcast(longest, group=group, group_src=root)
    chunks = sizes = None
    if is_root:
        chunks = [np.zeros(int(longest[0]), np.uint8) for _ in datas]
        for c, d in zip(chunks, datas):
            c[: d.size] = d
        sizes = [np.array([d.size], np.int64) for d in datas]
    buf = np.empty(int(longest[0]), np.uint8)
    size = np.zeros(1, np.int64)
    scatter(size, sizes, group=group, group_src=root)
    scatter(buf, chunks, group=group, group_src=root)
    if not scatter_object_output_list:
        raise ValueError("scatter_object_list: scatter_object_output_list must have length >= 1")
    scatter_object_output_list[0] = _from_bytes(buf, int(size[0]))
    return None


__all__ = [
    "OpContext", "ReduceOp", "all_reduce", "broadcast", "reduce", "all_gather",
    "all_gather_into_tensor", "gather", "scatter", "reduce_scatter", "reduce_scatter_tensor",
    "all_to_all", "all_to_all_single", "barrier", "monitored_barrier", "send", "recv", "isend",
    "irecv", "P2POp", "batch_isend_irecv", "broadcast_object_list", "all_gather_object",
    "gather_object", "scatter_object_list",
]
