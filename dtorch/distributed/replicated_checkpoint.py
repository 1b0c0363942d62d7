"""Checkpoints as collectives, and a final checkpoint when the job is preempted.

For replicated (data-parallel) state: one rank's copy is the whole checkpoint. This is not
``torch.distributed.checkpoint`` (sharded directories, in-place ``load(state_dict)``), hence
the different name.

:func:`save` writes on one rank (atomically, with :func:`dtorch.save`) while the others wait
until the file is durable; :func:`load` reads on one rank and broadcasts the checkpoint, so that
ranks without the shared file system get it too, each placing tensors with its own
``map_location``. Either raises the same error on every rank when the reading or writing rank
fails (bad path, disk full, corrupt file), instead of one rank failing while the others hang or
carry on. Without a process group they are plain :func:`dtorch.save` / :func:`dtorch.load`.

What travels: the checkpoint's bytes in dtorch's own format (a zip of JSON and raw arrays, see
:mod:`dtorch.serialization`), broadcast as ``uint8`` arrays in chunks of 64 MiB, and decoded by
every rank with the same loader that checks each entry's CRC and never unpickles; a failure
travels as JSON (exception type, arguments). Nothing is pickled, so a crafted file cannot run
code on any rank.

:class:`PreemptionHandler` turns SIGTERM (what SLURM, Kubernetes and ``python -m launch`` send
before they kill a job) into a flag that the training loop polls with the collective
:meth:`~PreemptionHandler.should_stop`; the ranks agree (an all-reduce of the flag), save the
same step and exit together.

Resuming at another world size works for data parallelism: DDP replicates the model, optimizer
and scheduler state, so rank 0's checkpoint is the whole state (the data order is the sampler's,
which depends on the world size).

Example::

    import sys
    import dtorch.distributed as dist
    from dtorch.distributed import replicated_checkpoint as rcp

    dist.init_process_group()
    try:  # only rank 0 looks at the file; a missing one raises on every rank alike
        state = rcp.load("ckpt.pt", map_location=device)
    except FileNotFoundError:
        state = None
    ...
    with rcp.PreemptionHandler() as preemption:
        for step in range(start, steps):
            train_step()
            if preemption.should_stop():          # every rank, every step: a collective
                rcp.save({"model": model.module.state_dict(), "optimizer": opt.state_dict(),
                          "step": step + 1}, "ckpt.pt")
                dist.destroy_process_group()
                sys.exit(128 + preemption.signum)  # 143 for SIGTERM: "terminated", resumable
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import signal
import threading

import numpy as np

from .. import serialization
from . import collectives
from .backend import ReduceOp
from .process_group import GroupMember, is_initialized, resolve

__all__ = ["save", "load", "PreemptionHandler", "relay_signals_to_threads"]

_CHUNK = 1 << 26  # bytes per broadcast: well below MPI's 2**31 count limit, bounded extra copies


# ----------------------------------------------------------------------------- save / load
def save(obj, f, *, src=0, group=None):
    """Save ``obj`` to ``f`` on rank ``src``; every rank returns once the file is durable.

    A collective: every rank of ``group`` calls it. Rank ``src`` writes with :func:`dtorch.save`
    (a temporary file, fsync, then a rename, so a crash mid-save leaves the previous file
    intact); the other ranks wait for it and ignore their ``obj`` and ``f``. When the write
    fails, every rank raises the writer's error (same type and message), so that no rank carries
    on believing the checkpoint exists. Without a process group this is :func:`dtorch.save`.

    Args:
        obj: what :func:`dtorch.save` accepts (state dicts, tensors, plain containers).
        f: a path or a writable binary file object, used on rank ``src`` only.
        src (int): the global rank that writes (default 0).
        group (ProcessGroup, optional): the ranks taking part (default: the world).

    Raises:
        ValueError: ``src`` is not in ``group``, or this rank is not a member of it.
        OSError, TypeError, RuntimeError: on every rank, when rank ``src`` could not write.

    Example::

        >>> rcp.save({"model": model.module.state_dict(), "epoch": epoch}, "ckpt.pt")
    """
    pg, root = _group(group, src, "save")
    if pg is None:
        serialization.save(obj, f)
        return
    error = None
    if pg.rank() == root:
        try:
            serialization.save(obj, f)
        except Exception as e:  # noqa: BLE001 - every rank must learn of any failure
            error = e
    _share(pg, root, error, b"", "saving", f)


def load(f, *, map_location=None, src=0, group=None):
    """Load a checkpoint on rank ``src`` and broadcast it to every rank of ``group``.

    A collective: every rank of ``group`` calls it and gets its own copy of the object. Only
    rank ``src`` opens ``f`` (other ranks may pass a path they cannot see, or None) and
    broadcasts its bytes; every rank decodes them with the same checks as :func:`dtorch.load`
    (CRC-32 of every entry, bounds of every view) and its own ``map_location``. A missing,
    unreadable or corrupt file raises the same error on every rank. Without a process group
    this is :func:`dtorch.load`.

    Args:
        f: a path or a readable binary file object, used on rank ``src`` only.
        map_location: this rank's placement of tensors, as in :func:`dtorch.load`: None (where
            they were saved), a device or string (``"cuda:1"``, ``"cpu"``), a dict mapping saved
            locations to new ones, or a callable ``fn(tensor, location)``.
        src (int): the global rank that reads (default 0).
        group (ProcessGroup, optional): the ranks taking part (default: the world).

    Returns:
        The saved object.

    Raises:
        ValueError: ``src`` is not in ``group``, or this rank is not a member of it.
        OSError, RuntimeError: on every rank, when rank ``src`` could not read ``f`` or the
            file is not a valid checkpoint.

    Example::

        >>> state = rcp.load("ckpt.pt", map_location=f"cuda:{dist.get_local_rank()}")
        >>> model.module.load_state_dict(state["model"])
    """
    pg, root = _group(group, src, "load")
    if pg is None:
        return serialization.load(f, map_location=map_location)
    data, error = b"", None
    if pg.rank() == root:
        try:
            data = _read_all(f)
        except Exception as e:  # noqa: BLE001 - every rank must learn of any failure
            error = e
    where, data = _share(pg, root, error, data, "loading", f)
    return serialization._load_from(io.BytesIO(data), where, map_location)


def _group(group, src, what):
    """(ProcessGroup or None when there is no world, group rank of ``src``)."""
    if not is_initialized() and group is None:
        return None, None
    if group is GroupMember.NON_GROUP_MEMBER:
        raise ValueError(f"dtorch.distributed.replicated_checkpoint.{what}: this rank is not a "
                         "member of the group")
    pg = resolve(group)
    return pg, pg.group_rank(src, "src")


def _read_all(f):
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return fh.read()
    if not hasattr(f, "read"):
        raise TypeError(f"dtorch.load expects a path or a readable file object, got "
                        f"{type(f).__name__}")
    return f.read()


def _share(pg, root, error, data, doing, f):
    """Broadcast rank ``root``'s outcome: raise its error on every rank, or return (the name of
    ``f`` on the root, ``data``) on every rank. Nothing is pickled: a JSON description, then
    the bytes in chunks of ``_CHUNK``."""
    is_root = pg.rank() == root
    head = np.zeros(2, np.int64)
    if is_root:
        where = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the file object"
        note = (f"(raised by rank {pg.ranks[root]} while {doing} the checkpoint {where}; every "
                f"rank of {pg.desc} raises it)")
        desc = {"where": where} if error is None else {"error": _encode_error(error),
                                                       "note": note}
        meta = json.dumps(desc, default=str).encode()  # default: an OSError's bytes filename
        head[:] = len(meta), len(data)
    collectives.broadcast(head, group=pg, group_src=root)
    desc = json.loads(_broadcast_bytes(pg, root, meta if is_root else b"", int(head[0])))
    if "error" in desc:
        exc = error if is_root else _decode_error(desc["error"])
        exc.add_note(desc["note"])
        if is_root:
            raise exc
        raise exc from None
    return desc["where"], _broadcast_bytes(pg, root, data, int(head[1]))


def _broadcast_bytes(pg, root, data, size):
    """Rank ``root``'s ``size`` bytes ``data``, on every rank."""
    if pg.rank() == root:
        for start in range(0, size, _CHUNK):  # NOTE: a copy of one chunk at a time
            chunk = np.frombuffer(data, np.uint8, min(_CHUNK, size - start), start).copy()
            collectives.broadcast(chunk, group=pg, group_src=root)
        return data
    buf = np.empty(size, np.uint8)
    for start in range(0, size, _CHUNK):
        collectives.broadcast(buf[start:start + _CHUNK], group=pg, group_src=root)
    return buf.tobytes()


def _encode_error(e):
    """A JSON-able description from which :func:`_decode_error` rebuilds an equal exception."""
    if isinstance(e, OSError) and e.errno is not None:
        args = [e.errno, e.strerror] + ([e.filename] if e.filename is not None else [])
    elif all(isinstance(a, (str, int, float, bool, type(None))) for a in e.args):
        args = list(e.args)
    else:
        args = [str(e)]
    return {"type": type(e).__name__, "args": args}


def _decode_error(desc):
    """The exception :func:`_encode_error` described: the same builtin type, else RuntimeError."""
    name, args = desc["type"], desc["args"]
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*args)
        except TypeError:
            pass
    text = args[0] if len(args) == 1 else ", ".join(map(str, args))
    return RuntimeError(f"{name}: {text}")


# ----------------------------------------------------------------------------- preemption
class PreemptionHandler:
    """Turn termination signals into a stop request that every rank agrees on.

    A context manager: inside it, the given signals (default SIGTERM, what SLURM, Kubernetes
    and ``python -m launch`` send before killing a job; SLURM's ``--signal=USR1@60`` warning is
    another) no longer end the process but set a flag; on exit the previous handlers are
    restored. The training loop calls the collective :meth:`should_stop` at the same point of
    every step on every rank; it returns True on all ranks at the same step as soon as any rank
    got a signal (an all-reduce MAX of the flag), so they all save that step and exit together.
    The convention this follows (as torchelastic and Lightning users do): save a final
    checkpoint, then exit with ``128 + signum`` (143 for SIGTERM) -- what a process killed by
    the signal reports -- so that the scheduler records a termination and a requeued or
    restarted job resumes from the checkpoint. The work between two checks must fit in the
    scheduler's grace period (SLURM's ``KillWait``, 30 s by default; the launcher's
    ``--grace-period``).

    Without a process group the flag is local. Python delivers signals to the main thread only,
    so the handler is entered there, or in a rank thread of a thread world whose main thread
    relays signals (:func:`relay_signals_to_threads`; ``python -m launch --debug-world`` does).
    A process forked inside the block (a DataLoader worker) keeps the previous behaviour: it
    dies of the signal.

    Args:
        signals (tuple): the signals to catch (default ``(signal.SIGTERM,)``).
        group (ProcessGroup, optional): the ranks that agree (default: the world).

    Attributes:
        signum (int or None): the signal that stops the job: the first one this process got,
            or, after :meth:`should_stop` returned True, the largest one any rank got.

    Example::

        >>> with PreemptionHandler() as preemption:
        ...     for step in range(start, steps):
        ...         train_step(step)
        ...         if preemption.should_stop():
        ...             rcp.save(state(step + 1), "ckpt.pt")
        ...             sys.exit(128 + preemption.signum)
    """

    def __init__(self, signals=(signal.SIGTERM,), group=None):
        signals = tuple(signals)
        if not signals:
            raise ValueError("PreemptionHandler: signals must name at least one signal")
        resolved = []
        for s in signals:
            try:
                resolved.append(signal.Signals(s))
            except ValueError:
                raise ValueError(f"PreemptionHandler: {s!r} is not a signal") from None
        bad = [s.name for s in resolved if s in (signal.SIGKILL, signal.SIGSTOP)]
        if bad:
            raise ValueError(f"PreemptionHandler: {', '.join(bad)} cannot be caught")
        self.signals = tuple(dict.fromkeys(resolved))
        self.group = group
        self.signum = None
        self._previous = None
        self._pid = None

    @property
    def triggered(self):
        """Whether a stop was requested: a signal here, or one elsewhere seen by should_stop."""
        return self.signum is not None

    def __enter__(self):
        if self._previous is not None:
            raise RuntimeError("PreemptionHandler is already active")
        if threading.current_thread() is not threading.main_thread():
            _relay_register(self)
            self._previous = {}
            return self
        self._pid = os.getpid()
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.signals}
        return self

    def __exit__(self, *exc_info):
        for s, prev in self._previous.items():
            signal.signal(s, signal.SIG_DFL if prev is None else prev)
        _relay["handlers"].discard(self)
        self._previous = None
        return False

    def _on_signal(self, signum, frame):
        if os.getpid() != self._pid:  # a forked child inherited the handler: behave as before
            _previous_action(self._previous[signum], signum, frame)
            return
        if self.signum is None:
            self.signum = int(signum)

    def should_stop(self):
        """Whether the job should save and stop now, agreed by every rank of the group.

        A collective (one all-reduce of one integer): call it on every rank at the same point
        of each step. True on every rank as soon as any rank has received a signal.
        """
        flag = np.array([self.signum or 0], np.int64)
        if is_initialized():
            collectives.all_reduce(flag, op=ReduceOp.MAX, group=self.group)
        if flag[0] and self.signum is None:
            self.signum = int(flag[0])
        return bool(flag[0])


def _previous_action(prev, signum, frame):
    """Do what ``prev`` (a handler, SIG_DFL, SIG_IGN or None) would have done with the signal;
    for the default action the previous disposition is restored and the signal raised again."""
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL if prev is None else prev)
    if prev != signal.SIG_IGN:
        os.kill(os.getpid(), signum)


# ----------------------------------------------------------------------------- thread worlds
_relay = {"signals": None, "handlers": set(), "lock": threading.Lock()}


def _relay_register(handler):
    with _relay["lock"]:
        relayed = _relay["signals"]
        missing = [s.name for s in handler.signals if relayed is None or s not in relayed]
        if missing:
            name = threading.current_thread().name
            raise ValueError(
                "PreemptionHandler must be entered in the main thread: Python runs signal "
                f"handlers only there (this is thread {name!r}), unless the main thread relays "
                f"{', '.join(missing)} with relay_signals_to_threads() (python -m launch "
                "--debug-world does)")
        _relay["handlers"].add(handler)


@contextlib.contextmanager
def relay_signals_to_threads(signals=(signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)):
    """In the main thread: deliver ``signals`` to the :class:`PreemptionHandler` blocks that
    rank threads of a thread world have entered (they cannot install signal handlers
    themselves). A signal that arrives while no such block is active takes its previous
    action (by default it ends the process). Restores the previous handlers on exit.

    Example::

        >>> with relay_signals_to_threads():
        ...     dist.spawn_threads(train, nprocs=4)    # train() uses PreemptionHandler
    """
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("relay_signals_to_threads must be used in the main thread")
    signals = tuple(signal.Signals(s) for s in signals)
    previous = {}

    def relay(signum, frame):
        with _relay["lock"]:
            targets = [h for h in _relay["handlers"] if signum in h.signals]
        for h in targets:
            if h.signum is None:
                h.signum = int(signum)
        if not targets:  # nobody asked for it: what would have happened without the relay
            _previous_action(previous[signum], signum, frame)

    with _relay["lock"]:
        if _relay["signals"] is not None:
            raise RuntimeError("relay_signals_to_threads is already active")
        _relay["signals"] = signals
    previous.update({s: signal.signal(s, relay) for s in signals})
    try:
        yield
    finally:
        for s, prev in previous.items():
            signal.signal(s, signal.SIG_DFL if prev is None else prev)
        with _relay["lock"]:
            _relay["signals"] = None
            _relay["handlers"].clear()
