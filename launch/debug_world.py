"""``--debug-world N``: run a script as N ranks in threads of one process (the thread backend).

Each rank is a thread that executes the script's ``__main__`` in a fresh module namespace, so a
debugger (``breakpoint()``) and one ``pdb`` session see every rank, and collectives are exact
and checked (the thread world always compares the ranks' calls). Per rank thread:

* ``dtorch.distributed.init_process_group()`` -- whatever backend or ``init_method`` it is given
  (``None``, ``"mpi"``, ``"nccl"``, ``"gloo"``, ``env://``) -- forms the thread world, using the
  rank and world size that :func:`dtorch.distributed.spawn_threads` gives the thread;
* ``os.environ`` shows that thread's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
  ``LOCAL_WORLD_SIZE`` and ``GROUP_RANK`` (a thread-local overlay; writes go to the real
  environment; child processes see the real environment);
* lines printed to ``sys.stdout``/``sys.stderr`` are prefixed ``[rankN]:``.

The first rank that raises (or exits non-zero) makes the others' pending collectives fail at
once; the launcher prints that rank's traceback and exits with 1 (or its ``sys.exit`` code).
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import threading
import time
import traceback
import types
from collections.abc import MutableMapping

__all__ = ["run_debug_world"]

_tls = threading.local()  # .rank, .env, .buf (per stream)


class _ThreadEnviron(MutableMapping):
    """``os.environ`` with a per-thread overlay (a rank thread's RANK, WORLD_SIZE, ...)."""

    def __init__(self, base):
        self._base = base

    def _over(self):
        return getattr(_tls, "env", None) or {}

    def __getitem__(self, key):
        over = self._over()
        return over[key] if key in over else self._base[key]

    def __setitem__(self, key, value):
        over = self._over()
        if key in over:
            over[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key):
        over = self._over()
        if key in over:
            del over[key]
        else:
            del self._base[key]

    def __iter__(self):
        keys = dict.fromkeys(self._base)
        keys.update(dict.fromkeys(self._over()))
        return iter(keys)

    def __len__(self):
        return len(set(self._base) | set(self._over()))

    def copy(self):
        return dict(self)

    def __repr__(self):
        return f"environ({dict(self)!r})"


class _RankStream(io.TextIOBase):
    """Prefixes each complete line written by a rank thread with ``[rankN]: ``."""

    def __init__(self, base, name, lock):
        self._base, self._name, self._lock = base, name, lock

    def write(self, text):
        rank = getattr(_tls, "rank", None)
        if rank is None:
            return self._base.write(text)
        bufs = _tls.__dict__.setdefault("bufs", {})
        buf = bufs.get(self._name, "") + text
        cut = max(buf.rfind("\n"), buf.rfind("\r")) + 1
        if cut:
            lines = buf[:cut].replace("\r\n", "\n")
            out, start = [], 0
            for i, ch in enumerate(lines):
                if ch in "\n\r":
                    out.append(f"[rank{rank}]: {lines[start:i + 1]}")
                    start = i + 1
            with self._lock:
                self._base.write("".join(out))
                self._base.flush()
        bufs[self._name] = buf[cut:]
        return len(text)

    def flush(self):
        rank = getattr(_tls, "rank", None)
        rest = getattr(_tls, "bufs", {}).get(self._name, "")
        if rank is not None and rest:
            _tls.bufs[self._name] = ""
            with self._lock:
                self._base.write(f"[rank{rank}]: {rest}\n")
        self._base.flush()

    def isatty(self):
        return self._base.isatty()

    def fileno(self):
        return self._base.fileno()

    @property
    def encoding(self):
        return getattr(self._base, "encoding", "utf-8")

    def writable(self):
        return True


def _load_code(script: str, module: bool):
    """(code object, __file__, sys.path[0]) of a script path or ``-m`` module."""
    if not module:
        path = os.path.abspath(script)
        with open(path, "rb") as f:
            return compile(f.read(), path, "exec"), path, os.path.dirname(path)
    sys.path.insert(0, os.getcwd())
    spec = importlib.util.find_spec(script)
    if spec is None:
        raise ModuleNotFoundError(f"launch --debug-world: no module named {script!r}")
    if spec.submodule_search_locations is not None:  # a package: run its __main__
        spec = importlib.util.find_spec(f"{script}.__main__")
        if spec is None:
            raise ModuleNotFoundError(f"launch --debug-world: {script!r} is a package and "
                                      "has no __main__ module")
    code = spec.loader.get_code(spec.name)
    return code, spec.origin, None


def run_debug_world(script: str, script_args: list[str], nranks: int, module: bool = False,
                    timeout: float | None = None) -> int:
    """Run the script as ``nranks`` rank threads; return the exit code for the launcher."""
    if nranks < 1:
        raise ValueError(f"--debug-world must be >= 1, got {nranks}")
    code, file, path0 = _load_code(script, module)
    from dtorch.distributed import threads
    from dtorch.distributed.replicated_checkpoint import relay_signals_to_threads

    failures = []  # (time, rank, exception) in the order the ranks failed
    lock = threading.Lock()
    peer_failed = getattr(threads, "PeerFailedError", ())

    def rank_main(rank):
        _tls.rank = rank
        _tls.env = dict(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nranks),
                        LOCAL_WORLD_SIZE=str(nranks), GROUP_RANK="0", ROLE_RANK=str(rank))
        mod = types.ModuleType("__main__")
        mod.__file__, mod.__builtins__ = file, __builtins__
        if rank == 0:
            sys.modules["__main__"] = mod
        try:
            exec(code, mod.__dict__)
        except SystemExit as e:
            if e.code not in (None, 0):
                failures.append((time.monotonic(), rank, e, ""))
                raise
        except BaseException as e:
            # the script's frames only (not this function's)
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
            failures.append((time.monotonic(), rank, e, tb))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    saved = (sys.argv, sys.stdout, sys.stderr, os.environ, sys.modules.get("__main__"),
             list(sys.path))
    sys.argv = [file, *script_args]
    if path0 is not None:
        sys.path.insert(0, path0)
    sys.stdout = _RankStream(sys.stdout, "stdout", lock)
    sys.stderr = _RankStream(sys.stderr, "stderr", lock)
    os.environ = _ThreadEnviron(saved[3])  # noqa: B003 -- an overlay, not a new env
    sys.stderr.write(f"launch: debug world: running {script} as {nranks} rank threads of "
                     f"process {os.getpid()} (thread backend)\n")
    try:
        with relay_signals_to_threads():  # PreemptionHandler blocks in the rank threads
            threads.spawn_threads(rank_main, nprocs=nranks, timeout=timeout)
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("launch: debug world interrupted\n")
        return 130
    except BaseException as exc:  # noqa: BLE001 -- reported below
        return _report(exc, failures, peer_failed)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        (sys.argv, sys.stdout, sys.stderr, os.environ, main, sys.path[:]) = saved
        if main is not None:
            sys.modules["__main__"] = main


def _report(exc, failures, peer_failed) -> int:
    causes = [f for f in failures if not (peer_failed and isinstance(f[2], peer_failed))]
    if failures:
        _, rank, root, tb = min(causes or failures, key=lambda f: f[0])
    else:
        rank, root, tb = None, exc, "".join(traceback.format_exception(exc))
    bar = "=" * 72
    lines = [bar, "launch: the debug world failed", "root cause:"]
    if isinstance(root, SystemExit):
        code = root.code if isinstance(root.code, int) else 1
        lines.append(f"  rank {rank}: sys.exit({root.code!r})")
    else:
        code = 1
        lines.append(f"  rank {rank}: {type(root).__name__}: {root}")
        lines.append("  traceback:")
        lines.extend("    " + s for s in tb.rstrip("\n").splitlines())
    others = sorted({f[1] for f in failures} - {rank})
    if others:
        lines.append(f"other ranks that failed in consequence: {others}")
    lines.append(bar)
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    return code
