"""What runs inside a DataLoader worker process, and the shared-memory transport of its batches.

A worker reads ``(task_id, indices)`` from its index queue, fetches and collates the samples, and
sends the batch back on the shared result queue. The arrays of a batch never travel through a
pipe: the worker copies them into one POSIX shared-memory segment (64-byte aligned) and sends only
a small pickled description (structure, offsets, dtypes, shapes, segment name). The main process
maps the segment, unlinks its name at once (the mapping stays valid until the last tensor viewing
it is freed) and wraps the arrays without a copy. Segment names carry a per-iterator prefix so the
main process can sweep any segment a killed worker left behind.

Where POSIX shared memory is missing (Windows) batches are pickled whole instead.
"""

import os
import pickle
import queue
import random
import sys
import threading
import traceback
from collections import OrderedDict

import numpy as np

from ... import _backend
from ..._tensor import Tensor

try:
    import _posixshmem
except ImportError:  # pragma: no cover - non-POSIX platforms
    _posixshmem = None

# How often (seconds) an idle worker checks that its parent is alive, and the main process checks
# that its workers are.
POLL_INTERVAL = 0.2
_ALIGN = 64
_SHM_DIR = "/dev/shm"

_worker_info = None


class WorkerInfo:
    """What :func:`get_worker_info` returns inside a worker: ``id``, ``num_workers``, ``seed``
    (``base_seed + id``, already applied to ``random``, NumPy's global RNG and dtorch) and
    ``dataset`` (this worker's copy)."""

    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id, num_workers, seed, dataset):  # noqa: A002 - PyTorch's name
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return (f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
                f"dataset={self.dataset!r})")


def get_worker_info():
    """Inside a DataLoader worker process, its :class:`WorkerInfo`; in the main process, None.

    Use it in ``IterableDataset.__iter__`` or ``worker_init_fn`` to give each worker its share.
    """
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, with its formatted traceback, re-raised in the main
    process with the same type (or RuntimeError if that type cannot take a message)."""

    def __init__(self, where):
        exc_type, exc, tb = sys.exc_info()
        try:  # the type travels by reference: a class defined in a function cannot
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = RuntimeError
        self.exc_type = exc_type
        self.exc_msg = "".join(traceback.format_exception(exc_type, exc, tb))
        self.where = where

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exc = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exc


class _KeyErrorMessage(str):
    """KeyError quotes its message; this keeps the traceback readable."""

    def __repr__(self):
        return self


class IterableDatasetStopIteration:
    """A worker's marker: its copy of the IterableDataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class ResumeIteration:
    """Sent to persistent workers at the start of a new epoch; echoed back as an acknowledgment."""


# ----------------------------------------------------------------------------- fetchers
class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation = dataset, auto_collation
        self.collate_fn, self.drop_last = collate_fn, drop_last

    def fetch(self, index):
        if self.auto_collation:
            getitems = getattr(self.dataset, "__getitems__", None)
            if callable(getitems):
                data = getitems(index)
            else:
                data = [self.dataset[i] for i in index]
        else:
            data = self.dataset[index]
        return self.collate_fn(data)


class IterableFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset_iter = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn, self.drop_last = collate_fn, drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in index:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if not data or (self.drop_last and len(data) < len(index)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


def make_fetcher(is_iterable, dataset, auto_collation, collate_fn, drop_last):
    cls = IterableFetcher if is_iterable else MapFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)


# ----------------------------------------------------------------------------- shared memory
class _Leaf:
    """Placeholder for an array in a batch's description: ``slot`` indexes the array table."""

    __slots__ = ("slot", "tensor", "requires_grad")

    def __init__(self, slot, tensor, requires_grad):
        self.slot, self.tensor, self.requires_grad = slot, tensor, requires_grad

    def __getstate__(self):
        return (self.slot, self.tensor, self.requires_grad)

    def __setstate__(self, state):
        self.slot, self.tensor, self.requires_grad = state


def _replace_leaves(obj, arrays):
    """``obj`` with every CPU tensor / plain NumPy array swapped for a :class:`_Leaf`; the arrays
    are appended to ``arrays``. Only containers we can rebuild exactly are entered (dict,
    OrderedDict, list, tuple, namedtuple); anything else is pickled as it is."""
    if isinstance(obj, Tensor) and not _backend.is_cuda_array(obj._data):
        arrays.append(obj._data)
        return _Leaf(len(arrays) - 1, True, obj.requires_grad)
    if type(obj) is np.ndarray and obj.dtype.kind in "biuf":
        arrays.append(obj)
        return _Leaf(len(arrays) - 1, False, False)
    t = type(obj)
    if t is list:
        return [_replace_leaves(x, arrays) for x in obj]
    if t is tuple:
        return tuple(_replace_leaves(x, arrays) for x in obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return t(*(_replace_leaves(x, arrays) for x in obj))
    if t is dict or t is OrderedDict:
        return t((k, _replace_leaves(v, arrays)) for k, v in obj.items())
    return obj


def _restore_leaves(obj, arrays):
    if isinstance(obj, _Leaf):
        arr = arrays[obj.slot]
        return Tensor._wrap(arr, requires_grad=obj.requires_grad) if obj.tensor else arr
    t = type(obj)
    if t is list:
        return [_restore_leaves(x, arrays) for x in obj]
    if t is tuple:
        return tuple(_restore_leaves(x, arrays) for x in obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return t(*(_restore_leaves(x, arrays) for x in obj))
    if t is dict or t is OrderedDict:
        return t((k, _restore_leaves(v, arrays)) for k, v in obj.items())
    return obj


def shm_available():
    return _posixshmem is not None


def _shm_create(name, size):
    import mmap

    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _shm_attach(name, size):
    """Map segment ``name`` and unlink it: the memory lives as long as the mapping."""
    import mmap

    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, 0o600)
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)
        shm_unlink(name)


def shm_unlink(name):
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def sweep_segments(prefix):
    """Unlink every leftover segment whose name starts with ``prefix`` (Linux: /dev/shm)."""
    if _posixshmem is None or not os.path.isdir(_SHM_DIR):
        return
    try:
        names = os.listdir(_SHM_DIR)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            shm_unlink(name)


def pack(batch, name):
    """Serialise ``batch`` for the result queue: arrays into shared-memory segment ``name``,
    the rest into a small pickle. Returns bytes."""
    if _posixshmem is None:
        return pickle.dumps(("pickle", batch), protocol=pickle.HIGHEST_PROTOCOL)
    arrays = []
    skeleton = _replace_leaves(batch, arrays)
    table, offset = [], 0
    for a in arrays:
        table.append((offset, a.dtype.str, a.shape))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    if offset == 0:
        return pickle.dumps(("inline", skeleton, [a.copy() for a in arrays]),
                            protocol=pickle.HIGHEST_PROTOCOL)
    payload = pickle.dumps(("shm", skeleton, table, name, offset),
                           protocol=pickle.HIGHEST_PROTOCOL)
    mm = _shm_create(name, offset)
    try:
        for (off, dt, shape), a in zip(table, arrays):
            dst = np.frombuffer(mm, dtype=dt, count=a.size, offset=off).reshape(shape)
            dst[...] = a
            del dst
    finally:
        mm.close()
    return payload


def unpack(payload):
    """Inverse of :func:`pack` in the main process (zero-copy views of the segment)."""
    msg = pickle.loads(payload)
    kind = msg[0]
    if kind == "pickle":
        return msg[1]
    if kind == "inline":
        return _restore_leaves(msg[1], msg[2])
    _, skeleton, table, name, size = msg
    mm = _shm_attach(name, size)
    arrays = [np.frombuffer(mm, dtype=dt, count=int(np.prod(shape, dtype=np.int64)),
                            offset=off).reshape(shape) for off, dt, shape in table]
    return _restore_leaves(skeleton, arrays)


def discard(payload):
    """Free the segment of a batch that will never be used (shutdown drain)."""
    try:
        msg = pickle.loads(payload)
    except Exception:
        return
    if msg and msg[0] == "shm":
        shm_unlink(msg[3])


# ----------------------------------------------------------------------------- worker loop
def _np_seed(base_seed, worker_id):
    """A 32-bit-word seed for NumPy's legacy global RNG, distinct per (base seed, worker)."""
    return np.random.SeedSequence([base_seed % 2**32, base_seed >> 32, worker_id]).generate_state(4)


def _watch_parent(parent_pid, prefix):
    """Daemon thread: leave at once when the main process is gone, even mid-``__getitem__``."""
    import time

    while True:
        time.sleep(POLL_INTERVAL * 2)
        if os.getppid() != parent_pid:
            sweep_segments(prefix)
            os._exit(0)


def worker_loop(is_iterable, dataset, index_queue, data_queue, done_event, auto_collation,
                collate_fn, drop_last, base_seed, init_fn, worker_id, num_workers, shm_prefix):
    """Body of worker process ``worker_id`` (see the module docstring)."""
    global _worker_info
    import dtorch

    # NOTE: the process that started us (the main process with fork/spawn, the fork server with
    # forkserver, which exits with the main process); when it is gone we are orphaned.
    parent_pid = os.getppid()
    try:
        seed = base_seed + worker_id
        random.seed(seed)
        dtorch.manual_seed(seed)
        np.random.seed(_np_seed(base_seed, worker_id))
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        threading.Thread(target=_watch_parent, args=(parent_pid, f"{shm_prefix}{worker_id}_"),
                         daemon=True).start()
        where = f"in DataLoader worker process {worker_id}"
        init_error, fetcher = None, None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = make_fetcher(is_iterable, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where)
        iteration_end, seq = False, 0
        while True:
            try:
                r = index_queue.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                # NOTE: the None sent at shutdown may never arrive: when the iterator dies in a
                # garbage cycle, its index queues' feeder threads are finalised first.
                if os.getppid() != parent_pid:  # orphaned: nobody will read our batches
                    sweep_segments(f"{shm_prefix}{worker_id}_")
                    break
                if done_event.is_set():
                    break
                continue
            if r is None:
                break
            if isinstance(r, ResumeIteration):
                data_queue.put((r, None))
                iteration_end = False
                if init_error is None:
                    fetcher = make_fetcher(is_iterable, dataset, auto_collation, collate_fn,
                                           drop_last)
                continue
            if done_event.is_set() or iteration_end:
                continue
            task_id, index = r
            if init_error is not None:
                data, init_error = init_error, None
            else:
                try:
                    data = fetcher.fetch(index)
                    data = pack(data, f"{shm_prefix}{worker_id}_{seq}")
                    seq += 1
                except StopIteration:
                    if not is_iterable:
                        data = ExceptionWrapper(where)
                    else:
                        data = IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                except Exception:
                    data = ExceptionWrapper(where)
            data_queue.put((task_id, data))
            del data, r
    except KeyboardInterrupt:
        pass
    if done_event.is_set():
        data_queue.cancel_join_thread()
        data_queue.close()
