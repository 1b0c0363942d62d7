"""``dtorch.futures``: the result of an asynchronous computation, as ``torch.futures``.

A :class:`Future` is completed once, with a value (:meth:`Future.set_result`) or an exception
(:meth:`Future.set_exception`), from any thread. :meth:`Future.then` chains a callback that runs
when the future completes and yields a new future; DDP communication hooks return such futures
(``dist.all_reduce(t, async_op=True).get_future().then(...)``).

A future that stands for a pending operation (``Work.get_future()``, :meth:`Future.then`,
:func:`collect_all`) completes when it is waited on or polled with :meth:`Future.done`, in the
calling thread; the wait is bounded by the operation's own deadline (the process group's timeout).
Callbacks therefore never run on a communication thread, where a collective started by a callback
could be ordered differently on different ranks.

Example::

    >>> fut = dtorch.futures.Future()
    >>> doubled = fut.then(lambda f: f.value() * 2)
    >>> fut.set_result(21)
    >>> doubled.wait()
    42
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar

__all__ = ["Future", "collect_all", "wait_all"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class Future(Generic[_T]):
    """A value (or an exception) that becomes available later; thread-safe.

    ``Future[T]`` is accepted as a type annotation, as in PyTorch.

    Args:
        devices (list, optional): accepted for PyTorch compatibility (devices follow the data).

    Example::

        >>> fut = dtorch.futures.Future()
        >>> fut.add_done_callback(lambda f: print("got", f.value()))
        >>> fut.set_result(3)
        got 3
    """

    def __init__(self, *, devices=None):
        self._cond = threading.Condition()
        self._finished = False
        self._value = None
        self._exception = None
        self._callbacks = []
        # NOTE: a future standing for a pending operation has a source with ``poll()`` (complete
        # it if the operation is done, never blocking) and ``drive()`` (block, bounded, until it
        # is complete); plain futures are completed by whoever calls set_result/set_exception.
        self._source = None

    def __repr__(self):
        state = "pending" if not self._finished else (
            f"failed: {self._exception!r}" if self._exception is not None else "done")
        return f"<dtorch.futures.Future ({state})>"

    def done(self):
        """True when the future holds a value or an exception (never blocks)."""
        if not self._finished and self._source is not None:
            self._source.poll()
        return self._finished

    def wait(self):
        """Block until the future is complete and return its value (raise its exception)."""
        if not self._finished and self._source is not None:
            self._source.drive()
        with self._cond:
            while not self._finished:
                self._cond.wait()
        if self._exception is not None:
            raise self._exception
        return self._value

    def value(self):
        """The value of a completed future; raises its exception if it failed.

        Call it after :meth:`wait` or inside a callback of :meth:`then`/:meth:`add_done_callback`.
        """
        if not self.done():
            raise RuntimeError("Future.value() called on a Future that is not completed yet; "
                               "call wait() first or read the value in a then() callback")
        if self._exception is not None:
            raise self._exception
        return self._value

    def then(self, callback):
        """A new future completed with ``callback(self)`` once this one completes.

        If the callback raises, the new future fails with a ``RuntimeError`` naming the error
        (the original exception is its ``__cause__``). Waiting on the new future drives this one.

        Args:
            callback (Callable): takes this future as its only argument.

        Example::

            >>> fut = dist.all_reduce(t, async_op=True).get_future().then(lambda f: f.value()[0])
        """
        if not callable(callback):
            raise TypeError(f"Future.then: callback must be callable, got "
                            f"{type(callback).__name__}")
        child = Future()
        child._source = _Chained(self)

        def run(parent):
            try:
                result = callback(parent)
            except BaseException as exc:
                err = RuntimeError("Got the following error when running the callback: "
                                   f"{type(exc).__name__}: {exc}")
                err.__cause__ = exc
                child._complete(None, err, strict=False)
            else:
                child._complete(result, None, strict=False)

        self.add_done_callback(run)
        return child

    def add_done_callback(self, callback):
        """Run ``callback(self)`` when the future completes (now, if it already has).

        Unlike :meth:`then` nothing is returned; an exception raised by the callback is logged
        and ignored, as in PyTorch.
        """
        if not callable(callback):
            raise TypeError(f"Future.add_done_callback: callback must be callable, got "
                            f"{type(callback).__name__}")
        with self._cond:
            if not self._finished:
                self._callbacks.append(callback)
                return
        self._invoke(callback)

    def set_result(self, result):
        """Complete the future with ``result``; runs the callbacks. Only once per future."""
        self._complete(result, None)

    def set_exception(self, result):
        """Complete the future with the exception ``result``; :meth:`wait` will raise it."""
        if not isinstance(result, BaseException):
            raise AssertionError(f"{result} is of type {type(result)}, not an Exception.")
        self._complete(None, result)

    # ------------------------------------------------------------------ internals
    def _complete(self, value, exception, strict=True):
        """Set the outcome and run the callbacks; False when it was already complete (and
        ``strict`` is False), a RuntimeError when ``strict``."""
        with self._cond:
            if self._finished:
                if strict:
                    raise RuntimeError("Attempting to mark a completed Future as complete again. "
                                       "Note that a Future can only be marked completed once.")
                return False
            self._value, self._exception = value, exception
            self._finished = True
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for cb in callbacks:
            self._invoke(cb)
        return True

    def _invoke(self, callback):
        try:
            callback(self)
        except Exception:
            _log.exception("dtorch.futures: a done callback raised; the error is ignored")

    def _drive_quietly(self):
        """Wait for completion without raising (the outcome is read through the future)."""
        try:
            self.wait()
        except BaseException:  # the failure is stored in the future itself
            pass


class _Chained:
    """Source of a future created by ``then``: completing the parent completes it."""

    def __init__(self, parent):
        self.parent = parent

    def poll(self):
        self.parent.done()

    def drive(self):
        self.parent._drive_quietly()


class _All:
    """Source of a :func:`collect_all` future: drives each member in turn."""

    def __init__(self, futures):
        self.futures = futures

    def poll(self):
        for f in self.futures:
            f.done()

    def drive(self):
        for f in self.futures:
            f._drive_quietly()


def collect_all(futures):
    """A future completed with the list ``futures`` once every one of them is complete.

    It fails with the first exception among them as soon as one fails (as PyTorch does).

    Args:
        futures (list[Future]): the futures to wait for.

    Example::

        >>> both = dtorch.futures.collect_all([fut0, fut1])
        >>> [f.value() for f in both.wait()]
    """
    futures = list(futures)
    for i, f in enumerate(futures):
        if not isinstance(f, Future):
            raise TypeError(f"collect_all: futures[{i}] is a {type(f).__name__}, not a "
                            "dtorch.futures.Future")
    combined = Future()
    combined._source = _All(futures)
    if not futures:
        combined.set_result([])
        return combined
    lock = threading.Lock()
    left = [len(futures)]

    def one_done(fut):
        if fut._exception is not None:
            combined._complete(None, fut._exception, strict=False)
            return
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            combined._complete(futures, None, strict=False)

    for f in futures:
        f.add_done_callback(one_done)
    return combined


def wait_all(futures):
    """Wait for every future and return their values in order; raise the first exception.

    Args:
        futures (list[Future]): the futures to wait for.

    Example::

        >>> dtorch.futures.wait_all([fut0, fut1])
        [value0, value1]
    """
    return [f.value() for f in collect_all(futures).wait()]
