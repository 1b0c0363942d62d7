"""Worker processes: start, prefix and log their output, watch them, stop them cleanly.

Each worker runs in its own session (its own process group), so that a signal the launcher
forwards, or the kill that ends a failed group, reaches the worker *and everything it started*
(data-loader processes, a PMI server), and so that Ctrl-C in a terminal reaches only the
launcher, which then decides. On Linux each worker also asks the kernel to kill it when the
launcher dies (``PR_SET_PDEATHSIG``, set by a tiny exec wrapper before the real command), so not
even a ``kill -9`` of the launcher leaves orphans.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["Worker", "OutputSink", "last_traceback", "describe_status"]

# Runs first in the worker: die with the launcher, then become the real command (same pid).
_PDEATHSIG_WRAPPER = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"   # PR_SET_PDEATHSIG
    "os.getppid() == int(sys.argv[1]) or os._exit(137)\n"            # launcher already gone
    "os.execv(sys.argv[2], sys.argv[2:])\n")


class OutputSink:
    """Where the workers' lines go: the launcher's console (prefixed) under one lock."""

    def __init__(self, stdout=None, stderr=None, prefix=True):
        self.streams = {"stdout": stdout or sys.stdout.buffer,
                        "stderr": stderr or sys.stderr.buffer}
        self.prefix = prefix
        self.lock = threading.Lock()

    def write(self, stream: str, rank: int, line: bytes) -> None:
        out = self.streams[stream]
        data = (b"[rank%d]: " % rank + line) if self.prefix else line
        with self.lock:
            try:
                out.write(data)
                out.flush()
            except (OSError, ValueError):
                pass  # console gone (closed pipe): keep supervising regardless


def _split_lines(buf: bytearray) -> list[bytes]:
    """Take complete lines (ending in \\n or \\r: progress bars redraw with \\r) from ``buf``."""
    lines, start = [], 0
    for i, b in enumerate(buf):
        if b in (10, 13):
            lines.append(bytes(buf[start:i + 1]))
            start = i + 1
    del buf[:start]
    return lines


def last_traceback(lines, limit: int = 60) -> str:
    """The last Python traceback in ``lines`` (text lines), through its exception line."""
    lines = list(lines)
    starts = [i for i, s in enumerate(lines) if s.startswith("Traceback (most recent call")]
    if not starts:
        return ""
    block = lines[starts[-1]:]
    end = len(block)
    for i in range(1, len(block)):  # the exception line is the first unindented one after
        if block[i] and not block[i][0].isspace():
            end = i + 1
            # chained notes / "During handling" blocks belong to the previous traceback
            while end < len(block) and block[end] and block[end][0].isspace():
                end += 1
            break
    block = block[:end]
    if len(block) > limit:
        block = block[:3] + [f"  ... ({len(block) - limit} lines left out) ..."] + \
            block[-(limit - 4):]
    return "\n".join(block)


def describe_status(code: int | None) -> str:
    """``exit code 3`` / ``signal SIGKILL (9)`` for a Popen return code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"signal {name} ({-code})"
    return f"exit code {code}"


class Worker:
    """One worker process of a group (rank, local rank), with its output pumps and waiter."""

    def __init__(self, rank: int, local_rank: int, cmd: list[str], env: dict[str, str],
                 sink: OutputSink, log_dir: str | None = None, tail_lines: int = 400):
        self.rank, self.local_rank = rank, local_rank
        self.sink = sink
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.exit_time: float | None = None
        self.returncode: int | None = None
        self.signalled_by_launcher = False
        self.done = threading.Event()
        self._logs = {}
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            for stream in ("stdout", "stderr"):
                path = os.path.join(log_dir, f"rank{rank}.{stream}")
                self._logs[stream] = open(path, "wb", buffering=0)  # noqa: SIM115
        argv = list(cmd)
        if sys.platform.startswith("linux"):
            argv = [sys.executable, "-S", "-c", _PDEATHSIG_WRAPPER, str(os.getpid()), *argv]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, close_fds=True)
        self.pid = self.proc.pid
        self._pumps = [threading.Thread(target=self._pump, args=(s, getattr(self.proc, s)),
                                        name=f"launch-rank{rank}-{s}", daemon=True)
                       for s in ("stdout", "stderr")]
        for t in self._pumps:
            t.start()
        threading.Thread(target=self._wait, name=f"launch-rank{rank}-wait", daemon=True).start()

    def _pump(self, stream: str, pipe) -> None:
        buf = bytearray()
        log = self._logs.get(stream)
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if log is not None and chunk:
                log.write(chunk)
            if chunk:
                buf += chunk
                lines = _split_lines(buf)
            else:
                lines = [bytes(buf) + b"\n"] if buf else []
            for line in lines:
                self.sink.write(stream, self.rank, line)
                if stream == "stderr":
                    self.stderr_tail.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if not chunk:
                break
        pipe.close()
        if log is not None:
            log.close()

    def _wait(self) -> None:
        code = self.proc.wait()
        self.exit_time = time.monotonic()
        for t in self._pumps:  # a grandchild may hold the pipes open: do not wait forever
            t.join(2.0)
        self.returncode = code
        self.done.set()

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group (itself and what it started)."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def traceback(self) -> str:
        return last_traceback(self.stderr_tail)


def stop_all(workers, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Send ``sig`` to every running worker, wait up to ``grace`` s, then SIGKILL the rest.

    Process groups are swept with SIGKILL at the end, so that nothing a worker started
    outlives it.
    """
    for w in workers:
        if w.running:
            w.signalled_by_launcher = True
            w.signal_group(sig)
    deadline = time.monotonic() + grace
    for w in workers:
        w.done.wait(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.running:
            w.signal_group(signal.SIGKILL)
    for w in workers:
        w.done.wait(10.0)
        w.signal_group(signal.SIGKILL)  # stragglers in the group, if any
