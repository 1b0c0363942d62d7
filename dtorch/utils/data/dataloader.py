"""``DataLoader``: batches from a dataset, in the main process or in worker processes.

With ``num_workers=0`` samples are fetched and collated in the calling process. With
``num_workers > 0`` that many processes (``fork`` where the platform has it, else ``spawn``; see
``multiprocessing_context``) fetch whole batches in parallel; batches come back through shared
memory (see ``_worker.py``) and are yielded in sampler order. The main process checks its workers
while it waits: an exception in a worker is re-raised with the worker's traceback, a worker that
dies raises ``RuntimeError`` instead of hanging, and ``timeout`` bounds the wait for one batch.
Workers are shut down (and their leftover shared memory freed) at the end of an epoch, when the
iterator is garbage-collected (``break`` out of the loop), at interpreter exit, and they leave on
their own if the main process dies.

Reproducibility: each iterator draws a base seed from ``generator`` (or dtorch's global
generator) exactly as the single-process path does, and worker ``i`` seeds ``random``, NumPy's
global RNG and dtorch with ``base_seed + i``. So the same ``dtorch.manual_seed`` gives the same
shuffled batches with 0 or N workers.
"""

import atexit
import itertools
import multiprocessing
import os
import queue
import threading
import time
import warnings
import weakref

import numpy as np

from ... import _backend
from ..._tensor import Tensor
from . import _worker
from ._collate import default_collate, default_convert
from ._worker import ExceptionWrapper, IterableDatasetStopIteration, ResumeIteration
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

get_worker_info = _worker.get_worker_info
_JOIN_TIMEOUT = 5.0


class _InfiniteConstantSampler(Sampler):
    """The 'sampler' of an IterableDataset: ``None`` forever (the dataset decides the end)."""

    def __iter__(self):
        while True:
            yield None


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled and loaded by worker processes.

    Args:
        dataset: a map-style :class:`Dataset` or an :class:`IterableDataset`.
        batch_size: samples per batch (``None`` disables automatic batching). Default 1.
        shuffle: reshuffle at every epoch (map-style datasets only).
        sampler: the index order (exclusive with ``shuffle``).
        batch_sampler: yields lists of indices (exclusive with batch_size, shuffle, sampler,
            drop_last).
        num_workers: worker processes (0: load in the main process).
        collate_fn: merges a list of samples into a batch (default :func:`default_collate`).
        pin_memory: copy batches into page-locked host memory (needs CuPy and a GPU; a warning
            and no effect otherwise).
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for one batch from the workers (0: no limit).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: ``"fork"``, ``"spawn"``, ``"forkserver"`` or a context
            (default: fork where available). Spawn needs a picklable dataset.
        generator: a :class:`dtorch.Generator` for the base seed and ``RandomSampler``.
        prefetch_factor: batches loaded in advance per worker (default 2 with workers).
        persistent_workers: keep the workers between epochs.

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, num_workers=2)
        >>> for xb, yb in loader:
        ...     ...
    """

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device=""):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            if shuffle not in (False, None):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if self._is_iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterator = None
        self._initialized = True

    def __setattr__(self, attr, val):
        if self._initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                          "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def multiprocessing_context(self):
        return self._mp_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, ctx):
        if isinstance(ctx, str):
            if ctx not in multiprocessing.get_all_start_methods():
                raise ValueError("multiprocessing_context option should specify a valid start "
                                 f"method in {multiprocessing.get_all_start_methods()!r}, but "
                                 f"got multiprocessing_context={ctx!r}")
            ctx = multiprocessing.get_context(ctx)
        elif ctx is not None and not hasattr(ctx, "Process"):
            raise TypeError("multiprocessing_context option should be a valid context object or "
                            f"a string specifying the start method, but got {ctx!r}")
        self._mp_context = ctx

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator._shutdown:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset(self)
            return self._iterator
        return _MultiProcessIter(self)

    def __len__(self):
        if self._is_iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def __del__(self):
        it = self.__dict__.get("_iterator")
        if it is not None:
            it._shutdown_workers()


# ----------------------------------------------------------------------------- iterators
class _BaseIter:
    def __init__(self, loader):
        from ...random import generator_for

        self._dataset = loader.dataset
        self._is_iterable = loader._is_iterable
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._collate_fn = loader.collate_fn
        self._pin_memory = loader.pin_memory and _pinning_possible()
        self._timeout = loader.timeout
        self._num_yielded = 0
        # NOTE: drawn in both the single- and the multi-process iterator so that a shuffled
        # epoch consumes the same random numbers whatever num_workers is.
        self._base_seed = int(generator_for(None, loader.generator).integers(0, 2**63))
        self._sampler_iter = iter(self._index_sampler)

    def __iter__(self):
        return self

    def _next_index(self):
        return next(self._sampler_iter)

    def __next__(self):
        data = self._next_data()
        self._num_yielded += 1
        if self._pin_memory:
            data = _pin(data)
        return data

    def __len__(self):
        return len(self._index_sampler)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = _worker.make_fetcher(self._is_iterable, self._dataset,
                                             self._auto_collation, self._collate_fn,
                                             self._drop_last)

    def _next_data(self):
        index = self._next_index()
        return self._fetcher.fetch(index)


_live_iterators = weakref.WeakSet()
_iterator_ids = itertools.count()


@atexit.register
def _shutdown_all():
    for it in list(_live_iterators):
        it._shutdown_workers()


def _default_context():
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class _MultiProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._shutdown = True  # until the workers exist
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._persistent = loader.persistent_workers
        ctx = loader.multiprocessing_context or _default_context()
        self._shm_prefix = f"dtorch_dl_{os.getpid()}_{next(_iterator_ids)}_"
        self._result_queue = ctx.Queue()
        self._done_event = ctx.Event()
        self._index_queues, self._workers = [], []
        try:
            for i in range(self._num_workers):
                iq = ctx.Queue()
                iq.cancel_join_thread()
                w = ctx.Process(target=_worker.worker_loop, daemon=True, args=(
                    self._is_iterable, self._dataset, iq, self._result_queue, self._done_event,
                    self._auto_collation, self._collate_fn, self._drop_last, self._base_seed,
                    loader.worker_init_fn, i, self._num_workers, self._shm_prefix))
                self._index_queues.append(iq)
                self._workers.append(w)
                w.start()
                self._shutdown = False
        except BaseException:
            self._shutdown_workers()
            raise
        _live_iterators.add(self)
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter=False):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info = {}
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            for q in self._index_queues:
                q.put(ResumeIteration())
            pending = self._num_workers
            while pending:
                idx, _ = self._get_data()
                if isinstance(idx, ResumeIteration):
                    pending -= 1
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _try_put_index(self):
        if self._tasks_outstanding >= self._prefetch_factor * self._num_workers:
            return
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _get_data(self):
        """The next ``(task_id, data)`` from any worker, checking liveness while waiting."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait = _worker.POLL_INTERVAL
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                idx, data = self._result_queue.get(timeout=wait)
            except queue.Empty:
                dead = [w for i, w in enumerate(self._workers)
                        if self._workers_status[i] and not w.is_alive()]
                if dead:
                    pids = ", ".join(str(w.pid) for w in dead)
                    codes = ", ".join(_describe_exit(w.exitcode) for w in dead)
                    self._shutdown_workers()
                    raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly "
                                       f"({codes})") from None
                if deadline is not None and time.monotonic() >= deadline:
                    self._shutdown_workers()
                    raise RuntimeError(
                        f"DataLoader timed out after {self._timeout} seconds") from None
                continue
            if isinstance(data, bytes):
                data = _worker.unpack(data)
            return idx, data

    def _next_data(self):
        if self._shutdown:
            raise StopIteration
        while True:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._workers_status[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            if len(self._task_info[self._rcvd_idx]) == 2:
                data = self._task_info.pop(self._rcvd_idx)[1]
                return self._process(data)
            idx, data = self._get_data()
            self._tasks_outstanding -= 1
            if isinstance(data, IterableDatasetStopIteration):
                self._workers_status[data.worker_id] = False
                if not self._persistent:
                    self._index_queues[data.worker_id].put(None)
                self._try_put_index()
                continue
            if idx != self._rcvd_idx:
                self._task_info[idx] += (data,)
                continue
            del self._task_info[idx]
            return self._process(data)

    def _process(self, data):
        self._rcvd_idx += 1
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    def _shutdown_workers(self):
        """Stop the workers, free their queues and any shared memory left behind. Idempotent."""
        if getattr(self, "_shutdown", True):
            return
        self._shutdown = True
        _live_iterators.discard(self)
        try:
            self._done_event.set()
            for q in self._index_queues:
                try:
                    q.put(None)
                except (OSError, ValueError):
                    pass
            deadline = time.monotonic() + _JOIN_TIMEOUT
            for w in self._workers:
                while w.is_alive() and time.monotonic() < deadline:
                    self._drain()
                    w.join(0.02)
                if w.is_alive():
                    w.terminate()
                    w.join(1.0)
                if w.is_alive():
                    w.kill()
                    w.join()
            self._drain()
            for q in (*self._index_queues, self._result_queue):
                q.cancel_join_thread()
                q.close()
        finally:
            _worker.sweep_segments(self._shm_prefix)

    def _drain(self):
        while True:
            try:
                _, data = self._result_queue.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return
            except Exception:  # a message cut short by a killed worker
                return
            if isinstance(data, bytes):
                _worker.discard(data)

    def __del__(self):
        self._shutdown_workers()


def _describe_exit(code):
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# ----------------------------------------------------------------------------- pinned memory
_pin_warned = threading.Event()


def _pinning_possible():
    if _backend.cuda_available():
        return True
    if not _pin_warned.is_set():
        _pin_warned.set()
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then "
                      "device pinned memory won't be used.", stacklevel=4)
    return False


def _pin(data):
    """A copy of the batch whose CPU arrays live in page-locked memory (fast host-to-GPU)."""
    if isinstance(data, Tensor):
        if _backend.is_cuda_array(data._data):
            return data
        return Tensor._wrap(_pinned_copy(data._data), requires_grad=data.requires_grad)
    if isinstance(data, dict):
        return type(data)((k, _pin(v)) for k, v in data.items())
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_pin(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_pin(v) for v in data)
    return data


def _pinned_copy(arr):
    cp = _backend.cupy_module()
    mem = cp.cuda.alloc_pinned_memory(max(arr.nbytes, 1))
    out = np.frombuffer(mem, dtype=arr.dtype, count=arr.size).reshape(arr.shape)
    out[...] = arr
    return out
