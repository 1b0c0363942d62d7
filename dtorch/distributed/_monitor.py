"""Failure handling: progress records, fingerprints and taking the whole world down.

* Progress: every rank records, per group, the sequence number of the last collective it entered.
  The main thread only sets an integer; a daemon thread copies changed values into the store
  every :data:`FLUSH_INTERVAL` seconds. A rank that times out reads the others' records and names
  the ranks that did not arrive.
* Fingerprints (``DTORCH_DISTRIBUTED_DEBUG=DETAIL``): before each collective the ranks exchange
  (operation, dtype, shape, reduce op, root, sequence number, call site); any difference raises on
  every rank with a table of what each rank called, instead of a hang or a wrong result.
* Abort: an uncaught exception (or ``sys.exit`` with a non-zero code) in one rank prints its
  traceback, publishes an abort record in the store (the other ranks' monitor threads exit on
  it) and calls ``MPI_Abort`` when MPI is running, so the job ends within seconds.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import traceback

from .errors import DistError

FLUSH_INTERVAL = 0.1
_ABORT_KEY = "dtorch/abort"


class _LockedStore:
    """Serialises calls into a store shared by the main and the monitor thread."""

    def __init__(self, store):
        self.store = store
        self.lock = threading.Lock()

    def __getattr__(self, name):
        fn = getattr(self.store, name)

        def call(*args, **kwargs):
            with self.lock:
                return fn(*args, **kwargs)

        return call


class ProgressTracker:
    """This rank's last entered sequence number of one group, mirrored into the store."""

    def __init__(self, monitor, group_name, global_ranks, my_rank):
        self.monitor = monitor
        self.prefix = f"dtorch/progress/{group_name}/"
        self.ranks = list(global_ranks)
        self.my_rank = my_rank
        self.seq = 0
        self.flushed = 0
        monitor.trackers.append(self)

    def enter(self, seq):
        self.seq = seq

    def flush(self):
        seq = self.seq
        if seq != self.flushed:
            self.monitor.store.set(self.prefix + str(self.my_rank), str(seq))
            self.flushed = seq

    def missing(self, seq):
        """``{global_rank: last_seq or None}`` of the ranks that have not entered ``seq``."""
        self.flush()
        time.sleep(3 * FLUSH_INTERVAL)  # let the other ranks' monitors publish their latest
        out = {}
        for r in self.ranks:
            if r == self.my_rank:
                continue
            key = self.prefix + str(r)
            last = int(self.monitor.store.get(key)) if self.monitor.store.check([key]) else None
            if last is None or last < seq:
                out[r] = last
        return out

    def close(self):
        if self in self.monitor.trackers:
            self.monitor.trackers.remove(self)


class Monitor:
    """The per-process daemon thread that flushes progress and watches for an abort record."""

    def __init__(self, store, rank):
        self.store = _LockedStore(store)
        self.rank = rank
        self.trackers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dtorch-monitor", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(FLUSH_INTERVAL):
            try:
                for t in list(self.trackers):
                    t.flush()
                if self.store.check([_ABORT_KEY]):
                    who = self.store.get(_ABORT_KEY).decode(errors="replace")
                    sys.stderr.write(f"dtorch.distributed: rank {self.rank} exits because {who}\n")
                    sys.stderr.flush()
                    os._exit(1)
            except Exception:  # the store may be briefly unreachable; the timeouts still apply
                continue

    def publish_abort(self, reason):
        """Write the abort record (bounded: the store's server may be gone)."""
        t = threading.Thread(target=lambda: self.store.set(_ABORT_KEY, reason), daemon=True)
        t.start()
        t.join(2.0)

    def close(self):
        self._stop.set()


# --- fingerprints ---------------------------------------------------------------------------
def call_site():
    """``file:line`` of the first frame outside dtorch.distributed (the user's call)."""
    here = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1)
    while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == here:
        f = f.f_back
    if f is None:
        return "?"
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


def fingerprint(op, seq, arrays, reduce_op=None, root=None, shapes=True):
    """(compared part, call site) of one collective call."""
    parts = [f"op={op}", f"seq={seq}"]
    for i, a in enumerate(arrays):
        if a is None:
            continue
        shape = list(a.shape) if shapes else "any"
        parts.append(f"in{i}={a.dtype}{shape}")
    if reduce_op is not None:
        parts.append(f"reduce_op={reduce_op.name}")
    if root is not None:
        parts.append(f"root={root}")
    return " ".join(parts), call_site()


def check_fingerprints(texts, ranks, ctx):
    """Raise a :class:`DistError` with a table when the ranks' fingerprints differ."""
    compared = [t.split(" @ ")[0] for t in texts]
    if len(set(compared)) <= 1:
        return
    lines = [f"dtorch.distributed: the ranks called different collectives at {ctx.describe()} "
             "(DTORCH_DISTRIBUTED_DEBUG=DETAIL):",
             f"  {'rank':>4}  {'call site':<24} fingerprint"]
    majority = max(set(compared), key=lambda c: (compared.count(c), c == compared[0]))
    for r, text in zip(ranks, texts):
        what, _, site = text.partition(" @ ")
        mark = "  " if what == majority else "<>"
        lines.append(f"{mark}{r:>4}  {site:<24} {what}")
    raise DistError("\n".join(lines))


def debug_level():
    return os.environ.get("DTORCH_DISTRIBUTED_DEBUG", "OFF").strip().upper()


# --- aborting the world on failure ----------------------------------------------------------
_hooks = {"installed": False, "exit_code": 0, "world": None}


def install_failure_handlers(world):
    """Make an uncaught exception or a non-zero ``sys.exit`` in this rank end the whole job.

    ``world`` has ``rank`` and ``abort(reason, code)``. ``raise SystemExit(n)`` written directly
    (not through ``sys.exit``) is not seen before interpreter shutdown; MPI then waits in
    ``MPI_Finalize`` until the group's timeout names this rank.
    """
    _hooks["world"] = world
    if _hooks["installed"]:
        return
    _hooks["installed"] = True
    prev_hook = sys.excepthook
    prev_exit = sys.exit

    def excepthook(tp, value, tb):
        try:
            prev_hook(tp, value, tb)
        except Exception:
            traceback.print_exception(tp, value, tb)
        w = _hooks["world"]
        if w is not None:
            w.abort(f"rank {w.rank} died of an uncaught {tp.__name__}: {value}", 1)

    def exit_(code=None):
        if code not in (None, 0):
            _hooks["exit_code"] = code if isinstance(code, int) else 1
        prev_exit(code)

    def at_exit():
        w = _hooks["world"]
        code = _hooks["exit_code"]
        if w is not None and code:
            sys.stderr.write(f"dtorch.distributed: rank {w.rank} called sys.exit({code})\n")
            w.abort(f"rank {w.rank} called sys.exit({code})", code)

    sys.excepthook = excepthook
    sys.exit = exit_
    atexit.register(at_exit)


def clear_failure_handlers():
    """Stop aborting the world (after destroy_process_group)."""
    _hooks["world"] = None
    _hooks["exit_code"] = 0
