"""Backend-agnostic collective checks, correct for any world size.

Each ``check_*`` runs on every rank of an initialised world and asserts closed-form results.
``tests/distributed/test_collectives_*.py`` run them under MPI (pytest-mpi), in the thread world
and in a single process. Tensors are dtorch Tensors when the core is importable, else arrays.
"""

import functools
import math
import operator
import time

import numpy as np

import dtorch.distributed as dist
from dtorch.distributed import ReduceOp

try:
    from dtorch import Tensor as _Tensor

    def T(arr):  # noqa: N802
        return _Tensor._wrap(np.asarray(arr))
except ImportError:  # the core Tensor is not importable (yet): exercise the array path
    _Tensor = None

    def T(arr):  # noqa: N802
        return np.asarray(arr)


def A(t):  # noqa: N802
    """The array of a tensor (or the array itself)."""
    return getattr(t, "_data", t)


DTYPES = ["float32", "float64", "int32", "int64"]
FLOAT_OPS = [ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
INT_OPS = [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.BAND,
           ReduceOp.BOR, ReduceOp.BXOR]


def _value(op, r):
    """Rank r's contribution for ``op``: chosen so that every closed form is exact."""
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR):
        return (1 << r) | 1 << 20
    return r + 1


def _expected(op, n):
    vals = [_value(op, r) for r in range(n)]
    return {
        ReduceOp.SUM: n * (n + 1) / 2, ReduceOp.AVG: (n + 1) / 2,
        ReduceOp.PRODUCT: math.factorial(n), ReduceOp.MIN: 1, ReduceOp.MAX: n,
        ReduceOp.BAND: functools.reduce(operator.and_, vals),
        ReduceOp.BOR: functools.reduce(operator.or_, vals),
        ReduceOp.BXOR: functools.reduce(operator.xor, vals),
    }[op]


def reduce_cases():
    return [(op, dt) for dt in DTYPES for op in (FLOAT_OPS if dt.startswith("float") else INT_OPS)]


def check_all_reduce(op, dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    t = T(np.full((2, 3), _value(op, r), dtype))
    assert dist.all_reduce(t, op=op) is None
    assert A(t).dtype == np.dtype(dtype)
    np.testing.assert_array_equal(A(t), np.full((2, 3), _expected(op, n), dtype))


def check_reduce(op, dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    for dst in range(n):
        t = T(np.full(5, _value(op, r), dtype))
        dist.reduce(t, dst=dst, op=op)
        if r == dst:
            np.testing.assert_array_equal(A(t), np.full(5, _expected(op, n), dtype))


def check_reduce_scatter(op, dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    # rank r's chunk i is (value(r) + 10 * i) for SUM-like checks; use op-specific closed form
    inputs = [T(np.full(3, _value(op, r), dtype)) for _ in range(n)]
    out = T(np.zeros(3, dtype))
    dist.reduce_scatter(out, inputs, op=op)
    np.testing.assert_array_equal(A(out), np.full(3, _expected(op, n), dtype))
    big = T(np.full((n * 2, 2), _value(op, r), dtype))
    out2 = T(np.zeros((2, 2), dtype))
    dist.reduce_scatter_tensor(out2, big, op=op)
    np.testing.assert_array_equal(A(out2), np.full((2, 2), _expected(op, n), dtype))


def check_broadcast(dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    for src in range(n):
        t = T(np.full(7, r * 10 + 3, dtype))
        dist.broadcast(t, src=src)
        np.testing.assert_array_equal(A(t), np.full(7, src * 10 + 3, dtype))


def check_all_gather(dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    mine = T(np.arange(4, dtype=dtype) + 100 * r)
    outs = [T(np.zeros(4, dtype)) for _ in range(n)]
    dist.all_gather(outs, mine)
    for i in range(n):
        np.testing.assert_array_equal(A(outs[i]), np.arange(4, dtype=dtype) + 100 * i)
    cat = T(np.zeros(4 * n, dtype))
    dist.all_gather_into_tensor(cat, mine)
    np.testing.assert_array_equal(A(cat), np.concatenate([np.arange(4) + 100 * i
                                                          for i in range(n)]).astype(dtype))
    stacked = T(np.zeros((n, 4), dtype))
    dist.all_gather_into_tensor(stacked, mine)
    np.testing.assert_array_equal(A(stacked), A(cat).reshape(n, 4))


def check_gather_scatter(dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    for root in range(n):
        lst = [T(np.zeros(3, dtype)) for _ in range(n)] if r == root else None
        dist.gather(T(np.full(3, r + 1, dtype)), lst, dst=root)
        if r == root:
            for i in range(n):
                np.testing.assert_array_equal(A(lst[i]), np.full(3, i + 1, dtype))
        src_list = [T(np.full(3, 7 * i, dtype)) for i in range(n)] if r == root else None
        out = T(np.zeros(3, dtype))
        dist.scatter(out, src_list, src=root)
        np.testing.assert_array_equal(A(out), np.full(3, 7 * r, dtype))


def check_all_to_all(dtype):
    r, n = dist.get_rank(), dist.get_world_size()
    # rank r sends (j + 1) elements valued 100 r + j to rank j (uneven sizes)
    ins = [T(np.full(j + 1, 100 * r + j, dtype)) for j in range(n)]
    outs = [T(np.zeros(r + 1, dtype)) for _ in range(n)]
    dist.all_to_all(outs, ins)
    for i in range(n):
        np.testing.assert_array_equal(A(outs[i]), np.full(r + 1, 100 * i + r, dtype))
    # all_to_all_single, even split: row j of rank r's input goes to rank j
    inp = T(np.array([[100 * r + j, -j] for j in range(n)], dtype))
    out = T(np.zeros((n, 2), dtype))
    dist.all_to_all_single(out, inp)
    np.testing.assert_array_equal(A(out), np.array([[100 * i + r, -r] for i in range(n)], dtype))
    # uneven split: rank r sends j + 1 rows to rank j, receives r + 1 rows from each
    rows = [np.full((j + 1, 2), 100 * r + j, dtype) for j in range(n)]
    inp = T(np.concatenate(rows))
    out = T(np.zeros((n * (r + 1), 2), dtype))
    dist.all_to_all_single(out, inp, output_split_sizes=[r + 1] * n,
                           input_split_sizes=[j + 1 for j in range(n)])
    want = np.concatenate([np.full((r + 1, 2), 100 * i + r, dtype) for i in range(n)])
    np.testing.assert_array_equal(A(out), want)


def check_p2p():
    r, n = dist.get_rank(), dist.get_world_size()
    nxt, prv = (r + 1) % n, (r - 1) % n
    # blocking ring: even ranks send first, odd ranks receive first
    got = T(np.zeros(3, np.float64))
    msg = T(np.full(3, float(r)))
    if r % 2 == 0:
        dist.send(msg, dst=nxt, tag=5)
        src = dist.recv(got, src=prv, tag=5)
    else:
        src = dist.recv(got, src=prv, tag=5)
        dist.send(msg, dst=nxt, tag=5)
    assert src == prv
    np.testing.assert_array_equal(A(got), np.full(3, float(prv)))
    # nonblocking ring, receive posted first everywhere
    got = T(np.zeros(2, np.int64))
    rw = dist.irecv(got, src=prv)
    sw = dist.isend(T(np.array([r, 2 * r], np.int64)), dst=nxt)
    rw.wait()
    sw.wait()
    np.testing.assert_array_equal(A(got), [prv, 2 * prv])
    # batch_isend_irecv in both directions
    a, b = T(np.zeros(1)), T(np.zeros(1))
    ops = [dist.P2POp(dist.irecv, a, prv), dist.P2POp(dist.irecv, b, nxt, tag=1),
           dist.P2POp(dist.isend, T(np.array([r + 0.5])), nxt),
           dist.P2POp(dist.isend, T(np.array([-r - 0.5])), prv, tag=1)]
    for w in dist.batch_isend_irecv(ops):
        w.wait()
    assert A(a)[0] == prv + 0.5 and A(b)[0] == -nxt - 0.5
    # receive from any source: rank 0 collects one message from each other rank
    if r == 0:
        seen = set()
        for _ in range(n - 1):
            buf = T(np.zeros(1, np.int64))
            src = dist.recv(buf, tag=9)
            assert A(buf)[0] == src * 11
            seen.add(src)
        assert seen == set(range(1, n))
    else:
        dist.send(T(np.array([r * 11], np.int64)), dst=0, tag=9)


def check_barriers_and_objects():
    r, n = dist.get_rank(), dist.get_world_size()
    dist.barrier()
    dist.barrier(async_op=True).wait()
    dist.monitored_barrier(timeout=30)
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": r, "s": "x" * r})
    assert objs == [{"rank": i, "s": "x" * i} for i in range(n)]
    lst = [1, "two", {"three": 3}] if r == 0 else [None, None, None]
    dist.broadcast_object_list(lst, src=0)
    assert lst == [1, "two", {"three": 3}]
    gl = [None] * n if r == n - 1 else None
    dist.gather_object(("r", r), gl, dst=n - 1)
    if r == n - 1:
        assert gl == [("r", i) for i in range(n)]
    out = [None]
    dist.scatter_object_list(out, [[i] * i for i in range(n)] if r == 0 else None, src=0)
    assert out[0] == [r] * r


def check_async_and_layout():
    r, n = dist.get_rank(), dist.get_world_size()
    t = T(np.full(1000, r + 1.0, np.float32))
    work = dist.all_reduce(t, async_op=True)
    assert work.wait() is True and work.is_completed() and work.is_success()
    np.testing.assert_array_equal(A(t), np.full(1000, n * (n + 1) / 2, np.float32))
    assert A(work.result()[0]) is A(t)
    # a non-contiguous view: the result lands in the base array
    base = np.zeros((4, 3), np.float64)
    base[:, 1] = r + 1
    view = base[:, 1]
    dist.all_reduce(view)
    np.testing.assert_array_equal(base[:, 1], np.full(4, n * (n + 1) / 2))
    np.testing.assert_array_equal(base[:, [0, 2]], 0)
    # float16 is reduced in float32 and written back as float16
    h = T(np.full(3, 0.5, np.float16))
    dist.all_reduce(h)
    assert A(h).dtype == np.float16 and (A(h) == 0.5 * n).all()
    # bool: SUM is logical or, PRODUCT logical and
    b = T(np.array([r == 0, True, False]))
    dist.all_reduce(b)
    np.testing.assert_array_equal(A(b), [True, True, False])
    # many outstanding async ops complete in order
    ts = [T(np.full(10, float(i + r))) for i in range(5)]
    works = [dist.all_reduce(x, async_op=True) for x in ts]
    for i, w in enumerate(works):
        w.wait(timeout=60)
        np.testing.assert_array_equal(A(ts[i]), np.full(10, n * i + n * (n - 1) / 2))


def check_subgroups():
    r, n = dist.get_rank(), dist.get_world_size()
    evens = list(range(0, n, 2))
    g = dist.new_group(evens)
    if r in evens:
        assert dist.get_rank(g) == evens.index(r)
        assert dist.get_world_size(g) == len(evens)
        assert dist.get_process_group_ranks(g) == evens
        t = T(np.array([float(r)]))
        dist.all_reduce(t, group=g)
        assert A(t)[0] == sum(evens)
        x = T(np.array([float(r)]))
        dist.broadcast(x, src=evens[-1], group=g)
        assert A(x)[0] == evens[-1]
        outs = [T(np.zeros(1)) for _ in evens]
        dist.all_gather(outs, T(np.array([r * 2.0])), group=g)
        assert [A(o)[0] for o in outs] == [2.0 * e for e in evens]
    else:
        assert g is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(g) == -1
        assert dist.all_reduce(T(np.zeros(1)), group=g) is None
    # a group of everyone but rank 0, created after; then the world again
    rest = dist.new_group(list(range(1, n))) if n > 1 else None
    if r > 0:
        t = T(np.array([1.0]))
        dist.all_reduce(t, group=rest)
        assert A(t)[0] == n - 1
    t = T(np.array([1.0]))
    dist.all_reduce(t, group=dist.group.WORLD)
    assert A(t)[0] == n


def check_async_progress():
    """An async all-reduce completes while this thread only computes (never calls MPI).

    ``is_completed()`` only reads a flag set by the backend's communication thread, so reaching
    completion inside the pure-Python loop proves that communication progressed in the
    background.
    """
    r, n = dist.get_rank(), dist.get_world_size()
    t = T(np.full(1 << 21, r + 1.0, np.float32))  # 8 MB
    dist.barrier()
    work = dist.all_reduce(t, async_op=True)
    spins, acc = 0, 0
    deadline = time.monotonic() + 60
    while not work.is_completed() and time.monotonic() < deadline:
        for i in range(1000):  # pure Python work, holding the GIL most of the time
            acc += i * i
        spins += 1
    assert work.is_completed(), "the async all_reduce did not progress in the background"
    assert acc >= 0 and spins >= 0
    work.wait()
    assert A(t)[0] == n * (n + 1) / 2 and A(t)[-1] == n * (n + 1) / 2
