"""A PMI-1 process manager, so that independently started processes form one MPI COMM_WORLD.

MPICH's ``MPI_Init`` asks its process manager (normally ``mpiexec``) for its rank, the world size
and a key-value space over the *simple PMI-1* line protocol. With ``PMI_PORT=host:port`` and
``PMI_ID=rank`` in its environment, a process connects to that address, sends
``cmd=initack pmiid=<rank>`` and then ``init``, ``get_maxes``, ``get_appnum``,
``get_my_kvsname``, ``get``/``put``, ``barrier_in``, ``finalize`` or ``abort``. This module
answers them, so the processes of an ``env://``/``tcp://``/``file://`` rendezvous (or of the
launcher) get a genuine ``COMM_WORLD`` from the pip ``mpich`` wheel without ``mpiexec``.

Two measured pitfalls shape it:

* The server must not be a thread of a rank process: mpi4py holds the GIL inside ``MPI_Init``,
  so an in-process server never answers. It runs as its own process (:func:`start_server`, or
  ``python .../_pmi.py --world-size N --host H --port P``, or the launcher calling
  :func:`serve`). It imports nothing but the standard library.
* It must outlive every rank's ``MPI_Finalize`` (ranks crash in finalize otherwise): it exits
  only when every rank has finalized, or on abort, timeout, or the death of its parent.

Failure handling: ``MPI_Abort`` in one rank, a rank whose connection closes before it finalized,
or a rank that never connects within the timeout makes the server fail. Each rank holds a second
"watch" connection (opened by :func:`configure_mpi_env`, served by a daemon thread that runs
while the main thread is inside an MPI call, since mpi4py releases the GIL there); on failure
the server tells every watcher, which prints the reason and ends its process with the abort's
exit code, so no rank hangs in a collective. The server's exit status is 0 when all ranks
finalized, the abort's exit code after ``MPI_Abort`` (1 if that was 0), and 1 otherwise.

Example (what rank ``r`` of ``n`` does; :func:`form_world_via_store` wraps it)::

    addr = form_world_via_store(store, rank=r, world_size=n)  # sets PMI_PORT, PMI_ID, ...
    from mpi4py import MPI                                      # MPI_Init talks to the server
    assert MPI.COMM_WORLD.Get_size() == n
"""

from __future__ import annotations

import argparse
import os
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote, unquote

__all__ = ["PMIServer", "serve", "start_server", "PMIServerProcess", "configure_mpi_env",
           "form_world_via_store"]

PMI_VERSION, PMI_SUBVERSION = 1, 1
KVSNAME_MAX, KEYLEN_MAX, VALLEN_MAX = 256, 256, 1024
MAX_LINE = 64 * 1024
MAX_KVS_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 1800.0
_ADDR_PREFIX = "DTORCH_PMI_ADDRESS="
_STORE_KEY = "dtorch/pmi/address"


def _parse(line: str) -> tuple[str, dict[str, str]]:
    """Split ``cmd=name k1=v1 k2=v2`` into the command and its attributes."""
    tokens = line.split()
    if not tokens or not tokens[0].startswith("cmd="):
        raise ValueError(f"expected 'cmd=...', got {line[:80]!r}")
    attrs = {}
    for tok in tokens[1:]:
        key, sep, value = tok.partition("=")
        attrs[key] = value if sep else ""
    return tokens[0][4:], attrs


class _Conn:
    __slots__ = ("sock", "rbuf", "wbuf", "rank", "kind", "mcmd", "peer", "pid")

    def __init__(self, sock, peer):
        self.sock, self.peer = sock, peer
        self.rbuf, self.wbuf = bytearray(), bytearray()
        self.rank = None   # set by initack (a PMI connection) or dtorch_watch (a watcher)
        self.kind = None   # "pmi" or "watch"
        self.mcmd = None   # lines of a multi-line (mcmd=) command being received
        self.pid = None


class PMIServer:
    """The PMI-1 server for one world of ``world_size`` ranks (call :meth:`serve`).

    Args:
        world_size (int): number of ranks.
        host (str): address to bind (and to publish); only this address is bound.
        port (int): port, 0 for a free one (see :attr:`address`).
        timeout (float): seconds for all ranks to connect, and for each PMI barrier.
        process_mapping (str): ``"auto"`` publishes ``PMI_process_mapping`` (all ranks on one
            node) when every rank connects from one address, ``"none"`` never does (MPICH then
            exchanges host names through the key-value space), anything else is published as is.
        parent_pid (int, optional): fail when this process (our parent) dies ...
        parent_rank (int, optional): ... unless it is this rank and it had finalized.
        linger (float): seconds to keep answering newcomers with the reason after a failure.
    """

    def __init__(self, world_size: int, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, process_mapping: str = "auto",
                 parent_pid: int | None = None, parent_rank: int | None = None, log=None,
                 linger: float = 1.0):
        if world_size < 1:
            raise ValueError(f"PMIServer world_size must be >= 1, got {world_size}")
        self.world_size, self.timeout = int(world_size), float(timeout)
        self.process_mapping = process_mapping
        self.parent_pid, self.parent_rank = parent_pid, parent_rank
        self.linger = float(linger)
        self.log = log or sys.stderr
        self._lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._lsock.bind((host, port))
        except OSError as e:
            self._lsock.close()
            raise OSError(e.errno, f"PMI server cannot listen on {host}:{port}: "
                          f"{e.strerror}") from e
        self._lsock.listen(max(128, self.world_size * 2))
        self._lsock.setblocking(False)
        self.host, self.port = host, self._lsock.getsockname()[1]
        self.kvsname = f"kvs_dtorch_{os.getpid()}_{self.port}"
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ)
        self._conns: set[_Conn] = set()
        self._ranks: dict[int, _Conn] = {}
        self._watchers: dict[int, _Conn] = {}
        self._finalized: set[int] = set()
        self._kvs: dict[str, str] = {}
        self._kvs_bytes = 0
        self._names: dict[str, str] = {}
        self._barrier: dict[int, _Conn] = {}
        self._barrier_since = 0.0
        self._mapping_waiters: list[_Conn] = []
        self.failure: str | None = None
        self.exit_code: int | None = None
        self._code = 1

    @property
    def address(self) -> str:
        """``host:port`` as a rank's ``PMI_PORT`` expects it."""
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ main loop
    def serve(self) -> int:
        """Run until all ranks finalized (0) or the world failed (non-zero); see the module."""
        start = time.monotonic()
        try:
            while self.exit_code is None:
                for key, mask in self._sel.select(timeout=0.1):
                    if key.fileobj is self._lsock:
                        self._accept()
                        continue
                    conn = key.data
                    if mask & selectors.EVENT_WRITE:
                        self._flush(conn)
                    if mask & selectors.EVENT_READ and conn in self._conns:
                        self._read(conn)
                    if self.failure:
                        break
                if self.failure is None:
                    self._check_progress(start)
                if self.failure is not None:
                    self._fail()
                elif len(self._finalized) == self.world_size:
                    self._finish()
        except KeyboardInterrupt:
            self._set_failure("the PMI server was interrupted", 1)
            self._fail()
        finally:
            self.close()
        return self.exit_code

    def close(self) -> None:
        """Close every socket (idempotent)."""
        for c in list(self._conns):
            self._drop(c)
        try:
            self._sel.unregister(self._lsock)
        except (KeyError, ValueError):
            pass
        self._lsock.close()

    def _set_failure(self, message: str, code: int = 1) -> None:
        if self.failure is None:
            self.failure, self._code = message, (code if code else 1)

    def _check_progress(self, start: float) -> None:
        now = time.monotonic()
        if len(self._ranks) < self.world_size and now - start > self.timeout:
            missing = [r for r in range(self.world_size) if r not in self._ranks]
            started = [r for r in missing if r in self._watchers]
            self._set_failure(
                f"MPI world formation timed out after {self.timeout:g} s: ranks {missing} of "
                f"world_size {self.world_size} never reached MPI_Init (connected to the process "
                f"manager at {self.address})"
                + (f"; ranks {started} had started but not initialized MPI" if started else ""))
        elif self._barrier and now - self._barrier_since > self.timeout:
            missing = [r for r in range(self.world_size)
                       if r not in self._barrier and r not in self._finalized]
            self._set_failure(f"PMI barrier timed out after {self.timeout:g} s: ranks "
                              f"{sorted(self._barrier)} arrived, ranks {missing} did not")
        elif self.parent_pid is not None and os.getppid() != self.parent_pid:
            if self.parent_rank is None or self.parent_rank not in self._finalized:
                who = "" if self.parent_rank is None else f" (rank {self.parent_rank})"
                self._set_failure(f"the PMI server's parent process {self.parent_pid}{who} "
                                  "exited before MPI_Finalize")
            self.parent_pid = None

    def _fail(self) -> None:
        print(f"dtorch PMI server {self.address}: {self.failure}", file=self.log, flush=True)
        line = f"cmd=dtorch_abort exitcode={self._code} reason={quote(self.failure)}\n"
        for w in list(self._watchers.values()):
            self._send_now(w, line)
        # Let watched ranks exit with the reason first (their watch connection closes) ...
        deadline = time.monotonic() + 0.5
        while any(c.kind == "watch" for c in self._conns) and time.monotonic() < deadline:
            for key, _ in self._sel.select(timeout=0.05):
                if key.fileobj is not self._lsock and key.data in self._conns:
                    self._read(key.data)
        for c in list(self._conns):
            self._drop(c)  # ... then ranks inside MPI_Init or a PMI call see EOF and abort
        # Ranks starting late would find nothing listening and could not tell why: for a
        # moment, answer every newcomer with the reason instead.
        self._lsock.setblocking(True)
        self._lsock.settimeout(0.05)
        deadline = time.monotonic() + self.linger
        while time.monotonic() < deadline:
            try:
                sock, _ = self._lsock.accept()
            except OSError:
                continue
            self._send_now(_Conn(sock, None), line)
            sock.close()
        self.exit_code = self._code

    def _finish(self) -> None:
        for w in list(self._watchers.values()):
            self._send_now(w, "cmd=dtorch_done\n")
        # Ranks read nothing after finalize_ack, but give them a moment to close first.
        deadline = time.monotonic() + 2.0
        while any(c.kind == "pmi" for c in self._conns) and time.monotonic() < deadline:
            for key, mask in self._sel.select(timeout=0.05):
                if key.fileobj is not self._lsock and key.data in self._conns:
                    if mask & selectors.EVENT_WRITE:
                        self._flush(key.data)
                    if mask & selectors.EVENT_READ:
                        self._read(key.data)
        self.exit_code = 0

    # ------------------------------------------------------------------ sockets
    def _accept(self) -> None:
        try:
            sock, peer = self._lsock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, peer)
        self._conns.add(conn)
        self._sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _send(self, conn: _Conn, text: str) -> None:
        conn.wbuf += text.encode()
        self._flush(conn)

    def _send_now(self, conn: _Conn, text: str) -> None:
        """Best-effort blocking send, used on the way out."""
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(1.0)
            conn.sock.sendall(bytes(conn.wbuf) + text.encode())
            conn.wbuf.clear()
        except OSError:
            pass

    def _flush(self, conn: _Conn) -> None:
        try:
            while conn.wbuf:
                n = conn.sock.send(conn.wbuf)
                del conn.wbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._lost(conn)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wbuf else 0)
        self._sel.modify(conn.sock, events, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(conn)
            return
        conn.rbuf += data
        while conn in self._conns and self.failure is None:
            nl = conn.rbuf.find(b"\n")
            if nl < 0:
                if len(conn.rbuf) > MAX_LINE:
                    self._bad(conn, f"line longer than {MAX_LINE} bytes")
                return
            if nl > MAX_LINE:
                self._bad(conn, f"line longer than {MAX_LINE} bytes")
                return
            raw = bytes(conn.rbuf[:nl])
            del conn.rbuf[:nl + 1]
            try:
                line = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                self._bad(conn, "non-ASCII bytes in a PMI line")
                return
            if line:
                self._line(conn, line)

    def _who(self, conn: _Conn) -> str:
        return f"rank {conn.rank}" if conn.rank is not None else f"client {conn.peer}"

    def _bad(self, conn: _Conn, why: str) -> None:
        """A protocol violation: fatal from a rank, otherwise just drop the stranger."""
        if conn.rank is not None:
            self._set_failure(f"{self._who(conn)} broke the PMI protocol: {why}")
        else:
            print(f"dtorch PMI server {self.address}: dropped {self._who(conn)}: {why}",
                  file=self.log, flush=True)
        self._drop(conn)

    def _lost(self, conn: _Conn) -> None:
        self._drop(conn)
        if conn.rank is None or conn.rank in self._finalized:
            return
        if conn.kind == "pmi":
            self._set_failure(f"rank {conn.rank} exited (its PMI connection closed) before "
                              "MPI_Finalize")
        elif conn.kind == "watch" and self._watchers.get(conn.rank) is conn:
            pid = f" (pid {conn.pid})" if conn.pid else ""
            self._set_failure(f"rank {conn.rank}{pid} exited before MPI_Finalize")

    # ------------------------------------------------------------------ protocol
    def _claim(self, conn: _Conn, attrs: dict, field: str, table: dict, kind: str) -> bool:
        try:
            rank = int(attrs.get(field, ""))
        except ValueError:
            self._bad(conn, f"{field}={attrs.get(field)!r} is not an integer")
            return False
        if not 0 <= rank < self.world_size:
            self._set_failure(f"a process claims rank {rank}, outside [0, world_size="
                              f"{self.world_size}) (PMI_ID)")
            return False
        if rank in table:
            self._set_failure(f"two processes claim rank {rank} ({kind} connections from "
                              f"{table[rank].peer} and {conn.peer})")
            return False
        conn.rank, conn.kind = rank, kind
        table[rank] = conn
        return True

    def _line(self, conn: _Conn, line: str) -> None:
        if conn.mcmd is not None or line.startswith("mcmd="):
            conn.mcmd = (conn.mcmd or []) + [line]
            if line == "endcmd":
                conn.mcmd = None
                self._send(conn, "cmd=spawn_result rc=-1 msg=spawn_is_not_supported\n")
            return
        try:
            cmd, a = _parse(line)
        except ValueError as e:
            self._bad(conn, str(e))
            return
        if conn.kind is None:
            if cmd == "initack":
                if self._claim(conn, a, "pmiid", self._ranks, "pmi"):
                    self._send(conn, f"cmd=initack rc=0\ncmd=set size={self.world_size}\n"
                                     f"cmd=set rank={conn.rank}\ncmd=set debug=0\n")
                    self._answer_mapping()
            elif cmd == "dtorch_watch":
                conn.pid = a.get("pid")
                if self._claim(conn, a, "rank", self._watchers, "watch"):
                    self._send(conn, "cmd=dtorch_watch_ack rc=0\n")
            else:
                self._bad(conn, f"first command must be initack (PMI_ID set), got {cmd!r}")
            return
        if conn.kind != "pmi":
            self._bad(conn, f"unexpected {cmd!r} on a watch connection")
            return
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            self._send(conn, f"cmd={cmd}_result rc=-1 msg=unknown_command\n")
        else:
            handler(conn, a)

    def _cmd_init(self, conn, a):
        self._send(conn, f"cmd=response_to_init pmi_version={PMI_VERSION} "
                         f"pmi_subversion={PMI_SUBVERSION} rc=0\n")

    def _cmd_get_maxes(self, conn, a):
        self._send(conn, f"cmd=maxes kvsname_max={KVSNAME_MAX} keylen_max={KEYLEN_MAX} "
                         f"vallen_max={VALLEN_MAX} rc=0\n")

    def _cmd_get_appnum(self, conn, a):
        self._send(conn, "cmd=appnum appnum=0 rc=0\n")

    def _cmd_get_universe_size(self, conn, a):
        self._send(conn, f"cmd=universe_size size={self.world_size} rc=0\n")

    def _cmd_get_my_kvsname(self, conn, a):
        self._send(conn, f"cmd=my_kvsname kvsname={self.kvsname} rc=0\n")

    def _cmd_put(self, conn, a):
        key, value = a.get("key", ""), a.get("value", "")
        if not key or len(key) > KEYLEN_MAX or len(value) > VALLEN_MAX:
            self._send(conn, "cmd=put_result rc=-1 msg=bad_key_or_value_length\n")
            return
        self._kvs_bytes += len(key) + len(value)
        if self._kvs_bytes > MAX_KVS_BYTES:
            self._set_failure(f"rank {conn.rank} overflowed the PMI key-value space "
                              f"({MAX_KVS_BYTES} bytes)")
            return
        self._kvs[key] = value
        self._send(conn, "cmd=put_result rc=0 msg=success\n")

    def _cmd_get(self, conn, a):
        key = a.get("key", "")
        if key == "PMI_process_mapping" and self.process_mapping != "none":
            self._mapping_waiters.append(conn)
            self._answer_mapping()
            return
        if key in self._kvs:
            self._send(conn, f"cmd=get_result rc=0 msg=success value={self._kvs[key]}\n")
        else:
            self._send(conn, f"cmd=get_result rc=-1 msg=key_{key}_not_found\n")

    def _answer_mapping(self) -> None:
        """Answer once every rank has connected: only then is "one node" known."""
        if len(self._ranks) < self.world_size:
            return
        if self.process_mapping == "auto":
            one_host = len({c.peer[0] for c in self._ranks.values()}) == 1
            mapping = f"(vector,(0,1,{self.world_size}))" if one_host else None
        else:
            mapping = self.process_mapping
        for c in self._mapping_waiters:
            if c in self._conns:
                self._send(c, f"cmd=get_result rc=0 msg=success value={mapping}\n" if mapping
                           else "cmd=get_result rc=-1 msg=key_PMI_process_mapping_not_found\n")
        self._mapping_waiters.clear()

    def _cmd_barrier_in(self, conn, a):
        if not self._barrier:
            self._barrier_since = time.monotonic()
        self._barrier[conn.rank] = conn
        if len(self._barrier) == self.world_size:
            for c in self._barrier.values():
                self._send(c, "cmd=barrier_out rc=0\n")
            self._barrier.clear()

    def _cmd_finalize(self, conn, a):
        self._finalized.add(conn.rank)
        self._send(conn, "cmd=finalize_ack rc=0\n")

    def _cmd_abort(self, conn, a):
        try:
            code = int(a.get("exitcode", "1"))
        except ValueError:
            code = 1
        msg = a.get("message", "")
        self._set_failure(f"rank {conn.rank} called MPI_Abort (exit code {code})"
                          + (f": {msg}" if msg else ""), code)

    def _cmd_publish_name(self, conn, a):
        self._names[a.get("service", "")] = a.get("port", "")
        self._send(conn, "cmd=publish_result rc=0 msg=success\n")

    def _cmd_unpublish_name(self, conn, a):
        found = self._names.pop(a.get("service", ""), None) is not None
        self._send(conn, f"cmd=unpublish_result rc={0 if found else -1}\n")

    def _cmd_lookup_name(self, conn, a):
        port = self._names.get(a.get("service", ""))
        self._send(conn, f"cmd=lookup_result rc=0 port={port}\n" if port is not None
                   else "cmd=lookup_result rc=-1 msg=service_not_found\n")


def serve(world_size: int, host: str = "127.0.0.1", port: int = 0,
          timeout: float = DEFAULT_TIMEOUT, on_ready=None, **kwargs) -> int:
    """Serve one world and return its exit status (0: every rank finalized; else failure).

    ``on_ready(address)`` is called once the socket listens (useful with ``port=0``).
    Other keyword arguments go to :class:`PMIServer`.
    """
    server = PMIServer(world_size, host, port, timeout, **kwargs)
    if on_ready is not None:
        on_ready(server.address)
    return server.serve()


# ---------------------------------------------------------------------- server as a process
class PMIServerProcess:
    """Handle on a server started by :func:`start_server`: ``address``, ``process``, ``wait``."""

    def __init__(self, process: subprocess.Popen, address: str):
        self.process, self.address = process, address

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the server to exit; return its exit status."""
        return self.process.wait(timeout)


def start_server(world_size: int, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, process_mapping: str = "auto",
                 parent_rank: int | None = None, start_timeout: float = 60.0,
                 linger: float = 1.0) -> PMIServerProcess:
    """Start the PMI server as a separate process (see the pitfalls above); return its handle.

    The server fails the world if this process dies before it finalized as ``parent_rank``.
    """
    # -I: only the standard library, and no sibling module of this file shadowing it.
    cmd = [sys.executable, "-I", os.path.abspath(__file__), "--world-size", str(world_size),
           "--host", host, "--port", str(port), "--timeout", str(timeout),
           "--process-mapping", process_mapping, "--parent-pid", str(os.getpid()),
           "--linger", str(linger)]
    if parent_rank is not None:
        cmd += ["--parent-rank", str(parent_rank)]
    # NOTE: a plain child (not a multiprocessing daemon) survives our exit, as it must.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            close_fds=True, env={k: v for k, v in os.environ.items()
                                                 if not k.startswith("PMI_")})
    line = b""
    deadline = time.monotonic() + start_timeout
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    proc.stdout.close()
    text = line.decode(errors="replace").strip()
    if not text.startswith(_ADDR_PREFIX):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise _backend_error(f"the PMI server for world_size {world_size} on {host}:{port} did "
                             f"not start (exit status {proc.returncode}, output {text!r})")
    return PMIServerProcess(proc, text[len(_ADDR_PREFIX):])


def _backend_error(message: str) -> Exception:
    try:
        from .errors import DistBackendError
    except ImportError:  # run as a script: no package context
        return RuntimeError(message)
    return DistBackendError(message)


# ---------------------------------------------------------------------- worker side
def _watch(sock: socket.socket, rank: int, address: str) -> None:
    reader = sock.makefile("rb")
    try:
        while True:
            raw = reader.readline(MAX_LINE)
            if not raw:
                reason, code = f"lost the connection to the MPI process manager at {address}", 1
                break
            cmd, a = _parse(raw.decode("ascii", "replace"))
            if cmd == "dtorch_done":
                return
            if cmd == "dtorch_abort":
                reason = unquote(a.get("reason", "the world was aborted"))
                code = int(a.get("exitcode", "1")) or 1
                break
    except (OSError, ValueError) as e:
        reason, code = f"lost the connection to the MPI process manager at {address}: {e}", 1
    sys.stderr.write(f"dtorch: rank {rank}: MPI world aborted: {reason}; exiting with "
                     f"code {code}\n")
    sys.stderr.flush()
    os._exit(code)


def configure_mpi_env(pmi_addr: str, rank: int, world_size: int, watch: bool = True,
                      timeout: float = 60.0) -> None:
    """Point MPICH's ``MPI_Init`` at the PMI server ``pmi_addr`` (``host:port``) as ``rank``.

    Must run before ``mpi4py.MPI`` is imported (importing it initialises MPI). Sets
    ``PMI_PORT``, ``PMI_ID``, ``PMI_RANK`` and ``PMI_SIZE``, removes an inherited ``PMI_FD``
    and, with ``watch``, registers this process with the server so that a failure anywhere in
    the world ends it (see the module docstring).
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized():
        raise _backend_error(
            f"configure_mpi_env(rank={rank}) called after MPI was initialised (mpi4py.MPI was "
            "imported first): the PMI settings must be in place before MPI_Init")
    if not 0 <= rank < world_size:
        raise ValueError(f"configure_mpi_env: rank {rank} outside [0, world_size={world_size})")
    host, sep, port = pmi_addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"configure_mpi_env: PMI address must be host:port, got {pmi_addr!r}")
    if watch:
        sock = _connect_watch(host, int(port), rank, timeout)
        threading.Thread(target=_watch, args=(sock, rank, pmi_addr), name="dtorch-pmi-watch",
                         daemon=True).start()
    os.environ.pop("PMI_FD", None)
    os.environ.update(PMI_PORT=pmi_addr, PMI_ID=str(rank), PMI_RANK=str(rank),
                      PMI_SIZE=str(world_size))


def _connect_watch(host: str, port: int, rank: int, timeout: float) -> socket.socket:
    # NOTE: the address is published only once the server listens, so "refused" means the
    # server is gone (it exits when the world fails): fail at once; retry only other errors.
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(0.1, timeout))
            break
        except ConnectionRefusedError as e:
            raise _backend_error(f"rank {rank}: nothing listens at the PMI server address "
                                 f"{host}:{port}: the server has exited (a world that failed "
                                 "ends it; see the other ranks' errors)") from e
        except OSError as e:
            if time.monotonic() >= deadline:
                raise _backend_error(f"rank {rank} could not reach the PMI server at "
                                     f"{host}:{port} within {timeout:g} s: {e!r}") from e
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    sock.sendall(f"cmd=dtorch_watch rank={rank} pid={os.getpid()}\n".encode())
    reply = sock.makefile("rb").readline(MAX_LINE).decode("ascii", "replace").strip()
    if not reply.startswith("cmd=dtorch_watch_ack"):
        sock.close()
        reason = reply or "connection closed"
        if reply.startswith("cmd=dtorch_abort"):
            reason = unquote(_parse(reply)[1].get("reason", ""))
        raise _backend_error(f"rank {rank}: the MPI world at {host}:{port} failed before this "
                             f"rank joined: {reason}")
    sock.settimeout(None)
    return sock


def form_world_via_store(store, rank: int, world_size: int, timeout=None,
                         host: str | None = None) -> str:
    """Form the MPI world of a rendezvous: rank 0 runs the PMI server, all configure MPI.

    Rank 0 starts the server process (bound to ``host``: by default the address of the
    rendezvous ``TCPStore``, else this machine's name) and publishes its address in ``store``;
    the other ranks read it. Returns the address. Call before importing ``mpi4py.MPI``.
    """
    from datetime import timedelta
    timeout = store.timeout if timeout is None else timeout
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if rank == 0:
        if host is None:
            host = _store_host(store) or socket.gethostbyname(socket.gethostname())
        server = start_server(world_size, host, 0, seconds, parent_rank=0)
        global _server
        _server = server
        address = server.address
        store.set(_STORE_KEY, address)
    else:
        store.wait([_STORE_KEY], timedelta(seconds=seconds))
        address = store.get(_STORE_KEY).decode()
    configure_mpi_env(address, rank, world_size, timeout=seconds)
    return address


_server: PMIServerProcess | None = None


def _store_host(store) -> str | None:
    while store is not None:
        host = getattr(store, "host", None)
        if isinstance(host, str) and host:
            return socket.gethostbyname(host)
        store = getattr(store, "underlying_store", None)
    return None


def main(argv=None) -> int:
    """``python _pmi.py --world-size N [--host H] [--port P] [--timeout S]``.

    Prints ``DTORCH_PMI_ADDRESS=host:port`` on stdout once listening, then serves.
    """
    p = argparse.ArgumentParser(description="PMI-1 process manager for one MPI world")
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    p.add_argument("--process-mapping", default="auto")
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--parent-rank", type=int, default=None)
    p.add_argument("--linger", type=float, default=1.0)
    args = p.parse_args(argv)

    def ready(address):
        print(_ADDR_PREFIX + address, flush=True)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the reader closes the pipe after one line
        os.close(devnull)

    return serve(args.world_size, args.host, args.port, args.timeout, on_ready=ready,
                 process_mapping=args.process_mapping, parent_pid=args.parent_pid,
                 parent_rank=args.parent_rank, linger=args.linger)


if __name__ == "__main__":
    sys.exit(main())
